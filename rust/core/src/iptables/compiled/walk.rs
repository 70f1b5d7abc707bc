//! One packet through a compiled [`Program`]: the arriving path of the plain evaluator
//! (PREROUTING → routing → INPUT or FORWARD → POSTROUTING) for the first packet of a
//! connection with empty state, with the same match order, draws, NAT bindings and verdicts.

use crate::error::{Error, Result};
use crate::iptables::ast::{ConnmarkOp, CtStates, MultiportSide, PortRange, TableName};
use crate::iptables::chance::Chooser;
use crate::iptables::compiled::dispatch;
use crate::iptables::compiled::program::{hflag, Accel, CRule, CTarget, Mod, Program, Range4, NONE_BIT};
use crate::iptables::eval::{hook_slot, table_slot, MAX_VISITS};
use crate::iptables::flow::{proto, Flow};
use crate::iptables::result::{Hook, NatKind, Verdict};

/// A packet as the compiled path takes it: IPv4, not ICMP, not a later fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Packet4 {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// IP protocol.
    pub proto: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP flags (SYN for a connection's first packet).
    pub tcp_flags: u8,
    /// TTL.
    pub ttl: u8,
    /// Input interface index in the node.
    pub iface: u8,
}

impl Packet4 {
    /// The first packet of a new connection as the classifier's callers describe one: a TCP
    /// SYN (the flags matter only to `--syn`/`--tcp-flags` rules) with a fresh TTL of 64.
    #[inline]
    pub fn first(src: u32, dst: u32, proto: u8, sport: u16, dport: u16, iface: u8) -> Packet4 {
        Packet4 { src, dst, proto, sport, dport, tcp_flags: 0x02, ttl: 64, iface }
    }

    /// Whether the protocol carries ports.
    #[inline]
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE | proto::DCCP)
    }

    /// The packet as the compiled path sees a flow, when it can (IPv4, no ICMP, no later fragment).
    pub fn from_flow(f: &Flow, iface: u8) -> Option<Packet4> {
        let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (f.src, f.dst) else { return None };
        if matches!(f.proto, proto::ICMP | proto::ICMPV6) || f.is_later_fragment() {
            return None;
        }
        Some(Packet4 {
            src: u32::from(s),
            dst: u32::from(d),
            proto: f.proto,
            sport: f.sport,
            dport: f.dport,
            tcp_flags: f.tcp_flags,
            ttl: f.ttl,
            iface,
        })
    }

    /// A flow with the fields the compiled path reads (as [`Flow::new`] builds it otherwise).
    pub fn to_flow(&self) -> Flow {
        let ip = |a: u32| std::net::IpAddr::V4(std::net::Ipv4Addr::from(a));
        let mut f = Flow::new(ip(self.src), ip(self.dst), self.proto, self.sport, self.dport)
            .unwrap_or_else(|_| unreachable!("both addresses are IPv4"));
        f.tcp_flags = if self.proto == proto::TCP { self.tcp_flags } else { 0 };
        f.ttl = self.ttl;
        f
    }
}

/// Conntrack's view of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ct {
    /// A new connection.
    New,
    /// Not a valid first packet.
    Invalid,
    /// `NOTRACK`.
    Untracked,
}

/// What the compiled path decides for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Verdict.
    pub verdict: Verdict,
    /// Source after NAT.
    pub src: u32,
    /// Source port after NAT.
    pub sport: u16,
    /// Destination after NAT.
    pub dst: u32,
    /// Destination port after NAT.
    pub dport: u16,
    /// Whether the destination changed (the evaluator's `dnat`).
    pub dnat: bool,
    /// Whether the source changed (`snat`).
    pub snat: bool,
    /// NAT targets that fired, in hook order (at most one destination and one source manip).
    pub nat: [Option<NatKind>; 2],
    /// Packet mark.
    pub mark: u32,
    /// Flat index of the deciding rule: the rule that dropped or rejected the packet, else the
    /// last rule that ended a table with ACCEPT or NAT; `None` when a policy or routing decided.
    pub rule: Option<u32>,
    /// Delivered to a local socket.
    pub local_delivery: bool,
    /// Interface it left by.
    pub out_iface: Option<u8>,
    /// Conntrack state.
    pub ct: Ct,
}

