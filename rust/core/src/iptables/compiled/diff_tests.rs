//! Differential test: the compiled classifier against the plain evaluator on random rulesets,
//! random packets and random seeds (verdict, NAT, mark, deciding rule, conntrack state, route,
//! and the exact outcome distributions), plus the synthetic kube-proxy rulesets.

use std::net::{IpAddr, Ipv4Addr};

use crate::iptables::ast::*;
use crate::iptables::chance::ALWAYS;
use crate::iptables::compile::{packet_seed, Compiled, Packet4, Scratch};
use crate::iptables::compiled::synth::{self, Gen};
use crate::iptables::eval::Origin;
use crate::net::{Cidr, Family};

const ADDRS: [u32; 12] = [
    0x0a40_0005, // 10.64.0.5 local pod
    0x0a40_0307, // 10.64.3.7 remote pod
    0xc0a8_0002, // 192.168.0.2 node
    0xc0a8_00ff, // 192.168.0.255 broadcast
    0x0808_0808, // 8.8.8.8
    0xac10_0001, // service 0
    0xac10_0002, // service 1
    0xac10_0003, // service 2
    0x7f00_0001, // 127.0.0.1
    0xe000_0001, // 224.0.0.1
    0x0a40_0001, // cni0 address
    0x0a40_0000, // flannel.1 address
];
const PORTS: [u16; 5] = [53, 80, 443, 8080, 30000];
const PROTOS: [u8; 7] = [6, 17, 132, 136, 47, 6, 17];
const IFACES: [(&str, bool); 7] =
    [("eth0", false), ("cni0", false), ("flannel.1", false), ("lo", false), ("eth", true), ("c", true), ("", true)];

struct R(Gen);

