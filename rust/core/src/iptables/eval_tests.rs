//! Evaluator tests on hand-built rulesets: each match, each target, hooks, conntrack.

use std::net::IpAddr;

use crate::iptables::ast::*;
use crate::iptables::chance::ALWAYS;
use crate::iptables::eval::{Netfilter, Origin};
use crate::iptables::flow::{tcp_flags, Flow};
use crate::iptables::node::{IfaceAddr, Interface, Node, Route};
use crate::iptables::result::{NatKind, Verdict};
use crate::net::{Cidr, Family};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn rule(matches: Vec<Match>, target: Target) -> Rule {
    Rule { matches, target, counters: None, line: 0 }
}

fn builtin(name: &str, policy: Policy, rules: Vec<Rule>) -> Chain {
    Chain { name: name.into(), policy: Some(policy), counters: None, rules, line: 0 }
}

fn user(name: &str, rules: Vec<Rule>) -> Chain {
    Chain { name: name.into(), policy: None, counters: None, rules, line: 0 }
}

fn table(name: TableName, chains: Vec<Chain>) -> Table {
    Table { name, chains, line: 0 }
}

fn ruleset(tables: Vec<Table>) -> Ruleset {
    Ruleset { family: Family::V4, tables }
}

fn node() -> Node {
    Node::new(
        vec![ip("192.168.0.2")],
        vec![
            Interface { name: "eth0".into(), addrs: vec![IfaceAddr::parse("192.168.0.2/24").unwrap()] },
            Interface { name: "cni0".into(), addrs: vec![IfaceAddr::parse("10.244.0.1/24").unwrap()] },
            Interface { name: "flannel.1".into(), addrs: vec![IfaceAddr::parse("10.244.0.0/32").unwrap()] },
        ],
        vec![
            Route { dest: cidr("10.244.0.0/16"), iface: "flannel.1".into() },
            Route { dest: cidr("0.0.0.0/0"), iface: "eth0".into() },
        ],
    )
    .unwrap()
}

fn nf(tables: Vec<Table>) -> Netfilter {
    Netfilter::new(ruleset(tables), node(), false).unwrap()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> Flow {
    Flow::tcp(ip(src), ip(dst), sport, dport).unwrap()
}

fn dport(p: u16) -> Match {
    Match::Tcp { sport: None, dport: Some(Neg::plain(PortRange::single(p))), flags: None }
}

fn dnat(to: &str, port: u16) -> Target {
    Target::Dnat {
        ranges: vec![NatRange { addrs: Some((ip(to), ip(to))), ports: Some(PortRange::single(port)) }],
        random: false,
        persistent: false,
    }
}

fn prob(p: f64) -> Match {
    // iptables' conversion: p * 2^31, truncated.
    Match::Statistic(Neg::plain(Statistic::Random { probability: (p * 2147483648.0) as u32 }))
}

fn jump(c: &str) -> Target {
    Target::Jump(c.into())
}

/// kube-proxy's shape: a service with `n` endpoints, masquerade for off-cluster sources.
fn kube_proxy(n: usize) -> Netfilter {
    let mut svc =
        vec![rule(vec![Match::Source(Neg { value: cidr("10.244.0.0/16"), negated: true })], jump("KUBE-MARK-MASQ"))];
    let mut chains = vec![];
    for i in 0..n {
        let name = format!("KUBE-SEP-{i}");
        let m = if i + 1 < n { vec![prob(1.0 / (n - i) as f64)] } else { vec![] };
        svc.push(rule(m, jump(&name)));
        chains.push(user(
            &name,
            vec![rule(vec![Match::Protocol(Neg::plain(6))], dnat(&format!("10.244.{}.5", i + 1), 8080))],
        ));
    }
    let mut nat_chains = vec![
        builtin("PREROUTING", Policy::Accept, vec![rule(vec![], jump("KUBE-SERVICES"))]),
        builtin("INPUT", Policy::Accept, vec![]),
        builtin("OUTPUT", Policy::Accept, vec![rule(vec![], jump("KUBE-SERVICES"))]),
        builtin("POSTROUTING", Policy::Accept, vec![rule(vec![], jump("KUBE-POSTROUTING"))]),
        user(
            "KUBE-SERVICES",
            vec![rule(
                vec![Match::Destination(Neg::plain(cidr("10.96.0.10/32"))), Match::Protocol(Neg::plain(6)), dport(80)],
                jump("KUBE-SVC"),
            )],
        ),
        user("KUBE-SVC", svc),
        user("KUBE-MARK-MASQ", vec![rule(vec![], Target::Mark { value: 0x4000, mask: 0x4000 })]),
        user(
            "KUBE-POSTROUTING",
            vec![
                rule(vec![Match::Mark(Neg { value: (0x4000, 0x4000), negated: true })], Target::Return),
                rule(vec![], Target::Mark { value: 0x4000, mask: 0 }),
                rule(vec![], Target::Masquerade { ports: None, random: false, random_fully: true }),
            ],
        ),
    ];
    nat_chains.extend(chains);
    nf(vec![table(TableName::Nat, nat_chains)])
}

#[test]
fn filter_drop_and_policy() {
    let mut n = nf(vec![table(
        TableName::Filter,
        vec![
            builtin("INPUT", Policy::Accept, vec![rule(vec![Match::Protocol(Neg::plain(6)), dport(22)], Target::Drop)]),
            builtin("FORWARD", Policy::Drop, vec![]),
            builtin("OUTPUT", Policy::Accept, vec![]),
        ],
    )]);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 999, 22), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
    assert_eq!(r.in_interface.as_deref(), Some("eth0"));
    assert!(r.trace.iter().any(|s| s.matched && s.action == "DROP"));
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 999, 80), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Accept);
    assert!(r.local_delivery);
    // Forwarded: FORWARD policy DROP.
    let r = n.evaluate(&tcp("1.2.3.4", "10.244.3.3", 999, 80), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
    assert_eq!(r.out_interface.as_deref(), Some("flannel.1"));
    assert!(r.trace.iter().any(|s| s.action == "policy DROP"));
}

