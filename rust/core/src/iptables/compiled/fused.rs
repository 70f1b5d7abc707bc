//! The fused kube-proxy fast path: one hash probe from a first packet's dispatch key
//! (destination, protocol, port) to a compact per-service record, then a few draws and
//! compares, then a cached outcome for everything after the DNAT.
//!
//! Built by partial evaluation of the compiled program, so it is exact by construction:
//!
//! - **entry**: the path from PREROUTING to the first dispatch run is walked once with a probe
//!   packet. The fast path exists only when that path ends in a nat-table dispatch run with a
//!   pristine state and read nothing of the packet (so every packet takes it).
//! - **records**: for each key of that run, the rules a packet with that key meets are walked
//!   with destination, protocol and port known and the source unknown. Source tests that only
//!   set a mark become conditional mark ops, `statistic` rules become draws (in walk order, so
//!   the same seed draws the same numbers), and each branch must end in a DNAT. Anything else
//!   (a port or interface test, a mark test on an unknown mark, a branch that falls through)
//!   leaves the key to the exact walk.
//! - **tails**: what happens after the DNAT (routing, FORWARD or INPUT, POSTROUTING) is walked
//!   once per distinct (endpoint route, port, mark) and cached when the walk read nothing
//!   that varies between packets (source, source port, interface, flags, draws); the martian
//!   and TTL checks that do depend on the packet run per packet.
//!
//! Layout: open-addressing slots of three `u32` (destination, port | protocol << 16, record
//! offset) and one flat `u32` op array; outcomes are shared in a small deduplicated table.

use std::collections::HashMap;

use crate::iptables::ast::{AddrTypes, MultiportSide, TableName};
use crate::iptables::chance::{Chooser, Rng};
use crate::iptables::compiled::dispatch::{self, mix};
use crate::iptables::compiled::program::{hflag, CRule, CTarget, Mod, Program, Range4, NONE_BIT};
use crate::iptables::compiled::walk::{reads, Ct, Decision, Frame, Packet4, Walk};
use crate::iptables::eval::table_slot;
use crate::iptables::flow::proto;
use crate::iptables::result::{NatKind, Verdict};

const OP_COND: u32 = 1;
const OP_DRAW: u32 = 2;
const OP_DNAT: u32 = 3;
/// On a draw: the head of a chain of draws whose taken branches draw no more, in a record
/// whose outcomes are all cached, so the chain is drawn in full without branching on each
/// draw (the later, unneeded draws cannot be observed: nothing draws after the record).
const LADDER: u32 = 0x20;
/// Longest chain drawn at once.
const MAX_LADDER: usize = 16;
/// Longest record, in words (a record is a tree of draws; this bounds its size).
const MAX_RECORD_WORDS: usize = 512;
/// Most rules one record compile visits.
const MAX_SYM_VISITS: usize = 4096;
/// Slot value of a key of the entry run without a record (the exact walk decides it).
const NO_RECORD: u32 = u32::MAX;
/// Tail index meaning "walk the rest exactly".
const NO_TAIL: u32 = 0xffff;
/// The rule a tail leaves untouched (no real rule has this index).
const SENTINEL_RULE: u32 = u32::MAX;
const PROBE_SRC: [u32; 2] = [0x0b00_0001, 0x0c00_0002];
const PROBE_SPORT: [u16; 2] = [1111, 2222];

/// What happens after the DNAT, for packets that are not martian and have TTL to spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Tail {
    verdict: Verdict,
    /// Source after NAT (`None`: unchanged).
    src: Option<u32>,
    /// Source port after NAT (`None`: unchanged).
    sport: Option<u16>,
    /// Source NAT kind that fired.
    snat: Option<NatKind>,
    mark: u32,
    /// Deciding rule (`None`: the DNAT rule stays the deciding rule).
    rule: Option<Option<u32>>,
    local: bool,
    out: Option<u8>,
    /// Routed to be forwarded (so a TTL of 1 drops it first).
    forwards: bool,
    ct: Ct,
}

/// The fused table.
#[derive(Debug, Clone)]
pub struct Fused {
    slots: Vec<[u32; 3]>,
    shift: u32,
    ops: Vec<u32>,
    markops: Vec<(u32, u32)>,
    tails: Vec<Tail>,
    /// The marks tails are cached for (at most two).
    universe: Vec<u32>,
    lo: u8,
    records: usize,
    /// The dispatch map the entry stops at.
    entry_map: u32,
}

/// The class of a packet that misses the entry's dispatch run: everything the rest of its
/// path may depend on when that path reads no address but through routing and address types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MissKey {
    proto: u8,
    dport: u16,
    dst_type: u16,
    dst_type_out: u16,
    local: bool,
    out: Option<u8>,
    masq: Option<u32>,
}

