//! NAT bindings: which address and port DNAT, SNAT, MASQUERADE and REDIRECT pick, and how a
//! binding changes the connection's reply tuple.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::iptables::ast::{NatRange, PortRange};
use crate::iptables::conntrack::{status, CtEntry};
use crate::iptables::flow::Tuple;
use crate::iptables::result::NatKind;

/// Which side of the tuple a NAT hook changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manip {
    /// Destination (PREROUTING, OUTPUT).
    Dst,
    /// Source (POSTROUTING, INPUT).
    Src,
}

/// A decided translation for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// What decided it.
    pub kind: NatKind,
    /// New address of the manipulated side.
    pub addr: IpAddr,
    /// New port of the manipulated side (unchanged for protocols without ports).
    pub port: u16,
    /// The kernel picks the port (ICMP: the echo identifier) itself inside this span (at random,
    /// or from a random offset); `port` is then the port kubenat reports, not a prediction.
    pub port_span: Option<(u16, u16)>,
    /// The kernel picks the address inside this range by a hash of the tuple; `addr` is then
    /// the address kubenat reports, not a prediction.
    pub addr_span: Option<(IpAddr, IpAddr)>,
}

impl Binding {
    /// Whether the kernel chooses the port (or ICMP identifier) itself.
    pub fn random_port(&self) -> bool {
        self.port_span.is_some()
    }
}

/// A translated field the kernel chooses itself: the reported value is one of the span, not a
/// prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// A port or ICMP echo identifier in `low..=high`.
    Port(u16, u16),
    /// An address in `low..=high`.
    Addr(IpAddr, IpAddr),
}

/// What a packet carries in the place of ports, for NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP, UDP, SCTP, DCCP: ports.
    Ported,
    /// ICMP echo: the identifier, rewritten like a port.
    Icmp,
    /// Anything else: only addresses.
    Other,
}

/// The ports a source NAT without a port range picks from: the original port's class, as the
/// kernel keeps it (`nf_nat_l4proto_unique_tuple`: 1-511, 600-1023, 1024-65535).
pub fn port_class(port: u16) -> (u16, u16) {
    match port {
        0..=511 => (1, 511),
        512..=1023 => (600, 1023),
        _ => (1024, 65535),
    }
}

fn addr_inside(lo: IpAddr, hi: IpAddr, a: IpAddr) -> bool {
    match (lo, hi, a) {
        (IpAddr::V4(l), IpAddr::V4(h), IpAddr::V4(c)) => u32::from(l) <= u32::from(c) && u32::from(c) <= u32::from(h),
        (IpAddr::V6(l), IpAddr::V6(h), IpAddr::V6(c)) => {
            u128::from(l) <= u128::from(c) && u128::from(c) <= u128::from(h)
        }
        _ => false,
    }
}

/// (address span, port span) of a binding: what the kernel chooses itself.
pub type Spans = (Option<(IpAddr, IpAddr)>, Option<(u16, u16)>);

/// Which translated fields the kernel chooses itself for a new connection without clashes
/// (`get_unique_tuple` in `nf_nat_core.c`), as (address span, port span).
///
/// * An address range of more than one address is hashed, except that source NAT without
///   `--random`/`--random-fully` keeps an original tuple that is already inside the range.
/// * `--random`/`--random-fully` (`random_all`) on an ICMP echo draws the identifier from
///   0-65535, for DNAT and REDIRECT too.
/// * For ports, `random_all` draws from the given range of more than one port, or (source NAT
///   without a range) from the original port's class; DNAT/REDIRECT without a range keep the port.
/// * Without `random_all`, source NAT to a port range that does not hold the original port
///   searches the range from a random offset; DNAT/REDIRECT take its first port.
pub fn spans(kind: NatKind, range: Option<&NatRange>, addr: IpAddr, port: u16, l4: L4, random_all: bool) -> Spans {
    let source = matches!(kind, NatKind::Snat | NatKind::Masquerade);
    let ports = range.and_then(|r| r.ports).filter(|_| l4 == L4::Ported);
    let ports_inside = ports.map_or(true, |r| r.contains(port));
    let addrs = range.and_then(|r| r.addrs).filter(|(lo, hi)| lo != hi).filter(|&(lo, hi)| {
        let kept = source && !random_all && addr_inside(lo, hi, addr) && ports_inside;
        !kept
    });
    let port_span = match l4 {
        L4::Icmp => random_all.then_some((0, 65535)),
        L4::Other => None,
        L4::Ported => match ports {
            Some(r) if r.first == r.last => None,
            Some(r) if random_all || (source && !r.contains(port)) => Some((r.first, r.last)),
            Some(_) => None,
            None => (source && random_all).then(|| port_class(port)),
        },
    };
    (addrs, port_span)
}

