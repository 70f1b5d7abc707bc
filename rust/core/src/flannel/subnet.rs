//! Subnet leases and the route lookup from an inner destination to the peer that owns it.
//!
//! flannel gives every node one subnet of the cluster network (a lease). Encapsulation looks up
//! the lease that contains the inner destination and sends to that lease's public IP. flannel's
//! UDP proxy scans its route table for the *first* match and the kernel routes by *longest*
//! prefix; flannel's allocator never hands out overlapping leases, and [`LeaseTable::new`]
//! refuses overlaps, so both rules pick the same lease here.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::net::{Cidr, Family};

pub use crate::packet::ethernet::Mac;

/// One node's subnet lease, as the encapsulation needs it (one address family per entry;
/// a dual-stack lease becomes two entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node's pod subnet, e.g. `10.244.2.0/24`.
    pub subnet: Cidr,
    /// Where encapsulated traffic for the subnet goes (`PublicIP`, or `PublicIPv6` for a v6 subnet).
    pub public_ip: IpAddr,
    /// The remote VTEP MAC (`BackendData.VtepMAC`); required for VXLAN peers.
    pub vtep_mac: Option<Mac>,
    /// MAC of the underlay next hop towards `public_ip` (the peer's NIC, or a gateway).
    /// Not part of flannel's lease: the kernel resolves it with ARP/NDP.
    pub underlay_mac: Option<Mac>,
}

/// Leases indexed for longest-prefix lookup: one hash map per distinct prefix length.
#[derive(Debug, Clone, Default)]
pub struct LeaseTable {
    leases: Vec<Lease>,
    /// (family, prefix length, masked address → index), longest prefixes first.
    by_len: Vec<(Family, u8, HashMap<u128, usize>)>,
}

fn bits(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn mask(prefix: u8, family: Family) -> u128 {
    let width = u32::from(family.bits());
    if prefix == 0 {
        return 0;
    }
    let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    (all << (width - u32::from(prefix))) & all
}

impl LeaseTable {
    /// Builds the table.
    ///
    /// # Errors
    /// [`Error::Invalid`] when two leases overlap (flannel never allocates overlapping subnets),
    /// or when a lease's public IP is of a different family than its subnet for v4 subnets
    /// (flannel's IPv4 leases always have an IPv4 `PublicIP`).
    pub fn new(leases: Vec<Lease>) -> Result<LeaseTable> {
        for (i, a) in leases.iter().enumerate() {
            for b in &leases[..i] {
                let overlap = a.subnet.family() == b.subnet.family()
                    && (a.subnet.contains(&b.subnet.addr()) || b.subnet.contains(&a.subnet.addr()));
                if overlap {
                    return Err(Error::invalid(
                        format!("lease {}", a.subnet),
                        format!("overlaps lease {}; flannel never allocates overlapping subnets", b.subnet),
                    ));
                }
            }
        }
        let mut by_len: Vec<(Family, u8, HashMap<u128, usize>)> = Vec::new();
        for (i, lease) in leases.iter().enumerate() {
            let family = lease.subnet.family();
            let prefix = lease.subnet.prefix();
            let slot = match by_len.iter().position(|(f, p, _)| *f == family && *p == prefix) {
                Some(s) => s,
                None => {
                    by_len.push((family, prefix, HashMap::new()));
                    by_len.len() - 1
                }
            };
            by_len[slot].2.insert(bits(&lease.subnet.addr()), i);
        }
        by_len.sort_by_key(|e| std::cmp::Reverse(e.1));
        Ok(LeaseTable { leases, by_len })
    }

    /// The lease whose subnet contains `addr` (longest prefix wins), if any.
    pub fn lookup(&self, addr: &IpAddr) -> Option<&Lease> {
        let family = Family::of(addr);
        let value = bits(addr);
        self.by_len
            .iter()
            .filter(|(f, _, _)| *f == family)
            .find_map(|(_, prefix, map)| map.get(&(value & mask(*prefix, family))))
            .map(|&i| &self.leases[i])
    }

    /// All leases, in the order given.
    pub fn leases(&self) -> &[Lease] {
        &self.leases
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether there are no leases.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(subnet: &str, ip: &str) -> Lease {
        Lease { subnet: subnet.parse().unwrap(), public_ip: ip.parse().unwrap(), vtep_mac: None, underlay_mac: None }
    }

    #[test]
    fn lookup_finds_the_containing_lease() {
        let t = LeaseTable::new(vec![
            lease("10.244.1.0/24", "192.168.0.11"),
            lease("10.244.2.0/24", "192.168.0.12"),
            lease("10.245.0.0/28", "192.168.0.13"),
            lease("fd00:1:2:3::/64", "fd99::1"),
        ])
        .unwrap();
        let hit = |a: &str| t.lookup(&a.parse().unwrap()).map(|l| l.public_ip.to_string());
        assert_eq!(hit("10.244.2.77").as_deref(), Some("192.168.0.12"));
        assert_eq!(hit("10.244.1.0").as_deref(), Some("192.168.0.11"));
        assert_eq!(hit("10.245.0.15").as_deref(), Some("192.168.0.13"));
        assert_eq!(hit("10.245.0.16"), None);
        assert_eq!(hit("10.244.3.1"), None);
        assert_eq!(hit("fd00:1:2:3::99").as_deref(), Some("fd99::1"));
        assert_eq!(hit("fd00:1:2:4::1"), None);
    }

    #[test]
    fn overlapping_leases_are_refused() {
        let e =
            LeaseTable::new(vec![lease("10.244.0.0/16", "1.1.1.1"), lease("10.244.2.0/24", "1.1.1.2")]).unwrap_err();
        assert!(e.to_string().contains("overlaps lease 10.244.0.0/16"), "{e}");
    }

    #[test]
    fn v4_and_v6_do_not_overlap() {
        assert!(LeaseTable::new(vec![lease("0.0.0.0/0", "1.1.1.1"), lease("::/0", "::1")]).is_ok());
    }

    #[test]
    fn zero_prefix_mask() {
        assert_eq!(mask(0, Family::V4), 0);
        assert_eq!(mask(24, Family::V4), 0xffff_ff00);
        assert_eq!(mask(128, Family::V6), u128::MAX);
    }
}