/// The cached decision of a miss class (source and ports as constants or unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissOutcome {
    verdict: Verdict,
    src: Option<u32>,
    sport: Option<u16>,
    dport: u16,
    nat: [Option<NatKind>; 2],
    mark: u32,
    rule: Option<u32>,
    local: bool,
    out: Option<u8>,
    ct: Ct,
}

impl MissOutcome {
    /// The decision for a packet of this class.
    #[inline]
    pub fn decision(&self, pkt: &Packet4) -> Decision {
        let src = self.src.unwrap_or(pkt.src);
        let sport = self.sport.unwrap_or(pkt.sport);
        Decision {
            verdict: self.verdict,
            src,
            sport,
            dst: pkt.dst,
            dport: self.dport,
            dnat: self.dport != pkt.dport,
            snat: src != pkt.src || sport != pkt.sport,
            nat: self.nat,
            mark: self.mark,
            rule: self.rule,
            local_delivery: self.local,
            out_iface: self.out,
            ct: self.ct,
        }
    }
}

/// Composes two `(mask, value)` mark operations: `b` after `a`.
fn compose(a: (u32, u32), b: (u32, u32)) -> (u32, u32) {
    (a.0 | b.0, (a.1 & !b.0) ^ b.1)
}

#[inline]
fn apply(op: (u32, u32), mark: u32) -> u32 {
    (mark & !op.0) ^ op.1
}

fn prefix_len(mask: u32) -> Option<u32> {
    let n = mask.count_ones();
    let expect = if n == 0 { 0 } else { u32::MAX << (32 - n) };
    (expect == mask).then_some(n)
}

#[inline]
fn mask_of(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

/// How a rule's matches evaluate with the key known and the source unknown.
enum Eval {
    False,
    True,
    /// Matches iff the source test holds: (network, mask, negated).
    Src(u32, u32, bool),
    /// Matches iff a draw against `p` (negated) holds.
    Draw(u32, bool),
}

/// One branch of the symbolic walk.
#[derive(Clone)]
struct Sym {
    /// Chain frames above the dispatch run: (chain, next position).
    frames: Vec<(u32, u32)>,
    /// Next candidate of the dispatch run.
    cand: usize,
    /// Possible marks (at most two).
    marks: Vec<u32>,
}

/// Record compiler for one key.
struct Builder<'p> {
    p: &'p Program,
    dst: u32,
    proto: u8,
    dport: u16,
    cands: &'p [u32],
    chain: u32,
    visits: usize,
    /// Where the record starts in the op array.
    start: usize,
    /// Some branch's outcome is walked (it may draw after the record).
    uncached: bool,
}

impl<'p> Builder<'p> {
    /// Header and modules of a rule at the dispatch point of nat PREROUTING.
    fn eval(&self, r: &CRule, marks: &[u32]) -> Option<Eval> {
        let f = r.flags;
        if f & hflag::NEVER != 0 {
            return Some(Eval::False);
        }
        let mut src = None;
        let mut draw = None;
        if r.src_mask != 0 {
            src = Some((r.src, r.src_mask, f & hflag::SRC_NEG != 0));
        } else if f & hflag::SRC_NEG != 0 {
            return Some(Eval::False);
        }
        if ((self.dst & r.dst_mask) == r.dst) == (f & hflag::DST_NEG != 0)
            || (r.proto == 0 || r.proto == self.proto) == (f & hflag::PROTO_NEG != 0)
            || r.out_ifaces & NONE_BIT == 0
        {
            return Some(Eval::False);
        }
        if r.in_ifaces != u64::MAX {
            return None;
        }
        let port_ok =
            |t: Option<(u16, u16, bool)>, port: u16| t.map_or(true, |(lo, hi, neg)| (lo <= port && port <= hi) != neg);
        for m in &self.p.mods[r.mods as usize..(r.mods + r.nmods) as usize] {
            let known = match *m {
                Mod::Cidr { dst: true, net, mask, neg } => ((self.dst & mask) == net) != neg,
                Mod::Cidr { dst: false, net, mask, neg } => {
                    if src.is_some() || draw.is_some() {
                        return None;
                    }
                    src = Some((net, mask, neg));
                    continue;
                }
                Mod::Proto { proto: want, neg } => (want == 0 || want == self.proto) != neg,
                Mod::Never => false,
                Mod::Ports { proto: want, sport, dport, flags } => {
                    if sport.is_some() || flags.is_some() {
                        return None;
                    }
                    let proto_ok = self.proto == want || (want == proto::UDP && self.proto == proto::UDPLITE);
                    proto_ok && port_ok(dport, self.dport)
                }
                Mod::Multiport { side: MultiportSide::Destination, start, len, neg } => {
                    let ranges = &self.p.ranges[start as usize..(start + len) as usize];
                    ranges.iter().any(|r| r.contains(self.dport)) != neg
                }
                Mod::Multiport { .. } => return None,
                Mod::Mark { value, mask, neg } => match marks {
                    [m] => (m & mask == value) != neg,
                    _ => return None,
                },
                // The connection is new and nothing set its mark yet.
                Mod::Connmark { value, neg, .. } => (value == 0) != neg,
                Mod::AddrType { src: s, dst: d, dev } => {
                    if s.is_some() || dev == 1 {
                        return None;
                    }
                    d.map_or(true, |(types, neg)| (self.p.node.addr_type(self.dst, None) & types != 0) != neg)
                }
                Mod::Statistic { p, neg } => {
                    if src.is_some() || draw.is_some() {
                        return None;
                    }
                    draw = Some((p, neg));
                    continue;
                }
                Mod::State { bits, neg } => (crate::iptables::ast::CtStates::NEW & bits != 0) != neg,
                Mod::Conntrack { state } => {
                    state.map_or(true, |(bits, neg)| (crate::iptables::ast::CtStates::NEW & bits != 0) != neg)
                }
            };
            if !known {
                // A draw already made would be consumed by a rule that cannot match.
                return if draw.is_some() { None } else { Some(Eval::False) };
            }
        }
        Some(match (src, draw) {
            (None, None) => Eval::True,
            (Some((net, mask, neg)), None) => Eval::Src(net, mask, neg),
            (None, Some((p, neg))) => Eval::Draw(p, neg),
            (Some(_), Some(_)) => return None,
        })
    }

