//! Match evaluation: one function per match kind, each following the kernel module's logic.

use std::net::IpAddr;

use crate::error::Result;
use crate::iptables::ast::{
    AddrTypes, ConntrackMatch, CtStates, IcmpType, IfacePattern, Match, MultiportSide, Neg, PhysdevMatch, PortRange,
    Statistic,
};
use crate::iptables::conntrack::{status, Direction};
use crate::iptables::eval::RuleKey;
use crate::iptables::flow::{proto, Flow};
use crate::iptables::recent::masked;
use crate::iptables::walk::Walk;

/// Whether a match is part of the IP header test (`ipt_ip`), which the kernel checks before any
/// `-m` module regardless of the order the rule was written in.
pub fn is_header_match(m: &Match) -> bool {
    matches!(
        m,
        Match::Source(_)
            | Match::Destination(_)
            | Match::InInterface(_)
            | Match::OutInterface(_)
            | Match::Protocol(_)
            | Match::Fragment(_)
    )
}

fn iface(p: &Neg<IfacePattern>, name: Option<&str>) -> bool {
    // Without a device the kernel compares against an empty name: only `+` matches it.
    p.apply(p.value.matches(name.unwrap_or("")))
}

fn ports(p: &Option<Neg<PortRange>>, port: u16) -> bool {
    p.as_ref().map_or(true, |r| r.apply(r.value.contains(port)))
}

fn icmp_type(t: &Neg<IcmpType>, flow: &Flow) -> bool {
    let (lo, hi) = t.value.code.unwrap_or((0, 255));
    let hit = t.value.kind == 0xff && t.value.code.is_none()
        || (flow.icmp_type == t.value.kind && flow.icmp_code >= lo && flow.icmp_code <= hi);
    t.apply(hit)
}