#[test]
fn jump_goto_return() {
    // INPUT: -j A ; -j DROP.   A: -g B.   B: RETURN (returns past A, back to INPUT) → next INPUT rule DROPs.
    // C is reached by a -j from INPUT, falls off its end → continue.
    let chains = vec![
        builtin(
            "INPUT",
            Policy::Accept,
            vec![rule(vec![], jump("A")), rule(vec![dport(1)], Target::Accept), rule(vec![], Target::Drop)],
        ),
        user("A", vec![rule(vec![], Target::Goto("B".into())), rule(vec![], Target::Accept)]),
        user(
            "B",
            vec![rule(vec![dport(2)], Target::Accept), rule(vec![], Target::Return), rule(vec![], Target::Accept)],
        ),
    ];
    let mut n = nf(vec![table(TableName::Filter, chains)]);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 9, 5), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Drop, "{:#?}", r.trace);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 9, 2), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Accept);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 9, 1), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Accept);
    let depths: Vec<usize> = r.trace.iter().map(|s| s.depth).collect();
    assert_eq!(depths, vec![0, 1, 1, 1, 0]);
}

#[test]
fn goto_from_builtin_falls_to_policy() {
    let chains = vec![
        builtin("INPUT", Policy::Drop, vec![rule(vec![], Target::Goto("A".into())), rule(vec![], Target::Accept)]),
        user("A", vec![]),
    ];
    let mut n = nf(vec![table(TableName::Filter, chains)]);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 9, 5), &Origin::Auto, None, false).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
}

#[test]
fn exact_outcomes_of_three_endpoints() {
    let n = kube_proxy(3);
    let outs = n.outcomes(&tcp("1.2.3.4", "10.96.0.10", 5555, 80), &Origin::Auto, true).unwrap();
    assert_eq!(outs.len(), 3);
    let p1 = 715_827_882.0 / 2147483648.0; // 0.3333333333 stored
    let p2 = (1.0 - p1) * 0.5;
    let got: Vec<f64> = outs.iter().map(|o| o.probability.to_f64()).collect();
    assert_eq!(got[0], p1);
    assert!((got[1] - p2).abs() < 1e-15);
    assert!((got.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let dests: Vec<String> = outs.iter().map(|o| o.result.dnat_text().unwrap()).collect();
    assert_eq!(dests, vec!["10.244.1.5:8080", "10.244.2.5:8080", "10.244.3.5:8080"]);
    for o in &outs {
        assert!(o.result.masquerade, "off-cluster source is masqueraded");
        assert_eq!(o.result.snat.map(|s| s.0), Some(ip("10.244.0.0")), "flannel.1's address");
        assert_eq!(o.result.out_interface.as_deref(), Some("flannel.1"));
        assert_eq!(o.result.mark, 0, "KUBE-POSTROUTING clears the bit");
        assert_eq!(o.result.nat, vec![NatKind::Dnat, NatKind::Masquerade]);
    }
    // The last branch is (1 - p1) * (1 - 1/2) = 1431655766 / 2^32 = 715827883 / 2^31, kept reduced.
    assert_eq!(outs[2].probability.exponent(), 31);
    assert_eq!(outs[2].probability.numerator_be_bytes(), 715_827_883u32.to_be_bytes().to_vec());
}

#[test]
fn seeded_sampling_is_reproducible_and_roughly_uniform() {
    let mut n = Netfilter::new(kube_proxy(3).ruleset().as_ref().clone(), node(), true).unwrap();
    let mut counts = std::collections::HashMap::new();
    for seed in 0..3000u64 {
        let r = n.evaluate(&tcp("10.244.0.7", "10.96.0.10", 5555, 80), &Origin::Auto, Some(seed), false).unwrap();
        *counts.entry(r.dnat_text().unwrap()).or_insert(0) += 1;
        assert!(!r.masquerade, "pod source is not masqueraded");
    }
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|&c| c > 850 && c < 1150), "{counts:?}");
    let a = n.evaluate(&tcp("10.244.0.7", "10.96.0.10", 5555, 80), &Origin::Auto, Some(42), false).unwrap();
    let b = n.evaluate(&tcp("10.244.0.7", "10.96.0.10", 5555, 80), &Origin::Auto, Some(42), false).unwrap();
    assert_eq!(a.dnat, b.dnat);
}