    /// The mark operation of a chain that only sets marks unconditionally.
    fn mark_chain(&self, chain: u32, marks: &[u32]) -> Option<(u32, u32)> {
        let c = &self.p.chains[chain as usize];
        let mut op = (0u32, 0u32);
        for r in &self.p.rules[c.first as usize..(c.first + c.len) as usize] {
            let now: Vec<u32> = marks.iter().map(|&m| apply(op, m)).collect();
            match self.eval(r, &now)? {
                Eval::False => continue,
                Eval::True => {}
                _ => return None,
            }
            match r.target {
                CTarget::Mark { value, mask } => op = compose(op, (mask, value)),
                CTarget::Nop | CTarget::Notrack => {}
                CTarget::Return => break,
                _ => return None,
            }
        }
        Some(op)
    }

    /// The next rule of a branch (`None` when the dispatch run is exhausted).
    fn next_rule(&self, st: &mut Sym) -> Option<&'p CRule> {
        let p = self.p;
        loop {
            match st.frames.last_mut() {
                None => {
                    let pos = *self.cands.get(st.cand)?;
                    st.cand += 1;
                    let c = &p.chains[self.chain as usize];
                    return Some(&p.rules[(c.first + pos) as usize]);
                }
                Some((chain, pos)) => {
                    let c = &p.chains[*chain as usize];
                    if *pos >= c.len {
                        st.frames.pop();
                        continue;
                    }
                    *pos += 1;
                    return Some(&p.rules[(c.first + *pos - 1) as usize]);
                }
            }
        }
    }
}

impl Fused {
    /// Builds the fused path of a program, when its entry qualifies.
    pub fn build(p: &Program) -> Option<Fused> {
        let nat = p.slots[table_slot(TableName::Nat)]?;
        let iface = p.node.first_external().unwrap_or(0);
        let probe = Packet4::first(PROBE_SRC[0], 0x0a0b_0c0d, proto::TCP, PROBE_SPORT[0], 1, iface);
        let mut chooser = Chooser::Sample(Rng::new(0));
        let mut stack = Vec::new();
        let w = Walk::new(p, &probe, &mut chooser, &mut stack).probe_entry().ok()?;
        let (table, map, chain) = w.stopped?;
        if table != nat || w.reads != 0 || !w.pristine() {
            return None;
        }
        let d = &p.maps[map as usize];
        let keys = d.entries().count();
        let cap = (keys + keys / 2).next_power_of_two().max(8);
        let mut f = Fused {
            slots: vec![[0; 3]; cap],
            shift: 64 - cap.trailing_zeros(),
            ops: Vec::with_capacity(keys * 24),
            markops: Vec::new(),
            tails: Vec::new(),
            universe: Vec::new(),
            lo: p.node.lo(),
            records: 0,
            entry_map: map,
        };
        let mut tails = TailCache::default();
        for (k, cands) in d.entries() {
            #[allow(clippy::cast_possible_truncation)]
            let mut b = Builder {
                p,
                dst: (k >> 24) as u32,
                proto: (k >> 16) as u8,
                dport: k as u16,
                cands,
                chain,
                visits: 0,
                start: f.ops.len(),
                uncached: false,
            };
            let start = b.start;
            let st = Sym { frames: Vec::new(), cand: 0, marks: vec![0] };
            if f.branch(&mut b, st, start, &mut tails).is_some() && f.ops.len() - start <= MAX_RECORD_WORDS {
                if !b.uncached {
                    f.flag_ladders(start);
                }
                f.insert(k, u32::try_from(start).ok()?);
                f.records += 1;
            } else {
                f.ops.truncate(start);
                // Still a key of the run: a lookup miss then means "no candidate" for sure.
                f.insert(k, NO_RECORD);
            }
        }
        f.ops.shrink_to_fit();
        Some(f)
    }

