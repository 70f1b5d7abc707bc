//! Addresses and prefixes: the CIDR type every match and route uses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::{Error, Result};

/// IP family of a ruleset, packet or prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`iptables`).
    V4,
    /// IPv6 (`ip6tables`).
    V6,
}

impl Family {
    /// Family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The all-zero address of the family.
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// An address prefix such as `10.0.0.0/8`; the address is kept with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

fn mask_u128(prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (bits - prefix)) & if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 }
    }
}

fn to_u128(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        // Truncation is intended: a v4 value only ever holds 32 significant bits here.
        #[allow(clippy::cast_possible_truncation)]
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

impl Cidr {
    /// A prefix; host bits of `addr` are cleared (iptables does the same when it saves `-s 10.1.2.3/8`).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `prefix` exceeds the family's width.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr> {
        let family = Family::of(&addr);
        if prefix > family.bits() {
            return Err(Error::invalid("prefix", format!("/{prefix} is longer than {} bits", family.bits())));
        }
        let masked = to_u128(&addr) & mask_u128(prefix, family.bits());
        Ok(Cidr { addr: from_u128(family, masked), prefix })
    }

    /// A single host (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr { addr, prefix: Family::of(&addr).bits() }
    }

    /// The match-everything prefix of a family (`0.0.0.0/0`, `::/0`).
    pub fn any(family: Family) -> Cidr {
        Cidr { addr: family.unspecified(), prefix: 0 }
    }

    /// Network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Family of the prefix.
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// Whether `addr` lies inside the prefix (always false across families).
    pub fn contains(&self, addr: &IpAddr) -> bool {
        let family = self.family();
        if Family::of(addr) != family {
            return false;
        }
        to_u128(addr) & mask_u128(self.prefix, family.bits()) == to_u128(&self.addr)
    }

    /// Whether the prefix is a single host.
    pub fn is_host(&self) -> bool {
        self.prefix == self.family().bits()
    }

    /// The netmask as an address (`255.255.255.0` for a /24), as `iptables -L` and `recent --mask` print it.
    pub fn netmask(&self) -> IpAddr {
        let family = self.family();
        from_u128(family, mask_u128(self.prefix, family.bits()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = Error;

    /// Parses `10.0.0.0/8`, `10.1.2.3` (a host) or `fd00::/64`.
    fn from_str(s: &str) -> Result<Cidr> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr =
            addr_text.parse().map_err(|_| Error::invalid("address", format!("{addr_text:?} is not an IP address")))?;
        match prefix_text {
            None => Ok(Cidr::host(addr)),
            Some(p) => {
                let prefix: u8 =
                    p.parse().map_err(|_| Error::invalid("prefix", format!("{p:?} is not a prefix length")))?;
                Cidr::new(addr, prefix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_respects_prefix() {
        let c: Cidr = "10.244.0.0/16".parse().unwrap();
        assert!(c.contains(&"10.244.3.4".parse().unwrap()));
        assert!(!c.contains(&"10.245.0.1".parse().unwrap()));
        assert!(!c.contains(&"::1".parse().unwrap()));
    }

    #[test]
    fn host_bits_are_cleared() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert_eq!(c.netmask().to_string(), "255.0.0.0");
    }

    #[test]
    fn zero_and_full_prefixes() {
        assert!(Cidr::any(Family::V4).contains(&"1.2.3.4".parse().unwrap()));
        let v6: Cidr = "fd00::1".parse().unwrap();
        assert!(v6.is_host());
        assert_eq!(v6.to_string(), "fd00::1/128");
        assert!("1.2.3.4/33".parse::<Cidr>().is_err());
    }
}
