//! In-place NAT rewriting with incremental checksum updates (RFC 1624), as the kernel's
//! `nf_nat_*_manip_pkt` does: new addresses and ports, the ICMP query identifier, and the
//! TTL/hop-limit decrement of a forwarding hop.
//!
//! Checksums that were wrong stay wrong by the same amount (as in the kernel); a UDP checksum
//! of 0 ("none") stays 0, and a UDP result of 0 is written as 0xffff. SCTP has no
//! pseudo-header, so only a port change touches its CRC32c, which is recomputed.
//!
//! Like the kernel, an address change patches the transport checksum even when an IPv6
//! routing header with segments left makes the pseudo-header use its final address instead.

use std::net::IpAddr;

use super::checksum;
use super::dissect::Layout;
use super::{be16, icmp, icmpv6, proto, put16, sctp, tcp, udp};
use crate::error::{Error, Result};
use crate::net::Family;

/// A NAT rewrite: each `Some` field replaces the packet's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rewrite {
    /// New source address (same family as the packet).
    pub src: Option<IpAddr>,
    /// New destination address.
    pub dst: Option<IpAddr>,
    /// New source port (TCP/UDP/SCTP), or the identifier of an ICMP query.
    pub sport: Option<u16>,
    /// New destination port (TCP/UDP/SCTP).
    pub dport: Option<u16>,
}

/// Offset of the 16-bit checksum a pseudo-header change affects, if the packet has one.
fn l4_checksum_at(layout: &Layout, buf: &[u8]) -> Option<usize> {
    let o = layout.l4?;
    match (layout.family, layout.protocol) {
        (_, proto::TCP) => Some(o + tcp::CHECKSUM_OFFSET),
        // UDP checksum 0 means "none": leave it alone.
        (_, proto::UDP) => (be16(buf, o + udp::CHECKSUM_OFFSET) != 0).then_some(o + udp::CHECKSUM_OFFSET),
        (Family::V6, proto::ICMPV6) => Some(o + icmp::CHECKSUM_OFFSET),
        _ => None,
    }
}

/// Applies `update` to the 16-bit checksum at `at`, mapping a UDP result of 0 to 0xffff.
fn patch(buf: &mut [u8], at: usize, is_udp: bool, update: impl FnOnce(u16) -> u16) {
    let mut c = update(be16(buf, at));
    if is_udp && c == 0 {
        c = 0xffff;
    }
    put16(buf, at, c);
}

fn check_family(layout: &Layout, a: IpAddr, what: &str) -> Result<()> {
    if Family::of(&a) == layout.family {
        Ok(())
    } else {
        Err(Error::invalid(what, format!("{a} is not of the packet's family")))
    }
}