impl R {
    fn n(&mut self, n: usize) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        let v = self.0.below(n as u64) as usize;
        v
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.n(100) < percent
    }
    fn addr(&mut self) -> u32 {
        ADDRS[self.n(ADDRS.len())]
    }
    fn ip(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self.addr()))
    }
    fn cidr(&mut self) -> Cidr {
        let prefix = [32u8, 32, 24, 16, 10, 8, 0][self.n(7)];
        Cidr::new(self.ip(), prefix).unwrap()
    }
    fn port(&mut self) -> u16 {
        PORTS[self.n(PORTS.len())]
    }
    fn neg(&mut self) -> bool {
        self.chance(20)
    }
    fn ports(&mut self) -> Option<Neg<PortRange>> {
        match self.n(4) {
            0 => None,
            1 => Some(Neg { value: PortRange { first: 50, last: 500 }, negated: self.neg() }),
            _ => Some(Neg { value: PortRange::single(self.port()), negated: self.neg() }),
        }
    }
    fn prob(&mut self) -> u32 {
        [0, 1 << 30, 715_827_882, ALWAYS - 1, ALWAYS, 536_870_912][self.n(6)]
    }
    fn mark(&mut self) -> u32 {
        [0, 0x4000, 0x1, 0x4001][self.n(4)]
    }
    fn iface(&mut self) -> Neg<IfacePattern> {
        let (name, wildcard) = IFACES[self.n(IFACES.len())];
        Neg { value: IfacePattern { name: name.into(), wildcard }, negated: self.neg() }
    }
    fn ctstates(&mut self) -> CtStates {
        CtStates(
            [
                CtStates::NEW,
                CtStates::INVALID,
                CtStates::ESTABLISHED | CtStates::RELATED,
                CtStates::DNAT,
                CtStates::SNAT | CtStates::NEW,
                CtStates::UNTRACKED,
            ][self.n(6)],
        )
    }
    fn addrtypes(&mut self) -> Neg<AddrTypes> {
        let v = [AddrTypes::LOCAL, AddrTypes::UNICAST, AddrTypes::BROADCAST | AddrTypes::MULTICAST][self.n(3)];
        Neg { value: AddrTypes(v), negated: self.neg() }
    }

    fn a_match(&mut self) -> Match {
        match self.n(17) {
            0 => Match::Source(Neg { value: self.cidr(), negated: self.neg() }),
            1 => Match::Destination(Neg { value: self.cidr(), negated: self.neg() }),
            2 => Match::InInterface(self.iface()),
            3 => Match::OutInterface(self.iface()),
            4 => Match::Protocol(Neg { value: PROTOS[self.n(PROTOS.len())], negated: self.neg() }),
            5 => Match::Tcp {
                sport: self.ports(),
                dport: self.ports(),
                flags: self.chance(20).then(|| Neg { value: TcpFlags { mask: 0x17, comp: 0x02 }, negated: self.neg() }),
            },
            6 => Match::Udp { sport: self.ports(), dport: self.ports() },
            7 => Match::Multiport {
                side: [MultiportSide::Source, MultiportSide::Destination, MultiportSide::Either][self.n(3)],
                ports: vec![PortRange::single(self.port()), PortRange { first: 1000, last: 2000 }],
                negated: self.neg(),
            },
            8 => Match::Mark(Neg { value: (self.mark(), 0x4000), negated: self.neg() }),
            9 => Match::Connmark(Neg { value: (self.mark(), 0xffff), negated: self.neg() }),
            10 => Match::AddrType {
                src: self.chance(50).then(|| self.addrtypes()),
                dst: Some(self.addrtypes()),
                limit_iface_in: self.chance(15),
                limit_iface_out: self.chance(15),
            },
            11 => Match::Statistic(Neg { value: Statistic::Random { probability: self.prob() }, negated: self.neg() }),
            12 => Match::Conntrack(Box::new(ConntrackMatch {
                state: Some(Neg { value: self.ctstates(), negated: self.neg() }),
                ..ConntrackMatch::default()
            })),
            13 => Match::State(Neg { value: self.ctstates(), negated: self.neg() }),
            14 => Match::Comment("c".into()),
            15 => Match::Fragment(Neg { value: (), negated: self.neg() }),
            _ => Match::Icmp(Neg { value: IcmpType { kind: 8, code: None }, negated: self.neg() }),
        }
    }

    fn nat_range(&mut self) -> Vec<NatRange> {
        let addrs = match self.n(3) {
            0 => None,
            1 => Some((self.ip(), self.ip())),
            _ => {
                let a = self.addr();
                Some((IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(a + 4))))
            }
        };
        let ports = match self.n(3) {
            0 => None,
            1 => Some(PortRange::single(self.port())),
            _ => Some(PortRange { first: 8000, last: 8100 }),
        };
        vec![NatRange { addrs, ports }]
    }

    fn target(&mut self, table: TableName, later: &[String]) -> Target {
        loop {
            let t = match self.n(16) {
                0 | 1 => Target::Accept,
                2 => Target::Drop,
                3 => Target::Reject(RejectWith::IcmpPortUnreachable),
                4 => Target::Return,
                5..=7 if !later.is_empty() => Target::Jump(later[self.n(later.len())].clone()),
                8 if !later.is_empty() => Target::Goto(later[self.n(later.len())].clone()),
                9 => Target::Mark { value: self.mark(), mask: [0x4000, 0, 0xffff_ffff][self.n(3)] },
                10 => Target::Connmark(match self.n(3) {
                    0 => ConnmarkOp::SetXmark { value: self.mark(), mask: 0xffff },
                    1 => ConnmarkOp::Save { nfmask: 0xffff, ctmask: 0xffff },
                    _ => ConnmarkOp::Restore { nfmask: 0xffff, ctmask: 0xffff },
                }),
                11 => Target::None,
                12 => Target::Dnat { ranges: self.nat_range(), random: false, persistent: false },
                13 => Target::Snat { ranges: self.nat_range(), random: false, random_fully: false, persistent: false },
                14 => Target::Masquerade {
                    ports: self.chance(30).then_some(PortRange { first: 30000, last: 30010 }),
                    random: false,
                    random_fully: true,
                },
                _ => Target::Redirect { ports: self.chance(50).then_some(PortRange::single(8080)), random: false },
            };
            let ok = match t {
                Target::Dnat { .. } | Target::Snat { .. } | Target::Masquerade { .. } | Target::Redirect { .. } => {
                    table == TableName::Nat
                }
                Target::Drop | Target::Reject(_) => table != TableName::Nat,
                _ => true,
            };
            if ok {
                return t;
            }
        }
    }

    fn rule(&mut self, table: TableName, later: &[String]) -> Rule {
        let matches = (0..self.n(4)).map(|_| self.a_match()).collect();
        Rule { matches, target: self.target(table, later), counters: None, line: 0 }
    }

    /// A run of dispatchable rules (exact destination, protocol, one port), some with extras.
    fn dispatch_run(&mut self, table: TableName, later: &[String], out: &mut Vec<Rule>) {
        for _ in 0..3 + self.n(4) {
            let proto = [6u8, 17][self.n(2)];
            let port = Some(Neg::plain(PortRange::single(self.port())));
            let mut matches = vec![
                Match::Destination(Neg::plain(Cidr::host(self.ip()))),
                Match::Protocol(Neg::plain(proto)),
                if proto == 6 {
                    Match::Tcp { sport: None, dport: port, flags: None }
                } else {
                    Match::Udp { sport: None, dport: port }
                },
            ];
            if self.chance(30) {
                matches.push(self.a_match());
            }
            out.push(Rule { matches, target: self.target(table, later), counters: None, line: 0 });
        }
    }

    fn ladder(&mut self, later: &[String], out: &mut Vec<Rule>) {
        if later.is_empty() {
            return;
        }
        for _ in 0..2 + self.n(3) {
            let m = Match::Statistic(Neg::plain(Statistic::Random { probability: self.prob() }));
            out.push(Rule {
                matches: vec![m],
                target: Target::Jump(later[self.n(later.len())].clone()),
                counters: None,
                line: 0,
            });
        }
    }

    fn rules(&mut self, table: TableName, later: &[String]) -> Vec<Rule> {
        let mut out = Vec::new();
        for _ in 0..self.n(5) {
            match self.n(6) {
                0 => self.dispatch_run(table, later, &mut out),
                1 => self.ladder(later, &mut out),
                _ => out.push(self.rule(table, later)),
            }
        }
        out
    }

    fn table(&mut self, name: TableName, hooks: &[&str]) -> Table {
        let users: Vec<String> = (0..self.n(5)).map(|i| format!("U{i}")).collect();
        let mut chains = Vec::new();
        for h in hooks {
            let policy = if name != TableName::Nat && self.chance(15) { Policy::Drop } else { Policy::Accept };
            let rules = self.rules(name, &users);
            chains.push(Chain { name: (*h).into(), policy: Some(policy), counters: None, rules, line: 0 });
        }
        for (i, u) in users.iter().enumerate() {
            let rules = self.rules(name, &users[i + 1..]);
            chains.push(Chain { name: u.clone(), policy: None, counters: None, rules, line: 0 });
        }
        Table { name, chains, line: 0 }
    }

    fn ruleset(&mut self) -> Ruleset {
        let mut tables = Vec::new();
        if self.chance(30) {
            tables.push(self.table(TableName::Raw, &["PREROUTING", "OUTPUT"]));
        }
        if self.chance(40) {
            tables.push(self.table(TableName::Mangle, &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]));
        }
        if self.chance(90) {
            tables.push(self.table(TableName::Nat, &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]));
        }
        if self.chance(80) {
            tables.push(self.table(TableName::Filter, &["INPUT", "FORWARD", "OUTPUT"]));
        }
        Ruleset { family: Family::V4, tables }
    }

    fn packet(&mut self, ifaces: usize) -> Packet4 {
        #[allow(clippy::cast_possible_truncation)]
        Packet4 {
            src: self.addr(),
            dst: self.addr(),
            proto: PROTOS[self.n(PROTOS.len())],
            sport: self.port(),
            dport: self.port(),
            tcp_flags: [0x02, 0x02, 0x02, 0x10, 0x12, 0x01][self.n(6)],
            ttl: [64, 64, 1][self.n(3)],
            iface: self.n(ifaces) as u8,
        }
    }
}

