//! Parser and renderer tests, one construct at a time; expected texts were printed by
//! iptables-save 1.8.9 (nf_tables) after loading the input into a network namespace.

use super::ast::*;
use super::parse::{detect_family, parse, parse_family};
use crate::error::Error;
use crate::net::Family;

/// Parses one rule in `table`/`chain` (declaring `X` and `Y` as user chains) and returns the
/// saved rule text.
fn saved(table: &str, rule: &str) -> String {
    let text = format!("*{table}\n:X - [0:0]\n:Y - [0:0]\n{rule}\nCOMMIT\n");
    let rs = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let out = rs.save(false);
    out.lines().find(|l| l.starts_with("-A")).unwrap_or("").to_string()
}

fn err(table: &str, rule: &str) -> Error {
    let text = format!("*{table}\n:X - [0:0]\n:Y - [0:0]\n{rule}\nCOMMIT\n");
    parse(&text).expect_err("must fail")
}

#[test]
fn basic_matches_move_to_the_front() {
    assert_eq!(
        saved("nat", "-A X -m comment --comment \"a b\" -m tcp -p tcp -d 1.2.3.4 --dport 80 ! -s 10.0.0.0/8 -j Y"),
        "-A X ! -s 10.0.0.0/8 -d 1.2.3.4/32 -p tcp -m comment --comment \"a b\" -m tcp --dport 80 -j Y"
    );
    assert_eq!(saved("filter", "-A X -f -p 17 ! -o lo -i eth+ -j ACCEPT"), "-A X -i eth+ ! -o lo -p udp -f -j ACCEPT");
    assert_eq!(saved("filter", "-A X -p all -j ACCEPT"), "-A X -j ACCEPT");
    assert_eq!(saved("filter", "-A X -p 47 -j ACCEPT"), "-A X -p gre -j ACCEPT");
}

#[test]
fn implicit_protocol_modules() {
    assert_eq!(saved("filter", "-A X -p tcp --dport http -j ACCEPT"), "-A X -p tcp -m tcp --dport 80 -j ACCEPT");
    assert_eq!(
        saved("filter", "-A X -p udp --sport 53:60 ! --dport 1000 -j ACCEPT"),
        "-A X -p udp -m udp --sport 53:60 ! --dport 1000 -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -p tcp ! --syn -j ACCEPT"),
        "-A X -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -p icmp --icmp-type echo-request -j ACCEPT"),
        "-A X -p icmp -m icmp --icmp-type 8 -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -p icmp ! --icmp-type any -j ACCEPT"),
        "-A X -p icmp -m icmp ! --icmp-type any -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -p icmp --icmp-type 3/4 -j ACCEPT"),
        "-A X -p icmp -m icmp --icmp-type 3/4 -j ACCEPT"
    );
    assert_eq!(saved("filter", "-A X -p tcp -m tcp --sport 0:65535 -j ACCEPT"), "-A X -p tcp -m tcp -j ACCEPT");
}

#[test]
fn marks_are_normalised() {
    assert_eq!(saved("nat", "-A X -j MARK --or-mark 0x4000"), "-A X -j MARK --set-xmark 0x4000/0x4000");
    assert_eq!(saved("nat", "-A X -j MARK --xor-mark 0x4000"), "-A X -j MARK --set-xmark 0x4000/0x0");
    assert_eq!(saved("nat", "-A X -j MARK --and-mark 0xff"), "-A X -j MARK --set-xmark 0x0/0xffffff00");
    assert_eq!(saved("nat", "-A X -j MARK --set-mark 5"), "-A X -j MARK --set-xmark 0x5/0xffffffff");
    assert_eq!(saved("nat", "-A X -j MARK --set-mark 0x7/0xff"), "-A X -j MARK --set-xmark 0x7/0xff");
    assert_eq!(
        saved("nat", "-A X -m mark ! --mark 0x4000/0x4000 -j RETURN"),
        "-A X -m mark ! --mark 0x4000/0x4000 -j RETURN"
    );
    assert_eq!(saved("nat", "-A X -m mark --mark 16 -j RETURN"), "-A X -m mark --mark 0x10 -j RETURN");
    assert_eq!(
        saved("nat", "-A X -j CONNMARK --save-mark --mask 0xff"),
        "-A X -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff"
    );
    assert_eq!(saved("nat", "-A X -j CONNMARK --or-mark 0x4"), "-A X -j CONNMARK --set-xmark 0x4/0x4");
}

