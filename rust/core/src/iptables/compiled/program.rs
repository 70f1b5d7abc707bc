//! The compiled form of an IPv4 ruleset: flat rules with their header tests inlined, module
//! tests in one arena, jump targets resolved to chain indexes, and two accelerations that skip
//! rules without changing first-match order:
//!
//! - **dispatch**: a run of rules that each test an exact destination, a protocol and a single
//!   destination port (kube-proxy's KUBE-SERVICES) is replaced, for a packet, by the few rules
//!   sharing its (destination, protocol, port) key. A rule outside that set fails its header
//!   test before any module runs, so skipping it changes nothing — not even a `statistic` draw.
//! - **ladder**: a run of `-m statistic --mode random` jumps (KUBE-SVC-*) is walked as a flat
//!   array of thresholds, one draw per step, exactly as the rules would draw.
//!
//! Anything the compiler does not model (`recent`, `nth`, conntrack tuple matches, IPv6) makes
//! [`Program::compile`] return the reason; the caller then uses the plain evaluator.

use crate::iptables::ast::{
    ConnmarkOp, Match, MultiportSide, Neg, PortRange, RejectWith, Ruleset, Statistic, TableName, Target,
};
use crate::iptables::compiled::dispatch::{self, Dispatch};
use crate::iptables::compiled::fused::Fused;
use crate::iptables::compiled::node4::{Node4, NO_IFACE};
use crate::iptables::eval::{hook_slot, table_slot};
use crate::iptables::links;
use crate::iptables::matchers::is_header_match;
use crate::iptables::node::Node;
use crate::iptables::result::Hook;
use crate::net::{Cidr, Family};
use std::net::IpAddr;

/// Shortest run of exact-key rules worth a hash table.
pub const MIN_DISPATCH_RUN: usize = 3;
/// Shortest run of statistic jumps compiled as a ladder.
pub const MIN_LADDER_RUN: usize = 2;

/// Bit of "no device" in an interface set.
pub const NONE_BIT: u64 = 1 << 63;

/// Header flags.
pub mod hflag {
    /// `! -s`
    pub const SRC_NEG: u8 = 1;
    /// `! -d`
    pub const DST_NEG: u8 = 2;
    /// `! -p`
    pub const PROTO_NEG: u8 = 4;
    /// The rule can never match a packet the compiled path handles.
    pub const NEVER: u8 = 8;
}

/// An optional, possibly inverted port range: (first, last, negated).
pub type PortTest = Option<(u16, u16, bool)>;

/// One module test (and header tests beyond the first of their kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mod {
    /// A second `-s`/`-d`.
    Cidr {
        /// Destination (else source).
        dst: bool,
        /// Network.
        net: u32,
        /// Mask.
        mask: u32,
        /// `!`
        neg: bool,
    },
    /// A second `-p`.
    Proto {
        /// Protocol (0: any).
        proto: u8,
        /// `!`
        neg: bool,
    },
    /// Never matches a compiled-path packet (ICMP type tests, `-f`).
    Never,
    /// `-m tcp/udp/sctp`.
    Ports {
        /// 6, 17 (also UDP-Lite) or 132.
        proto: u8,
        /// `--sport`
        sport: PortTest,
        /// `--dport`
        dport: PortTest,
        /// `--tcp-flags`: (mask, comp, negated).
        flags: Option<(u8, u8, bool)>,
    },
    /// `-m multiport`: ranges in [`Program::ranges`].
    Multiport {
        /// Which ports.
        side: MultiportSide,
        /// First range.
        start: u32,
        /// Number of ranges.
        len: u32,
        /// `!`
        neg: bool,
    },
    /// `-m mark`.
    Mark {
        /// Value.
        value: u32,
        /// Mask.
        mask: u32,
        /// `!`
        neg: bool,
    },
    /// `-m connmark`.
    Connmark {
        /// Value.
        value: u32,
        /// Mask.
        mask: u32,
        /// `!`
        neg: bool,
    },
    /// `-m addrtype`.
    AddrType {
        /// `--src-type`: (types, negated).
        src: Option<(u16, bool)>,
        /// `--dst-type`.
        dst: Option<(u16, bool)>,
        /// 0: any device, 1: the input device, 2: the output device.
        dev: u8,
    },
    /// `-m statistic --mode random`.
    Statistic {
        /// The 31-bit fraction.
        p: u32,
        /// `!`
        neg: bool,
    },
    /// `-m state`.
    State {
        /// State bits.
        bits: u8,
        /// `!`
        neg: bool,
    },
    /// `-m conntrack` with at most `--ctstate`.
    Conntrack {
        /// `--ctstate`: (bits, negated).
        state: Option<(u8, bool)>,
    },
}