#[test]
fn conntrack_reuses_nat_and_reverses_replies() {
    let mut n = kube_proxy(3);
    let first = n.evaluate(&tcp("1.2.3.4", "10.96.0.10", 5555, 80), &Origin::Auto, Some(1), true).unwrap();
    assert_eq!(first.ct_state, "NEW");
    let (ep, _) = first.dnat.unwrap();
    // Later packets of the connection: same endpoint for every seed, nat table not walked.
    for seed in 0..20 {
        let mut f = tcp("1.2.3.4", "10.96.0.10", 5555, 80);
        f.tcp_flags = tcp_flags::ACK;
        let r = n.evaluate(&f, &Origin::Auto, Some(seed), true).unwrap();
        assert_eq!(r.dnat.unwrap().0, ep);
        assert!(r.trace.iter().all(|s| s.table != TableName::Nat || s.chain.is_empty()), "{:#?}", r.trace);
        assert_eq!(r.ct_state, "NEW", "no reply seen yet");
    }
    // The reply from the endpoint, to the masqueraded source, is translated back.
    let snat = first.snat.unwrap();
    let mut reply = Flow::tcp(ep, snat.0, 8080, snat.1).unwrap();
    reply.tcp_flags = tcp_flags::SYN | tcp_flags::ACK;
    let r = n.evaluate(&reply, &Origin::Interface("flannel.1".into()), None, true).unwrap();
    assert_eq!(r.ct_state, "ESTABLISHED");
    assert_eq!(r.flow.src, ip("10.96.0.10"));
    assert_eq!(r.flow.sport, 80);
    assert_eq!(r.flow.dst, ip("1.2.3.4"));
    assert_eq!(r.flow.dport, 5555);
    assert_eq!(r.out_interface.as_deref(), Some("eth0"));
    assert_eq!(n.state().conntrack.len(), 1);
    let e = &n.state().conntrack.entries()[0];
    assert_ne!(e.status & crate::iptables::conntrack::status::SEEN_REPLY, 0);
}

#[test]
fn stateless_forgets() {
    let mut n = Netfilter::new(kube_proxy(2).ruleset().as_ref().clone(), node(), true).unwrap();
    n.evaluate(&tcp("1.2.3.4", "10.96.0.10", 5555, 80), &Origin::Auto, Some(1), false).unwrap();
    assert!(n.state().conntrack.is_empty());
    let mut syn_ack = tcp("10.244.1.5", "192.168.0.2", 8080, 5555);
    syn_ack.tcp_flags = tcp_flags::SYN | tcp_flags::ACK;
    let r = n.evaluate(&syn_ack, &Origin::Interface("flannel.1".into()), None, false).unwrap();
    assert_eq!(r.ct_state, "INVALID");
}

#[test]
fn invalid_packets_skip_nat() {
    let n = kube_proxy(1);
    let mut f = tcp("1.2.3.4", "10.96.0.10", 5555, 80);
    f.tcp_flags = tcp_flags::FIN | tcp_flags::ACK;
    let outs = n.outcomes(&f, &Origin::Auto, true).unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].result.dnat, None);
    assert_eq!(outs[0].result.ct_state, "INVALID");
}

fn affinity() -> Netfilter {
    // KUBE-SVC with ClientIP affinity, as kube-proxy writes it.
    let recent = |cmd: RecentCommand, name: &str| {
        Match::Recent(Box::new(Recent {
            command: cmd,
            name: name.into(),
            seconds: if cmd == RecentCommand::Check { Some(10800) } else { None },
            reap: cmd == RecentCommand::Check,
            hitcount: None,
            rttl: false,
            mask: ip("255.255.255.255"),
            use_destination: false,
            negated: false,
        }))
    };
    let mut svc = vec![];
    let mut chains = vec![];
    for i in 0..3 {
        let name = format!("SEP{i}");
        svc.push(rule(vec![recent(RecentCommand::Check, &name)], jump(&name)));
        chains.push(user(
            &name,
            vec![rule(
                vec![recent(RecentCommand::Set, &name), Match::Protocol(Neg::plain(6))],
                dnat(&format!("10.244.{}.5", i + 1), 80),
            )],
        ));
    }
    for i in 0..3 {
        let m = if i < 2 { vec![prob(1.0 / (3 - i) as f64)] } else { vec![] };
        svc.push(rule(m, jump(&format!("SEP{i}"))));
    }
    let mut all = vec![
        builtin(
            "PREROUTING",
            Policy::Accept,
            vec![rule(vec![Match::Destination(Neg::plain(cidr("10.96.0.10/32")))], jump("SVC"))],
        ),
        builtin("OUTPUT", Policy::Accept, vec![]),
        user("SVC", svc),
    ];
    all.extend(chains);
    nf(vec![table(TableName::Nat, all)])
}