impl Walk<'_> {
    /// Evaluates one match; matches with side effects (`recent`, `statistic`) apply them.
    pub(crate) fn test(&mut self, m: &Match, key: RuleKey) -> Result<bool> {
        let f = &self.flow;
        Ok(match m {
            Match::Source(c) => c.apply(c.value.contains(&f.src)),
            Match::Destination(c) => c.apply(c.value.contains(&f.dst)),
            Match::InInterface(p) => iface(p, self.in_iface.as_deref()),
            Match::OutInterface(p) => iface(p, self.out_iface.as_deref()),
            Match::Protocol(p) => p.apply(p.value == 0 || p.value == f.proto),
            Match::Fragment(n) => n.apply(f.is_later_fragment()),
            Match::Tcp { sport, dport, flags } => {
                f.proto == proto::TCP
                    && !f.is_later_fragment()
                    && ports(sport, f.sport)
                    && ports(dport, f.dport)
                    && flags.as_ref().map_or(true, |fl| fl.apply(f.tcp_flags & fl.value.mask == fl.value.comp))
            }
            Match::Udp { sport, dport } => {
                (f.proto == proto::UDP || f.proto == proto::UDPLITE)
                    && !f.is_later_fragment()
                    && ports(sport, f.sport)
                    && ports(dport, f.dport)
            }
            Match::Sctp { sport, dport } => {
                f.proto == proto::SCTP && !f.is_later_fragment() && ports(sport, f.sport) && ports(dport, f.dport)
            }
            Match::Multiport { side, ports: list, negated } => {
                if !f.has_ports() || f.is_later_fragment() {
                    false
                } else {
                    let hit = list.iter().any(|r| match side {
                        MultiportSide::Source => r.contains(f.sport),
                        MultiportSide::Destination => r.contains(f.dport),
                        MultiportSide::Either => r.contains(f.sport) || r.contains(f.dport),
                    });
                    hit != *negated
                }
            }
            Match::Comment(_) | Match::Nfacct(_) => true,
            Match::Mark(n) => n.apply(self.mark & n.value.1 == n.value.0),
            Match::Connmark(n) => match self.ct.entry() {
                // No connection: false whatever the inversion (connmark_mt returns early).
                None => false,
                Some(e) => n.apply(e.mark & n.value.1 == n.value.0),
            },
            Match::AddrType { src, dst, limit_iface_in, limit_iface_out } => {
                let dev = if *limit_iface_in {
                    self.in_iface.as_deref()
                } else if *limit_iface_out {
                    self.out_iface.as_deref()
                } else {
                    None
                };
                let node = &self.nf.node;
                let test = |n: &Neg<AddrTypes>, a: &IpAddr| {
                    n.apply(match a {
                        IpAddr::V6(v6) => node.addr_type6_matches(v6, dev, n.value.0),
                        IpAddr::V4(_) => node.addr_type(a, dev) & n.value.0 != 0,
                    })
                };
                src.as_ref().map_or(true, |n| test(n, &f.src)) && dst.as_ref().map_or(true, |n| test(n, &f.dst))
            }
            Match::Statistic(n) => {
                let hit = match n.value {
                    Statistic::Random { probability } => self.chooser.draw(probability),
                    Statistic::Nth { every, packet } => self.nth(key, every, packet),
                };
                n.apply(hit)
            }
            Match::Recent(r) => {
                let addr = if r.use_destination { f.dst } else { f.src };
                let addr = masked(addr, r.mask);
                let ttl = f.ttl;
                let now = self.now_ms;
                self.recent_list(&r.name).check(r, addr, ttl, now)
            }
            Match::Conntrack(c) => self.conntrack(c),
            Match::State(n) => n.apply(self.ct.state_bits() & n.value.0 != 0),
            Match::Icmp(t) => f.proto == proto::ICMP && !f.is_later_fragment() && icmp_type(t, f),
            Match::Icmp6(t) => f.proto == proto::ICMPV6 && !f.is_later_fragment() && icmp_type(t, f),
            Match::Physdev(p) => physdev(p, self.physdev_in.as_deref(), self.physdev_out.as_deref()),
        })
    }

    /// `statistic --mode nth`: the kernel keeps a per-rule counter starting at `every-1-packet`
    /// and matches when it wraps to 0, i.e. on packet `packet` (0-based) of every `every`.
    fn nth(&mut self, key: RuleKey, every: u32, packet: u32) -> bool {
        let every_m1 = every.saturating_sub(1);
        let count = self.nth_counter(key).unwrap_or(every_m1.saturating_sub(packet));
        let next = if count >= every_m1 { 0 } else { count + 1 };
        self.set_nth_counter(key, next);
        next == 0
    }

    /// `conntrack_mt`, field by field.
    fn conntrack(&self, c: &ConntrackMatch) -> bool {
        let entry = self.ct.entry();
        if let Some(s) = &c.state {
            let mut bits = self.ct.state_bits();
            if let Some(e) = entry {
                if e.status & status::SRC_NAT != 0 {
                    bits |= CtStates::SNAT;
                }
                if e.status & status::DST_NAT != 0 {
                    bits |= CtStates::DNAT;
                }
            }
            if !s.apply(bits & s.value.0 != 0) {
                return false;
            }
        }
        let Some(e) = entry else {
            // Untracked or invalid: only a state test can have matched.
            return c.state.is_some();
        };
        if let Some(p) = &c.proto {
            if !p.apply(e.original.proto == p.value) {
                return false;
            }
        }
        let cidr =
            |n: &Option<Neg<crate::net::Cidr>>, a: &IpAddr| n.as_ref().map_or(true, |n| n.apply(n.value.contains(a)));
        let port = |n: &Option<Neg<PortRange>>, p: u16| n.as_ref().map_or(true, |n| n.apply(n.value.contains(p)));
        if !(cidr(&c.orig_src, &e.original.src)
            && cidr(&c.orig_dst, &e.original.dst)
            && cidr(&c.repl_src, &e.reply.src)
            && cidr(&c.repl_dst, &e.reply.dst)
            && port(&c.orig_src_port, e.original.sport)
            && port(&c.orig_dst_port, e.original.dport)
            && port(&c.repl_src_port, e.reply.sport)
            && port(&c.repl_dst_port, e.reply.dport))
        {
            return false;
        }
        if let Some(st) = &c.status {
            // EXPECTED=1, SEEN_REPLY=2, ASSURED=4, CONFIRMED=8 are the kernel's bits 0..3.
            let have = u8::try_from(e.status & 0x0f).unwrap_or(0);
            if !st.apply(have & st.value != 0) {
                return false;
            }
        }
        if let Some(reply) = c.direction_reply {
            let is_reply = self.ct.direction() == Some(Direction::Reply);
            if is_reply != reply {
                return false;
            }
        }
        true
    }
}

/// `physdev_mt`. `indev`: the bridge port the packet arrived on (`None`: it did not come
/// through a bridge, so no option holds unless inverted); `outdev`: the port a bridged packet
/// leaves by (known in FORWARD and POSTROUTING). With a bridge but no output port (a routed
/// packet), `--physdev-out` fails inverted or not (checked on a 6.18 kernel).
fn physdev(p: &PhysdevMatch, indev: Option<&str>, outdev: Option<&str>) -> bool {
    let Some(indev) = indev else {
        let inverted_or_absent = |o: Option<bool>| o.map_or(true, |present| !present);
        return p.physdev_in.as_ref().map_or(true, |n| n.negated)
            && p.physdev_out.as_ref().map_or(true, |n| n.negated)
            && inverted_or_absent(p.is_in)
            && inverted_or_absent(p.is_out)
            && inverted_or_absent(p.is_bridged);
    };
    // `Some(true)`: the flag is given; `Some(false)`: given with `!`.
    let flag = |o: Option<bool>, holds: bool| o.map_or(true, |wanted| wanted == holds);
    flag(p.is_bridged, outdev.is_some())
        && flag(p.is_in, true)
        && flag(p.is_out, outdev.is_some())
        && p.physdev_in.as_ref().map_or(true, |n| n.apply(n.value.matches(indev)))
        && match (&p.physdev_out, outdev) {
            (Some(n), Some(out)) => n.apply(n.value.matches(out)),
            (Some(_), None) => false,
            (None, _) => true,
        }
}