/// Compares one packet both ways; returns whether the compiled path was used.
fn check(c: &Compiled, pkt: &Packet4, seed: u64, scratch: &mut Scratch, outcomes: bool, what: &str) -> bool {
    let fast = c.classify(pkt, seed, scratch);
    let origin = Origin::Interface(c.interfaces()[usize::from(pkt.iface)].clone());
    let plain = c.trace(&pkt.to_flow(), &origin, seed).and_then(|r| c.decision_of(&r));
    match (&fast, &plain) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: packet {pkt:?} seed {seed}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{what}: packet {pkt:?} seed {seed}: compiled {fast:?} vs plain {plain:?}"),
    }
    // Rulesets with many draws have too many branches to enumerate twice with traces.
    let draws = c.netfilter().ruleset().tables.iter().flat_map(|t| &t.chains).flat_map(|ch| &ch.rules);
    let draws = draws.filter(|r| r.matches.iter().any(|m| matches!(m, Match::Statistic(_)))).count();
    if outcomes && draws <= 8 {
        let mine = c.outcomes(pkt);
        let theirs = c.netfilter().outcomes(&pkt.to_flow(), &origin, true).map(|list| {
            list.into_iter().map(|o| (o.probability, c.decision_of(&o.result).unwrap())).collect::<Vec<_>>()
        });
        match (&mine, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: outcomes of {pkt:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{what}: outcomes of {pkt:?}: compiled {mine:?} vs plain {theirs:?}"),
        }
    }
    c.program().is_some()
}

