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
    /// The kernel picks the port at random (`--random`, `--random-fully`); `port` is then the
    /// port kubenat reports, not a prediction.
    pub random_port: bool,
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
            let inside = match (lo, hi, current) {
                (IpAddr::V4(l), IpAddr::V4(h), IpAddr::V4(c)) => {
                    u32::from(l) <= u32::from(c) && u32::from(c) <= u32::from(h)
                }
                (IpAddr::V6(l), IpAddr::V6(h), IpAddr::V6(c)) => {
                    u128::from(l) <= u128::from(c) && u128::from(c) <= u128::from(h)
                }
                _ => false,
            };
            if inside && lo != hi {
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
    Binding { kind, addr: a, port: p, random_port: false }
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
    fn bind_changes_reply_and_status() {
        let t = Tuple {
            proto: 6,
            src: "10.0.0.1".parse().unwrap(),
            sport: 1000,
            dst: "10.96.0.1".parse().unwrap(),
            dport: 80,
        };
        let mut e = CtEntry::new(t);
        let b = Binding { kind: NatKind::Dnat, addr: "10.244.1.2".parse().unwrap(), port: 8080, random_port: false };
        assert!(bind(&mut e, Manip::Dst, &b, true));
        assert_eq!(e.reply.src, b.addr);
        assert_eq!(e.reply.sport, 8080);
        assert_ne!(e.status & status::DST_NAT, 0);
        let same = Binding { kind: NatKind::Snat, addr: "10.0.0.1".parse().unwrap(), port: 1000, random_port: false };
        assert!(!bind(&mut e, Manip::Src, &same, true));
        assert_eq!(e.status & status::SRC_NAT, 0);
    }
}