impl Default for Decision {
    /// An accepted, untranslated packet from and to 0.0.0.0 (a placeholder for output buffers).
    fn default() -> Decision {
        Decision {
            verdict: Verdict::Accept,
            src: 0,
            sport: 0,
            dst: 0,
            dport: 0,
            dnat: false,
            snat: false,
            nat: [None, None],
            mark: 0,
            rule: None,
            local_delivery: false,
            out_iface: None,
            ct: Ct::New,
        }
    }
}

/// A chain walk frame: chain, next position, and the candidate cursor of an active dispatch run.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    chain: u32,
    pos: u32,
    cand: u32,
    cand_end: u32,
    run_end: u32,
    map: u32,
}

const NO_MAP: u32 = u32::MAX;

/// What a walk read of the packet besides its state, as bits (the fused path compiles a walk
/// into a constant only when it read nothing that varies between the packets sharing it).
pub mod reads {
    /// The source address (in a rule, not the routing martian check).
    pub const SRC: u8 = 1;
    /// The source port.
    pub const SPORT: u8 = 2;
    /// The input interface.
    pub const IFACE: u8 = 4;
    /// The TCP flags.
    pub const FLAGS: u8 = 8;
    /// A `statistic` draw.
    pub const DRAW: u8 = 16;
    /// The destination address.
    pub const DST: u8 = 32;
    /// The protocol or the destination port.
    pub const PORT_PROTO: u8 = 64;
    /// The destination's address type (`-m addrtype --dst-type`).
    pub const DST_TYPE: u8 = 128;
    /// Anything that differs between packets of one dispatch key after the same NAT.
    pub const VARYING: u8 = SRC | SPORT | IFACE | FLAGS | DRAW;
}

enum End {
    Accept,
    Stop(Verdict),
    Nat(NatKind, u32, u16),
}

/// Walk state of one packet.
pub struct Walk<'a> {
    p: &'a Program,
    chooser: &'a mut Chooser,
    stack: &'a mut Vec<Frame>,
    orig: Packet4,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    ttl: u8,
    mark: u32,
    out: Option<u8>,
    ct: Ct,
    ct_attached: bool,
    notrack: bool,
    dst_nat: bool,
    src_nat: bool,
    ct_mark: u32,
    nat: [Option<NatKind>; 2],
    rule: Option<u32>,
    visits: usize,
    hook: Hook,
    /// [`reads`] bits collected so far.
    pub(crate) reads: u8,
    /// Stop at the first dispatch run (the fused path's entry probe).
    stop_at_dispatch: bool,
    /// A dispatch map whose lookups are not counted as reads (the fused entry's own map, for
    /// packets known to miss it).
    pub(crate) quiet_map: u32,
    /// Where the walk stopped: (table, dispatch map, chain).
    pub(crate) stopped: Option<(u8, u32, u32)>,
    local_delivery: bool,
    routed_out: Option<u8>,
}

#[inline]
fn port_ok(t: Option<(u16, u16, bool)>, port: u16) -> bool {
    t.map_or(true, |(lo, hi, neg)| (lo <= port && port <= hi) != neg)
}

impl<'a> Walk<'a> {
    /// Evaluates one packet.
    ///
    /// # Errors
    /// As the plain evaluator: a NAT target in a hook the kernel refuses, or too many visits.
    pub fn run(p: &'a Program, pkt: &Packet4, chooser: &'a mut Chooser, stack: &'a mut Vec<Frame>) -> Result<Decision> {
        let mut w = Walk::new(p, pkt, chooser, stack);
        let pre = w.hook_pass(Hook::Prerouting)?;
        w.finish(pre)
    }