#[test]
fn recent_gives_client_ip_affinity() {
    let mut n = affinity();
    let first = n.evaluate(&tcp("1.2.3.4", "10.96.0.10", 1000, 80), &Origin::Auto, Some(7), false).unwrap();
    for (i, seed) in (0..30u64).enumerate() {
        // New connections (new source ports) from the same client stick to the endpoint.
        let r =
            n.evaluate(&tcp("1.2.3.4", "10.96.0.10", 2000 + i as u16, 80), &Origin::Auto, Some(seed), false).unwrap();
        assert_eq!(r.dnat.unwrap().0, first.dnat.unwrap().0);
    }
    // Outcomes from this state: a single certain result.
    let outs = n.outcomes(&tcp("1.2.3.4", "10.96.0.10", 3000, 80), &Origin::Auto, false).unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].probability.to_f64(), 1.0);
    // After the affinity timeout the choice is random again.
    n.advance_ms(10_801_000);
    let outs = n.outcomes(&tcp("1.2.3.4", "10.96.0.10", 3001, 80), &Origin::Auto, false).unwrap();
    assert_eq!(outs.len(), 3);
    // Another client is not affected.
    let outs = n.outcomes(&tcp("5.6.7.8", "10.96.0.10", 1000, 80), &Origin::Auto, false).unwrap();
    assert_eq!(outs.len(), 3);
}

#[test]
fn redirect_addresses() {
    let chains = vec![
        builtin(
            "PREROUTING",
            Policy::Accept,
            vec![rule(vec![dport(80)], Target::Redirect { ports: Some(PortRange::single(3128)), random: false })],
        ),
        builtin(
            "OUTPUT",
            Policy::Accept,
            vec![rule(vec![dport(80)], Target::Redirect { ports: Some(PortRange::single(3128)), random: false })],
        ),
    ];
    let mut n = nf(vec![table(TableName::Nat, chains)]);
    let r = n.evaluate(&tcp("10.244.0.9", "1.1.1.1", 5, 80), &Origin::Interface("cni0".into()), None, false).unwrap();
    assert_eq!(r.dnat, Some((ip("10.244.0.1"), 3128)));
    assert!(r.local_delivery);
    assert_eq!(r.nat, vec![NatKind::Redirect]);
    let r = n.evaluate(&tcp("192.168.0.2", "1.1.1.1", 5, 80), &Origin::Auto, None, false).unwrap();
    assert!(r.locally_generated);
    assert_eq!(r.dnat, Some((ip("127.0.0.1"), 3128)));
    assert_eq!(r.out_interface.as_deref(), Some("lo"));
    assert!(r.local_delivery);
}

#[test]
fn local_to_local_loops_through_lo_and_filter_input() {
    let filter = table(
        TableName::Filter,
        vec![
            builtin(
                "INPUT",
                Policy::Accept,
                vec![rule(
                    vec![Match::InInterface(Neg::plain(IfacePattern { name: "lo".into(), wildcard: false }))],
                    Target::Drop,
                )],
            ),
            builtin("OUTPUT", Policy::Accept, vec![]),
        ],
    );
    let mut n = nf(vec![filter]);
    let r = n.evaluate(&tcp("192.168.0.2", "192.168.0.2", 5, 80), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
    let hooks: Vec<_> = r.trace.iter().map(|s| s.hook).collect();
    assert!(hooks.contains(&crate::iptables::result::Hook::Input));
}

#[test]
fn nth_counts_packets() {
    let st = Match::Statistic(Neg::plain(Statistic::Nth { every: 3, packet: 1 }));
    let chains = vec![builtin("INPUT", Policy::Accept, vec![rule(vec![st], Target::Drop)])];
    let mut n = nf(vec![table(TableName::Filter, chains)]);
    let verdicts: Vec<&str> = (0..6)
        .map(|i| {
            n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 100 + i, 80), &Origin::Auto, None, false).unwrap().verdict.name()
        })
        .collect();
    assert_eq!(verdicts, vec!["ACCEPT", "DROP", "ACCEPT", "ACCEPT", "DROP", "ACCEPT"]);
}