/// A NAT range in IPv4 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range4 {
    /// Address range.
    pub addrs: Option<(u32, u32)>,
    /// Port range.
    pub ports: Option<PortRange>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CTarget {
    /// `ACCEPT`
    Accept,
    /// `DROP`
    Drop,
    /// `REJECT`
    Reject(RejectWith),
    /// `RETURN`
    Return,
    /// `-j` to a chain index.
    Jump(u32),
    /// `-g` to a chain index.
    Goto(u32),
    /// `MARK`
    Mark {
        /// Value.
        value: u32,
        /// Mask.
        mask: u32,
    },
    /// `CONNMARK`
    Connmark(ConnmarkOp),
    /// Counts, logs: no effect.
    Nop,
    /// `NOTRACK`
    Notrack,
    /// `DNAT`
    Dnat(Option<Range4>),
    /// `SNAT`
    Snat(Option<Range4>),
    /// `MASQUERADE`
    Masquerade(Option<PortRange>),
    /// `REDIRECT`
    Redirect(Option<PortRange>),
}

/// Acceleration starting at a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Plain rule.
    None,
    /// A dispatch run up to (excluding) chain position `end`, table `map`.
    Dispatch {
        /// Index in [`Program::maps`].
        map: u32,
        /// First position after the run.
        end: u32,
    },
    /// A statistic ladder up to `end`.
    Ladder {
        /// First position after the run.
        end: u32,
    },
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct CRule {
    /// `-s` network and mask (mask 0: any).
    pub src: u32,
    /// Source mask.
    pub src_mask: u32,
    /// `-d` network.
    pub dst: u32,
    /// Destination mask.
    pub dst_mask: u32,
    /// `-p` (0: any).
    pub proto: u8,
    /// [`hflag`] bits.
    pub flags: u8,
    /// Allowed input devices (bit per interface index, [`NONE_BIT`] for none).
    pub in_ifaces: u64,
    /// Allowed output devices.
    pub out_ifaces: u64,
    /// First module test in [`Program::mods`].
    pub mods: u32,
    /// Number of module tests.
    pub nmods: u32,
    /// Target.
    pub target: CTarget,
    /// Acceleration starting here.
    pub accel: Accel,
    /// Line in the dump (errors name it).
    pub line: u32,
    /// Index of the rule in dump order (what results report).
    pub id: u32,
}

/// A chain.
#[derive(Debug, Clone)]
pub struct CChain {
    /// Index of its first rule in [`Program::rules`].
    pub first: u32,
    /// Number of rules.
    pub len: u32,
    /// Index of its table in [`Program::tables`].
    pub table: u8,
    /// Position of the chain inside its table.
    pub index: u32,
}

/// A table.
#[derive(Debug, Clone)]
pub struct CTable {
    /// Which.
    pub name: TableName,
    /// Built-in chain per hook, with its policy (`true`: ACCEPT).
    pub hooks: [Option<(u32, bool)>; 5],
}

/// The compiled program.
#[derive(Debug, Clone)]
pub struct Program {
    /// Tables (ruleset order).
    pub tables: Vec<CTable>,
    /// Table index per [`TableName`] slot.
    pub slots: [Option<u8>; 5],
    /// All chains (table order, then chain order).
    pub chains: Vec<CChain>,
    /// All rules (flat index: table, chain, rule order).
    pub rules: Vec<CRule>,
    /// Module tests.
    pub mods: Vec<Mod>,
    /// Multiport ranges.
    pub ranges: Vec<PortRange>,
    /// Dispatch tables.
    pub maps: Vec<Dispatch>,
    /// The node's IPv4 view.
    pub node: Node4,
    /// Whether conntrack accepts a TCP packet with these flags as a new connection.
    pub tcp_new_ok: [bool; 256],
    /// The fused kube-proxy fast path, when the ruleset's entry qualifies.
    pub fused: Option<Fused>,
}