    /// A walk of `pkt` (normalized as the plain evaluator does) before any hook.
    pub(crate) fn new(p: &'a Program, pkt: &Packet4, chooser: &'a mut Chooser, stack: &'a mut Vec<Frame>) -> Walk<'a> {
        let mut pkt = *pkt;
        if !pkt.has_ports() {
            pkt.sport = 0;
            pkt.dport = 0;
        }
        if pkt.proto != proto::TCP {
            pkt.tcp_flags = 0;
        }
        Walk {
            p,
            chooser,
            stack,
            orig: pkt,
            src: pkt.src,
            dst: pkt.dst,
            sport: pkt.sport,
            dport: pkt.dport,
            ttl: pkt.ttl,
            mark: 0,
            out: None,
            ct: Ct::Invalid,
            ct_attached: false,
            notrack: false,
            dst_nat: false,
            src_nat: false,
            ct_mark: 0,
            nat: [None, None],
            rule: None,
            visits: 0,
            hook: Hook::Prerouting,
            reads: 0,
            stop_at_dispatch: false,
            quiet_map: NO_MAP,
            stopped: None,
            local_delivery: false,
            routed_out: None,
        }
    }

    /// Probes the path from PREROUTING to the first dispatch run: returns the walk stopped
    /// there (see [`Walk::stopped`], [`Walk::reads`]), or as far as it got.
    pub(crate) fn probe_entry(mut self) -> Result<Walk<'a>> {
        self.stop_at_dispatch = true;
        self.hook_pass(Hook::Prerouting)?;
        Ok(self)
    }

    /// The state right after nat PREROUTING bound a DNAT (the fused path's hand-over).
    pub(crate) fn set_after_dnat(&mut self, mark: u32, addr: u32, port: u16, rule: Option<u32>) {
        self.ct = Ct::New;
        self.ct_attached = true;
        self.mark = mark;
        self.rule = rule;
        self.hook = Hook::Prerouting;
        self.bind(Hook::Prerouting, NatKind::Dnat, addr, port);
    }

    /// Routing, INPUT or FORWARD, POSTROUTING after PREROUTING ended with `pre`.
    pub(crate) fn finish(mut self, pre: Option<Verdict>) -> Result<Decision> {
        let verdict = match pre {
            Some(v) => v,
            None => self.after_prerouting()?,
        };
        Ok(self.decision(verdict))
    }

    /// The decision the walk's state amounts to.
    pub(crate) fn decision(&self, verdict: Verdict) -> Decision {
        let pkt = &self.orig;
        let hp = pkt.has_ports();
        Decision {
            verdict,
            src: self.src,
            sport: self.sport,
            dst: self.dst,
            dport: self.dport,
            dnat: self.dst != pkt.dst || (hp && self.dport != pkt.dport),
            snat: self.src != pkt.src || (hp && self.sport != pkt.sport),
            nat: self.nat,
            mark: self.mark,
            rule: self.rule,
            local_delivery: self.local_delivery && verdict == Verdict::Accept,
            out_iface: self.routed_out,
            ct: self.ct,
        }
    }

    /// Runs the whole path (PREROUTING onwards) and returns the verdict.
    pub(crate) fn run_all(&mut self) -> Result<Verdict> {
        match self.hook_pass(Hook::Prerouting)? {
            Some(v) => Ok(v),
            None => self.after_prerouting(),
        }
    }

    fn after_prerouting(&mut self) -> Result<Verdict> {
        let p = self.p;
        if self.orig.iface != p.node.lo() && p.node.martian_arriving(self.src, self.dst) {
            self.rule = None;
            return Ok(Verdict::Drop);
        }
        self.after_martian()
    }

    /// The path after the martian check: what the fused path's cached tails hold.
    pub(crate) fn after_martian(&mut self) -> Result<Verdict> {
        let p = self.p;
        if p.node.delivers_locally(self.dst) {
            self.local_delivery = true;
            self.out = None;
            if let Some(v) = self.hook_pass(Hook::Input)? {
                return Ok(v);
            }
            return Ok(Verdict::Accept);
        }
        let Some(out) = p.node.route(self.dst) else {
            self.rule = None;
            return Ok(Verdict::Drop);
        };
        if self.ttl <= 1 {
            self.rule = None;
            return Ok(Verdict::Drop);
        }
        self.ttl -= 1;
        self.out = Some(out);
        self.routed_out = Some(out);
        if let Some(v) = self.hook_pass(Hook::Forward)? {
            return Ok(v);
        }
        if let Some(v) = self.hook_pass(Hook::Postrouting)? {
            return Ok(v);
        }
        Ok(Verdict::Accept)
    }

    /// Whether the walk is where a first packet starts nat PREROUTING: no mark, no connmark,
    /// a new connection, nothing translated.
    pub(crate) fn pristine(&self) -> bool {
        self.mark == 0
            && self.ct_mark == 0
            && self.ct == Ct::New
            && !self.notrack
            && !self.dst_nat
            && !self.src_nat
            && self.nat == [None, None]
            && self.hook == Hook::Prerouting
    }

