//! The `iptables -t TABLE -L [-n]` view of a table, byte for byte as iptables 1.8.9 (nf_tables)
//! prints it without `-v`: `target prot opt source destination` columns, then each match's and
//! the target's own description (`tcp dpt:http`, `/* comment */`, `to:10.96.0.1:80`, ...).

use std::fmt::Write as _;

use super::ast::{
    ConnmarkOp, IcmpType, Match, MultiportSide, Neg, Policy, PortRange, Recent, RecentCommand, Rule, Ruleset,
    Statistic, Table, TableName, Target, TcpFlags,
};
use super::names;
use super::parse::builtin_chains;
use super::render::{bit_names, dash_range, mark_text, nat_range_text, save_conntrack, save_physdev, tcp_flag_names};
use super::tokenize::save_string;
use super::values::format_probability;
use crate::net::{Cidr, Family};

impl Ruleset {
    /// What `iptables -t TABLE -L` (or with `-n` when `numeric`) prints for this ruleset.
    /// A table the dump does not have lists its empty built-in chains, as the kernel would.
    pub fn listing(&self, table: TableName, numeric: bool) -> String {
        match self.table(table) {
            Some(t) => list_table(t, self.family, numeric),
            None => {
                let empty = Table {
                    name: table,
                    chains: builtin_chains(table)
                        .iter()
                        .map(|n| super::ast::Chain {
                            name: (*n).to_string(),
                            policy: Some(Policy::Accept),
                            counters: None,
                            rules: Vec::new(),
                            line: 0,
                        })
                        .collect(),
                    line: 0,
                };
                list_table(&empty, self.family, numeric)
            }
        }
    }
}

const HEADER: &str = "target     prot opt source               destination         \n";

fn list_table(table: &Table, family: Family, numeric: bool) -> String {
    let mut out = String::new();
    // References per chain, counted once (a dump can have 100k chains).
    let mut refs: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for rule in table.chains.iter().flat_map(|c| &c.rules) {
        if let Target::Jump(t) | Target::Goto(t) = &rule.target {
            *refs.entry(t.as_str()).or_default() += 1;
        }
    }
    for (i, chain) in table.chains.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match chain.policy {
            Some(p) => {
                let p = if p == Policy::Accept { "ACCEPT" } else { "DROP" };
                let _ = writeln!(out, "Chain {} (policy {p})", chain.name);
            }
            None => {
                let n = refs.get(chain.name.as_str()).copied().unwrap_or(0);
                let _ = writeln!(out, "Chain {} ({n} references)", chain.name);
            }
        }
        out.push_str(HEADER);
        for rule in &chain.rules {
            list_rule(&mut out, rule, family, numeric);
        }
    }
    out
}

/// The word in the `target` column.
fn target_column(t: &Target) -> &str {
    match t {
        Target::None => "",
        Target::Accept => "ACCEPT",
        Target::Drop => "DROP",
        Target::Return => "RETURN",
        Target::Reject(_) => "REJECT",
        Target::Jump(c) | Target::Goto(c) => c,
        Target::Dnat { .. } => "DNAT",
        Target::Snat { .. } => "SNAT",
        Target::Masquerade { .. } => "MASQUERADE",
        Target::Redirect { .. } => "REDIRECT",
        Target::Mark { .. } => "MARK",
        Target::Connmark(_) => "CONNMARK",
        Target::Log(_) => "LOG",
        Target::Nflog(_) => "NFLOG",
        Target::Notrack | Target::Ct(_) => "CT",
    }
}

/// An address column: `anywhere` / `0.0.0.0/0` for everything, else the (named) address and
/// its prefix unless it is a single host.
fn address_column(c: Option<&Cidr>, family: Family, numeric: bool) -> String {
    let any = Cidr::any(family);
    let c = c.unwrap_or(&any);
    if c.prefix() == 0 && !numeric {
        return "anywhere".into();
    }
    let name = if numeric {
        c.addr().to_string()
    } else {
        names::host_name(&c.addr())
            .or_else(|| names::network_name(&c.addr()))
            .map_or_else(|| c.addr().to_string(), str::to_string)
    };
    if c.is_host() {
        name
    } else {
        format!("{name}/{}", c.prefix())
    }
}