#[test]
fn header_matches_run_before_modules() {
    // `-m recent --set` written before `-s`: the kernel tests -s first, so a non-matching source
    // never reaches --set.
    let set = Match::Recent(Box::new(Recent {
        command: RecentCommand::Set,
        name: "L".into(),
        seconds: None,
        reap: false,
        hitcount: None,
        rttl: false,
        mask: ip("255.255.255.255"),
        use_destination: false,
        negated: false,
    }));
    let chains = vec![builtin(
        "INPUT",
        Policy::Accept,
        vec![rule(vec![set, Match::Source(Neg::plain(cidr("9.9.9.9/32")))], Target::Accept)],
    )];
    let mut n = nf(vec![table(TableName::Filter, chains)]);
    n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, None, false).unwrap();
    assert!(n.state().recent.get("L").map_or(true, |l| l.entries.is_empty()));
}

#[test]
fn addrtype_and_interfaces() {
    let local = Match::AddrType {
        src: None,
        dst: Some(Neg::plain(AddrTypes(AddrTypes::LOCAL))),
        limit_iface_in: false,
        limit_iface_out: false,
    };
    let chains =
        vec![builtin("PREROUTING", Policy::Accept, vec![rule(vec![local, dport(30000)], dnat("10.244.1.5", 80))])];
    let n = nf(vec![table(TableName::Nat, chains)]);
    let o = n.outcomes(&tcp("1.2.3.4", "192.168.0.2", 1, 30000), &Origin::Auto, false).unwrap();
    assert_eq!(o[0].result.dnat_text().as_deref(), Some("10.244.1.5:80"));
    let o = n.outcomes(&tcp("1.2.3.4", "8.8.8.8", 1, 30000), &Origin::Auto, false).unwrap();
    assert_eq!(o[0].result.dnat, None);
}

#[test]
fn mark_and_connmark() {
    let mangle = table(
        TableName::Mangle,
        vec![
            builtin(
                "PREROUTING",
                Policy::Accept,
                vec![
                    rule(
                        vec![Match::Connmark(Neg::plain((0x1, 0x1)))],
                        Target::Connmark(ConnmarkOp::Restore { nfmask: u32::MAX, ctmask: u32::MAX }),
                    ),
                    rule(vec![Match::Mark(Neg::plain((0, 0xff)))], Target::Mark { value: 0x1, mask: 0xff }),
                    rule(vec![], Target::Connmark(ConnmarkOp::Save { nfmask: u32::MAX, ctmask: u32::MAX })),
                ],
            ),
            builtin("INPUT", Policy::Accept, vec![]),
            builtin("FORWARD", Policy::Accept, vec![]),
            builtin("OUTPUT", Policy::Accept, vec![]),
            builtin("POSTROUTING", Policy::Accept, vec![]),
        ],
    );
    let mut n = nf(vec![mangle]);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, None, true).unwrap();
    assert_eq!(r.mark, 1);
    assert_eq!(r.conntrack.as_ref().unwrap().mark, 1);
    let mut again = tcp("1.2.3.4", "192.168.0.2", 1, 80);
    again.tcp_flags = tcp_flags::ACK;
    let r = n.evaluate(&again, &Origin::Auto, None, true).unwrap();
    assert_eq!(r.mark, 1);
    assert!(r.trace[0].matched, "connmark matched on the second packet");
}

#[test]
fn masquerade_without_address_drops() {
    let nat = table(
        TableName::Nat,
        vec![builtin(
            "POSTROUTING",
            Policy::Accept,
            vec![rule(vec![], Target::Masquerade { ports: None, random: false, random_fully: false })],
        )],
    );
    let bare = Node::new(vec![], vec![Interface { name: "eth9".into(), addrs: vec![] }], vec![]).unwrap();
    let mut n = Netfilter::new(ruleset(vec![nat]), bare, false).unwrap();
    let r = n.evaluate(&tcp("1.2.3.4", "8.8.8.8", 1, 80), &Origin::Interface("eth9".into()), None, false).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
}

#[test]
fn snat_range_and_ports() {
    let snat = Target::Snat {
        ranges: vec![NatRange {
            addrs: Some((ip("192.168.0.100"), ip("192.168.0.100"))),
            ports: Some(PortRange { first: 40000, last: 40010 }),
        }],
        random: false,
        random_fully: false,
        persistent: false,
    };
    let nat = table(
        TableName::Nat,
        vec![builtin("POSTROUTING", Policy::Accept, vec![rule(vec![Match::Protocol(Neg::plain(6))], snat)])],
    );
    let mut n = nf(vec![nat]);
    let r =
        n.evaluate(&tcp("10.244.0.9", "8.8.8.8", 1234, 53), &Origin::Interface("cni0".into()), None, false).unwrap();
    assert_eq!(r.snat, Some((ip("192.168.0.100"), 40000)));
    assert_eq!(r.nat, vec![NatKind::Snat]);
}