#[test]
fn compiled_equals_plain_on_random_rulesets() {
    let mut r = R(Gen(0x6b75_6265_6e61_7431));
    let node = synth::kube_proxy_node();
    let ifaces = node.interfaces().len();
    let (mut examples, mut compiled, mut refused) = (0usize, 0usize, 0usize);
    while examples < 12_000 {
        let rs = r.ruleset();
        let Ok(c) = Compiled::new(rs, node.clone()) else {
            refused += 1;
            continue;
        };
        let mut scratch = Scratch::default();
        for k in 0..2 {
            let pkt = r.packet(ifaces);
            let seed = r.0.next_u64();
            if check(&c, &pkt, seed, &mut scratch, k == 0, "random") {
                compiled += 1;
            }
            examples += 1;
        }
    }
    assert!(compiled > examples / 2, "most examples take the compiled path ({compiled} of {examples})");
    assert!(refused < examples, "generator mostly builds loadable rulesets ({refused} refused)");
}

#[test]
fn compiled_equals_plain_on_kube_proxy_rulesets() {
    for (services, endpoints) in [(1u32, 1u32), (5, 4), (40, 3)] {
        let text = synth::kube_proxy_text(services, endpoints);
        let rs = crate::iptables::parse(&text).unwrap();
        let c = Compiled::new(rs, synth::kube_proxy_node()).unwrap();
        assert!(c.fallback_reason().is_none(), "{:?}", c.fallback_reason());
        let p = c.program().unwrap();
        assert_eq!(p.maps.len(), usize::from(services >= 3), "KUBE-SERVICES becomes one hash table");
        let mut scratch = Scratch::default();
        let eth0 = c.iface_index("eth0").unwrap();
        for (i, (src, dst, sport, dport)) in synth::packets(services, 300, 7).into_iter().enumerate() {
            let pkt = Packet4 { src, dst, proto: 6, sport, dport, tcp_flags: 0x02, ttl: 64, iface: eth0 };
            check(&c, &pkt, packet_seed(3, i as u64), &mut scratch, i % 10 == 0, "kube-proxy");
        }
    }
}