/// The port a range maps `current` to: kept when inside the range (the kernel keeps a unique
/// in-range tuple), else the lowest port of the range. (For SNAT/MASQUERADE the kernel starts
/// its search at a random offset; kubenat reports the lowest port, as DNAT does.)
pub fn map_port(range: Option<PortRange>, current: u16, has_ports: bool) -> u16 {
    match range {
        Some(r) if has_ports && !r.contains(current) => r.first,
        _ => current,
    }
}

/// The address an address range maps to: the current address when inside, else the first.
///
/// The kernel picks inside a multi-address range by a hash of the tuple; kubenat keeps an
/// in-range address and otherwise takes the lowest one.
pub fn map_addr(range: Option<(IpAddr, IpAddr)>, current: IpAddr) -> IpAddr {
    match range {
        None => current,
        Some((lo, hi)) => {
            if addr_inside(lo, hi, current) && lo != hi {
                current
            } else {
                lo
            }
        }
    }
}

/// Applies a `--to-destination` / `--to-source` range to one side of a tuple.
pub fn from_range(kind: NatKind, range: Option<&NatRange>, addr: IpAddr, port: u16, has_ports: bool) -> Binding {
    let (a, p) = match range {
        None => (addr, port),
        Some(r) => (map_addr(r.addrs, addr), map_port(r.ports, port, has_ports)),
    };
    Binding { kind, addr: a, port: p, port_span: None, addr_span: None }
}