#[test]
fn statistic_probability_is_the_kernel_fraction() {
    assert_eq!(
        saved("nat", "-A X -m statistic --mode random --probability 0.3333333333 -j Y"),
        "-A X -m statistic --mode random --probability 0.33333333349 -j Y"
    );
    let a = parse("*nat\n:X - [0:0]\n-A X -m statistic --mode random --probability 0.5000000000\nCOMMIT\n").unwrap();
    let b = parse("*nat\n:X - [0:0]\n-A X -m statistic --mode random --probability 0.50000000000\nCOMMIT\n").unwrap();
    assert_eq!(a, b);
    let rule = &a.tables[0].chain("X").unwrap().rules[0];
    assert_eq!(rule.matches[0], Match::Statistic(Neg::plain(Statistic::Random { probability: 1 << 30 })));
    assert_eq!(
        saved("nat", "-A X -m statistic --mode nth --every 3 --packet 1 -g Y"),
        "-A X -m statistic --mode nth --every 3 --packet 1 -g Y"
    );
    assert_parse_err(err("nat", "-A X -m statistic --mode nth --every 2 -j Y"), 4, "requires \"--packet\"");
}

#[test]
fn recent_gets_its_defaults() {
    assert_eq!(
        saved("nat", "-A X -m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap -j Y"),
        "-A X -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j Y"
    );
    assert_eq!(
        saved("nat", "-A X -m recent ! --update --hitcount 3 --rttl --rdest --mask 255.255.0.0 -j Y"),
        "-A X -m recent ! --update --hitcount 3 --rttl --name DEFAULT --mask 255.255.0.0 --rdest -j Y"
    );
}

#[test]
fn conntrack_state_addrtype_multiport_physdev_nfacct() {
    assert_eq!(
        saved("filter", "-A X -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT --ctproto tcp --ctorigdst 10.0.0.1 --ctstatus ASSURED,SEEN_REPLY --ctdir REPLY ! --ctorigsrcport 1000:2000 -j DROP"),
        "-A X -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT --ctproto 6 --ctorigdst 10.0.0.1 ! --ctorigsrcport 1000:2000 --ctstatus SEEN_REPLY,ASSURED --ctdir REPLY -j DROP"
    );
    assert_eq!(
        saved("filter", "-A X -m state --state ESTABLISHED,RELATED -j ACCEPT"),
        "-A X -m state --state RELATED,ESTABLISHED -j ACCEPT"
    );
    assert_eq!(
        saved("nat", "-A X -m addrtype --src-type LOCAL,UNICAST ! --dst-type BROADCAST --limit-iface-in -j Y"),
        "-A X -m addrtype --src-type UNICAST,LOCAL ! --dst-type BROADCAST --limit-iface-in -j Y"
    );
    assert_eq!(
        saved("filter", "-A X -p tcp -m multiport --dports http,443,8000:8080 -j ACCEPT"),
        "-A X -p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -m physdev --physdev-out br0 --physdev-is-in ! --physdev-is-out -j ACCEPT"),
        "-A X -m physdev --physdev-is-in ! --physdev-is-out --physdev-out br0 -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -m nfacct --nfacct-name acct -j ACCEPT"),
        "-A X -m nfacct --nfacct-name  acct -j ACCEPT"
    );
}