#[test]
fn refused_rulesets() {
    let bad_jump =
        vec![table(TableName::Filter, vec![builtin("INPUT", Policy::Accept, vec![rule(vec![], jump("NOPE"))])])];
    assert!(Netfilter::new(ruleset(bad_jump), node(), false).is_err());
    let looped = vec![table(
        TableName::Filter,
        vec![
            builtin("INPUT", Policy::Accept, vec![rule(vec![], jump("A"))]),
            user("A", vec![rule(vec![], jump("B"))]),
            user("B", vec![rule(vec![], jump("A"))]),
        ],
    )];
    let e = Netfilter::new(ruleset(looped), node(), false).unwrap_err();
    assert!(e.to_string().contains("ELOOP"), "{e}");
    let unreachable_loop = vec![table(
        TableName::Filter,
        vec![
            builtin("INPUT", Policy::Accept, vec![]),
            user("A", vec![rule(vec![], jump("B"))]),
            user("B", vec![rule(vec![], jump("A"))]),
        ],
    )];
    assert!(Netfilter::new(ruleset(unreachable_loop), node(), false).is_ok());
    let dnat_in_filter =
        vec![table(TableName::Filter, vec![builtin("INPUT", Policy::Accept, vec![rule(vec![], dnat("1.1.1.1", 1))])])];
    assert!(Netfilter::new(ruleset(dnat_in_filter), node(), false).is_err());
    let drop_in_nat =
        vec![table(TableName::Nat, vec![builtin("PREROUTING", Policy::Accept, vec![rule(vec![], Target::Drop)])])];
    assert!(Netfilter::new(ruleset(drop_in_nat), node(), false).is_err());
    // DNAT reached from POSTROUTING: refused when met.
    let wrong_hook = vec![table(
        TableName::Nat,
        vec![
            builtin("POSTROUTING", Policy::Accept, vec![rule(vec![], jump("X"))]),
            user("X", vec![rule(vec![], dnat("1.1.1.1", 1))]),
        ],
    )];
    let n = Netfilter::new(ruleset(wrong_hook), node(), false).unwrap();
    assert!(n.outcomes(&tcp("1.2.3.4", "8.8.8.8", 1, 2), &Origin::Auto, false).is_err());
    // Family mismatch.
    let n = nf(vec![]);
    let v6 = Flow::tcp(ip("fd00::1"), ip("fd00::2"), 1, 2).unwrap();
    assert!(n.outcomes(&v6, &Origin::Auto, false).is_err());
}

#[test]
fn deep_nesting_does_not_overflow() {
    let depth = 20_000;
    let mut chains = vec![builtin("INPUT", Policy::Accept, vec![rule(vec![], jump("C0"))])];
    for i in 0..depth {
        let r = if i + 1 < depth { rule(vec![], jump(&format!("C{}", i + 1))) } else { rule(vec![], Target::Drop) };
        chains.push(user(&format!("C{i}"), vec![r]));
    }
    let mut n = nf(vec![table(TableName::Filter, chains)]);
    let r = n.evaluate(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, None, false).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
}

#[test]
fn probabilities_sum_to_one_with_nested_branches() {
    // Non-terminating statistic rules compound: 2 marks with p = 0.5 and 0.25 → 4 outcomes.
    let chains = vec![builtin(
        "INPUT",
        Policy::Accept,
        vec![
            rule(vec![prob(0.5)], Target::Mark { value: 1, mask: 1 }),
            rule(vec![prob(0.25)], Target::Mark { value: 2, mask: 2 }),
        ],
    )];
    let n = nf(vec![table(TableName::Filter, chains)]);
    let outs = n.outcomes(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, false).unwrap();
    let by_mark: Vec<(u32, f64)> = outs.iter().map(|o| (o.result.mark, o.probability.to_f64())).collect();
    assert_eq!(by_mark, vec![(3, 0.125), (1, 0.375), (2, 0.125), (0, 0.375)]);
    let _ = ALWAYS;
}

#[test]
fn icmp_type_and_tcp_flags_matches() {
    let icmp = Match::Icmp(Neg::plain(IcmpType { kind: 8, code: None }));
    let syn = Match::Tcp { sport: None, dport: None, flags: Some(Neg::plain(TcpFlags { mask: 0x17, comp: 0x02 })) };
    let chains = vec![builtin(
        "INPUT",
        Policy::Accept,
        vec![rule(vec![icmp], Target::Drop), rule(vec![syn], Target::Reject(RejectWith::TcpReset))],
    )];
    let n = nf(vec![table(TableName::Filter, chains)]);
    let ping = Flow::new(ip("1.2.3.4"), ip("192.168.0.2"), 1, 7, 0).unwrap();
    assert_eq!(n.outcomes(&ping, &Origin::Auto, false).unwrap()[0].result.verdict, Verdict::Drop);
    let r = &n.outcomes(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Reject(RejectWith::TcpReset));
    let mut ack = tcp("1.2.3.4", "192.168.0.2", 1, 80);
    ack.tcp_flags = tcp_flags::ACK;
    assert_eq!(n.outcomes(&ack, &Origin::Auto, false).unwrap()[0].result.verdict, Verdict::Accept);
}