/// `valid_new` for every TCP flags byte (the only input it reads for a TCP first fragment).
fn tcp_table() -> [bool; 256] {
    let any = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let mut t = [false; 256];
    for (flags, slot) in (0u8..=255).zip(t.iter_mut()) {
        if let Ok(mut f) = crate::iptables::flow::Flow::tcp(any, any, 1, 1) {
            f.tcp_flags = flags;
            *slot = crate::iptables::conntrack::valid_new(&f);
        }
    }
    t
}

/// Global chain indexes in the order a depth-first walk from the built-in chains first reaches
/// them (jump targets in rule order), then the unreachable ones.
fn layout_order(ruleset: &Ruleset, targets: &[Vec<Vec<Option<usize>>>]) -> Vec<usize> {
    let mut order = Vec::new();
    let mut base = 0;
    for (ti, table) in ruleset.tables.iter().enumerate() {
        let n = table.chains.len();
        let mut seen = vec![false; n];
        let roots: Vec<usize> = (0..n).filter(|&c| table.chains[c].policy.is_some()).chain(0..n).collect();
        for root in roots {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let mut stack = vec![root];
            while let Some(c) = stack.pop() {
                order.push(base + c);
                // Push in reverse so the first jump is laid out first.
                for t in targets[ti][c].iter().rev().flatten() {
                    if !seen[*t] {
                        seen[*t] = true;
                        stack.push(*t);
                    }
                }
            }
        }
        base += n;
    }
    order
}

fn v4(a: &IpAddr) -> Result<u32, String> {
    match a {
        IpAddr::V4(a) => Ok(u32::from(*a)),
        IpAddr::V6(a) => Err(format!("IPv6 address {a} in an IPv4 ruleset")),
    }
}

fn cidr4(c: &Cidr) -> Result<(u32, u32), String> {
    let net = v4(&c.addr())?;
    let mask = if c.prefix() == 0 { 0 } else { u32::MAX << (32 - u32::from(c.prefix())) };
    Ok((net & mask, mask))
}

fn port_test(p: &Option<Neg<PortRange>>) -> PortTest {
    p.as_ref().map(|n| (n.value.first, n.value.last, n.negated))
}

fn range4(ranges: &[crate::iptables::ast::NatRange]) -> Result<Option<Range4>, String> {
    ranges
        .first()
        .map(|r| {
            let addrs = match r.addrs {
                None => None,
                Some((lo, hi)) => Some((v4(&lo)?, v4(&hi)?)),
            };
            Ok(Range4 { addrs, ports: r.ports })
        })
        .transpose()
}

/// Compile-time state for one rule.
struct RuleBuilder {
    rule: CRule,
    has_src: bool,
    has_dst: bool,
    has_proto: bool,
}

impl Program {
    /// Compiles a ruleset for a node.
    ///
    /// # Errors
    /// The reason the ruleset needs the plain evaluator (an unsupported match or target, IPv6,
    /// too many interfaces), or a load error of the ruleset itself.
    pub fn compile(ruleset: &Ruleset, node: &Node) -> Result<Program, String> {
        if ruleset.family != Family::V4 {
            return Err("the compiled classifier handles IPv4 rulesets".into());
        }
        let node4 = Node4::new(node).ok_or("the node has too many interfaces")?;
        let targets = links::resolve(ruleset).map_err(|e| e.to_string())?;
        let mut p = Program {
            tables: Vec::new(),
            slots: [None; 5],
            chains: Vec::new(),
            rules: Vec::new(),
            mods: Vec::new(),
            ranges: Vec::new(),
            maps: Vec::new(),
            node: node4,
            tcp_new_ok: tcp_table(),
            fused: None,
        };
        let total: usize = ruleset.tables.iter().flat_map(|t| &t.chains).map(|c| c.rules.len()).sum();
        if u32::try_from(total).is_err() {
            return Err("too many rules".into());
        }
        p.rules.reserve(total);
        // Chains first (indexes in table, chain order: jump targets refer to these), then their
        // rules laid out in the order a walk first reaches the chains, so that a service's
        // KUBE-SVC and KUBE-SEP chains sit next to each other in memory.
        let mut flat_first = Vec::new();
        let mut flat = 0u32;
        for (ti, table) in ruleset.tables.iter().enumerate() {
            let t8 = u8::try_from(ti).map_err(|_| "too many tables")?;
            p.slots[table_slot(table.name)] = Some(t8);
            let base = u32::try_from(p.chains.len()).map_err(|_| "too many chains")?;
            let mut hooks = [None; 5];
            for (ci, chain) in table.chains.iter().enumerate() {
                let ci32 = u32::try_from(ci).map_err(|_| "too many chains")?;
                if let Some(policy) = chain.policy {
                    if let Some(h) = Hook::from_chain(&chain.name) {
                        hooks[hook_slot(h)] = Some((base + ci32, policy == crate::iptables::ast::Policy::Accept));
                    }
                }
                #[allow(clippy::cast_possible_truncation)]
                let len = chain.rules.len() as u32;
                p.chains.push(CChain { first: 0, len, table: t8, index: ci32 });
                flat_first.push(flat);
                flat += len;
            }
            p.tables.push(CTable { name: table.name, hooks });
        }
        let bases: Vec<usize> = {
            let mut b = Vec::with_capacity(ruleset.tables.len());
            let mut n = 0;
            for t in &ruleset.tables {
                b.push(n);
                n += t.chains.len();
            }
            b
        };
        for ci in layout_order(ruleset, &targets) {
            let c = &p.chains[ci];
            let (ti, cidx) = (usize::from(c.table), c.index as usize);
            #[allow(clippy::cast_possible_truncation)]
            let first = p.rules.len() as u32;
            p.chains[ci].first = first;
            for (ri, rule) in ruleset.tables[ti].chains[cidx].rules.iter().enumerate() {
                #[allow(clippy::cast_possible_truncation)]
                let to = targets[ti][cidx][ri].map(|t| (bases[ti] + t) as u32);
                let mut compiled = p.compile_rule(rule, to)?;
                #[allow(clippy::cast_possible_truncation)]
                {
                    compiled.id = flat_first[ci] + ri as u32;
                }
                p.rules.push(compiled);
            }
        }
        for c in 0..p.chains.len() {
            p.accelerate(c);
        }
        p.fused = Fused::build(&p);
        Ok(p)
    }