#[test]
fn service_packets_are_dnated_to_an_endpoint() {
    let rs = crate::iptables::parse(&synth::kube_proxy_text(100, 4)).unwrap();
    let c = Compiled::new(rs, synth::kube_proxy_node()).unwrap();
    let eth0 = c.iface_index("eth0").unwrap();
    let pkt = Packet4 {
        src: 0x0a40_0307,
        dst: synth::service_ip(42),
        proto: 6,
        sport: 1234,
        dport: 80,
        tcp_flags: 2,
        ttl: 64,
        iface: eth0,
    };
    let outcomes = c.outcomes(&pkt).unwrap();
    assert_eq!(outcomes.len(), 4);
    let mut eps: Vec<u32> = outcomes.iter().map(|(_, d)| d.dst).collect();
    eps.sort_unstable();
    assert_eq!(eps, (0..4).map(|j| synth::endpoint_ip(42, j, 4)).collect::<Vec<_>>());
    assert!(outcomes.iter().all(|(p, d)| (p.to_f64() - 0.25).abs() < 1e-6 && d.dport == 8080 && d.dnat));
    let miss = Packet4 { dst: 0x0808_0808, ..pkt };
    let d = c.classify(&miss, 1, &mut Scratch::default()).unwrap();
    assert!(!d.dnat);
    let (_, chain, _, _) =
        c.rule_location(c.classify(&pkt, 1, &mut Scratch::default()).unwrap().rule.unwrap()).unwrap();
    assert!(chain.starts_with("KUBE-SEP-") || chain == "KUBE-FORWARD", "{chain}");
}