#[test]
fn notrack_untracks() {
    let raw = table(
        TableName::Raw,
        vec![
            builtin("PREROUTING", Policy::Accept, vec![rule(vec![], Target::Notrack)]),
            builtin("OUTPUT", Policy::Accept, vec![]),
        ],
    );
    let nat =
        table(TableName::Nat, vec![builtin("PREROUTING", Policy::Accept, vec![rule(vec![], dnat("10.244.1.1", 80))])]);
    let filter = table(
        TableName::Filter,
        vec![builtin(
            "INPUT",
            Policy::Accept,
            vec![rule(vec![Match::State(Neg::plain(CtStates(CtStates::UNTRACKED)))], Target::Drop)],
        )],
    );
    let n = nf(vec![raw, nat, filter]);
    let r = &n.outcomes(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.ct_state, "UNTRACKED");
    assert_eq!(r.dnat, None);
    assert_eq!(r.verdict, Verdict::Drop);
}

#[test]
fn conntrack_match_fields() {
    let ct = ConntrackMatch {
        state: Some(Neg::plain(CtStates(CtStates::DNAT))),
        orig_dst: Some(Neg::plain(cidr("10.96.0.10/32"))),
        orig_dst_port: Some(Neg::plain(PortRange::single(80))),
        ..ConntrackMatch::default()
    };
    let mut n = kube_proxy(1);
    let mut rs = n.ruleset().as_ref().clone();
    rs.tables.push(table(
        TableName::Filter,
        vec![builtin("FORWARD", Policy::Accept, vec![rule(vec![Match::Conntrack(Box::new(ct))], Target::Drop)])],
    ));
    n = Netfilter::new(rs, node(), false).unwrap();
    let r = n.evaluate(&tcp("1.2.3.4", "10.96.0.10", 1, 80), &Origin::Auto, None, false).unwrap();
    assert_eq!(r.verdict, Verdict::Drop);
    let r = n.evaluate(&tcp("1.2.3.4", "10.244.9.9", 1, 80), &Origin::Auto, None, false).unwrap();
    assert_eq!(r.verdict, Verdict::Accept);
}