fn list_rule(out: &mut String, rule: &Rule, family: Family, numeric: bool) {
    let mut proto: Option<Neg<u8>> = None;
    let mut fragment: Option<Neg<()>> = None;
    let mut src = None;
    let mut dst = None;
    for m in &rule.matches {
        match m {
            Match::Protocol(p) => proto = Some(*p),
            Match::Fragment(f) => fragment = Some(*f),
            Match::Source(s) => src = Some(*s),
            Match::Destination(d) => dst = Some(*d),
            _ => {}
        }
    }
    let _ = write!(out, "{:<9} ", target_column(&rule.target));
    let p = proto.unwrap_or(Neg::plain(0));
    out.push(if p.negated { '!' } else { ' ' });
    let pname = if numeric { None } else { names::protocol_name(p.value) };
    let _ = write!(out, "{:<4} ", pname.map_or_else(|| p.value.to_string(), str::to_string));
    // The `opt` column: fragment flags (ip6tables prints `--` too).
    out.push(if fragment.is_some_and(|f| f.negated) { '!' } else { '-' });
    out.push(if fragment.is_some() { 'f' } else { '-' });
    out.push(' ');
    for a in [src, dst] {
        out.push(if a.is_some_and(|a| a.negated) { '!' } else { ' ' });
        let _ = write!(out, "{:<19} ", address_column(a.as_ref().map(|a| &a.value), family, numeric));
    }
    if matches!(rule.target, Target::Goto(_)) {
        out.push_str("[goto] ");
    }
    let rule_proto = proto.filter(|p| !p.negated).map_or(0, |p| p.value);
    for m in &rule.matches {
        list_match(out, m, family, numeric, rule_proto);
    }
    list_target(out, &rule.target, numeric);
    out.push('\n');
}

fn port_text(port: u16, proto: &str, numeric: bool) -> String {
    if numeric {
        return port.to_string();
    }
    names::service_name(port, proto).map_or_else(|| port.to_string(), str::to_string)
}

fn list_ports(out: &mut String, name: &str, r: &Option<Neg<PortRange>>, proto: &str, numeric: bool) {
    let Some(r) = r else { return };
    let inv = if r.negated { "!" } else { "" };
    let v = r.value;
    if v.first == v.last {
        let _ = write!(out, " {name}:{inv}{}", port_text(v.first, proto, numeric));
    } else {
        let _ =
            write!(out, " {name}s:{inv}{}:{}", port_text(v.first, proto, numeric), port_text(v.last, proto, numeric));
    }
}

fn list_flags(out: &mut String, flags: &Option<Neg<TcpFlags>>, numeric: bool) {
    let Some(f) = flags else { return };
    let inv = if f.negated { "!" } else { "" };
    if numeric {
        let _ = write!(out, " flags:{inv}0x{:02X}/0x{:02X}", f.value.mask, f.value.comp);
    } else {
        let _ = write!(out, " flags:{inv}{}/{}", tcp_flag_names(f.value.mask), tcp_flag_names(f.value.comp));
    }
}

fn list_icmp(out: &mut String, t: Neg<IcmpType>, v6: bool, numeric: bool) {
    out.push_str(if v6 { " ipv6-icmp" } else { " icmp" });
    let (lo, hi) = t.value.code.unwrap_or((0, 0xFF));
    if !numeric {
        let table = if v6 { names::ICMP6_TYPES } else { names::ICMP_TYPES };
        if let Some((name, ..)) = table.iter().find(|(_, k, l, h)| *k == t.value.kind && *l == lo && *h == hi) {
            let _ = write!(out, " {}{name}", if t.negated { "!" } else { "" });
            return;
        }
    }
    if t.negated {
        out.push_str(" !");
    }
    let _ = write!(out, "type {}", t.value.kind);
    if lo == hi {
        let _ = write!(out, " code {lo}");
    } else if (lo, hi) != (0, 0xFF) {
        let _ = write!(out, " codes {lo}-{hi}");
    }
}

fn list_recent(out: &mut String, r: &Recent) {
    if r.negated {
        out.push_str(" !");
    }
    out.push_str(" recent:");
    out.push_str(match r.command {
        RecentCommand::Set => " SET",
        RecentCommand::Check => " CHECK",
        RecentCommand::Update => " UPDATE",
        RecentCommand::Remove => " REMOVE",
    });
    if let Some(s) = r.seconds {
        let _ = write!(out, " seconds: {s}");
    }
    if r.reap {
        out.push_str(" reap");
    }
    if let Some(h) = r.hitcount {
        let _ = write!(out, " hit_count: {h}");
    }
    if r.rttl {
        out.push_str(" TTL-Match");
    }
    let side = if r.use_destination { "dest" } else { "source" };
    let _ = write!(out, " name: {} side: {side} mask: {}", r.name, r.mask);
}