/// The loopback address of a family (REDIRECT of locally generated packets).
pub fn loopback(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// Records a binding in a new connection: the reply tuple now expects the translated side.
/// Returns whether the tuple actually changed (the kernel sets `IPS_*_NAT` only then).
pub fn bind(entry: &mut CtEntry, manip: Manip, b: &Binding, has_ports: bool) -> bool {
    let reply: &mut Tuple = &mut entry.reply;
    let before = *reply;
    match manip {
        Manip::Dst => {
            reply.src = b.addr;
            if has_ports {
                reply.sport = b.port;
            }
        }
        Manip::Src => {
            reply.dst = b.addr;
            if has_ports {
                reply.dport = b.port;
            }
        }
    }
    let changed = *reply != before;
    if changed {
        entry.status |= match manip {
            Manip::Dst => status::DST_NAT,
            Manip::Src => status::SRC_NAT,
        };
    }
    changed
}

/// The `*_NAT_DONE` bit of a manip.
pub fn done_bit(manip: Manip) -> u32 {
    match manip {
        Manip::Dst => status::DST_NAT_DONE,
        Manip::Src => status::SRC_NAT_DONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_kept_in_range() {
        let r = Some(PortRange { first: 30000, last: 30010 });
        assert_eq!(map_port(r, 30005, true), 30005);
        assert_eq!(map_port(r, 80, true), 30000);
        assert_eq!(map_port(r, 80, false), 80);
        assert_eq!(map_port(None, 80, true), 80);
    }

    #[test]
    fn addresses_from_range() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(map_addr(Some((ip("10.0.0.1"), ip("10.0.0.1"))), ip("1.2.3.4")), ip("10.0.0.1"));
        assert_eq!(map_addr(Some((ip("10.0.0.1"), ip("10.0.0.9"))), ip("10.0.0.5")), ip("10.0.0.5"));
        assert_eq!(map_addr(Some((ip("10.0.0.1"), ip("10.0.0.9"))), ip("1.2.3.4")), ip("10.0.0.1"));
        assert_eq!(map_addr(None, ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn spans_follow_the_kernel() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = |a: &str, b: &str, ports: Option<(u16, u16)>| NatRange {
            addrs: Some((ip(a), ip(b))),
            ports: ports.map(|(first, last)| PortRange { first, last }),
        };
        let one = r("10.0.0.1", "10.0.0.1", None);
        // ICMP: the identifier is drawn from 0-65535 with --random, for every kind.
        for kind in [NatKind::Dnat, NatKind::Redirect, NatKind::Snat, NatKind::Masquerade] {
            assert_eq!(spans(kind, Some(&one), ip("1.2.3.4"), 7, L4::Icmp, true), (None, Some((0, 65535))));
            assert_eq!(spans(kind, Some(&one), ip("1.2.3.4"), 7, L4::Icmp, false), (None, None));
        }
        // DNAT keeps its port without a range, draws inside a range only with --random.
        assert_eq!(spans(NatKind::Dnat, Some(&one), ip("1.2.3.4"), 80, L4::Ported, true), (None, None));
        let pr = r("10.0.0.1", "10.0.0.1", Some((8080, 8090)));
        assert_eq!(spans(NatKind::Dnat, Some(&pr), ip("1.2.3.4"), 80, L4::Ported, false), (None, None));
        assert_eq!(spans(NatKind::Dnat, Some(&pr), ip("1.2.3.4"), 80, L4::Ported, true).1, Some((8080, 8090)));
        // Source NAT: class without a range, the range when the port is outside it.
        assert_eq!(spans(NatKind::Snat, Some(&one), ip("1.2.3.4"), 700, L4::Ported, true).1, Some((600, 1023)));
        assert_eq!(spans(NatKind::Snat, Some(&pr), ip("1.2.3.4"), 80, L4::Ported, false).1, Some((8080, 8090)));
        assert_eq!(spans(NatKind::Snat, Some(&pr), ip("1.2.3.4"), 8085, L4::Ported, false).1, None);
        // Address ranges are hashed; source NAT keeps an in-range source unless --random.
        let ar = r("10.0.0.1", "10.0.0.9", None);
        let span = Some((ip("10.0.0.1"), ip("10.0.0.9")));
        assert_eq!(spans(NatKind::Dnat, Some(&ar), ip("10.0.0.5"), 80, L4::Ported, false).0, span);
        assert_eq!(spans(NatKind::Snat, Some(&ar), ip("10.0.0.5"), 80, L4::Ported, false).0, None);
        assert_eq!(spans(NatKind::Snat, Some(&ar), ip("10.0.0.5"), 80, L4::Ported, true).0, span);
        assert_eq!(spans(NatKind::Snat, Some(&ar), ip("1.2.3.4"), 80, L4::Other, false).0, span);
    }

    #[test]
    fn bind_changes_reply_and_status() {
        let t = Tuple {
            proto: 6,
            src: "10.0.0.1".parse().unwrap(),
            sport: 1000,
            dst: "10.96.0.1".parse().unwrap(),
            dport: 80,
        };
        let mut e = CtEntry::new(t);
        let b = Binding {
            kind: NatKind::Dnat,
            addr: "10.244.1.2".parse().unwrap(),
            port: 8080,
            port_span: None,
            addr_span: None,
        };
        assert!(bind(&mut e, Manip::Dst, &b, true));
        assert_eq!(e.reply.src, b.addr);
        assert_eq!(e.reply.sport, 8080);
        assert_ne!(e.status & status::DST_NAT, 0);
        let same = Binding {
            kind: NatKind::Snat,
            addr: "10.0.0.1".parse().unwrap(),
            port: 1000,
            port_span: None,
            addr_span: None,
        };
        assert!(!bind(&mut e, Manip::Src, &same, true));
        assert_eq!(e.status & status::SRC_NAT, 0);
    }
}
