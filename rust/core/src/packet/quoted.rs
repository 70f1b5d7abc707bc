//! The packet quoted inside an ICMP or ICMPv6 error (RFC 792 / RFC 4443): its IP header and
//! the first bytes of its transport header, read leniently because the quote is truncated.
//!
//! Conntrack uses this to relate an error to the connection it reports on, and NAT rewrites
//! the quote so that the sender recognises its own packet (`nf_nat_icmp_reply_translation`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::dissect::{icmp_protocol, Layout};
use super::nat::Rewrite;
use super::{be16, icmp, icmpv6, ipv4, ipv6, proto, put16, sctp, tcp, udp};
use crate::error::{Error, Result};
use crate::net::Family;

/// The quoted packet of an ICMP error. Offsets are absolute (into the outer buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quoted {
    /// Offset of the quoted IP header.
    pub l3: usize,
    /// Family (always the outer packet's family).
    pub family: Family,
    /// Quoted source address (the original sender, i.e. the outer destination).
    pub src: IpAddr,
    /// Quoted destination address.
    pub dst: IpAddr,
    /// Quoted upper-layer protocol.
    pub protocol: u8,
    /// Offset of the quoted transport header, when the quote reaches it (non-first
    /// fragments and unknown IPv6 extension chains have none).
    pub l4: Option<usize>,
    /// End of the quote (end of the outer packet).
    pub end: usize,
}

impl Quoted {
    /// Reads the quote of the ICMP error in `buf` (dissected as `layout`); `Ok(None)` when the
    /// packet is not an ICMP/ICMPv6 error.
    ///
    /// # Errors
    /// [`Error::Packet`] when the quote is too short for an IP header (layer `icmp.quoted`),
    /// is of the wrong version, or ends inside its IPv6 extension headers (layer `ipv6`).
    pub fn parse(buf: &[u8], layout: &Layout) -> Result<Option<Quoted>> {
        let Some(o) = layout.l4.filter(|_| layout.is_icmp() && !layout.fragment) else { return Ok(None) };
        let t = buf[o];
        let is_err = match layout.family {
            Family::V4 => icmp::is_error(t),
            Family::V6 => icmpv6::is_error(t),
        };
        if !is_err {
            return Ok(None);
        }
        let l3 = o + icmp::HEADER_LEN;
        let end = layout.end;
        let q = &buf[l3..end];
        let layer = "icmp.quoted";
        let version = q.first().map(|b| b >> 4);
        match (layout.family, version) {
            (Family::V4, Some(4)) => {
                if q.len() < ipv4::HEADER_LEN {
                    return Err(super::truncated(layer, "ipv4", l3, ipv4::HEADER_LEN, q.len()));
                }
                let hl = usize::from(q[0] & 0x0f) * 4;
                if hl < ipv4::HEADER_LEN || hl > q.len() {
                    return Err(Error::packet(layer, "ihl", l3, format!("quoted IHL {} words does not fit", hl / 4)));
                }
                let frag = be16(q, 6) & 0x1fff;
                Ok(Some(Quoted {
                    l3,
                    family: Family::V4,
                    src: IpAddr::V4(Ipv4Addr::new(q[12], q[13], q[14], q[15])),
                    dst: IpAddr::V4(Ipv4Addr::new(q[16], q[17], q[18], q[19])),
                    protocol: q[9],
                    l4: (frag == 0).then_some(l3 + hl),
                    end,
                }))
            }
            (Family::V6, Some(6)) => {
                if q.len() < ipv6::HEADER_LEN {
                    return Err(super::truncated(layer, "ipv6", l3, ipv6::HEADER_LEN, q.len()));
                }
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&q[8..24]);
                d.copy_from_slice(&q[24..40]);
                // A quote cut inside the extension chain has no findable transport: the kernel
                // cannot build the inner tuple either, so that is an error.
                let w = ipv6::walk_extensions(q).map_err(super::shift(l3))?;
                let (protocol, l4) = if w.frag.map_or(true, |f| f.offset == 0) {
                    (w.protocol, Some(l3 + w.transport_offset))
                } else {
                    (w.protocol, None)
                };
                Ok(Some(Quoted {
                    l3,
                    family: Family::V6,
                    src: IpAddr::V6(Ipv6Addr::from(s)),
                    dst: IpAddr::V6(Ipv6Addr::from(d)),
                    protocol,
                    l4,
                    end,
                }))
            }
            (_, v) => Err(Error::packet(
                layer,
                "version",
                l3,
                format!(
                    "quoted packet version {} in an ICMP error of an IPv{} packet",
                    v.unwrap_or(0),
                    if layout.family == Family::V4 { 4 } else { 6 }
                ),
            )),
        }
    }

    fn l4_bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.l4.map_or(&[], |o| &buf[o.min(self.end)..self.end])
    }

    /// Quoted source port (TCP/UDP/SCTP; needs 2 quoted bytes).
    pub fn sport(&self, buf: &[u8]) -> Option<u16> {
        self.port(buf, 0)
    }

    /// Quoted destination port (TCP/UDP/SCTP; needs 4 quoted bytes).
    pub fn dport(&self, buf: &[u8]) -> Option<u16> {
        self.port(buf, 2)
    }

    fn port(&self, buf: &[u8], at: usize) -> Option<u16> {
        let b = self.l4_bytes(buf);
        (matches!(self.protocol, proto::TCP | proto::UDP | proto::SCTP) && b.len() >= at + 2).then(|| be16(b, at))
    }

    /// Quoted ICMP type and code (the quote of an error about an ICMP query).
    pub fn icmp_type_code(&self, buf: &[u8]) -> Option<(u8, u8)> {
        let b = self.l4_bytes(buf);
        (self.protocol == icmp_protocol(self.family) && b.len() >= 2).then(|| (b[0], b[1]))
    }

    /// Quoted ICMP query identifier.
    pub fn icmp_ident(&self, buf: &[u8]) -> Option<u16> {
        let b = self.l4_bytes(buf);
        let (t, _) = self.icmp_type_code(buf)?;
        let has = match self.family {
            Family::V4 => icmp::has_ident(t),
            Family::V6 => icmpv6::has_ident(t),
        };
        (has && b.len() >= 6).then(|| be16(b, 4))
    }
}