/// Replaces the source or destination address and patches the checksums that cover it.
fn set_addr(buf: &mut [u8], layout: &Layout, new: IpAddr, is_src: bool) -> Result<()> {
    check_family(layout, new, if is_src { "src" } else { "dst" })?;
    let (at, len) = match (layout.family, is_src) {
        (Family::V4, true) => (layout.l3 + 12, 4),
        (Family::V4, false) => (layout.l3 + 16, 4),
        (Family::V6, true) => (layout.l3 + 8, 16),
        (Family::V6, false) => (layout.l3 + 24, 16),
    };
    // Fixed buffers: this runs once per translated packet, so no allocation.
    let mut new_bytes = [0u8; 16];
    match new {
        IpAddr::V4(a) => new_bytes[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => new_bytes.copy_from_slice(&a.octets()),
    }
    let new_bytes = &new_bytes[..len];
    let mut old = [0u8; 16];
    old[..len].copy_from_slice(&buf[at..at + len]);
    let old = &old[..len];
    if old == new_bytes {
        return Ok(());
    }
    buf[at..at + len].copy_from_slice(new_bytes);
    if layout.family == Family::V4 {
        patch(buf, layout.l3 + 10, false, |c| checksum::update_bytes(c, old, new_bytes));
    }
    if let Some(cs) = l4_checksum_at(layout, buf) {
        patch(buf, cs, layout.protocol == proto::UDP, |c| checksum::update_bytes(c, old, new_bytes));
    }
    Ok(())
}

/// Sets the source address, updating the IPv4 header and transport checksums.
///
/// # Errors
/// [`Error::Invalid`] when `new` is of the other family.
pub fn set_src(buf: &mut [u8], layout: &Layout, new: IpAddr) -> Result<()> {
    set_addr(buf, layout, new, true)
}

/// Sets the destination address, updating the IPv4 header and transport checksums.
///
/// # Errors
/// [`Error::Invalid`] when `new` is of the other family.
pub fn set_dst(buf: &mut [u8], layout: &Layout, new: IpAddr) -> Result<()> {
    set_addr(buf, layout, new, false)
}

fn set_port(buf: &mut [u8], layout: &Layout, new: u16, at: usize, what: &str) -> Result<()> {
    let Some(o) = layout.l4.filter(|_| layout.has_ports()) else {
        return Err(Error::invalid(what, format!("protocol {} has no ports in this packet", layout.protocol)));
    };
    let old = be16(buf, o + at);
    if old == new {
        return Ok(());
    }
    put16(buf, o + at, new);
    match layout.protocol {
        proto::SCTP => sctp::Packet::new_unchecked(&mut buf[o..layout.end]).fill_checksum(),
        p => {
            if let Some(cs) = l4_checksum_at(layout, buf) {
                patch(buf, cs, p == proto::UDP, |c| checksum::update_u16(c, old, new));
            }
        }
    }
    Ok(())
}

/// Sets the source port (TCP/UDP/SCTP) or the identifier of an ICMP/ICMPv6 query, as
/// SNAT/MASQUERADE do.
///
/// # Errors
/// [`Error::Invalid`] when the packet has neither ports nor an ICMP identifier.
pub fn set_sport(buf: &mut [u8], layout: &Layout, new: u16) -> Result<()> {
    if layout.is_icmp() {
        return set_icmp_ident(buf, layout, new);
    }
    set_port(buf, layout, new, 0, "sport")
}

/// Sets the destination port (TCP/UDP/SCTP).
///
/// # Errors
/// [`Error::Invalid`] when the packet has no ports (ICMP has no destination port).
pub fn set_dport(buf: &mut [u8], layout: &Layout, new: u16) -> Result<()> {
    set_port(buf, layout, new, 2, "dport")
}

/// Sets the identifier of an ICMP/ICMPv6 query or reply, updating the ICMP checksum.
///
/// # Errors
/// [`Error::Invalid`] when the packet is not an ICMP query or reply.
pub fn set_icmp_ident(buf: &mut [u8], layout: &Layout, new: u16) -> Result<()> {
    let o = layout.l4.filter(|_| layout.is_icmp());
    let ty = o.map(|o| buf[o]);
    let ok = match (layout.family, ty) {
        (Family::V4, Some(t)) => icmp::has_ident(t),
        (Family::V6, Some(t)) => icmpv6::has_ident(t),
        _ => false,
    };
    let (Some(o), true) = (o, ok) else {
        return Err(Error::invalid("sport", "not an ICMP query or reply: no identifier to set"));
    };
    let at = o + icmp::IDENT_OFFSET;
    let old = be16(buf, at);
    put16(buf, at, new);
    patch(buf, o + icmp::CHECKSUM_OFFSET, false, |c| checksum::update_u16(c, old, new));
    Ok(())
}

/// Applies a [`Rewrite`] (addresses first, then ports).
///
/// # Errors
/// As the individual setters; on error the packet may be partially rewritten.
pub fn rewrite_nat(buf: &mut [u8], layout: &Layout, rw: &Rewrite) -> Result<()> {
    if let Some(a) = rw.src {
        set_src(buf, layout, a)?;
    }
    if let Some(a) = rw.dst {
        set_dst(buf, layout, a)?;
    }
    if let Some(p) = rw.sport {
        set_sport(buf, layout, p)?;
    }
    if let Some(p) = rw.dport {
        set_dport(buf, layout, p)?;
    }
    Ok(())
}

/// Sets the TTL (IPv4, header checksum updated incrementally) or hop limit (IPv6).
pub fn set_ttl(buf: &mut [u8], layout: &Layout, ttl: u8) {
    match layout.family {
        Family::V4 => {
            let old = be16(buf, layout.l3 + 8);
            buf[layout.l3 + 8] = ttl;
            let new = be16(buf, layout.l3 + 8);
            patch(buf, layout.l3 + 10, false, |c| checksum::update_u16(c, old, new));
        }
        Family::V6 => buf[layout.l3 + 7] = ttl,
    }
}

/// Decrements the TTL / hop limit by one as a forwarding hop does; returns the new value, or
/// `None` (and leaves the packet alone) when it was already 0.
pub fn decrement_ttl(buf: &mut [u8], layout: &Layout) -> Option<u8> {
    let at = layout.l3 + if layout.family == Family::V4 { 8 } else { 7 };
    let new = buf[at].checked_sub(1)?;
    set_ttl(buf, layout, new);
    Some(new)
}

/// Recomputes every checksum of the packet from scratch (IPv4 header; TCP, UDP, ICMP, ICMPv6,
/// SCTP when the transport header is present). A UDP checksum of 0 over IPv4 stays 0. A
/// fragment's transport checksum covers the whole datagram, so only its IPv4 header is redone.
pub fn fill_checksums(buf: &mut [u8], layout: &Layout) {
    let (src, dst) = pseudo_addrs(buf, layout);
    if layout.family == Family::V4 {
        let hl = usize::from(buf[layout.l3] & 0x0f) * 4;
        put16(buf, layout.l3 + 10, 0);
        let c = checksum::checksum(&buf[layout.l3..layout.l3 + hl]);
        put16(buf, layout.l3 + 10, c);
    }
    let Some(o) = layout.l4.filter(|_| !layout.fragment) else { return };
    let seg = &mut buf[o..layout.end];
    match (layout.family, layout.protocol) {
        (_, proto::TCP) => tcp::Packet::new_unchecked(seg).fill_checksum(src, dst),
        (_, proto::UDP) => {
            let mut u = udp::Packet::new_unchecked(seg);
            if !(layout.family == Family::V4 && u.checksum() == 0) {
                u.fill_checksum(src, dst);
            }
        }
        (_, proto::SCTP) => sctp::Packet::new_unchecked(seg).fill_checksum(),
        (Family::V4, proto::ICMP) => icmp::Packet::new_unchecked(seg).fill_checksum(),
        (Family::V6, proto::ICMPV6) => {
            if let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) {
                icmpv6::fill_checksum(&mut icmp::Packet::new_unchecked(seg), s, d);
            }
        }
        _ => {}
    }
}