    fn hook_pass(&mut self, hook: Hook) -> Result<Option<Verdict>> {
        self.hook = hook;
        let order: &[TableName] = match hook {
            Hook::Prerouting => &[TableName::Raw, TableName::Mangle, TableName::Nat],
            Hook::Input => &[TableName::Mangle, TableName::Filter, TableName::Security, TableName::Nat],
            Hook::Forward => &[TableName::Mangle, TableName::Filter, TableName::Security],
            Hook::Output => {
                &[TableName::Raw, TableName::Mangle, TableName::Nat, TableName::Filter, TableName::Security]
            }
            Hook::Postrouting => &[TableName::Mangle, TableName::Nat],
        };
        for &name in order {
            let t = self.p.slots[table_slot(name)];
            if name == TableName::Nat {
                if self.ct != Ct::New {
                    continue;
                }
                if let Some(t) = t {
                    match self.run_table(t, hook)? {
                        End::Accept => {}
                        End::Stop(v) => return Ok(Some(v)),
                        End::Nat(kind, addr, port) => self.bind(hook, kind, addr, port),
                    }
                }
            } else if let Some(t) = t {
                match self.run_table(t, hook)? {
                    End::Accept => {}
                    End::Stop(v) => return Ok(Some(v)),
                    End::Nat(..) => {
                        return Err(Error::eval(format!("NAT target outside the nat table at {}", hook.chain())))
                    }
                }
            }
            if name == TableName::Raw && !self.ct_attached {
                self.ct_attached = true;
                self.ct = if self.notrack {
                    Ct::Untracked
                } else if self.orig.proto != proto::TCP || self.p.tcp_new_ok[usize::from(self.orig.tcp_flags)] {
                    Ct::New
                } else {
                    Ct::Invalid
                };
            }
        }
        Ok(None)
    }

    /// Records a binding and translates the packet (the first packet of a connection).
    fn bind(&mut self, hook: Hook, kind: NatKind, addr: u32, port: u16) {
        let hp = self.orig.has_ports();
        let slot = usize::from(self.nat[0].is_some());
        self.nat[slot] = Some(kind);
        if matches!(hook, Hook::Prerouting | Hook::Output) {
            if addr != self.orig.dst || (hp && port != self.orig.dport) {
                self.dst_nat = true;
            }
            self.dst = addr;
            if hp {
                self.dport = port;
            }
        } else {
            if addr != self.orig.src || (hp && port != self.orig.sport) {
                self.src_nat = true;
            }
            self.src = addr;
            if hp {
                self.sport = port;
            }
        }
    }

    fn ct_bits(&self, with_nat: bool) -> u8 {
        match self.ct {
            Ct::Untracked => CtStates::UNTRACKED,
            Ct::Invalid => CtStates::INVALID,
            Ct::New => {
                let mut b = CtStates::NEW;
                if with_nat && self.src_nat {
                    b |= CtStates::SNAT;
                }
                if with_nat && self.dst_nat {
                    b |= CtStates::DNAT;
                }
                b
            }
        }
    }

    #[inline]
    fn header(&mut self, r: &CRule) -> bool {
        let f = r.flags;
        if f & hflag::NEVER != 0 {
            return false;
        }
        self.note_header(r);
        if ((self.src & r.src_mask) == r.src) == (f & hflag::SRC_NEG != 0) {
            return false;
        }
        if ((self.dst & r.dst_mask) == r.dst) == (f & hflag::DST_NEG != 0) {
            return false;
        }
        if (r.proto == 0 || r.proto == self.orig.proto) == (f & hflag::PROTO_NEG != 0) {
            return false;
        }
        let in_bit = 1u64 << self.orig.iface;
        let out_bit = self.out.map_or(NONE_BIT, |o| 1u64 << o);
        r.in_ifaces & in_bit != 0 && r.out_ifaces & out_bit != 0
    }

    #[inline]
    fn note_header(&mut self, r: &CRule) {
        let mut bits = 0;
        if r.src_mask != 0 {
            bits |= reads::SRC;
        }
        if r.dst_mask != 0 {
            bits |= reads::DST;
        }
        if r.proto != 0 || r.flags & hflag::PROTO_NEG != 0 {
            bits |= reads::PORT_PROTO;
        }
        if r.in_ifaces != u64::MAX {
            bits |= reads::IFACE;
        }
        self.reads |= bits;
    }