#[test]
fn nat_targets() {
    assert_eq!(
        saved("nat", "-A PREROUTING -p tcp -j DNAT --to-destination 10.1.1.1-10.1.1.5:80-90 --random --persistent"),
        "-A PREROUTING -p tcp -j DNAT --to-destination 10.1.1.1-10.1.1.5:80-90 --random --persistent"
    );
    assert_eq!(
        saved("nat", "-A PREROUTING -p tcp -j DNAT --to-destination :8080"),
        "-A PREROUTING -p tcp -j DNAT --to-destination :8080"
    );
    assert_eq!(
        saved("nat", "-A POSTROUTING -p udp -j SNAT --to-source 10.2.2.2 --random-fully"),
        "-A POSTROUTING -p udp -j SNAT --to-source 10.2.2.2 --random-fully"
    );
    assert_eq!(
        saved("nat", "-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1000-2000 --random"),
        "-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1000-2000 --random"
    );
    assert_eq!(
        saved("nat", "-A PREROUTING -p tcp -j REDIRECT --to-ports 43321"),
        "-A PREROUTING -p tcp -j REDIRECT --to-ports 43321"
    );
}

#[test]
fn log_nflog_reject_ct() {
    assert_eq!(
        saved("filter", "-A X -j LOG --log-uid --log-level 4 --log-tcp-sequence --log-prefix \"hi there \""),
        "-A X -j LOG --log-prefix \"hi there \" --log-tcp-sequence --log-uid"
    );
    assert_eq!(saved("filter", "-A X -j LOG --log-level debug"), "-A X -j LOG --log-level 7");
    assert_eq!(
        saved("filter", "-A X -j NFLOG --nflog-group 5 --nflog-prefix pfx --nflog-threshold 3 --nflog-size 100"),
        "-A X -j NFLOG --nflog-prefix pfx --nflog-group 5 --nflog-size 100 --nflog-threshold 3"
    );
    assert_eq!(saved("filter", "-A INPUT -j REJECT"), "-A INPUT -j REJECT --reject-with icmp-port-unreachable");
    assert_eq!(
        saved("filter", "-A INPUT -p tcp -j REJECT --reject-with tcp-rst"),
        "-A INPUT -p tcp -j REJECT --reject-with tcp-reset"
    );
    assert_eq!(saved("raw", "-A PREROUTING -j NOTRACK"), "-A PREROUTING -j NOTRACK");
    assert_eq!(saved("raw", "-A PREROUTING -j CT --notrack"), "-A PREROUTING -j CT --notrack");
    assert_eq!(saved("raw", "-A OUTPUT -j CT --zone 5"), "-A OUTPUT -j CT --zone 5");
}

#[test]
fn comments_are_quoted_like_iptables_save() {
    assert_eq!(
        saved("filter", "-A X -m comment --comment ns1/svc1:p80 -j ACCEPT"),
        "-A X -m comment --comment \"ns1/svc1:p80\" -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -m comment --comment plain-word_1 -j ACCEPT"),
        "-A X -m comment --comment plain-word_1 -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -m comment --comment \"it's\" -j ACCEPT"),
        "-A X -m comment --comment \"it\\'s\" -j ACCEPT"
    );
    assert_eq!(saved("filter", "-A X -m comment --comment \"\" -j ACCEPT"), "-A X -m comment --comment \"\" -j ACCEPT");
}