fn list_match(out: &mut String, m: &Match, family: Family, numeric: bool, rule_proto: u8) {
    let bang = |out: &mut String, n: bool| {
        if n {
            out.push_str(" !");
        }
    };
    match m {
        Match::Source(_) | Match::Destination(_) | Match::Protocol(_) | Match::Fragment(_) => {}
        Match::InInterface(_) | Match::OutInterface(_) => {}
        Match::Tcp { sport, dport, flags } => {
            out.push_str(" tcp");
            list_ports(out, "spt", sport, "tcp", numeric);
            list_ports(out, "dpt", dport, "tcp", numeric);
            list_flags(out, flags, numeric);
        }
        Match::Udp { sport, dport } => {
            out.push_str(" udp");
            list_ports(out, "spt", sport, "udp", numeric);
            list_ports(out, "dpt", dport, "udp", numeric);
        }
        Match::Sctp { sport, dport } => {
            out.push_str(" sctp");
            list_ports(out, "spt", sport, "sctp", numeric);
            list_ports(out, "dpt", dport, "sctp", numeric);
        }
        Match::Multiport { side, ports, negated } => {
            out.push_str(match side {
                MultiportSide::Source => " multiport sports ",
                MultiportSide::Destination => " multiport dports ",
                MultiportSide::Either => " multiport ports ",
            });
            bang(out, *negated);
            let proto = names::port_proto_name(rule_proto).unwrap_or("tcp");
            let items: Vec<String> = ports
                .iter()
                .map(|r| {
                    if r.first == r.last {
                        port_text(r.first, proto, numeric)
                    } else {
                        format!("{}:{}", port_text(r.first, proto, numeric), port_text(r.last, proto, numeric))
                    }
                })
                .collect();
            out.push_str(&items.join(","));
        }
        Match::Comment(c) => {
            let _ = write!(out, " /* {c} */");
        }
        Match::Mark(v) => {
            out.push_str(" mark match");
            bang(out, v.negated);
            let _ = write!(out, " {}", mark_text(v.value.0, v.value.1));
        }
        Match::Connmark(v) => {
            out.push_str(" connmark match ");
            if v.negated {
                out.push('!');
            }
            let _ = write!(out, " {}", mark_text(v.value.0, v.value.1));
        }
        Match::AddrType { src, dst, limit_iface_in, limit_iface_out } => {
            out.push_str(" ADDRTYPE match");
            for (word, t) in [("src-type", src), ("dst-type", dst)] {
                if let Some(t) = t {
                    let inv = if t.negated { "!" } else { "" };
                    let _ = write!(out, " {word} {inv}{}", bit_names(t.value.0, names::ADDR_TYPES));
                }
            }
            if *limit_iface_in {
                out.push_str(" limit-in");
            }
            if *limit_iface_out {
                out.push_str(" limit-out");
            }
        }
        Match::Statistic(s) => match s.value {
            Statistic::Random { probability } => {
                out.push_str(" statistic mode random");
                bang(out, s.negated);
                let _ = write!(out, " probability {}", format_probability(probability));
            }
            Statistic::Nth { every, packet } => {
                out.push_str(" statistic mode nth");
                bang(out, s.negated);
                let _ = write!(out, " every {every}");
                if packet != 0 {
                    let _ = write!(out, " packet {packet}");
                }
            }
        },
        Match::Recent(r) => list_recent(out, r),
        Match::Conntrack(ct) => save_conntrack(out, ct, "", !numeric),
        Match::State(s) => {
            bang(out, s.negated);
            let _ = write!(out, " state {}", bit_names(s.value.0, names::CT_STATES));
        }
        Match::Icmp(t) => list_icmp(out, *t, false, numeric),
        Match::Icmp6(t) => list_icmp(out, *t, true, numeric),
        Match::Nfacct(n) => {
            let _ = write!(out, " nfacct-name  {n}");
        }
        Match::Physdev(p) => {
            out.push_str(" PHYSDEV match");
            save_physdev(out, p, "--");
        }
    }
    let _ = family;
}

fn xmark_words(out: &mut String, what: &str, value: u32, mask: u32) {
    if value == 0 {
        let _ = write!(out, " {what} and 0x{:x}", !mask);
    } else if value == mask {
        let _ = write!(out, " {what} or 0x{value:x}");
    } else if mask == 0 {
        let _ = write!(out, " {what} xor 0x{value:x}");
    } else if mask == u32::MAX {
        let _ = write!(out, " {what} set 0x{value:x}");
    } else {
        let _ = write!(out, " {what} xset 0x{value:x}/0x{mask:x}");
    }
}