/// Whether every checksum [`fill_checksums`] would write is already correct. Fragments are
/// judged on the IPv4 header only (the transport checksum covers the whole datagram).
pub fn checksums_valid(buf: &[u8], layout: &Layout) -> bool {
    let (src, dst) = pseudo_addrs(buf, layout);
    if layout.family == Family::V4 {
        let hl = usize::from(buf[layout.l3] & 0x0f) * 4;
        if !checksum::verify(checksum::sum(0, &buf[layout.l3..layout.l3 + hl])) {
            return false;
        }
    }
    let Some(o) = layout.l4.filter(|_| !layout.fragment) else { return true };
    let seg = &buf[o..layout.end];
    match (layout.family, layout.protocol) {
        (_, proto::TCP) => tcp::Packet::new_unchecked(seg).verify_checksum(src, dst),
        (_, proto::UDP) => udp::Packet::new_unchecked(seg).verify_checksum(src, dst),
        (_, proto::SCTP) => sctp::Packet::new_unchecked(seg).verify_checksum(),
        (Family::V4, proto::ICMP) => icmp::Packet::new_unchecked(seg).verify_checksum(),
        (Family::V6, proto::ICMPV6) => match (src, dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => icmpv6::verify_checksum(&icmp::Packet::new_unchecked(seg), s, d),
            _ => false,
        },
        _ => true,
    }
}

/// The addresses the transport checksum's pseudo-header covers: the header's, except an IPv6
/// routing header with segments left names the final destination.
pub(crate) fn pseudo_addrs(buf: &[u8], layout: &Layout) -> (IpAddr, IpAddr) {
    let (src, dst) = addrs_of(buf, layout);
    if layout.family == Family::V6 {
        if let Some(fin) = super::ipv6::final_destination(&buf[layout.l3..layout.end]) {
            return (src, IpAddr::V6(fin));
        }
    }
    (src, dst)
}