impl R {
    /// A kube-proxy-like nat table (dispatch run → service chains with a source-conditional
    /// mark, a statistic ladder → endpoint chains with a hairpin mark and a DNAT), perturbed
    /// with random extra matches and targets, so that the fused path is built and also refused.
    fn kube_like_nat(&mut self, keys: &mut Vec<(u32, u8, u16)>) -> Table {
        let services = 1 + self.n(4);
        let mut chains = Vec::new();
        let mut svc_rules = Vec::new();
        let mut sep_chains = Vec::new();
        let mut svc_chains = Vec::new();
        for s in 0..services {
            let svc = format!("SVC{s}");
            let mut rules = Vec::new();
            if self.chance(70) {
                let target = if self.chance(85) {
                    Target::Jump("MASQ".into())
                } else {
                    Target::Mark { value: 0x4000, mask: 0x4000 }
                };
                let mut matches = vec![Match::Source(Neg { value: self.cidr(), negated: self.chance(70) })];
                if self.chance(15) {
                    matches.push(self.a_match());
                }
                rules.push(Rule { matches, target, counters: None, line: 0 });
            }
            let eps = 1 + self.n(4);
            for e in 0..eps {
                let sep = format!("SEP{s}x{e}");
                let ep = self.addr();
                let mut sep_rules = Vec::new();
                if self.chance(80) {
                    let src = if self.chance(80) { Cidr::host(IpAddr::V4(Ipv4Addr::from(ep))) } else { self.cidr() };
                    sep_rules.push(Rule {
                        matches: vec![Match::Source(Neg::plain(src))],
                        target: Target::Jump("MASQ".into()),
                        counters: None,
                        line: 0,
                    });
                }
                let mut matches = vec![Match::Protocol(Neg::plain(6))];
                if self.chance(10) {
                    matches.push(self.a_match());
                }
                let target = if self.chance(90) {
                    let ports = if self.chance(80) { Some(PortRange::single(8080)) } else { None };
                    let addrs = Some((IpAddr::V4(Ipv4Addr::from(ep)), IpAddr::V4(Ipv4Addr::from(ep))));
                    let ranges = if self.chance(10) { self.nat_range() } else { vec![NatRange { addrs, ports }] };
                    Target::Dnat { ranges, random: false, persistent: false }
                } else {
                    self.target(TableName::Nat, &[])
                };
                sep_rules.push(Rule { matches, target, counters: None, line: 0 });
                let mut matches = Vec::new();
                if e + 1 < eps || self.chance(10) {
                    let probability = if self.chance(90) { ALWAYS / (eps - e) as u32 } else { self.prob() };
                    matches.push(Match::Statistic(Neg {
                        value: Statistic::Random { probability },
                        negated: self.chance(5),
                    }));
                }
                if self.chance(5) {
                    matches.push(self.a_match());
                }
                let target = if self.chance(95) { Target::Jump(sep.clone()) } else { Target::Goto(sep.clone()) };
                rules.push(Rule { matches, target, counters: None, line: 0 });
                sep_chains.push(Chain { name: sep, policy: None, counters: None, rules: sep_rules, line: 0 });
            }
            svc_chains.push(Chain { name: svc.clone(), policy: None, counters: None, rules, line: 0 });
            for _ in 0..1 + self.n(2) {
                let proto = [6u8, 6, 17][self.n(3)];
                let (dst, dport) = (ADDRS[5 + self.n(3)], [80, 443][self.n(2)]);
                keys.push((dst, proto, dport));
                let port = Some(Neg::plain(PortRange::single(dport)));
                let mut matches = vec![
                    Match::Destination(Neg::plain(Cidr::host(IpAddr::V4(Ipv4Addr::from(dst))))),
                    Match::Protocol(Neg::plain(proto)),
                    if proto == 6 {
                        Match::Tcp { sport: None, dport: port, flags: None }
                    } else {
                        Match::Udp { sport: None, dport: port }
                    },
                ];
                if self.chance(10) {
                    matches.push(self.a_match());
                }
                svc_rules.push(Rule { matches, target: Target::Jump(svc.clone()), counters: None, line: 0 });
            }
        }
        while svc_rules.len() < 3 {
            let r = svc_rules[0].clone();
            svc_rules.push(r);
        }
        if self.chance(50) {
            svc_rules.push(self.rule(TableName::Nat, &[]));
        }
        let mut pre = Vec::new();
        if self.chance(15) {
            pre.push(self.rule(TableName::Nat, &[]));
        }
        pre.push(Rule {
            matches: vec![Match::Comment("portals".into())],
            target: Target::Jump("SVCS".into()),
            counters: None,
            line: 0,
        });
        let mut masq = vec![Rule {
            matches: vec![],
            target: Target::Mark { value: 0x4000, mask: 0x4000 },
            counters: None,
            line: 0,
        }];
        if self.chance(15) {
            masq.push(self.rule(TableName::Nat, &[]));
        }
        let post = vec![
            Rule {
                matches: vec![Match::Mark(Neg { value: (0x4000, 0x4000), negated: true })],
                target: Target::Return,
                counters: None,
                line: 0,
            },
            Rule { matches: vec![], target: Target::Mark { value: 0x4000, mask: 0 }, counters: None, line: 0 },
            Rule {
                matches: vec![],
                target: Target::Masquerade { ports: None, random: false, random_fully: true },
                counters: None,
                line: 0,
            },
        ];
        let hook = |name: &str, rules: Vec<Rule>| Chain {
            name: name.into(),
            policy: Some(Policy::Accept),
            counters: None,
            rules,
            line: 0,
        };
        chains.push(hook("PREROUTING", pre));
        chains.push(hook("INPUT", vec![]));
        chains.push(hook("OUTPUT", vec![]));
        let mut post_rules =
            vec![Rule { matches: vec![], target: Target::Jump("POST".into()), counters: None, line: 0 }];
        if self.chance(20) {
            post_rules.push(self.rule(TableName::Nat, &[]));
        }
        chains.push(hook("POSTROUTING", post_rules));
        let plain =
            |name: &str, rules: Vec<Rule>| Chain { name: name.into(), policy: None, counters: None, rules, line: 0 };
        chains.push(plain("SVCS", svc_rules));
        chains.push(plain("MASQ", masq));
        chains.push(plain("POST", post));
        chains.extend(svc_chains);
        chains.extend(sep_chains);
        Table { name: TableName::Nat, chains, line: 0 }
    }