impl Quoted {
    /// Rewrites the quote as NAT does for an ICMP error about a translated connection
    /// (`nf_nat_icmp_reply_translation`): quoted addresses and ports (`sport` of a quoted ICMP
    /// query is its identifier), the quoted IPv4 header checksum and the quoted transport
    /// checksum incrementally when the quote holds it (TCP needs its full 20-byte header), then
    /// the outer ICMP/ICMPv6 checksum recomputed over the whole message.
    ///
    /// `layout` is the outer packet's; rewrite the outer addresses separately with
    /// [`super::nat::rewrite_nat`] (either order gives the same bytes).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an address of the wrong family or a port the quote cannot hold.
    pub fn rewrite(&self, buf: &mut [u8], layout: &Layout, rw: &Rewrite) -> Result<()> {
        for (new, is_src) in [(rw.src, true), (rw.dst, false)] {
            if let Some(new) = new {
                self.set_addr(buf, new, is_src)?;
            }
        }
        for (new, at) in [(rw.sport, 0), (rw.dport, 2)] {
            if let Some(new) = new {
                self.set_port(buf, new, at)?;
            }
        }
        let o = layout.l4.unwrap_or(self.l3 - icmp::HEADER_LEN);
        let outer = super::nat::pseudo_addrs(buf, layout);
        let mut msg = icmp::Packet::new_unchecked(&mut buf[o..layout.end]);
        match outer {
            (IpAddr::V6(s), IpAddr::V6(d)) => icmpv6::fill_checksum(&mut msg, s, d),
            _ => msg.fill_checksum(),
        }
        Ok(())
    }

    /// Offset and length of the transport checksum that covers the quoted addresses, when the
    /// quote holds enough of the transport header for the kernel to update it.
    fn l4_checksum(&self, buf: &[u8]) -> Option<(usize, bool)> {
        let o = self.l4?;
        let have = self.end.saturating_sub(o);
        match (self.family, self.protocol) {
            (_, proto::TCP) if have >= tcp::HEADER_LEN => Some((o + tcp::CHECKSUM_OFFSET, false)),
            (_, proto::UDP) if have >= udp::HEADER_LEN && be16(buf, o + udp::CHECKSUM_OFFSET) != 0 => {
                Some((o + udp::CHECKSUM_OFFSET, true))
            }
            (Family::V6, proto::ICMPV6) if have >= icmp::HEADER_LEN => Some((o + icmp::CHECKSUM_OFFSET, false)),
            _ => None,
        }
    }

