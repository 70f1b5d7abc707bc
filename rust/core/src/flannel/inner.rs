//! What encapsulation needs to know about the inner IP packet: its family, destination (for the
//! lease lookup), DS field (for the outer ECN bits) and flow key (for the VXLAN source port).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// The facts about an inner packet that encapsulation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 TOS / IPv6 traffic class (DSCP and ECN).
    pub dsfield: u8,
    /// Protocol (IPv4) or first next header (IPv6).
    pub protocol: u8,
    /// Source and destination ports of TCP, UDP, SCTP and UDP-Lite first fragments.
    pub ports: Option<(u16, u16)>,
}

/// Reads the inner packet's header.
///
/// # Errors
/// [`Error::Packet`] (layer `"ipv4"`/`"ipv6"`) when the bytes are not an IP packet whose header fits.
pub fn parse(p: &[u8]) -> Result<Inner> {
    let Some(&first) = p.first() else {
        return Err(Error::packet("ip", "version", 0, "empty packet"));
    };
    match first >> 4 {
        4 => parse_v4(p),
        6 => parse_v6(p),
        v => Err(Error::packet("ip", "version", 0, format!("version {v} is neither 4 nor 6"))),
    }
}

fn ports_at(p: &[u8], protocol: u8, at: usize) -> Option<(u16, u16)> {
    // TCP, UDP, SCTP and UDP-Lite all start with the two ports.
    if !matches!(protocol, 6 | 17 | 132 | 136) || p.len() < at + 4 {
        return None;
    }
    Some((u16::from_be_bytes([p[at], p[at + 1]]), u16::from_be_bytes([p[at + 2], p[at + 3]])))
}

fn parse_v4(p: &[u8]) -> Result<Inner> {
    if p.len() < 20 {
        return Err(Error::packet(
            "ipv4",
            "header",
            0,
            format!("truncated: need 20 bytes, only {} available", p.len()),
        ));
    }
    let hl = usize::from(p[0] & 0x0f) * 4;
    if hl < 20 {
        return Err(Error::packet(
            "ipv4",
            "ihl",
            0,
            format!("header length {} words is below the minimum of 5", hl / 4),
        ));
    }
    if p.len() < hl {
        return Err(Error::packet(
            "ipv4",
            "options",
            20,
            format!("truncated: need {hl} bytes, only {} available", p.len()),
        ));
    }
    let frag = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
    let protocol = p[9];
    Ok(Inner {
        src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
        dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
        dsfield: p[1],
        protocol,
        ports: if frag == 0 { ports_at(p, protocol, hl) } else { None },
    })
}

fn parse_v6(p: &[u8]) -> Result<Inner> {
    if p.len() < 40 {
        return Err(Error::packet(
            "ipv6",
            "header",
            0,
            format!("truncated: need 40 bytes, only {} available", p.len()),
        ));
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&p[24..40]);
    let protocol = p[6];
    Ok(Inner {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        dsfield: ((p[0] & 0x0f) << 4) | (p[1] >> 4),
        protocol,
        ports: ports_at(p, protocol, 40),
    })
}

/// A deterministic 32-bit hash of the inner flow (addresses, protocol, ports).
///
/// The kernel uses `skb_get_hash` (jhash of the dissected flow keys with a random per-boot
/// seed, or the NIC's RSS hash), which cannot be reproduced off the machine. kubenat keeps the
/// property that matters: the same flow always gets the same hash and different flows spread.
#[inline(always)]
pub fn flow_hash(inner: &Inner, seed: u32) -> u32 {
    let mut h = Mixer(seed ^ 0x9e37_79b9);
    for addr in [inner.src, inner.dst] {
        match addr {
            IpAddr::V4(a) => h.push(u32::from(a)),
            IpAddr::V6(a) => {
                for chunk in a.octets().chunks_exact(4) {
                    h.push(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
                }
            }
        }
    }
    let (sport, dport) = inner.ports.unwrap_or((0, 0));
    h.push(u32::from(inner.protocol));
    h.push((u32::from(sport) << 16) | u32::from(dport));
    h.finish()
}

/// murmur3-style mixing: cheap, deterministic, well spread.
struct Mixer(u32);

impl Mixer {
    fn push(&mut self, mut k: u32) {
        k = k.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
        self.0 = (self.0 ^ k).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    fn finish(self) -> u32 {
        let mut h = self.0;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// The kernel's `udp_flow_src_port` mapping of a flow hash into `[min, max)`.
///
/// `hash ^= hash << 16; port = ((u64)hash * (max - min)) >> 32) + min`; an empty range
/// (`min >= max`) yields `min`.
#[inline]
pub fn src_port_in_range(hash: u32, min: u16, max: u16) -> u16 {
    if min >= max {
        return min;
    }
    let h = hash ^ (hash << 16);
    let span = u64::from(max - min);
    // (h * span) >> 32 < span <= u16::MAX, so the result fits.
    #[allow(clippy::cast_possible_truncation)]
    let off = ((u64::from(h) * span) >> 32) as u16;
    min + off
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: [u8; 24] =
        [0x45, 0x03, 0, 24, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 244, 1, 5, 10, 244, 2, 5, 0x30, 0x39, 0, 80];

    #[test]
    fn parses_v4_ports_and_tos() {
        let i = parse(&TCP).unwrap();
        assert_eq!(i.dst.to_string(), "10.244.2.5");
        assert_eq!(i.dsfield, 3);
        assert_eq!(i.ports, Some((12345, 80)));
    }

    #[test]
    fn non_first_fragment_has_no_ports() {
        let mut p = TCP;
        p[7] = 1;
        assert_eq!(parse(&p).unwrap().ports, None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x45; 10]).is_err());
        assert!(parse(&[0x44; 30]).is_err());
        assert!(parse(&[0x60; 20]).is_err());
        assert!(parse(&[0x10; 60]).is_err());
    }

    #[test]
    fn port_range_is_half_open() {
        for h in [0u32, 1, 0xffff, 0xffff_ffff, 0x8000_0000, 12_345_678] {
            let p = src_port_in_range(h, 32768, 60999);
            assert!((32768..60999).contains(&p), "{p}");
        }
        assert_eq!(src_port_in_range(0, 32768, 60999), 32768);
        assert_eq!(src_port_in_range(7, 5, 5), 5);
    }

    #[test]
    fn flow_hash_is_stable_and_spreads() {
        let a = parse(&TCP).unwrap();
        let mut other = TCP;
        other[21] = 0x3a;
        let b = parse(&other).unwrap();
        assert_eq!(flow_hash(&a, 0), flow_hash(&a, 0));
        assert_ne!(flow_hash(&a, 0), flow_hash(&b, 0));
    }
}