/// The outer source and destination addresses.
pub(crate) fn addrs_of(buf: &[u8], layout: &Layout) -> (IpAddr, IpAddr) {
    let b = &buf[layout.l3..];
    match layout.family {
        Family::V4 => (IpAddr::from([b[12], b[13], b[14], b[15]]), IpAddr::from([b[16], b[17], b[18], b[19]])),
        Family::V6 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&b[8..24]);
            d.copy_from_slice(&b[24..40]);
            (IpAddr::from(s), IpAddr::from(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{build, IpPacket, Link};

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn samples() -> Vec<IpPacket> {
        let mut out = Vec::new();
        for (s, d) in [(a("10.0.0.1"), a("10.96.0.10")), (a("fd00::1"), a("fd00:10::a"))] {
            out.push(build::tcp(s, d, 1234, 80).payload(b"GET / HTTP/1.1\r\n".to_vec()).build().unwrap());
            out.push(build::udp(s, d, 5353, 53).payload(vec![1, 2, 3]).build().unwrap());
            out.push(build::sctp(s, d, 5000, 38412).payload(vec![1, 0, 0, 4]).build().unwrap());
            out.push(build::echo_request(s, d, 77, 1).payload(b"ping".to_vec()).build().unwrap());
        }
        out.push(build::udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2).udp_checksum(false).build().unwrap());
        out.push(
            build::tcp(a("10.0.0.1"), a("10.0.0.2"), 1, 2)
                .ip_options(vec![0x94, 4, 0, 0])
                .ethernet([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], Some(5))
                .build()
                .unwrap(),
        );
        out
    }

    fn full(p: &IpPacket) -> Vec<u8> {
        let mut q = p.clone();
        let (buf, layout) = q.bytes_mut();
        let layout = *layout;
        fill_checksums(buf, &layout);
        q.into_bytes()
    }

    #[test]
    fn incremental_rewrites_equal_full_recomputation() {
        for p in samples() {
            let v6 = p.family() == Family::V6;
            let rw = Rewrite {
                src: Some(if v6 { a("2001:db8::7") } else { a("192.168.7.1") }),
                dst: Some(if v6 { a("fd00:244::5") } else { a("10.244.1.5") }),
                sport: Some(40000),
                dport: if p.layout().has_ports() { Some(8080) } else { None },
            };
            let mut q = p.clone();
            let (buf, layout) = q.bytes_mut();
            let layout = *layout;
            rewrite_nat(buf, &layout, &rw).unwrap();
            assert!(q.checksums_valid(), "{q}");
            assert_eq!(q.bytes(), full(&q).as_slice(), "{q}");
            assert_eq!(q.dst(), rw.dst.unwrap());
            if p.layout().has_ports() {
                assert_eq!((q.sport(), q.dport()), (Some(40000), Some(8080)));
            } else {
                assert_eq!(q.icmp_ident(), Some(40000));
            }
        }
    }

    #[test]
    fn zero_udp_checksum_stays_zero_and_zero_result_becomes_ffff() {
        let p = build::udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2).udp_checksum(false).build().unwrap();
        let mut q = p.clone();
        let (buf, layout) = q.bytes_mut();
        let layout = *layout;
        set_dst(buf, &layout, a("10.9.9.9")).unwrap();
        assert_eq!(q.udp().unwrap().checksum(), 0);
        // Find a source port whose full checksum is 0 (sent as 0xffff) and reach it incrementally.
        let base = build::udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2).build().unwrap();
        let target = (0..=u16::MAX)
            .find(|port| {
                let c = build::udp(a("10.0.0.1"), a("10.0.0.2"), *port, 2).build().unwrap();
                c.udp().unwrap().checksum() == 0xffff
            })
            .unwrap();
        let mut q = base.clone();
        let (buf, layout) = q.bytes_mut();
        let layout = *layout;
        set_sport(buf, &layout, target).unwrap();
        assert_eq!(q.udp().unwrap().checksum(), 0xffff);
        assert!(q.checksums_valid());
    }

    #[test]
    fn ttl_decrement_is_incremental() {
        for p in samples() {
            let mut q = p.clone();
            let (buf, layout) = q.bytes_mut();
            let layout = *layout;
            assert_eq!(decrement_ttl(buf, &layout), Some(63));
            assert_eq!(q.ttl(), 63);
            assert_eq!(q.bytes(), full(&q).as_slice());
        }
        let mut z = build::tcp(a("10.0.0.1"), a("10.0.0.2"), 1, 2).ttl(0).build().unwrap();
        let before = z.clone();
        let (buf, layout) = z.bytes_mut();
        let layout = *layout;
        assert_eq!(decrement_ttl(buf, &layout), None);
        assert_eq!(z, before);
    }

    #[test]
    fn wrong_family_and_missing_ports_are_refused() {
        let mut p = build::echo_request(a("10.0.0.1"), a("10.0.0.2"), 1, 1).build().unwrap();
        let (buf, layout) = p.bytes_mut();
        let layout = *layout;
        assert!(set_dst(buf, &layout, a("fd00::1")).is_err());
        assert!(set_dport(buf, &layout, 80).is_err());
        let mut r = build::raw(a("10.0.0.1"), a("10.0.0.2"), 47).build().unwrap();
        let (buf, layout) = r.bytes_mut();
        let layout = *layout;
        assert!(set_sport(buf, &layout, 80).is_err());
        assert_eq!(Link::Ip, layout.link);
    }
}