    fn patch(buf: &mut [u8], at: usize, is_udp: bool, old: &[u8], new: &[u8]) {
        let mut c = checksum::update_bytes(be16(buf, at), old, new);
        if is_udp && c == 0 {
            c = 0xffff;
        }
        put16(buf, at, c);
    }

    fn set_addr(&self, buf: &mut [u8], new: IpAddr, is_src: bool) -> Result<()> {
        let (at, new_bytes): (usize, Vec<u8>) = match (new, is_src) {
            (IpAddr::V4(a), true) if self.family == Family::V4 => (self.l3 + 12, a.octets().to_vec()),
            (IpAddr::V4(a), false) if self.family == Family::V4 => (self.l3 + 16, a.octets().to_vec()),
            (IpAddr::V6(a), true) if self.family == Family::V6 => (self.l3 + 8, a.octets().to_vec()),
            (IpAddr::V6(a), false) if self.family == Family::V6 => (self.l3 + 24, a.octets().to_vec()),
            _ => return Err(Error::invalid("quoted address", format!("{new} is not of the packet's family"))),
        };
        let old = buf[at..at + new_bytes.len()].to_vec();
        buf[at..at + new_bytes.len()].copy_from_slice(&new_bytes);
        if self.family == Family::V4 {
            Self::patch(buf, self.l3 + 10, false, &old, &new_bytes);
        }
        if let Some((cs, is_udp)) = self.l4_checksum(buf) {
            Self::patch(buf, cs, is_udp, &old, &new_bytes);
        }
        Ok(())
    }