    fn note_mod(&mut self, m: &Mod) {
        self.reads |= match *m {
            Mod::Cidr { dst: true, .. } => reads::DST,
            Mod::Cidr { dst: false, .. } => reads::SRC,
            Mod::Proto { .. } => reads::PORT_PROTO,
            Mod::Never | Mod::Mark { .. } | Mod::Connmark { .. } | Mod::State { .. } | Mod::Conntrack { .. } => 0,
            Mod::Ports { sport, flags, .. } => {
                reads::PORT_PROTO
                    | if sport.is_some() { reads::SPORT } else { 0 }
                    | if flags.is_some() { reads::FLAGS } else { 0 }
            }
            Mod::Multiport { side, .. } => {
                reads::PORT_PROTO | if side == MultiportSide::Destination { 0 } else { reads::SPORT }
            }
            Mod::AddrType { src, dst, dev } => {
                (if src.is_some() { reads::SRC } else { 0 })
                    | (if dst.is_some() { reads::DST_TYPE } else { 0 })
                    | (if dev == 1 { reads::IFACE } else { 0 })
            }
            Mod::Statistic { .. } => reads::DRAW,
        };
    }

    fn test(&mut self, m: &Mod) -> bool {
        self.note_mod(m);
        let o = &self.orig;
        match *m {
            Mod::Cidr { dst, net, mask, neg } => {
                let a = if dst { self.dst } else { self.src };
                ((a & mask) == net) != neg
            }
            Mod::Proto { proto, neg } => (proto == 0 || proto == o.proto) != neg,
            Mod::Never => false,
            Mod::Ports { proto: want, sport, dport, flags } => {
                let proto_ok = o.proto == want || (want == proto::UDP && o.proto == proto::UDPLITE);
                proto_ok
                    && port_ok(sport, self.sport)
                    && port_ok(dport, self.dport)
                    && flags.map_or(true, |(mask, comp, neg)| (o.tcp_flags & mask == comp) != neg)
            }
            Mod::Multiport { side, start, len, neg } => {
                if !o.has_ports() {
                    return false;
                }
                let ranges: &[PortRange] = &self.p.ranges[start as usize..(start + len) as usize];
                let hit = ranges.iter().any(|r| match side {
                    MultiportSide::Source => r.contains(self.sport),
                    MultiportSide::Destination => r.contains(self.dport),
                    MultiportSide::Either => r.contains(self.sport) || r.contains(self.dport),
                });
                hit != neg
            }
            Mod::Mark { value, mask, neg } => (self.mark & mask == value) != neg,
            Mod::Connmark { value, mask, neg } => self.ct == Ct::New && ((self.ct_mark & mask == value) != neg),
            Mod::AddrType { src, dst, dev } => {
                let d = match dev {
                    1 => Some(o.iface),
                    2 => self.out,
                    _ => None,
                };
                let node = &self.p.node;
                let test = |n: (u16, bool), a: u32| (node.addr_type(a, d) & n.0 != 0) != n.1;
                src.map_or(true, |n| test(n, self.src)) && dst.map_or(true, |n| test(n, self.dst))
            }
            Mod::Statistic { p, neg } => self.chooser.draw(p) != neg,
            Mod::State { bits, neg } => (self.ct_bits(false) & bits != 0) != neg,
            Mod::Conntrack { state } => {
                if let Some((bits, neg)) = state {
                    if (self.ct_bits(true) & bits != 0) == neg {
                        return false;
                    }
                }
                self.ct == Ct::New || state.is_some()
            }
        }
    }

    fn matches(&mut self, r: &CRule) -> bool {
        if !self.header(r) {
            return false;
        }
        let p = self.p;
        p.mods[r.mods as usize..(r.mods + r.nmods) as usize].iter().all(|m| self.test(m))
    }