    /// Whether the ops in `a..b` hold a draw.
    fn draws_in(&self, mut a: usize, b: usize) -> bool {
        while a < b {
            match self.ops[a] & 0xf {
                OP_DRAW => return true,
                OP_COND => a += 2,
                _ => a += 4,
            }
        }
        false
    }

    /// Flags the heads of draw chains in the record starting at `start` (see [`LADDER`]).
    fn flag_ladders(&mut self, start: usize) {
        let end = self.ops.len();
        let mut pc = start;
        while pc < end {
            match self.ops[pc] & 0xf {
                OP_COND => pc += 2,
                OP_DRAW => {
                    let (mut q, mut n, mut pure) = (pc, 0, true);
                    loop {
                        let e = q + 2 + (self.ops[q] >> 8) as usize;
                        if self.draws_in(q + 2, e) {
                            pure = false;
                            break;
                        }
                        n += 1;
                        if e < end && self.ops[e] & 0xf == OP_DRAW {
                            q = e;
                        } else {
                            break;
                        }
                    }
                    if pure && n >= 2 {
                        self.ops[pc] |= LADDER;
                    }
                    pc += 2;
                }
                _ => pc += 4,
            }
        }
    }

    fn insert(&mut self, k: dispatch::Key, rec: u32) {
        let mask = self.slots.len() - 1;
        #[allow(clippy::cast_possible_truncation)]
        let mut s = (mix(k) >> self.shift) as usize;
        while self.slots[s][1] >> 16 != 0 {
            s = (s + 1) & mask;
        }
        #[allow(clippy::cast_possible_truncation)]
        {
            self.slots[s] = [(k >> 24) as u32, (k & 0xff_ffff) as u32, rec];
        }
    }

    /// Compiles one branch of a record into `self.ops`.
    fn branch(&mut self, b: &mut Builder<'_>, mut st: Sym, branch_start: usize, tails: &mut TailCache) -> Option<()> {
        loop {
            if self.ops.len() - b.start > MAX_RECORD_WORDS {
                return None;
            }
            b.visits += 1;
            if b.visits > MAX_SYM_VISITS {
                return None;
            }
            let r = b.next_rule(&mut st)?;
            match b.eval(r, &st.marks)? {
                Eval::False => {}
                Eval::True => {
                    if self.apply_target(b, &mut st, r, branch_start, tails)? {
                        return Some(());
                    }
                }
                Eval::Src(net, mask, neg) => {
                    let op = match r.target {
                        CTarget::Nop | CTarget::Notrack => continue,
                        CTarget::Mark { value, mask: m } => (m, value),
                        CTarget::Jump(to) => b.mark_chain(to, &st.marks)?,
                        _ => return None,
                    };
                    self.cond_mark(&st, net, mask, neg, op)?;
                    let mut marks = st.marks.clone();
                    for &m in &st.marks {
                        let n = apply(op, m);
                        if !marks.contains(&n) {
                            marks.push(n);
                        }
                    }
                    if marks.len() > 2 {
                        return None;
                    }
                    st.marks = marks;
                }
                Eval::Draw(prob, neg) => {
                    let at = self.ops.len();
                    self.ops.push(OP_DRAW | (u32::from(neg) << 4));
                    self.ops.push(prob);
                    let mut taken = st.clone();
                    let done = self.apply_target(b, &mut taken, r, at + 2, tails)?;
                    if !done {
                        self.branch(b, taken, at + 2, tails)?;
                    }
                    let skip = u32::try_from(self.ops.len() - (at + 2)).ok().filter(|&s| s < (1 << 24))?;
                    self.ops[at] |= skip << 8;
                    return self.branch(b, st, self.ops.len(), tails);
                }
            }
        }
    }

    /// Emits a mark op applied when the source test holds.
    fn cond_mark(&mut self, _st: &Sym, net: u32, mask: u32, neg: bool, op: (u32, u32)) -> Option<()> {
        let idx = match self.markops.iter().position(|&m| m == op) {
            Some(i) => i,
            None => {
                self.markops.push(op);
                self.markops.len() - 1
            }
        };
        let len = prefix_len(mask)?;
        let idx = u32::try_from(idx).ok().filter(|&i| i < 2048)?;
        self.ops.push(OP_COND | (u32::from(neg) << 4) | (len << 5) | (idx << 16));
        self.ops.push(net);
        Some(())
    }