    fn set_port(&self, buf: &mut [u8], new: u16, at: usize) -> Result<()> {
        let o = self.l4.unwrap_or(self.end);
        let have = self.end.saturating_sub(o);
        let is_query = self.icmp_ident(buf).is_some();
        if is_query && at == 0 {
            let old = be16(buf, o + icmp::IDENT_OFFSET);
            put16(buf, o + icmp::IDENT_OFFSET, new);
            if have >= icmp::HEADER_LEN {
                Self::patch(buf, o + icmp::CHECKSUM_OFFSET, false, &old.to_be_bytes(), &new.to_be_bytes());
            }
            return Ok(());
        }
        if !matches!(self.protocol, proto::TCP | proto::UDP | proto::SCTP) || have < 4 {
            let what = if at == 0 { "quoted sport" } else { "quoted dport" };
            return Err(Error::invalid(what, "the quoted packet has no such port"));
        }
        let old = be16(buf, o + at);
        put16(buf, o + at, new);
        if self.protocol == proto::SCTP {
            if have >= sctp::HEADER_LEN {
                sctp::Packet::new_unchecked(&mut buf[o..self.end]).fill_checksum();
            }
        } else if let Some((cs, is_udp)) = self.l4_checksum(buf) {
            Self::patch(buf, cs, is_udp, &old.to_be_bytes(), &new.to_be_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{build, IpPacket, Link};

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn port_unreachable_quotes_udp() {
        let orig = build::udp(a("10.0.0.1"), a("10.96.0.10"), 5353, 53).payload(vec![9; 20]).build().unwrap();
        let quote = orig.ip_bytes()[..28].to_vec();
        let err = build::icmp(a("10.96.0.10"), a("10.0.0.1"), 3, 3, 0).payload(quote).build().unwrap();
        let q = Quoted::parse(err.bytes(), err.layout()).unwrap().unwrap();
        assert_eq!((q.src, q.dst, q.protocol), (a("10.0.0.1"), a("10.96.0.10"), proto::UDP));
        assert_eq!((q.sport(err.bytes()), q.dport(err.bytes())), (Some(5353), Some(53)));
        assert_eq!(q.l3, 28);
        // An echo request has no quote; a quote of the wrong version is an error.
        let echo = build::echo_request(a("10.0.0.1"), a("10.0.0.2"), 1, 1).build().unwrap();
        assert_eq!(Quoted::parse(echo.bytes(), echo.layout()).unwrap(), None);
        let bad = build::icmp(a("10.0.0.2"), a("10.0.0.1"), 3, 1, 0).payload(vec![0x60; 40]).build().unwrap();
        assert!(matches!(
            Quoted::parse(bad.bytes(), bad.layout()),
            Err(Error::Packet { field: "version", offset: 28, .. })
        ));
    }

    type Maker = fn(IpAddr, IpAddr, u16, u16) -> build::Builder;

    fn full(p: &IpPacket) -> Vec<u8> {
        let mut q = p.clone();
        let (buf, layout) = q.bytes_mut();
        let layout = *layout;
        crate::packet::nat::fill_checksums(buf, &layout);
        q.into_bytes()
    }

    #[test]
    fn rewriting_the_quote_matches_a_quote_of_the_rewritten_packet() {
        for (s, d, s2, d2) in
            [("10.0.0.1", "10.96.0.10", "10.0.0.1", "10.244.1.5"), ("fd00::1", "fd00:96::a", "fd00::1", "fd00:244::5")]
        {
            let (s, d, s2, d2) = (a(s), a(d), a(s2), a(d2));
            let t = if s.is_ipv4() { (3, 3) } else { (1, 4) };
            let makers: [Maker; 3] = [build::tcp, build::udp, build::sctp];
            for make in makers {
                let orig = make(s, d, 1234, 80).payload(vec![7; 30]).build().unwrap();
                let natted = make(s2, d2, 1234, 8080).payload(vec![7; 30]).build().unwrap();
                for cut in [28usize, 48, 60, orig.len()] {
                    let cut = cut.min(orig.len()) + if s.is_ipv6() { 20 } else { 0 };
                    let cut = cut.min(orig.len());
                    let err = build::icmp(d2, s, t.0, t.1, 0).payload(orig.ip_bytes()[..cut].to_vec()).build().unwrap();
                    let want =
                        build::icmp(d2, s, t.0, t.1, 0).payload(natted.ip_bytes()[..cut].to_vec()).build().unwrap();
                    let mut got = err.clone();
                    let (buf, layout) = got.bytes_mut();
                    let layout = *layout;
                    let q = Quoted::parse(buf, &layout).unwrap().unwrap();
                    let rw = Rewrite { src: Some(s2), dst: Some(d2), sport: None, dport: Some(8080) };
                    q.rewrite(buf, &layout, &rw).unwrap();
                    // The quoted transport checksum is only kept up to date when the quote holds it.
                    let quoted_l4 = q.l4.unwrap() - q.l3;
                    // SCTP's CRC is recomputed over the quote, which differs unless the quote is whole.
                    let holds = match orig.protocol() {
                        proto::TCP => cut >= quoted_l4 + 20,
                        proto::UDP => cut >= quoted_l4 + 8,
                        _ => cut == orig.len(),
                    };
                    if holds {
                        assert_eq!(got.bytes(), want.bytes(), "{orig} cut {cut}");
                    } else {
                        let r = q.l3..q.l4.unwrap() + 4;
                        assert_eq!(got.bytes()[r.clone()], want.bytes()[r], "{orig} cut {cut}");
                    }
                    assert_eq!(got.bytes(), full(&got).as_slice());
                }
            }
        }
    }

    #[test]
    fn v6_time_exceeded_quotes_echo() {
        let orig = build::echo_request(a("fd00::1"), a("fd00::2"), 99, 4).build().unwrap();
        let err = build::icmp(a("fd00::9"), a("fd00::1"), 3, 0, 0).payload(orig.ip_bytes().to_vec()).build().unwrap();
        let p = IpPacket::parse(err.bytes().to_vec(), Link::Ip).unwrap();
        let q = Quoted::parse(p.bytes(), p.layout()).unwrap().unwrap();
        assert_eq!(q.icmp_type_code(p.bytes()), Some((128, 0)));
        assert_eq!(q.icmp_ident(p.bytes()), Some(99));
        assert_eq!(q.sport(p.bytes()), None);
    }
}