#[test]
fn loopback_addresses_do_not_cross_interfaces_without_route_localnet() {
    let n = kube_proxy(1);
    // From outside with a 127.0.0.0/8 source: martian.
    let r =
        &n.outcomes(&tcp("127.0.0.1", "10.96.0.10", 1, 80), &Origin::Interface("eth0".into()), true).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Drop);
    assert!(r.trace.iter().any(|s| s.action.contains("martian source")));
    // Locally generated from 127.0.0.1, DNATed to a pod: refused at rerouting...
    let r = &n.outcomes(&tcp("127.0.0.1", "10.96.0.10", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Drop);
    // ...unless route_localnet is on (kube-proxy's localhost NodePorts).
    let on = Netfilter::new(n.ruleset().as_ref().clone(), node().with_route_localnet(true), true).unwrap();
    let r = &on.outcomes(&tcp("127.0.0.1", "10.96.0.10", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Accept);
    assert!(r.masquerade);
    // One of the node's own addresses as the source of an arriving packet: martian too.
    let r = &n.outcomes(&tcp("192.168.0.2", "10.96.0.10", 1, 80), &Origin::Interface("eth0".into()), true).unwrap()[0]
        .result;
    assert_eq!(r.verdict, Verdict::Drop);
    // With route_localnet, a loopback destination may arrive from outside.
    let r = &on.outcomes(&tcp("1.2.3.4", "127.0.0.1", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert!(r.local_delivery);
    let r = &n.outcomes(&tcp("1.2.3.4", "127.0.0.1", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Drop);
    // Loopback to loopback stays legal.
    let r = &n.outcomes(&tcp("127.0.0.1", "127.0.0.1", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Accept);
    assert!(r.local_delivery);
}

#[test]
fn with_route_localnet_only_configured_addresses_are_martian_sources() {
    // The kernel (rp_filter off) refuses a source from outside only when it is an address
    // configured on an interface: lo's 127.0.0.1, not the rest of 127.0.0.0/8.
    let on = Netfilter::new(kube_proxy(1).ruleset().as_ref().clone(), node().with_route_localnet(true), true).unwrap();
    let eth0 = Origin::Interface("eth0".into());
    let r = &on.outcomes(&tcp("127.0.0.0", "127.0.0.0", 1, 81), &eth0, true).unwrap()[0].result;
    assert!(!r.trace.iter().any(|s| s.action.contains("martian")), "{:?}", r.trace);
    let r = &on.outcomes(&tcp("127.0.0.1", "10.96.0.10", 1, 80), &eth0, true).unwrap()[0].result;
    assert_eq!(r.verdict, Verdict::Drop);
    assert!(r.trace.iter().any(|s| s.action.contains("martian source")));
}

#[test]
fn random_fully_marks_the_port_as_random() {
    let n = kube_proxy(1);
    let r = &n.outcomes(&tcp("1.2.3.4", "10.96.0.10", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert!(r.masquerade && r.random_port);
    let r = &n.outcomes(&tcp("10.244.0.9", "10.96.0.10", 1, 80), &Origin::Interface("cni0".into()), false).unwrap()[0]
        .result;
    assert!(!r.masquerade && !r.random_port);
}

#[test]
fn port_matches_multiport_udp_and_interface_wildcards() {
    let multi = Match::Multiport {
        side: MultiportSide::Destination,
        ports: vec![PortRange::single(53), PortRange { first: 8000, last: 8100 }],
        negated: false,
    };
    let udp = Match::Udp { sport: Some(Neg { value: PortRange { first: 0, last: 1023 }, negated: true }), dport: None };
    let eth = Match::InInterface(Neg::plain(IfacePattern { name: "eth".into(), wildcard: true }));
    let chains = vec![builtin(
        "INPUT",
        Policy::Accept,
        vec![rule(vec![eth, Match::Protocol(Neg::plain(17)), udp, multi], Target::Drop)],
    )];
    let n = nf(vec![table(TableName::Filter, chains)]);
    let verdict = |sport: u16, dport: u16, from: &str| {
        let f = Flow::udp(ip("1.2.3.4"), ip("192.168.0.2"), sport, dport).unwrap();
        n.outcomes(&f, &Origin::Interface(from.into()), false).unwrap()[0].result.verdict
    };
    assert_eq!(verdict(5000, 53, "eth0"), Verdict::Drop);
    assert_eq!(verdict(5000, 8050, "eth0"), Verdict::Drop);
    assert_eq!(verdict(5000, 8101, "eth0"), Verdict::Accept);
    assert_eq!(verdict(53, 53, "eth0"), Verdict::Accept, "! --sport 0:1023");
    assert_eq!(verdict(5000, 53, "cni0"), Verdict::Accept, "-i eth+");
}

#[test]
fn later_fragments_never_match_port_matches() {
    let chains = vec![builtin(
        "INPUT",
        Policy::Accept,
        vec![rule(vec![dport(80)], Target::Accept), rule(vec![Match::Fragment(Neg::plain(()))], Target::Drop)],
    )];
    let n = nf(vec![table(TableName::Filter, chains)]);
    let mut f = tcp("1.2.3.4", "192.168.0.2", 1, 80);
    f.fragment_offset = 10;
    f.tcp_flags = tcp_flags::ACK;
    assert_eq!(n.outcomes(&f, &Origin::Auto, false).unwrap()[0].result.verdict, Verdict::Drop);
}

#[test]
fn physdev_without_a_bridge_matches_only_inverted_options() {
    let is_in = |b: bool| Match::Physdev(Box::new(PhysdevMatch { is_in: Some(b), ..PhysdevMatch::default() }));
    let chains = vec![builtin(
        "INPUT",
        Policy::Accept,
        vec![
            rule(vec![is_in(true)], Target::Drop),
            rule(vec![is_in(false)], Target::Reject(RejectWith::IcmpPortUnreachable)),
        ],
    )];
    let n = nf(vec![table(TableName::Filter, chains)]);
    let r = &n.outcomes(&tcp("1.2.3.4", "192.168.0.2", 1, 80), &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.verdict.name(), "REJECT");
}

#[test]
fn ipv6_ruleset() {
    let d = |s: &str| Match::Destination(Neg::plain(cidr(s)));
    let to = ip("fd00:244::5");
    let chains = vec![builtin(
        "PREROUTING",
        Policy::Accept,
        vec![rule(
            vec![d("fd00:96::10/128"), Match::Protocol(Neg::plain(6))],
            Target::Dnat {
                ranges: vec![NatRange { addrs: Some((to, to)), ports: Some(PortRange::single(8080)) }],
                random: false,
                persistent: false,
            },
        )],
    )];
    let rs = Ruleset { family: Family::V6, tables: vec![table(TableName::Nat, chains)] };
    let node = Node::new(
        vec![],
        vec![Interface { name: "eth0".into(), addrs: vec![IfaceAddr::parse("fd00::2/64").unwrap()] }],
        vec![],
    )
    .unwrap();
    let n = Netfilter::new(rs, node, false).unwrap();
    let f = Flow::tcp(ip("fd00::9"), ip("fd00:96::10"), 1000, 80).unwrap();
    let r = &n.outcomes(&f, &Origin::Auto, false).unwrap()[0].result;
    assert_eq!(r.dnat_text().as_deref(), Some("[fd00:244::5]:8080"));
    assert_eq!(r.out_interface.as_deref(), Some("eth0"));
}