    /// Applies the target of a matching rule; `Some(true)` when the branch ended (DNAT).
    fn apply_target(
        &mut self,
        b: &mut Builder<'_>,
        st: &mut Sym,
        r: &CRule,
        branch_start: usize,
        tails: &mut TailCache,
    ) -> Option<bool> {
        match r.target {
            CTarget::Jump(to) => st.frames.push((to, 0)),
            CTarget::Goto(to) => *st.frames.last_mut()? = (to, 0),
            CTarget::Return => {
                st.frames.pop()?;
            }
            CTarget::Mark { value, mask } => {
                // An unconditional mark op: a source test against /0.
                self.cond_mark(st, 0, 0, false, (mask, value))?;
                for m in &mut st.marks {
                    *m = apply((mask, value), *m);
                }
                st.marks.sort_unstable();
                st.marks.dedup();
            }
            CTarget::Nop | CTarget::Notrack => {}
            CTarget::Dnat(range) => {
                if self.dnat(b, st, r, range, branch_start, tails)? {
                    b.uncached = true;
                }
                return Some(true);
            }
            _ => return None,
        }
        Some(false)
    }

    fn dnat(
        &mut self,
        b: &Builder<'_>,
        st: &Sym,
        r: &CRule,
        range: Option<Range4>,
        branch_start: usize,
        tails: &mut TailCache,
    ) -> Option<bool> {
        // As the walk's binding, with the destination and port known.
        let (addr, port) = match range {
            None => (b.dst, b.dport),
            Some(rg) => {
                let a = match rg.addrs {
                    None => b.dst,
                    Some((lo, hi)) if lo <= b.dst && b.dst <= hi && lo != hi => b.dst,
                    Some((lo, _)) => lo,
                };
                let pt = match rg.ports {
                    Some(pr) if !pr.contains(b.dport) => pr.first,
                    _ => b.dport,
                };
                (a, pt)
            }
        };
        for &m in &st.marks {
            if !self.universe.contains(&m) {
                if self.universe.len() >= 2 {
                    return None;
                }
                self.universe.push(m);
            }
        }
        let mut hairpin = 0u32;
        let n = self.ops.len();
        if n >= branch_start + 2 && self.ops[n - 2] & 0xf == OP_COND && self.ops[n - 1] == addr {
            let w = self.ops[n - 2];
            if (w >> 5) & 63 == 32 && w & 0x10 == 0 {
                hairpin = 1 | ((w >> 16) << 1);
                self.ops.truncate(n - 2);
            }
        }
        let mut t = [NO_TAIL; 2];
        let mut uncached = false;
        let universe = self.universe.clone();
        for (slot, &u) in t.iter_mut().zip(&universe) {
            if st.marks.contains(&u) {
                *slot = self.tail(b, addr, port, u, tails);
                uncached |= *slot == NO_TAIL;
            }
        }
        self.ops.push(OP_DNAT | (hairpin << 4) | (u32::from(port) << 16));
        self.ops.push(addr);
        self.ops.push(r.id);
        self.ops.push(t[0] | (t[1] << 16));
        Some(uncached)
    }