#[test]
fn tables_and_chains_in_save_order() {
    let rs = parse(
        "*nat\n:ZZZ - [0:0]\n:AAA - [0:0]\n:lower - [0:0]\nCOMMIT\n*filter\n-P INPUT ACCEPT\nCOMMIT\n\
         *raw\n-P OUTPUT ACCEPT\nCOMMIT\n*mangle\n-P INPUT ACCEPT\nCOMMIT\n*security\nCOMMIT\n",
    )
    .unwrap();
    let names: Vec<TableName> = rs.tables.iter().map(|t| t.name).collect();
    assert_eq!(names, vec![TableName::Mangle, TableName::Raw, TableName::Filter, TableName::Nat]);
    let nat: Vec<&str> = rs.tables[3].chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(nat, vec!["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "AAA", "ZZZ", "lower"]);
    // A section with no command creates no table (iptables-restore, nf_tables backend).
    assert!(parse("*nat\nCOMMIT\n*filter\n-F\nCOMMIT\n").unwrap().tables.is_empty());
}

#[test]
fn restore_commands() {
    let rs = parse(
        "*filter\n-N A\n-A A -j ACCEPT\n-I A -j DROP\n-I A 2 -j RETURN\n-P INPUT DROP\n:B - [0:0]\n-X B\nCOMMIT\n",
    )
    .unwrap();
    let t = &rs.tables[0];
    assert_eq!(t.chain("INPUT").unwrap().policy, Some(Policy::Drop));
    let a: Vec<&Target> = t.chain("A").unwrap().rules.iter().map(|r| &r.target).collect();
    assert_eq!(a, vec![&Target::Drop, &Target::Return, &Target::Accept]);
    assert!(t.chain("B").is_none());
}

#[test]
fn counters_are_kept_but_do_not_affect_equality() {
    let a =
        parse("*filter\n:INPUT ACCEPT [5:300]\n[1:2] -A INPUT -j ACCEPT\n-A INPUT -c 3 4 -j DROP\nCOMMIT\n").unwrap();
    let b = parse("*filter\n-A INPUT -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n").unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.save(true),
        "*filter\n:INPUT ACCEPT [5:300]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[1:2] -A INPUT -j ACCEPT\n[3:4] -A INPUT -j DROP\nCOMMIT\n"
    );
}

#[test]
fn family_detection() {
    assert_eq!(detect_family("*nat\n-A X -d 10.0.0.1 -j ACCEPT\n"), Family::V4);
    assert_eq!(detect_family("*nat\n-A X -d fd00::1 -j ACCEPT\n"), Family::V6);
    assert_eq!(detect_family("# Generated by ip6tables-save v1.8.9\n*nat\n"), Family::V6);
    assert!(parse_family("*filter\n-A INPUT -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT\nCOMMIT\n", Family::V6)
        .is_ok());
}

fn assert_parse_err(e: Error, line: usize, needle: &str) {
    match e {
        Error::Parse { line: l, column, message, .. } => {
            assert_eq!(l, line, "{message}");
            assert!(column >= 1);
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("not a parse error: {other:?}"),
    }
}

#[test]
fn refusals_name_the_line() {
    assert_parse_err(err("nat", "-A X -j DROP"), 4, "not intended for filtering");
    assert_parse_err(err("filter", "-A X -j DNAT --to-destination 1.1.1.1"), 4, "not allowed in the filter table");
    assert_parse_err(err("mangle", "-A PREROUTING -j REJECT"), 4, "REJECT");
    assert_parse_err(err("nat", "-A POSTROUTING -j DNAT --to-destination 1.1.1.1"), 4, "POSTROUTING");
    assert_parse_err(err("nat", "-A X -j MISSING"), 4, "does not exist");
    assert_parse_err(err("nat", "-A X -m nosuch"), 4, "unknown match module");
    assert_parse_err(err("nat", "-A X -p tcp --nosuch 1"), 4, "unknown option");
    assert_parse_err(err("nat", "-A X -j NOSUCH-TARGET"), 4, "does not exist");
    assert_parse_err(err("filter", "-A X -m tcp --dport 80 -j ACCEPT"), 4, "requires '-p tcp'");
    assert_parse_err(err("filter", "-A X -p tcp --dport 5:3 -j ACCEPT"), 4, "min > max");
    assert_parse_err(err("nat", "-A PREROUTING -j DNAT --to-destination 1.1.1.1:80"), 4, "Need TCP");
    assert_parse_err(err("nat", "-A PREROUTING -p tcp -j DNAT --to-destination 1.1.1.1:90-80"), 4, "funky");
    assert_parse_err(err("filter", "-A X -m statistic --mode nth --every 3 --packet 3 -j ACCEPT"), 4, "--packet");
    assert_parse_err(err("filter", "-A X -m statistic --mode random --probability 1.5 -j ACCEPT"), 4, "out of range");
    assert_parse_err(err("filter", "-A X -s 1.1.1.1 -s 2.2.2.2 -j ACCEPT"), 4, "multiple -s");
    assert_parse_err(err("filter", "-A X -m recent --set --rcheck -j ACCEPT"), 4, "cannot be used together");
    assert_parse_err(
        err("filter", "-A X -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j ACCEPT"),
        4,
        "too many ports",
    );
    assert_parse_err(err("filter", ":ABCDEFGHIJKLMNOPQRSTUVWXYZ123 - [0:0]"), 4, "too long");
    assert_parse_err(err("filter", "-A X -i abcdefghijklmnop -j ACCEPT"), 4, "IFNAMSIZ");
    assert_parse_err(err("filter", "-A X -j"), 4, "requires an argument");
    let loop_text = "*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\n-A PREROUTING -j A\nCOMMIT\n";
    // The kernel names the rule after which the loop is reachable (iptables-restore says line 6).
    assert_parse_err(parse(loop_text).unwrap_err(), 6, "loop");
    // The same loop, unreachable from a built-in chain, is accepted (as the kernel does).
    assert!(parse("*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n").is_ok());
    // Deleting a chain that is still referenced fails.
    assert_parse_err(parse("*nat\n:A - [0:0]\n-A PREROUTING -j A\n-X A\nCOMMIT\n").unwrap_err(), 4, "referenced");
}

#[test]
fn huge_lines_and_deep_nesting_are_bounded() {
    let long =
        format!("*filter\n-A INPUT -m comment --comment {}\nCOMMIT\n", "x".repeat(super::parse::MAX_LINE_BYTES + 1));
    assert_parse_err(parse(&long).unwrap_err(), 2, "limit");
    let mut text = String::from("*filter\n");
    for i in 0..20_000 {
        text.push_str(&format!(":C{i} - [0:0]\n"));
    }
    text.push_str("-A INPUT -j C0\n");
    for i in 0..19_999 {
        text.push_str(&format!("-A C{i} -j C{}\n", i + 1));
    }
    text.push_str("COMMIT\n");
    assert!(parse(&text).is_ok());
}

// --- robustness: refusals as the kernel words and places them ---

#[test]
fn loop_refusal_names_the_rule_that_makes_it_reachable() {
    // The loop closes on line 5, but only line 7 connects it to PREROUTING.
    let text =
        "*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\n-A PREROUTING -j A\nCOMMIT\n";
    assert_parse_err(parse(text).unwrap_err(), 7, "loop reachable from PREROUTING");
    // Reachable first, closed later: the closing jump is refused.
    let text =
        "*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A PREROUTING -j A\n-A A -j B\n-A B -g A\nCOMMIT\n";
    assert_parse_err(parse(text).unwrap_err(), 7, "loop");
    // A chain jumping to itself.
    assert_parse_err(parse("*filter\n:A - [0:0]\n-A INPUT -j A\n-A A -j A\nCOMMIT\n").unwrap_err(), 4, "loop");
}

#[test]
fn jumps_to_built_in_chains_are_refused() {
    for (table, jump) in
        [("filter", "-A INPUT -j OUTPUT"), ("filter", "-A X -g FORWARD"), ("nat", "-A X -j PREROUTING")]
    {
        let text = format!("*{table}\n:X - [0:0]\n{jump}\nCOMMIT\n");
        assert_parse_err(parse(&text).unwrap_err(), 3, "built-in chain");
    }
}

#[test]
fn deep_chain_nesting_is_checked_without_recursion() {
    // 20,000 chains in a row: each jumps to the next; the last one loops back to the first.
    let n = 20_000;
    let mut text = String::from("*filter\n");
    for i in 0..n {
        text.push_str(&format!(":C{i} - [0:0]\n"));
    }
    text.push_str("-A INPUT -j C0\n");
    for i in 0..n - 1 {
        text.push_str(&format!("-A C{i} -j C{}\n", i + 1));
    }
    assert!(parse(&format!("{text}COMMIT\n")).is_ok());
    // Line 1 `*filter`, n declarations, the INPUT jump, n - 1 jumps, then the closing one.
    let closing_line = 2 * n + 2;
    text.push_str(&format!("-A C{} -j C0\nCOMMIT\n", n - 1));
    assert_parse_err(parse(&text).unwrap_err(), closing_line, "loop");
}

#[test]
fn target_refusal_names_the_jump_that_reaches_it() {
    // DNAT on line 3 is fine until line 4 makes it reachable from POSTROUTING.
    let text = "*nat\n:X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1\n-A POSTROUTING -j X\nCOMMIT\n";
    assert_parse_err(parse(text).unwrap_err(), 4, "not allowed in POSTROUTING");
    // Already reachable: the DNAT rule itself is refused.
    let text = "*nat\n:X - [0:0]\n-A POSTROUTING -j X\n-A X -p tcp -j DNAT --to-destination 10.0.0.1\nCOMMIT\n";
    assert_parse_err(parse(text).unwrap_err(), 4, "not allowed in POSTROUTING");
}

#[test]
fn long_strings_are_cut_like_the_kernel() {
    let comment = "c".repeat(300);
    let out = saved("filter", &format!("-A X -m comment --comment {comment}"));
    assert_eq!(out, format!("-A X -m comment --comment {}", "c".repeat(255)));
    let out = saved("filter", &format!("-A X -j LOG --log-prefix {}", "p".repeat(40)));
    assert_eq!(out, format!("-A X -j LOG --log-prefix {}", "p".repeat(29)));
}

#[test]
fn conntrack_addresses_keep_host_bits_as_the_kernel_prints_them() {
    assert_eq!(
        saved("filter", "-A X -m conntrack --ctorigdst 10.1.2.3/8 ! --ctorigsrc 0.0.0.0/0 -j ACCEPT"),
        "-A X -m conntrack ! --ctorigsrc 0.0.0.0/0 --ctorigdst 10.1.2.3/8 -j ACCEPT"
    );
    assert_eq!(
        saved("filter", "-A X -m conntrack --ctrepldst 10.0.0.0/8 -j ACCEPT"),
        "-A X -m conntrack --ctrepldst 10.0.0.0/8 -j ACCEPT"
    );
}

#[test]
fn name_length_shortcuts_cover_every_name() {
    use super::parse::{builtin_chains, LONGEST_TARGET_NAME};
    assert!(super::targets::TARGET_NAMES.iter().all(|n| n.len() <= LONGEST_TARGET_NAME));
    for table in [TableName::Raw, TableName::Mangle, TableName::Nat, TableName::Filter, TableName::Security] {
        assert!(builtin_chains(table).iter().all(|n| n.len() <= "POSTROUTING".len()));
    }
}

#[test]
fn chain_lines_split_on_the_same_whitespace_as_split_whitespace() {
    // Vertical tab and form feed are whitespace to `split_whitespace`, so they are here too.
    for spacing in [" ", "\t", "\u{b}", "\u{c}", "\r", "  \t", "\u{a0}"] {
        let text = format!("*filter\n:X{spacing}-{spacing}[1:2]\n-A X -j ACCEPT\nCOMMIT\n");
        let parsed = parse(&text);
        if spacing == "\u{a0}" {
            // A no-break space is whitespace too, though not ASCII.
            assert!(parsed.is_ok(), "{spacing:?}: {parsed:?}");
        } else {
            let chain = parsed.unwrap_or_else(|e| panic!("{spacing:?}: {e}"));
            assert_eq!(chain.table(TableName::Filter).and_then(|t| t.chain("X")).map(|c| c.rules.len()), Some(1));
        }
    }
}