    fn iface_set(&self, pat: &Neg<crate::iptables::ast::IfacePattern>) -> u64 {
        let mut set = 0u64;
        for (i, name) in self.node.names.iter().enumerate() {
            if pat.apply(pat.value.matches(name)) {
                set |= 1 << i;
            }
        }
        if pat.apply(pat.value.matches("")) {
            set |= NONE_BIT;
        }
        set
    }

    fn compile_rule(&mut self, rule: &crate::iptables::ast::Rule, to: Option<u32>) -> Result<CRule, String> {
        let line = u32::try_from(rule.line).unwrap_or(u32::MAX);
        let mut b = RuleBuilder {
            rule: CRule {
                src: 0,
                src_mask: 0,
                dst: 0,
                dst_mask: 0,
                proto: 0,
                flags: 0,
                in_ifaces: u64::MAX,
                out_ifaces: u64::MAX,
                mods: 0,
                nmods: 0,
                target: CTarget::Nop,
                accel: Accel::None,
                line,
                id: 0,
            },
            has_src: false,
            has_dst: false,
            has_proto: false,
        };
        let unsupported = |what: &str| Err(format!("line {line}: {what} is not compiled"));
        // Header tests beyond the first of their kind, then module tests, go straight to the
        // arena (in that order, as the walk tests them).
        let first_mod = self.mods.len();
        for m in rule.matches.iter().filter(|m| is_header_match(m)) {
            match m {
                Match::Source(c) | Match::Destination(c) => {
                    let dst = matches!(m, Match::Destination(_));
                    let (net, mask) = cidr4(&c.value)?;
                    let seen = if dst { b.has_dst } else { b.has_src };
                    if seen {
                        self.mods.push(Mod::Cidr { dst, net, mask, neg: c.negated });
                    } else if dst {
                        (b.rule.dst, b.rule.dst_mask, b.has_dst) = (net, mask, true);
                        if c.negated {
                            b.rule.flags |= hflag::DST_NEG;
                        }
                    } else {
                        (b.rule.src, b.rule.src_mask, b.has_src) = (net, mask, true);
                        if c.negated {
                            b.rule.flags |= hflag::SRC_NEG;
                        }
                    }
                }
                Match::Protocol(pn) => {
                    if b.has_proto {
                        self.mods.push(Mod::Proto { proto: pn.value, neg: pn.negated });
                    } else {
                        b.has_proto = true;
                        b.rule.proto = pn.value;
                        if pn.negated {
                            b.rule.flags |= hflag::PROTO_NEG;
                        }
                    }
                }
                Match::InInterface(pat) => b.rule.in_ifaces &= self.iface_set(pat),
                Match::OutInterface(pat) => b.rule.out_ifaces &= self.iface_set(pat),
                // Compiled packets are never later fragments: `-f` fails, `! -f` holds.
                Match::Fragment(n) => {
                    if !n.negated {
                        b.rule.flags |= hflag::NEVER;
                    }
                }
                _ => return unsupported("a header match"),
            }
        }
        for m in rule.matches.iter().filter(|m| !is_header_match(m)) {
            let compiled = match m {
                Match::Comment(_) | Match::Nfacct(_) => continue,
                Match::Tcp { sport, dport, flags } => Mod::Ports {
                    proto: 6,
                    sport: port_test(sport),
                    dport: port_test(dport),
                    flags: flags.map(|f| (f.value.mask, f.value.comp, f.negated)),
                },
                Match::Udp { sport, dport } => {
                    Mod::Ports { proto: 17, sport: port_test(sport), dport: port_test(dport), flags: None }
                }
                Match::Sctp { sport, dport } => {
                    Mod::Ports { proto: 132, sport: port_test(sport), dport: port_test(dport), flags: None }
                }
                Match::Multiport { side, ports, negated } => {
                    let start = u32::try_from(self.ranges.len()).map_err(|_| "too many ranges")?;
                    self.ranges.extend_from_slice(ports);
                    let len = u32::try_from(ports.len()).map_err(|_| "too many ranges")?;
                    Mod::Multiport { side: *side, start, len, neg: *negated }
                }
                Match::Mark(n) => Mod::Mark { value: n.value.0, mask: n.value.1, neg: n.negated },
                Match::Connmark(n) => Mod::Connmark { value: n.value.0, mask: n.value.1, neg: n.negated },
                Match::AddrType { src, dst, limit_iface_in, limit_iface_out } => Mod::AddrType {
                    src: src.map(|n| (n.value.0, n.negated)),
                    dst: dst.map(|n| (n.value.0, n.negated)),
                    dev: if *limit_iface_in {
                        1
                    } else if *limit_iface_out {
                        2
                    } else {
                        0
                    },
                },
                Match::Statistic(n) => match n.value {
                    Statistic::Random { probability } => Mod::Statistic { p: probability, neg: n.negated },
                    Statistic::Nth { .. } => return unsupported("statistic --mode nth"),
                },
                Match::State(n) => Mod::State { bits: n.value.0, neg: n.negated },
                Match::Conntrack(c) => {
                    let only_state = c.proto.is_none()
                        && c.orig_src.is_none()
                        && c.orig_dst.is_none()
                        && c.repl_src.is_none()
                        && c.repl_dst.is_none()
                        && c.orig_src_port.is_none()
                        && c.orig_dst_port.is_none()
                        && c.repl_src_port.is_none()
                        && c.repl_dst_port.is_none()
                        && c.status.is_none()
                        && c.direction_reply.is_none();
                    if !only_state {
                        return unsupported("a conntrack match beyond --ctstate");
                    }
                    Mod::Conntrack { state: c.state.map(|s| (s.value.0, s.negated)) }
                }
                // Compiled packets are never ICMP.
                Match::Icmp(_) | Match::Icmp6(_) => Mod::Never,
                Match::Physdev(pd) => {
                    let inverted_or_absent = |o: Option<bool>| o.map_or(true, |present| !present);
                    let holds = pd.physdev_in.as_ref().map_or(true, |n| n.negated)
                        && pd.physdev_out.as_ref().map_or(true, |n| n.negated)
                        && inverted_or_absent(pd.is_in)
                        && inverted_or_absent(pd.is_out)
                        && inverted_or_absent(pd.is_bridged);
                    if holds {
                        continue;
                    }
                    Mod::Never
                }
                Match::Recent(_) => return unsupported("recent"),
                _ => return unsupported("a match"),
            };
            self.mods.push(compiled);
        }
        b.rule.target = match &rule.target {
            Target::Accept => CTarget::Accept,
            Target::Drop => CTarget::Drop,
            Target::Reject(w) => CTarget::Reject(*w),
            Target::Return => CTarget::Return,
            Target::Jump(_) => CTarget::Jump(to.ok_or("unresolved jump")?),
            Target::Goto(_) => CTarget::Goto(to.ok_or("unresolved goto")?),
            Target::Mark { value, mask } => CTarget::Mark { value: *value, mask: *mask },
            Target::Connmark(op) => CTarget::Connmark(*op),
            Target::None | Target::Log(_) | Target::Nflog(_) => CTarget::Nop,
            Target::Ct(opts) if !opts.iter().any(|o| o == "--notrack") => CTarget::Nop,
            Target::Ct(_) | Target::Notrack => CTarget::Notrack,
            Target::Dnat { ranges, .. } => CTarget::Dnat(range4(ranges)?),
            Target::Snat { ranges, .. } => CTarget::Snat(range4(ranges)?),
            Target::Masquerade { ports, .. } => CTarget::Masquerade(*ports),
            Target::Redirect { ports, .. } => CTarget::Redirect(*ports),
        };
        b.rule.mods = u32::try_from(first_mod).map_err(|_| "too many matches")?;
        b.rule.nmods = u32::try_from(self.mods.len() - first_mod).map_err(|_| "too many matches")?;
        Ok(b.rule)
    }