    /// The cached outcome after a DNAT to `addr:port` with `mark`, or [`NO_TAIL`].
    fn tail(&mut self, b: &Builder<'_>, addr: u32, port: u16, mark: u32, cache: &mut TailCache) -> u32 {
        let p = b.p;
        let node = &p.node;
        let local = node.delivers_locally(addr);
        let out = if local { None } else { node.route(addr) };
        let masq = out.and_then(|o| node.masquerade_source(o, addr));
        let dst_nat = addr != b.dst || port != b.dport;
        let class = (local, out, masq, port, b.proto, mark, dst_nat);
        if let Some(&(t, by_dst)) = cache.class.get(&class) {
            if !by_dst {
                return t;
            }
        }
        let exact = (addr, port, b.proto, mark, dst_nat);
        if let Some(&t) = cache.exact.get(&exact) {
            return t;
        }
        let (t, read_dst) = self.walk_tail(b, addr, port, mark, local, out);
        cache.class.insert(class, (t, read_dst));
        cache.exact.insert(exact, t);
        t
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_tail(
        &mut self,
        b: &Builder<'_>,
        addr: u32,
        port: u16,
        mark: u32,
        local: bool,
        out: Option<u8>,
    ) -> (u32, bool) {
        let mut seen = [None, None];
        let mut read_dst = true;
        for (i, slot) in seen.iter_mut().enumerate() {
            let iface = b.p.node.first_external().unwrap_or(0);
            let pkt = Packet4::first(PROBE_SRC[i], b.dst, b.proto, PROBE_SPORT[i], b.dport, iface);
            let mut chooser = Chooser::Sample(Rng::new(0));
            let mut stack: Vec<Frame> = Vec::new();
            let mut w = Walk::new(b.p, &pkt, &mut chooser, &mut stack);
            w.set_after_dnat(mark, addr, port, Some(SENTINEL_RULE));
            w.reads = 0;
            let Ok(v) = w.after_martian() else { return (NO_TAIL, true) };
            if w.reads & reads::VARYING != 0 {
                return (NO_TAIL, true);
            }
            read_dst = w.reads & (reads::DST | reads::DST_TYPE) != 0;
            let d = w.decision(v);
            *slot = Some(d);
        }
        let (Some(a), Some(bb)) = (seen[0], seen[1]) else { return (NO_TAIL, true) };
        let (Some(src), Some(sport)) = (
            passthrough_or_constant((a.src, bb.src), PROBE_SRC),
            passthrough_or_constant((a.sport, bb.sport), PROBE_SPORT),
        ) else {
            return (NO_TAIL, true);
        };
        if !(same_fate(&a, &bb) && a.dst == addr && a.dport == port && a.nat[0] == Some(NatKind::Dnat)) {
            return (NO_TAIL, true);
        }
        let tail = Tail {
            verdict: a.verdict,
            src,
            sport,
            snat: a.nat[1],
            mark: a.mark,
            rule: if a.rule == Some(SENTINEL_RULE) { None } else { Some(a.rule) },
            local: a.local_delivery,
            out: a.out_iface,
            forwards: !local && out.is_some(),
            ct: a.ct,
        };
        let idx = match self.tails.iter().position(|t| *t == tail) {
            Some(i) => i,
            None => {
                self.tails.push(tail);
                self.tails.len() - 1
            }
        };
        match u32::try_from(idx) {
            Ok(i) if i < NO_TAIL => (i, read_dst),
            _ => (NO_TAIL, true),
        }
    }

    /// The miss class of a packet the fused path does not decide, when its outcome can be
    /// cached: it enters the fused entry, has no candidate in the entry's dispatch run, is
    /// not martian, does not arrive on `lo` and has TTL to spare.
    #[inline]
    pub fn miss_key(&self, p: &Program, pkt: &Packet4) -> Option<MissKey> {
        if !matches!(pkt.proto, proto::TCP | proto::UDP | proto::SCTP)
            || (pkt.proto == proto::TCP && !p.tcp_new_ok[usize::from(pkt.tcp_flags)])
            || pkt.iface == self.lo
            || pkt.ttl <= 1
        {
            return None;
        }
        let node = &p.node;
        if node.martian_arriving(pkt.src, pkt.dst) {
            return None;
        }
        // Every key of the entry run is in the table (with or without a record).
        if self.lookup(pkt.dst, pkt.proto, pkt.dport).is_some() {
            return None;
        }
        let dst_type = node.addr_type(pkt.dst, None);
        // As `delivers_locally`, reusing the address type.
        let local = node.is_local(pkt.dst) || dst_type & (AddrTypes::BROADCAST | AddrTypes::MULTICAST) != 0;
        let out = if local { None } else { node.route(pkt.dst) };
        // A unicast address is unicast on every device.
        let dst_type_out = if dst_type == AddrTypes::UNICAST { dst_type } else { node.addr_type(pkt.dst, out) };
        Some(MissKey {
            proto: pkt.proto,
            dport: pkt.dport,
            dst_type,
            dst_type_out,
            local,
            out,
            masq: out.and_then(|o| node.masquerade_source(o, pkt.dst)),
        })
    }

    /// Walks a packet of a miss class (and a copy with another source and source port) and
    /// returns the class's outcome when the walks read nothing that varies within the class.
    pub fn fill_miss(&self, p: &Program, pkt: &Packet4) -> Option<MissOutcome> {
        let mut seen = [None, None];
        for (i, slot) in seen.iter_mut().enumerate() {
            let mut q = *pkt;
            if i == 1 {
                let mut other = (PROBE_SRC[0] ^ pkt.src.rotate_left(7)) | 0x0100_0000;
                if other == pkt.src {
                    other ^= 0x100;
                }
                (q.src, q.sport) = (other, !pkt.sport);
                if p.node.is_local(q.src) || p.node.martian_arriving(q.src, q.dst) {
                    return None;
                }
            }
            let mut chooser = Chooser::Sample(Rng::new(0));
            let mut stack: Vec<Frame> = Vec::new();
            let mut w = Walk::new(p, &q, &mut chooser, &mut stack);
            w.quiet_map = self.entry_map;
            let v = w.run_all().ok()?;
            if w.reads & (reads::VARYING | reads::DST) != 0 {
                return None;
            }
            *slot = Some((q, w.decision(v)));
        }
        let (Some((qa, a)), Some((qb, b))) = (seen[0], seen[1]) else { return None };
        let src = passthrough_or_constant((a.src, b.src), [qa.src, qb.src])?;
        let sport = passthrough_or_constant((a.sport, b.sport), [qa.sport, qb.sport])?;
        let same = same_fate(&a, &b) && a.dst == pkt.dst && b.dst == pkt.dst && a.dport == b.dport;
        same.then_some(MissOutcome {
            verdict: a.verdict,
            src,
            sport,
            dport: a.dport,
            nat: a.nat,
            mark: a.mark,
            rule: a.rule,
            local: a.local_delivery,
            out: a.out_iface,
            ct: a.ct,
        })
    }

    /// Number of distinct cached outcomes, and of DNAT branches whose outcome is walked.
    pub fn tail_stats(&self) -> (usize, usize) {
        let mut walked = 0;
        let mut pc = 0;
        while pc < self.ops.len() {
            match self.ops[pc] & 0xf {
                OP_COND | OP_DRAW => pc += 2,
                _ => {
                    let t = self.ops[pc + 3];
                    walked += usize::from(t & 0xffff == NO_TAIL) + usize::from(t >> 16 == NO_TAIL);
                    pc += 4;
                }
            }
        }
        (self.tails.len(), walked)
    }

    /// Number of draw chains drawn at once (see [`LADDER`]).
    pub fn ladders(&self) -> usize {
        let mut n = 0;
        let mut pc = 0;
        while pc < self.ops.len() {
            match self.ops[pc] & 0xf {
                OP_COND => pc += 2,
                OP_DRAW => {
                    n += usize::from(self.ops[pc] & LADDER != 0);
                    pc += 2;
                }
                _ => pc += 4,
            }
        }
        n
    }

    /// Number of keys with a record.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.slots.len() * 12
            + self.ops.len() * 4
            + self.markops.len() * 8
            + self.tails.len() * std::mem::size_of::<Tail>()
    }

