//! The compiled classifier: a ruleset and a node compiled into indexed structures
//! ([`compiled::program`]) that decide the first packet of a connection as the plain
//! [`Netfilter`] evaluator would — same verdict, NAT, mark, deciding rule, same `statistic`
//! draws for the same seed — at a cost that does not grow with the number of services.
//!
//! What goes to the plain evaluator instead (exactly, just slower): rulesets with matches the
//! compiler does not model (see [`Compiled::fallback_reason`]), IPv6, ICMP packets, later
//! fragments, locally generated packets, and every request for a trace (traces always come
//! from the plain evaluator, so they list every rule visited).
//!
//! [`compiled::program`]: crate::iptables::compiled::program

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::iptables::ast::{Ruleset, TableName};
use crate::iptables::chance::{Chooser, Probability, Rng, ALWAYS};
use crate::iptables::compiled::fused::{Fused, MissKey, MissOutcome};
use crate::iptables::compiled::program::Program;
use crate::iptables::compiled::walk::{Ct, Frame, Walk};
use crate::iptables::eval::{Netfilter, Origin};
use crate::iptables::flow::Flow;
use crate::iptables::node::Node;
use crate::iptables::result::{EvalResult, TraceStep};

pub use crate::iptables::compiled::walk::{Decision, Packet4};

/// A compiled ruleset (with the plain evaluator kept for fallback and traces).
#[derive(Debug, Clone)]
pub struct Compiled {
    nf: Netfilter,
    program: Option<Program>,
    reason: Option<String>,
    /// Flat index of each chain's first rule, by (table, chain name); built on first use
    /// (only plain-evaluator decisions need it).
    chain_first: std::sync::OnceLock<HashMap<(TableName, String), u32>>,
    names: Vec<String>,
    /// Identity of this classifier (and its clones) for the per-thread [`Scratch`].
    id: u64,
}

/// A fast hasher for small fixed-size keys (multiply-rotate per word; keys are not
/// attacker-chosen and the table is bounded).
#[derive(Debug, Default, Clone, Copy)]
pub struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// Most miss classes one [`Scratch`] remembers.
const MAX_MISS_CLASSES: usize = 4096;

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Per-thread working memory (reused across packets so the fast path never allocates).
#[derive(Debug, Default)]
pub struct Scratch {
    stack: Vec<Frame>,
    plain: Option<Netfilter>,
    /// The classifier the cached state below belongs to (0: none).
    owner: u64,
    /// Outcomes of miss classes seen so far (`None`: the class must be walked).
    miss: HashMap<MissKey, Option<MissOutcome>, std::hash::BuildHasherDefault<MixHasher>>,
}

impl Scratch {
    /// The plain evaluator this scratch keeps for fallbacks (cloned from `c` on first use).
    pub fn plain_netfilter(&mut self, c: &Compiled) -> &mut Netfilter {
        self.own(c);
        self.plain.get_or_insert_with(|| c.nf.clone())
    }

    /// Forgets what belongs to another classifier (one scratch may serve several in turn).
    fn own(&mut self, c: &Compiled) {
        if self.owner != c.id {
            self.plain = None;
            self.miss.clear();
            self.owner = c.id;
        }
    }
}

/// Per-packet seed of packet `i` of a batch drawn with `seed`: results do not depend on how a
/// batch is split over threads, and equal a single evaluation with this seed.
#[inline]
pub fn packet_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn terminal(action: &str) -> bool {
    matches!(action, "ACCEPT" | "DROP" | "REJECT")
        || action.starts_with("no address to translate")
        || ["DNAT ", "SNAT ", "MASQUERADE ", "REDIRECT "].iter().any(|k| action.starts_with(k))
}

impl Compiled {
    /// Compiles a ruleset for a node. Never fails for a ruleset the plain evaluator accepts:
    /// what the compiler does not model is left to the plain evaluator.
    ///
    /// # Errors
    /// As [`Netfilter::new`] (a ruleset the kernel would refuse).
    pub fn new(ruleset: impl Into<Arc<Ruleset>>, node: Node) -> Result<Compiled> {
        let ruleset: Arc<Ruleset> = ruleset.into();
        let nf = Netfilter::new(Arc::clone(&ruleset), node, true)?;
        let (program, reason) = match Program::compile(&ruleset, nf.node()) {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
        let chain_first = std::sync::OnceLock::new();
        let names = nf.node().interfaces().iter().map(|i| i.name.clone()).collect();
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Compiled { nf, program, reason, chain_first, names, id })
    }