    fn nat_binding(&mut self, target: &CTarget, rule: &CRule) -> Result<Option<(NatKind, u32, u16)>> {
        let hook = self.hook;
        let hp = self.orig.has_ports();
        let wrong = |name: &str| {
            Err(Error::eval(format!(
                "line {}: {name} is not valid in nat {} (the kernel refuses this ruleset)",
                rule.line,
                hook.chain()
            )))
        };
        let map_port = |r: Option<PortRange>, cur: u16| match r {
            Some(r) if hp && !r.contains(cur) => r.first,
            _ => cur,
        };
        let from_range = |r: &Option<Range4>, addr: u32, port: u16| match r {
            None => (addr, port),
            Some(r) => {
                let a = match r.addrs {
                    None => addr,
                    Some((lo, hi)) => {
                        if lo <= addr && addr <= hi && lo != hi {
                            addr
                        } else {
                            lo
                        }
                    }
                };
                (a, map_port(r.ports, port))
            }
        };
        self.reads |= match target {
            CTarget::Dnat(Some(r)) => {
                (if r.addrs.is_some() { reads::DST } else { 0 })
                    | (if r.ports.is_some() { reads::PORT_PROTO } else { 0 })
            }
            CTarget::Redirect(ports) => reads::IFACE | if ports.is_some() { reads::PORT_PROTO } else { 0 },
            CTarget::Snat(None) => reads::SRC | reads::SPORT,
            CTarget::Snat(Some(r)) => {
                (if r.addrs.is_some() { reads::SRC } else { 0 }) | (if r.ports.is_some() { reads::SPORT } else { 0 })
            }
            // The address depends on the route and the destination only through
            // `masquerade_source`, which the fused path keys its cached outcomes by.
            CTarget::Masquerade(Some(_)) => reads::SPORT,
            _ => 0,
        };
        Ok(match target {
            CTarget::Dnat(r) => {
                if !matches!(hook, Hook::Prerouting | Hook::Output) {
                    return wrong("DNAT");
                }
                let (a, p) = from_range(r, self.dst, self.dport);
                Some((NatKind::Dnat, a, p))
            }
            CTarget::Redirect(ports) => {
                if !matches!(hook, Hook::Prerouting | Hook::Output) {
                    return wrong("REDIRECT");
                }
                self.p
                    .node
                    .redirect_address(self.orig.iface)
                    .map(|a| (NatKind::Redirect, a, map_port(*ports, self.dport)))
            }
            CTarget::Snat(r) => {
                if !matches!(hook, Hook::Postrouting | Hook::Input) {
                    return wrong("SNAT");
                }
                let (a, p) = from_range(r, self.src, self.sport);
                Some((NatKind::Snat, a, p))
            }
            CTarget::Masquerade(ports) => {
                if hook != Hook::Postrouting {
                    return wrong("MASQUERADE");
                }
                let out = self.out.unwrap_or(u8::MAX);
                self.p
                    .node
                    .masquerade_source(out, self.dst)
                    .map(|a| (NatKind::Masquerade, a, map_port(*ports, self.sport)))
            }
            _ => None,
        })
    }