    #[inline]
    fn lookup(&self, dst: u32, proto: u8, port: u16) -> Option<u32> {
        let k = dispatch::key(dst, proto, port);
        let w1 = u32::from(port) | (u32::from(proto) << 16);
        let mask = self.slots.len() - 1;
        #[allow(clippy::cast_possible_truncation)]
        let mut s = (mix(k) >> self.shift) as usize;
        loop {
            let slot = &self.slots[s];
            if slot[0] == dst && slot[1] == w1 {
                return Some(slot[2]);
            }
            if slot[1] >> 16 == 0 {
                return None;
            }
            s = (s + 1) & mask;
        }
    }

    /// Touches the slot a packet will probe (batch callers use it to overlap memory latency).
    #[inline]
    pub fn touch(&self, dst: u32, proto: u8, port: u16) -> u32 {
        let k = dispatch::key(dst, proto, port);
        #[allow(clippy::cast_possible_truncation)]
        let s = (mix(k) >> self.shift) as usize;
        self.slots[s][2]
    }

    /// The record of a packet, when the fused path decides it (nothing is drawn yet).
    #[inline]
    pub fn record(&self, p: &Program, pkt: &Packet4) -> Option<u32> {
        if !matches!(pkt.proto, proto::TCP | proto::UDP | proto::SCTP)
            || (pkt.proto == proto::TCP && !p.tcp_new_ok[usize::from(pkt.tcp_flags)])
        {
            return None;
        }
        self.lookup(pkt.dst, pkt.proto, pkt.dport).filter(|&r| r != NO_RECORD)
    }

    /// Touches the first words of a record (batch callers use it to overlap memory latency).
    #[inline]
    pub fn touch_record(&self, rec: u32) -> u32 {
        self.ops[rec as usize]
    }

    /// Decides a packet by its record, or `None` (nothing drawn) when it has none.
    ///
    /// # Errors
    /// As the walk, for a record whose outcome was not cached.
    #[inline]
    pub fn classify(
        &self,
        p: &Program,
        pkt: &Packet4,
        chooser: &mut Chooser,
        stack: &mut Vec<Frame>,
    ) -> crate::error::Result<Option<Decision>> {
        match self.record(p, pkt) {
            Some(rec) => self.run(p, pkt, rec, chooser, stack).map(Some),
            None => Ok(None),
        }
    }

    /// Decides a packet from its record (see [`Fused::record`]).
    ///
    /// # Errors
    /// As the walk, for a record whose outcome was not cached.
    #[inline]
    pub fn run(
        &self,
        p: &Program,
        pkt: &Packet4,
        rec: u32,
        chooser: &mut Chooser,
        stack: &mut Vec<Frame>,
    ) -> crate::error::Result<Decision> {
        let mut d = Decision::default();
        self.run_into(p, pkt, rec, chooser, stack, &mut d)?;
        Ok(d)
    }