    fn kube_like_ruleset(&mut self, keys: &mut Vec<(u32, u8, u16)>) -> Ruleset {
        let mut tables = Vec::new();
        if self.chance(15) {
            tables.push(self.table(TableName::Raw, &["PREROUTING", "OUTPUT"]));
        }
        if self.chance(20) {
            tables.push(self.table(TableName::Mangle, &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]));
        }
        tables.push(self.kube_like_nat(keys));
        if self.chance(80) {
            tables.push(self.table(TableName::Filter, &["INPUT", "FORWARD", "OUTPUT"]));
        }
        Ruleset { family: Family::V4, tables }
    }

    fn kube_like_packet(&mut self, ifaces: usize, keys: &[(u32, u8, u16)]) -> Packet4 {
        let mut pkt = self.packet(ifaces);
        if self.chance(85) {
            (pkt.dst, pkt.proto, pkt.dport) = keys[self.n(keys.len())];
        }
        if self.chance(20) {
            pkt.src = ADDRS[self.n(ADDRS.len())];
        }
        if self.chance(60) {
            pkt.tcp_flags = 0x02;
            pkt.ttl = 64;
        }
        pkt
    }
}

/// Whether the fused path decides this packet (it must then agree with the plain evaluator,
/// which [`check`] verifies through [`Compiled::classify`]).
fn fused_decides(c: &Compiled, pkt: &Packet4, seed: u64) -> bool {
    let Some(p) = c.program() else { return false };
    let Some(f) = &p.fused else { return false };
    let mut chooser = crate::iptables::chance::Chooser::Sample(crate::iptables::chance::Rng::new(seed));
    matches!(f.classify(p, pkt, &mut chooser, &mut Vec::new()), Ok(Some(_)))
}

#[test]
fn fused_path_equals_plain_on_kube_like_rulesets() {
    let mut r = R(Gen(0x6675_7365_6421_0001));
    let node = synth::kube_proxy_node();
    let ifaces = node.interfaces().len();
    let (mut examples, mut fused, mut built) = (0usize, 0usize, 0usize);
    while examples < 12_000 {
        let mut keys = Vec::new();
        let rs = r.kube_like_ruleset(&mut keys);
        let text = rs.save(false);
        let Ok(c) = Compiled::new(rs, node.clone()) else { continue };
        if c.program().is_some_and(|p| p.fused.is_some()) {
            built += 1;
        }
        let mut scratch = Scratch::default();
        for k in 0..4 {
            let pkt = r.kube_like_packet(ifaces, &keys);
            let seed = r.0.next_u64();
            if fused_decides(&c, &pkt, seed) {
                fused += 1;
            }
            check(&c, &pkt, seed, &mut scratch, k == 0, &format!("kube-like\n{text}"));
            examples += 1;
        }
    }
    assert!(fused > examples / 8, "the fused path decides many examples ({fused} of {examples}, {built} built)");
    assert!(built > 100, "the fused path is built for many rulesets ({built})");
}

#[test]
fn fused_path_decides_synthetic_kube_proxy_services() {
    let rs = crate::iptables::parse(&synth::kube_proxy_text(50, 4)).unwrap();
    let c = Compiled::new(rs, synth::kube_proxy_node()).unwrap();
    let f = c.program().unwrap().fused.as_ref().expect("fused path built");
    assert_eq!(f.records(), 50, "every service has a record");
    assert!(f.ladders() >= 50, "every service's endpoint choice is drawn at once ({})", f.ladders());
    assert!(f.bytes() / 50 <= 160, "compact records: {} bytes per service", f.bytes() / 50);
    let eth0 = c.iface_index("eth0").unwrap();
    for (i, (src, dst, sport, dport)) in synth::packets(50, 400, 11).into_iter().enumerate() {
        let pkt = Packet4 { src, dst, proto: 6, sport, dport, tcp_flags: 0x02, ttl: 64, iface: eth0 };
        let seed = packet_seed(5, i as u64);
        assert_eq!(fused_decides(&c, &pkt, seed), dst >> 16 == synth::SERVICE_BASE >> 16, "{pkt:?}");
        check(&c, &pkt, seed, &mut Scratch::default(), false, "synthetic fused");
    }
}