fn list_target(out: &mut String, t: &Target, numeric: bool) {
    match t {
        Target::None | Target::Accept | Target::Drop | Target::Return | Target::Jump(_) | Target::Goto(_) => {}
        Target::Reject(with) => {
            let _ = write!(out, " reject-with {}", names::reject_name(*with));
        }
        Target::Dnat { ranges, random, persistent } => {
            for r in ranges {
                let _ = write!(out, " to:{}", nat_range_text(r));
            }
            if *random {
                out.push_str(" random");
            }
            if *persistent {
                out.push_str(" persistent");
            }
        }
        Target::Snat { ranges, random, random_fully, persistent } => {
            for r in ranges {
                let _ = write!(out, " to:{}", nat_range_text(r));
            }
            if *random {
                out.push_str(" random");
            }
            if *random_fully {
                out.push_str(" random-fully");
            }
            if *persistent {
                out.push_str(" persistent");
            }
        }
        Target::Masquerade { ports, random, random_fully } => {
            if let Some(p) = ports {
                let _ = write!(out, " masq ports: {}", dash_range(*p));
            }
            if *random {
                out.push_str(" random");
            }
            if *random_fully {
                out.push_str(" random-fully");
            }
        }
        Target::Redirect { ports, random } => {
            if let Some(p) = ports {
                let _ = write!(out, " redir ports {}", dash_range(*p));
            }
            if *random {
                out.push_str(" random");
            }
        }
        Target::Mark { value, mask } => xmark_words(out, "MARK", *value, *mask),
        Target::Connmark(op) => match *op {
            ConnmarkOp::SetXmark { value, mask } => xmark_words(out, "CONNMARK", value, mask),
            ConnmarkOp::Save { nfmask, ctmask } => {
                if nfmask == u32::MAX && ctmask == u32::MAX {
                    out.push_str(" CONNMARK save");
                } else if nfmask == ctmask {
                    let _ = write!(out, " CONNMARK save mask 0x{nfmask:x}");
                } else {
                    let _ = write!(out, " CONNMARK save nfmask 0x{nfmask:x} ctmask ~0x{ctmask:x}");
                }
            }
            ConnmarkOp::Restore { nfmask, ctmask } => {
                if nfmask == u32::MAX && ctmask == u32::MAX {
                    out.push_str(" CONNMARK restore");
                } else if nfmask == ctmask {
                    let _ = write!(out, " CONNMARK restore mask 0x{ctmask:x}");
                } else {
                    let _ = write!(out, " CONNMARK restore ctmask 0x{ctmask:x} nfmask ~0x{nfmask:x}");
                }
            }
        },
        Target::Log(l) => {
            let level = l.level.unwrap_or(4);
            let bits: u8 = l
                .flags
                .iter()
                .filter_map(|f| names::LOG_FLAGS.iter().find(|(n, _)| n == f).map(|(_, b)| *b))
                .fold(0, |a, b| a | b);
            if numeric {
                let _ = write!(out, " LOG flags {bits} level {level}");
            } else {
                let _ = write!(out, " LOG level {}", names::LOG_LEVEL_NAMES[usize::from(level.min(7))]);
                for f in &l.flags {
                    let _ = write!(out, " {}", f.trim_start_matches("--log-"));
                }
            }
            if let Some(p) = &l.prefix {
                let _ = write!(out, " prefix \"{p}\"");
            }
        }
        Target::Nflog(n) => {
            if let Some(p) = &n.prefix {
                let _ = write!(out, " nflog-prefix {}", save_string(p));
            }
            if let Some(g) = n.group {
                let _ = write!(out, " nflog-group {g}");
            }
            if let Some(s) = n.size {
                let _ = write!(out, " nflog-size {s}");
            }
            if let Some(t) = n.threshold {
                let _ = write!(out, " nflog-threshold {t}");
            }
        }
        Target::Notrack => out.push_str(" NOTRACK"),
        Target::Ct(words) => {
            out.push_str(" CT");
            for w in words {
                let _ = write!(out, " {}", w.trim_start_matches("--"));
            }
        }
    }
}

/// An address as `iptables -L` prints it in conntrack options: `anywhere` for the zero address,
/// a host or network name when one is known, and the prefix unless it is a single host.
pub(crate) fn conntrack_addr_name(c: &Cidr, written: Option<std::net::IpAddr>) -> String {
    let addr = written.unwrap_or_else(|| c.addr());
    if addr.is_unspecified() {
        return "anywhere".into();
    }
    let name =
        names::host_name(&addr).or_else(|| names::network_name(&addr)).map_or_else(|| addr.to_string(), str::to_string);
    if c.is_host() {
        name
    } else {
        format!("{name}/{}", c.prefix())
    }
}