    /// The dispatch key of a rule, when every packet it can match has that key and skipping
    /// it for other packets has no side effect.
    fn dispatch_key(&self, r: &CRule) -> Option<dispatch::Key> {
        if r.flags != 0 || r.dst_mask != u32::MAX || !matches!(r.proto, 6 | 17 | 132) {
            return None;
        }
        let mods = &self.mods[r.mods as usize..(r.mods + r.nmods) as usize];
        let mut port = None;
        for m in mods {
            match m {
                Mod::Ports { proto, dport: Some((lo, hi, false)), .. } if *proto == r.proto && lo == hi => {
                    port = port.or(Some(*lo));
                }
                Mod::Statistic { .. } => return None,
                _ => {}
            }
        }
        port.map(|p| dispatch::key(r.dst, r.proto, p))
    }

    fn ladder_step(&self, r: &CRule) -> bool {
        r.flags == 0
            && r.src_mask == 0
            && r.dst_mask == 0
            && r.proto == 0
            && r.in_ifaces == u64::MAX
            && r.out_ifaces == u64::MAX
            && r.nmods == 1
            && matches!(self.mods[r.mods as usize], Mod::Statistic { neg: false, .. })
            && matches!(r.target, CTarget::Jump(_) | CTarget::Goto(_))
    }