#[test]
fn batch_equals_one_by_one() {
    let mut r = R(Gen(0x6261_7463_6821_0002));
    let node = synth::kube_proxy_node();
    let ifaces = node.interfaces().len();
    let mut rulesets = vec![crate::iptables::parse(&synth::kube_proxy_text(60, 4)).unwrap()];
    let mut keys = Vec::new();
    for _ in 0..40 {
        rulesets.push(r.kube_like_ruleset(&mut keys));
    }
    for (k, rs) in rulesets.into_iter().enumerate() {
        let Ok(c) = Compiled::new(rs, node.clone()) else { continue };
        let pkts: Vec<Packet4> = if k == 0 {
            let eth0 = c.iface_index("eth0").unwrap();
            synth::packets(60, 1000, 3)
                .into_iter()
                .map(|(src, dst, sport, dport)| Packet4 {
                    src,
                    dst,
                    proto: 6,
                    sport,
                    dport,
                    tcp_flags: 2,
                    ttl: 64,
                    iface: eth0,
                })
                .collect()
        } else {
            (0..37).map(|_| r.kube_like_packet(ifaces, &keys)).collect()
        };
        let mut scratch = Scratch::default();
        let mut out = vec![crate::iptables::compile::Decision::default(); pkts.len()];
        let batch = c.classify_batch(&pkts, 99, 5, &mut scratch, &mut out);
        let one: Result<Vec<_>, _> =
            pkts.iter().enumerate().map(|(i, p)| c.classify(p, packet_seed(99, 5 + i as u64), &mut scratch)).collect();
        match (batch, one) {
            (Ok(()), Ok(list)) => assert_eq!(out, list),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("batch {a:?} vs one by one {b:?}"),
        }
    }
}

#[test]
fn miss_classes_equal_plain_on_kube_like_rulesets() {
    let mut r = R(Gen(0x6d69_7373_6573_0003));
    let node = synth::kube_proxy_node();
    let ifaces = node.interfaces().len();
    let (mut examples, mut cached) = (0usize, 0usize);
    while examples < 6_000 {
        let mut keys = Vec::new();
        let rs = r.kube_like_ruleset(&mut keys);
        let Ok(c) = Compiled::new(rs, node.clone()) else { continue };
        let mut scratch = Scratch::default();
        // A few destinations and ports, many sources: later packets reuse cached classes.
        let dsts: Vec<(u32, u16)> = (0..2).map(|_| (r.addr(), r.port())).collect();
        for _ in 0..12 {
            let mut pkt = r.kube_like_packet(ifaces, &keys);
            if r.chance(70) {
                (pkt.dst, pkt.dport) = dsts[r.n(dsts.len())];
            }
            let seed = r.0.next_u64();
            if let Some(p) = c.program() {
                if let Some(f) = &p.fused {
                    if f.record(p, &pkt).is_none() && f.miss_key(p, &pkt).is_some() {
                        cached += 1;
                    }
                }
            }
            check(&c, &pkt, seed, &mut scratch, false, "kube-like miss");
            examples += 1;
        }
    }
    assert!(cached > examples / 10, "many examples are miss classes ({cached} of {examples})");
}

#[test]
fn one_scratch_serves_several_classifiers() {
    let node = synth::kube_proxy_node();
    let a = Compiled::new(crate::iptables::parse(&synth::kube_proxy_text(5, 2)).unwrap(), node.clone()).unwrap();
    let text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    let b = Compiled::new(crate::iptables::parse(text).unwrap(), node).unwrap();
    let eth0 = a.iface_index("eth0").unwrap();
    let mut scratch = Scratch::default();
    for (i, (src, dst, sport, dport)) in synth::packets(5, 200, 9).into_iter().enumerate() {
        for proto in [6u8, 1] {
            let pkt = Packet4 { src, dst, proto, sport, dport, tcp_flags: 2, ttl: 64, iface: eth0 };
            let c = if i % 2 == 0 { &a } else { &b };
            check(c, &pkt, i as u64, &mut scratch, false, "shared scratch");
        }
    }
}