    /// Keeps the dump text so that traces quote each rule's line.
    pub fn with_source(mut self, text: &str) -> Compiled {
        self.nf = self.nf.with_source(text);
        self
    }

    /// The plain evaluator (stateless) this classifier agrees with.
    pub fn netfilter(&self) -> &Netfilter {
        &self.nf
    }

    /// The compiled program, when the ruleset compiled.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref()
    }

    /// Why every packet goes to the plain evaluator, if it does.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Interface names by index (`lo` first).
    pub fn interfaces(&self) -> &[String] {
        &self.names
    }

    /// Index of an interface.
    pub fn iface_index(&self, name: &str) -> Option<u8> {
        self.names.iter().position(|n| n == name).and_then(|i| u8::try_from(i).ok())
    }

    /// Where `--from auto` packets that are not local arrive.
    pub fn default_iface(&self) -> u8 {
        self.nf.node().first_external().and_then(|i| self.iface_index(&i.name)).unwrap_or(0)
    }

    /// Total number of rules (flat indexes run from 0 to this).
    pub fn rule_count(&self) -> usize {
        self.nf.ruleset().tables.iter().flat_map(|t| &t.chains).map(|c| c.rules.len()).sum()
    }

    /// (table, chain, 1-based rule number, line) of a flat rule index.
    pub fn rule_location(&self, flat: u32) -> Option<(TableName, String, usize, usize)> {
        let mut n = flat as usize;
        for t in &self.nf.ruleset().tables {
            for c in &t.chains {
                if n < c.rules.len() {
                    return Some((t.name, c.name.clone(), n + 1, c.rules[n].line));
                }
                n -= c.rules.len();
            }
        }
        None
    }

    fn check_iface(&self, pkt: &Packet4) -> Result<()> {
        if usize::from(pkt.iface) >= self.names.len() {
            return Err(Error::invalid(
                "iface",
                format!("interface index {} is out of range (the node has {})", pkt.iface, self.names.len()),
            ));
        }
        Ok(())
    }

    /// Decides one arriving packet with a seeded draw sequence (the fast path when compiled).
    ///
    /// # Errors
    /// As [`Netfilter::evaluate`]; [`Error::Invalid`] for an interface index the node lacks.
    pub fn classify(&self, pkt: &Packet4, seed: u64, scratch: &mut Scratch) -> Result<Decision> {
        self.check_iface(pkt)?;
        let fast = self.program.as_ref().filter(|_| !matches!(pkt.proto, 1 | 58));
        match fast {
            Some(p) => {
                let mut chooser = Chooser::Sample(Rng::new(seed));
                if let Some(f) = &p.fused {
                    if let Some(d) = f.classify(p, pkt, &mut chooser, &mut scratch.stack)? {
                        return Ok(d);
                    }
                    if let Some(d) = self.miss_decision(p, f, pkt, scratch) {
                        return Ok(d);
                    }
                }
                Walk::run(p, pkt, &mut chooser, &mut scratch.stack)
            }
            None => {
                let origin = Origin::Interface(self.names[usize::from(pkt.iface)].clone());
                self.plain_decision(&pkt.to_flow(), &origin, seed, scratch)
            }
        }
    }

    /// The decision of a packet of a cacheable miss class (no draw is made).
    fn miss_decision(&self, p: &Program, f: &Fused, pkt: &Packet4, scratch: &mut Scratch) -> Option<Decision> {
        let key = f.miss_key(p, pkt)?;
        scratch.own(self);
        let outcome = match scratch.miss.get(&key) {
            Some(o) => *o,
            None => {
                let o = f.fill_miss(p, pkt);
                if scratch.miss.len() < MAX_MISS_CLASSES {
                    scratch.miss.insert(key, o);
                }
                o
            }
        };
        outcome.map(|o| o.decision(pkt))
    }

    /// Decides a batch of packets into `out` (same length): packet `i` is drawn with
    /// `packet_seed(seed, base + i)`, so results equal [`Compiled::classify`] one by one.
    /// Packets are taken in blocks whose fused-path table slots and records are touched first,
    /// so that their memory latencies overlap.
    ///
    /// # Errors
    /// The first error of a packet, as [`Compiled::classify`].
    pub fn classify_batch(
        &self,
        pkts: &[Packet4],
        seed: u64,
        base: u64,
        scratch: &mut Scratch,
        out: &mut [Decision],
    ) -> Result<()> {
        const BLOCK: usize = 16;
        if out.len() != pkts.len() {
            return Err(Error::invalid("out", format!("has {} slots for {} packets", out.len(), pkts.len())));
        }
        let fused = self.program.as_ref().and_then(|p| p.fused.as_ref().map(|f| (p, f)));
        let n_ifaces = self.names.len();
        for (b, (block, outs)) in pkts.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).enumerate() {
            let mut recs = [u32::MAX; BLOCK];
            if let Some((p, f)) = fused {
                let mut sink = 0u32;
                for pkt in block {
                    sink ^= f.touch(pkt.dst, pkt.proto, pkt.dport);
                }
                for (pkt, rec) in block.iter().zip(recs.iter_mut()) {
                    if usize::from(pkt.iface) < n_ifaces {
                        if let Some(r) = f.record(p, pkt) {
                            *rec = r;
                            sink ^= f.touch_record(r);
                        }
                    }
                }
                std::hint::black_box(sink);
            }
            for (j, (pkt, slot)) in block.iter().zip(outs.iter_mut()).enumerate() {
                let s = packet_seed(seed, base + (b * BLOCK + j) as u64);
                match fused {
                    Some((p, f)) if recs[j] != u32::MAX => {
                        let mut chooser = Chooser::Sample(Rng::new(s));
                        f.run_into(p, pkt, recs[j], &mut chooser, &mut scratch.stack, slot)?;
                    }
                    _ => *slot = self.classify(pkt, s, scratch)?,
                }
            }
        }
        Ok(())
    }

    /// Decides any flow from any origin: compiled when it can, else the plain evaluator.
    ///
    /// # Errors
    /// As [`Netfilter::evaluate`].
    pub fn classify_flow(&self, flow: &Flow, origin: &Origin, seed: u64, scratch: &mut Scratch) -> Result<Decision> {
        if let Some(pkt) = self.fast_packet(flow, origin) {
            let mut chooser = Chooser::Sample(Rng::new(seed));
            if let Some(p) = &self.program {
                return Walk::run(p, &pkt, &mut chooser, &mut scratch.stack);
            }
        }
        self.plain_decision(flow, origin, seed, scratch)
    }

    /// The compiled-path form of a flow and origin, when the compiled path can take it.
    pub fn fast_packet(&self, flow: &Flow, origin: &Origin) -> Option<Packet4> {
        self.program.as_ref()?;
        let iface = match origin {
            Origin::Interface(name) => self.iface_index(name)?,
            Origin::Auto if !self.nf.node().is_local(&flow.src) => self.default_iface(),
            _ => return None,
        };
        Packet4::from_flow(flow, iface)
    }

    fn plain_decision(&self, flow: &Flow, origin: &Origin, seed: u64, scratch: &mut Scratch) -> Result<Decision> {
        let nf = scratch.plain_netfilter(self);
        let r = nf.evaluate(flow, origin, Some(seed), true)?;
        self.decision_of(&r)
    }

    /// Every possible decision with its exact probability (compiled when it can).
    ///
    /// # Errors
    /// As [`Netfilter::outcomes`].
    pub fn outcomes(&self, pkt: &Packet4) -> Result<Vec<(Probability, Decision)>> {
        self.check_iface(pkt)?;
        let Some(p) = self.program.as_ref().filter(|_| !matches!(pkt.proto, 1 | 58)) else {
            let origin = Origin::Interface(self.names[usize::from(pkt.iface)].clone());
            return self
                .nf
                .outcomes(&pkt.to_flow(), &origin, true)?
                .into_iter()
                .map(|o| Ok((o.probability, self.decision_of(&o.result)?)))
                .collect();
        };
        let mut stack = Vec::new();
        let mut pending: Vec<Vec<bool>> = vec![Vec::new()];
        let mut out = Vec::new();
        while let Some(prefix) = pending.pop() {
            let fixed = prefix.len();
            let mut chooser = Chooser::Explore { prefix, taken: Vec::new() };
            let d = Walk::run(p, pkt, &mut chooser, &mut stack)?;
            let Chooser::Explore { taken, .. } = chooser else { unreachable!("explore chooser stays explore") };
            let mut probability = Probability::one();
            for (i, &(q, decided)) in taken.iter().enumerate() {
                probability.times_fraction(if decided { q } else { ALWAYS - q });
                if i >= fixed && decided {
                    let mut alt: Vec<bool> = taken[..i].iter().map(|&(_, d)| d).collect();
                    alt.push(false);
                    pending.push(alt);
                }
            }
            out.push((probability, d));
            if out.len() + pending.len() > crate::iptables::eval::MAX_OUTCOMES {
                return Err(Error::Limit {
                    what: "statistic outcomes",
                    limit: crate::iptables::eval::MAX_OUTCOMES,
                    actual: out.len() + pending.len(),
                });
            }
        }
        Ok(out)
    }

    /// The trace of one packet (always from the plain evaluator).
    ///
    /// # Errors
    /// As [`Netfilter::evaluate`].
    pub fn trace(&self, flow: &Flow, origin: &Origin, seed: u64) -> Result<EvalResult> {
        self.nf.clone().evaluate(flow, origin, Some(seed), true)
    }

    fn chain_first(&self) -> &HashMap<(TableName, String), u32> {
        self.chain_first.get_or_init(|| {
            let mut chain_first = HashMap::new();
            let mut n = 0u32;
            for t in &self.nf.ruleset().tables {
                for c in &t.chains {
                    chain_first.insert((t.name, c.name.clone()), n);
                    n = n.saturating_add(u32::try_from(c.rules.len()).unwrap_or(u32::MAX));
                }
            }
            chain_first
        })
    }

    /// The deciding rule of a traced evaluation (see [`Decision::rule`]).
    pub fn deciding_rule(&self, trace: &[TraceStep]) -> Option<u32> {
        let mut rule = None;
        for s in trace {
            if s.chain.is_empty() {
                if s.action.contains("dropped") {
                    rule = None;
                }
            } else if s.rule == 0 {
                if s.action == "policy DROP" {
                    rule = None;
                }
            } else if s.matched && terminal(&s.action) {
                rule = self
                    .chain_first()
                    .get(&(s.table, s.chain.clone()))
                    .map(|&f| f + u32::try_from(s.rule - 1).unwrap_or(u32::MAX));
            }
        }
        rule
    }

    /// The decision a traced plain evaluation amounts to (IPv4 only).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an IPv6 result.
    pub fn decision_of(&self, r: &EvalResult) -> Result<Decision> {
        let a = |ip: IpAddr| match ip {
            IpAddr::V4(v) => Ok(u32::from(v)),
            IpAddr::V6(_) => Err(Error::invalid("packet", "the compiled classifier reports IPv4 results only")),
        };
        let ct = match r.ct_state {
            "UNTRACKED" => Ct::Untracked,
            "INVALID" => Ct::Invalid,
            _ => Ct::New,
        };
        let sport_dport = if r.flow.has_ports() { (r.flow.sport, r.flow.dport) } else { (0, 0) };
        Ok(Decision {
            verdict: r.verdict,
            src: a(r.flow.src)?,
            sport: sport_dport.0,
            dst: a(r.flow.dst)?,
            dport: sport_dport.1,
            dnat: r.dnat.is_some(),
            snat: r.snat.is_some(),
            nat: [r.nat.first().copied(), r.nat.get(1).copied()],
            mark: r.mark,
            rule: self.deciding_rule(&r.trace),
            local_delivery: r.local_delivery,
            out_iface: r.out_interface.as_deref().and_then(|n| self.iface_index(n)),
            ct,
        })
    }
}

/// Dotted form of an IPv4 address held as a number.
pub fn ipv4(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}