    /// As [`Fused::run`], writing the decision in place (batch callers avoid a copy).
    ///
    /// # Errors
    /// As the walk, for a record whose outcome was not cached.
    #[inline]
    pub fn run_into(
        &self,
        p: &Program,
        pkt: &Packet4,
        rec: u32,
        chooser: &mut Chooser,
        stack: &mut Vec<Frame>,
        out: &mut Decision,
    ) -> crate::error::Result<()> {
        let mut pc = rec;
        let ops = &self.ops;
        let mut mark = 0u32;
        loop {
            let w = ops[pc as usize];
            match w & 0xf {
                OP_COND => {
                    let net = ops[pc as usize + 1];
                    let hit = (pkt.src & mask_of((w >> 5) & 63)) == net;
                    if hit != (w & 0x10 != 0) {
                        mark = apply(self.markops[(w >> 16) as usize], mark);
                    }
                    pc += 2;
                }
                OP_DRAW if w & LADDER != 0 => {
                    // The whole chain at once: bit k of `taken` is draw k's outcome.
                    let mut taken = 0u32;
                    let mut heads = [0u32; MAX_LADDER];
                    let mut k = 0;
                    let mut q = pc;
                    loop {
                        let wq = ops[q as usize];
                        let hit = chooser.draw(ops[q as usize + 1]) != (wq & 0x10 != 0);
                        taken |= u32::from(hit) << k;
                        heads[k] = q;
                        k += 1;
                        let e = q + 2 + (wq >> 8);
                        if k < MAX_LADDER && ops[e as usize] & 0xf == OP_DRAW {
                            q = e;
                        } else {
                            pc = if taken != 0 { heads[taken.trailing_zeros() as usize] + 2 } else { e };
                            break;
                        }
                    }
                }
                OP_DRAW => {
                    let prob = ops[pc as usize + 1];
                    pc += 2;
                    if chooser.draw(prob) == (w & 0x10 != 0) {
                        pc += w >> 8;
                    }
                }
                _ => {
                    let addr = ops[pc as usize + 1];
                    let rule = ops[pc as usize + 2];
                    let t = ops[pc as usize + 3];
                    if w & 0x10 != 0 && pkt.src == addr {
                        mark = apply(self.markops[((w >> 5) & 0x7ff) as usize], mark);
                    }
                    #[allow(clippy::cast_possible_truncation)]
                    let port = (w >> 16) as u16;
                    return self.finish(p, pkt, chooser, stack, mark, addr, port, rule, t, out);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn finish(
        &self,
        p: &Program,
        pkt: &Packet4,
        chooser: &mut Chooser,
        stack: &mut Vec<Frame>,
        mark: u32,
        addr: u32,
        port: u16,
        rule: u32,
        t: u32,
        out: &mut Decision,
    ) -> crate::error::Result<()> {
        let dnat = addr != pkt.dst || port != pkt.dport;
        let dropped = |mark: u32| Decision {
            verdict: Verdict::Drop,
            src: pkt.src,
            sport: pkt.sport,
            dst: addr,
            dport: port,
            dnat,
            snat: false,
            nat: [Some(NatKind::Dnat), None],
            mark,
            rule: None,
            local_delivery: false,
            out_iface: None,
            ct: Ct::New,
        };
        if pkt.iface != self.lo && p.node.martian_arriving(pkt.src, addr) {
            *out = dropped(mark);
            return Ok(());
        }
        let tail = match self.universe.iter().position(|&u| u == mark) {
            Some(0) => t & 0xffff,
            Some(_) => t >> 16,
            None => NO_TAIL,
        };
        let Some(tl) = self.tails.get(tail as usize) else {
            let mut w = Walk::new(p, pkt, chooser, stack);
            w.set_after_dnat(mark, addr, port, Some(rule));
            let v = w.after_martian()?;
            *out = w.decision(v);
            return Ok(());
        };
        if tl.forwards && pkt.ttl <= 1 {
            *out = dropped(mark);
            return Ok(());
        }
        let src = tl.src.unwrap_or(pkt.src);
        let sport = tl.sport.unwrap_or(pkt.sport);
        *out = Decision {
            verdict: tl.verdict,
            src,
            sport,
            dst: addr,
            dport: port,
            dnat,
            snat: src != pkt.src || sport != pkt.sport,
            nat: [Some(NatKind::Dnat), tl.snat],
            mark: tl.mark,
            rule: tl.rule.unwrap_or(Some(rule)),
            local_delivery: tl.local,
            out_iface: tl.out,
            ct: tl.ct,
        };
        Ok(())
    }
}

/// Tails already walked at build time: by route class (reused when the tail did not read the
/// destination) and by exact destination.
#[derive(Default)]
struct TailCache {
    #[allow(clippy::type_complexity)]
    class: HashMap<(bool, Option<u8>, Option<u32>, u16, u8, u32, bool), (u32, bool)>,
    exact: HashMap<(u32, u16, u8, u32, bool), u32>,
}

/// What two probe walks that differ only in a field say about it: `Some(None)` when each came
/// out with its own probe value (the field passes through), `Some(Some(v))` when both came out
/// as `v` (a constant), `None` when it depends on the packet in some other way.
fn passthrough_or_constant<T: Copy + PartialEq>(got: (T, T), probes: [T; 2]) -> Option<Option<T>> {
    if got.0 == probes[0] && got.1 == probes[1] {
        Some(None)
    } else if got.0 == got.1 {
        Some(Some(got.0))
    } else {
        None
    }
}

/// Whether two probe walks ended alike in everything but the addresses and ports.
fn same_fate(a: &Decision, b: &Decision) -> bool {
    a.verdict == b.verdict
        && a.nat == b.nat
        && a.mark == b.mark
        && a.rule == b.rule
        && a.local_delivery == b.local_delivery
        && a.out_iface == b.out_iface
        && a.ct == b.ct
}