    fn run_table(&mut self, t: u8, hook: Hook) -> Result<End> {
        let p = self.p;
        let Some((base, accept)) = p.tables[usize::from(t)].hooks[hook_slot(hook)] else {
            return Ok(End::Accept);
        };
        let policy = |w: &mut Walk<'_>| {
            if accept {
                End::Accept
            } else {
                w.rule = None;
                End::Stop(Verdict::Drop)
            }
        };
        self.stack.clear();
        self.stack.push(Frame { chain: base, pos: 0, cand: 0, cand_end: 0, run_end: 0, map: NO_MAP });
        loop {
            let Some(top) = self.stack.last_mut() else { return Ok(End::Accept) };
            let chain = &p.chains[top.chain as usize];
            // The next rule: from an active dispatch run's candidates, or the next position.
            let ri = if top.map != NO_MAP {
                if top.cand < top.cand_end {
                    let pos = p.maps[top.map as usize].cand(top.cand);
                    top.cand += 1;
                    pos
                } else {
                    top.pos = top.run_end;
                    top.map = NO_MAP;
                    continue;
                }
            } else {
                if top.pos >= chain.len {
                    if self.stack.len() == 1 {
                        return Ok(policy(self));
                    }
                    self.stack.pop();
                    continue;
                }
                let pos = top.pos;
                let rule = &p.rules[(chain.first + pos) as usize];
                match rule.accel {
                    Accel::Dispatch { map, end } => {
                        if self.stop_at_dispatch {
                            self.stopped = Some((chain.table, map, top.chain));
                            return Ok(End::Stop(Verdict::Drop));
                        }
                        if map == self.quiet_map {
                            // Only the first lookup: a later one may see a translated key.
                            self.quiet_map = NO_MAP;
                        } else {
                            self.reads |= reads::DST | reads::PORT_PROTO;
                        }
                        let k = dispatch::key(self.dst, self.orig.proto, self.dport);
                        let (a, b) = p.maps[map as usize].lookup(k);
                        *top = Frame { chain: top.chain, pos, cand: a, cand_end: b, run_end: end, map };
                        continue;
                    }
                    Accel::Ladder { end } => {
                        self.reads |= reads::DRAW;
                        let mut hit = None;
                        for i in pos..end {
                            let r = &p.rules[(chain.first + i) as usize];
                            let Mod::Statistic { p: prob, .. } = p.mods[r.mods as usize] else { break };
                            self.visits += 1;
                            if self.chooser.draw(prob) {
                                hit = Some(i);
                                break;
                            }
                        }
                        let top = self.stack.last_mut().unwrap_or_else(|| unreachable!("frame is on the stack"));
                        match hit {
                            None => {
                                top.pos = end;
                                continue;
                            }
                            Some(i) => {
                                top.pos = i + 1;
                                let r = &p.rules[(chain.first + i) as usize];
                                match r.target {
                                    CTarget::Jump(to) => self.push(to),
                                    CTarget::Goto(to) => {
                                        *top =
                                            Frame { chain: to, pos: 0, cand: 0, cand_end: 0, run_end: 0, map: NO_MAP }
                                    }
                                    _ => unreachable!("ladder steps jump"),
                                }
                                continue;
                            }
                        }
                    }
                    Accel::None => {
                        top.pos += 1;
                        pos
                    }
                }
            };
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return Err(Error::Limit {
                    what: "rules visited for one packet",
                    limit: MAX_VISITS,
                    actual: self.visits,
                });
            }
            let rule = &p.rules[(chain.first + ri) as usize];
            let flat = rule.id;
            if !self.matches(rule) {
                continue;
            }
            match rule.target {
                CTarget::Accept => {
                    self.rule = Some(flat);
                    return Ok(End::Accept);
                }
                CTarget::Drop => {
                    self.rule = Some(flat);
                    return Ok(End::Stop(Verdict::Drop));
                }
                CTarget::Reject(with) => {
                    self.rule = Some(flat);
                    return Ok(End::Stop(Verdict::Reject(with)));
                }
                CTarget::Return => {
                    if self.stack.len() == 1 {
                        return Ok(policy(self));
                    }
                    self.stack.pop();
                }
                CTarget::Jump(to) => self.push(to),
                CTarget::Goto(to) => {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Frame { chain: to, pos: 0, cand: 0, cand_end: 0, run_end: 0, map: NO_MAP };
                    }
                }
                CTarget::Mark { value, mask } => self.mark = (self.mark & !mask) ^ value,
                CTarget::Connmark(op) => {
                    if self.ct == Ct::New {
                        match op {
                            ConnmarkOp::SetXmark { value, mask } => self.ct_mark = (self.ct_mark & !mask) ^ value,
                            ConnmarkOp::Save { nfmask, ctmask } => {
                                self.ct_mark = (self.ct_mark & !ctmask) ^ (self.mark & nfmask);
                            }
                            ConnmarkOp::Restore { nfmask, ctmask } => {
                                self.mark = (self.mark & !nfmask) ^ (self.ct_mark & ctmask);
                            }
                        }
                    }
                }
                CTarget::Nop => {}
                CTarget::Notrack => {
                    if !self.ct_attached {
                        self.notrack = true;
                    }
                }
                CTarget::Dnat(_) | CTarget::Snat(_) | CTarget::Masquerade(_) | CTarget::Redirect(_) => {
                    self.rule = Some(flat);
                    return Ok(match self.nat_binding(&rule.target, rule)? {
                        Some((kind, addr, port)) => End::Nat(kind, addr, port),
                        None => End::Stop(Verdict::Drop),
                    });
                }
            }
        }
    }

    #[inline]
    fn push(&mut self, to: u32) {
        self.stack.push(Frame { chain: to, pos: 0, cand: 0, cand_end: 0, run_end: 0, map: NO_MAP });
    }
}