    /// Finds dispatch runs and ladders in one chain.
    fn accelerate(&mut self, c: usize) {
        let (first, len) = (self.chains[c].first as usize, self.chains[c].len as usize);
        let mut pos = 0;
        while pos < len {
            let mut end = pos;
            let mut keys = Vec::new();
            while end < len {
                match self.dispatch_key(&self.rules[first + end]) {
                    #[allow(clippy::cast_possible_truncation)]
                    Some(k) => keys.push((k, end as u32)),
                    None => break,
                }
                end += 1;
            }
            #[allow(clippy::cast_possible_truncation)]
            if end - pos >= MIN_DISPATCH_RUN {
                let map = self.maps.len() as u32;
                self.maps.push(Dispatch::build(&keys));
                self.rules[first + pos].accel = Accel::Dispatch { map, end: end as u32 };
                pos = end;
                continue;
            }
            let mut end = pos;
            while end < len && self.ladder_step(&self.rules[first + end]) {
                end += 1;
            }
            #[allow(clippy::cast_possible_truncation)]
            if end - pos >= MIN_LADDER_RUN {
                self.rules[first + pos].accel = Accel::Ladder { end: end as u32 };
                pos = end;
                continue;
            }
            pos += 1;
        }
    }

    /// Bytes the compiled program holds (rules, tests, tables, node view excluded).
    pub fn bytes(&self) -> usize {
        self.rules.len() * std::mem::size_of::<CRule>()
            + self.mods.len() * std::mem::size_of::<Mod>()
            + self.ranges.len() * std::mem::size_of::<PortRange>()
            + self.chains.len() * std::mem::size_of::<CChain>()
            + self.maps.iter().map(Dispatch::bytes).sum::<usize>()
            + self.fast_bytes()
    }

    /// Bytes of the fused fast path (what a first packet of a service touches).
    pub fn fast_bytes(&self) -> usize {
        self.fused.as_ref().map_or(0, Fused::bytes)
    }

    /// Bytes of the dispatch tables alone.
    pub fn dispatch_bytes(&self) -> usize {
        self.maps.iter().map(Dispatch::bytes).sum()
    }

    /// The interface index of "no device".
    pub fn no_iface() -> u8 {
        NO_IFACE
    }
}
