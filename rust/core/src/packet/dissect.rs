//! The top-level dissector: one IP packet, optionally behind an Ethernet header, with the
//! offsets of its headers ([`Layout`]) and cheap accessors for a flow key ([`IpPacket`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ethernet::{self, ethertype};
pub use super::layout::{icmp_protocol, Layout, Link};
use super::{be16, icmp, icmpv6, ipv4, ipv6, proto, sctp, tcp, udp};
use crate::error::Result;
use crate::net::Family;

/// One dissected IP packet over its bytes: owned (`IpPacket`, i.e. `IpPacket<Vec<u8>>`) or
/// borrowed (`IpPacket<&[u8]>`, for batch paths that must not copy).
///
/// Accessors read straight from the bytes through the [`Layout`]; they never panic. Transport
/// accessors return `None` when the protocol does not have the field or the header is not in
/// this packet (a non-first fragment).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IpPacket<B = Vec<u8>> {
    bytes: B,
    layout: Layout,
}

impl<B: AsRef<[u8]>> IpPacket<B> {
    /// Dissects `bytes` as `link`.
    ///
    /// # Errors
    /// [`crate::Error::Packet`] naming the layer, field and absolute byte offset of the problem.
    pub fn parse(bytes: B, link: Link) -> Result<IpPacket<B>> {
        let layout = Layout::parse(bytes.as_ref(), link)?;
        Ok(IpPacket { bytes, layout })
    }

    /// Dissects `bytes`, guessing the link (see [`Layout::parse_auto`]).
    ///
    /// # Errors
    /// As [`IpPacket::parse`].
    pub fn parse_auto(bytes: B) -> Result<IpPacket<B>> {
        let layout = Layout::parse_auto(bytes.as_ref())?;
        Ok(IpPacket { bytes, layout })
    }

    /// The header offsets.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// All bytes, link header included.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Consumes the packet, returning its bytes.
    pub fn into_bytes(self) -> B {
        self.bytes
    }

    /// An owned copy (of a borrowed packet).
    pub fn to_owned_packet(&self) -> IpPacket {
        IpPacket { bytes: self.bytes().to_vec(), layout: self.layout }
    }

    /// The IP packet (from the IP header to the end of the IP payload, no link header or padding).
    pub fn ip_bytes(&self) -> &[u8] {
        &self.bytes.as_ref()[self.layout.l3..self.layout.end]
    }

    /// The transport segment (header and payload), when present.
    pub fn l4_bytes(&self) -> Option<&[u8]> {
        self.layout.l4.map(|o| &self.bytes.as_ref()[o..self.layout.end])
    }

    /// What the bytes start with.
    pub fn link(&self) -> Link {
        self.layout.link
    }

    /// IP family.
    pub fn family(&self) -> Family {
        self.layout.family
    }

    fn ip(&self) -> &[u8] {
        &self.bytes.as_ref()[self.layout.l3..]
    }

    /// Source address.
    pub fn src(&self) -> IpAddr {
        let b = self.ip();
        match self.layout.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
            Family::V6 => IpAddr::V6(v6_at(b, 8)),
        }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        let b = self.ip();
        match self.layout.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19])),
            Family::V6 => IpAddr::V6(v6_at(b, 24)),
        }
    }

    /// Upper-layer protocol number (IPv4 protocol, or the last IPv6 next-header value).
    pub fn protocol(&self) -> u8 {
        self.layout.protocol
    }

    /// TTL (IPv4) or hop limit (IPv6).
    pub fn ttl(&self) -> u8 {
        match self.layout.family {
            Family::V4 => self.ip()[8],
            Family::V6 => self.ip()[7],
        }
    }

    /// TOS byte (IPv4) or traffic class (IPv6).
    pub fn tos(&self) -> u8 {
        let b = self.ip();
        match self.layout.family {
            Family::V4 => b[1],
            Family::V6 => (b[0] << 4) | (b[1] >> 4),
        }
    }

    /// Length of the IP packet (IPv4 total length; IPv6 40 + payload length), as the
    /// `length` match sees it.
    pub fn len(&self) -> usize {
        self.layout.end - self.layout.l3
    }

    /// Always false: an IP packet has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// IPv4 identification (IPv6: the fragment header's identification, else 0).
    pub fn ident(&self) -> u32 {
        match self.layout.family {
            Family::V4 => u32::from(be16(self.ip(), 4)),
            Family::V6 => {
                let end = self.layout.end - self.layout.l3;
                ipv6::walk_extensions(&self.ip()[..end]).ok().and_then(|w| w.frag).map_or(0, |f| f.ident)
            }
        }
    }

    /// Fragment offset in 8-byte units (0 when not fragmented).
    pub fn frag_offset(&self) -> u16 {
        self.layout.frag_offset
    }

    /// More Fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.layout.more_frags
    }

    /// IPv4 Don't Fragment flag (always false for IPv6).
    pub fn dont_fragment(&self) -> bool {
        self.layout.family == Family::V4 && self.ip()[6] & 0x40 != 0
    }

    /// Whether this is a fragment (first or later).
    pub fn is_fragment(&self) -> bool {
        self.layout.fragment
    }

    /// IPv4 option bytes (empty for IPv6).
    pub fn ip_options(&self) -> &[u8] {
        match self.layout.family {
            Family::V4 => &self.ip()[ipv4::HEADER_LEN..usize::from(self.ip()[0] & 0x0f) * 4],
            Family::V6 => &[],
        }
    }

    /// Source port for TCP, UDP and SCTP.
    pub fn sport(&self) -> Option<u16> {
        self.port(0)
    }

    /// Destination port for TCP, UDP and SCTP.
    pub fn dport(&self) -> Option<u16> {
        self.port(2)
    }

    fn port(&self, at: usize) -> Option<u16> {
        if self.layout.has_ports() {
            self.layout.l4.map(|o| be16(self.bytes.as_ref(), o + at))
        } else {
            None
        }
    }

    /// The TCP flag byte (FIN 0x01 ... CWR 0x80), as `--tcp-flags` sees it.
    pub fn tcp_flags(&self) -> Option<u8> {
        self.tcp_l4().map(|o| self.bytes.as_ref()[o + 13])
    }

    /// All nine TCP flag bits including NS (see [`tcp::flags`]).
    pub fn tcp_flags_full(&self) -> Option<u16> {
        self.tcp_l4().map(|o| be16(self.bytes.as_ref(), o + 12) & 0x01ff)
    }

    fn tcp_l4(&self) -> Option<usize> {
        if self.layout.protocol == proto::TCP {
            self.layout.l4
        } else {
            None
        }
    }

    /// TCP view of the segment.
    pub fn tcp(&self) -> Option<tcp::Packet<&[u8]>> {
        self.tcp_l4().map(|o| tcp::Packet::new_unchecked(&self.bytes.as_ref()[o..self.layout.end]))
    }

    /// UDP view of the datagram.
    pub fn udp(&self) -> Option<udp::Packet<&[u8]>> {
        match (self.layout.protocol, self.layout.l4) {
            (proto::UDP, Some(o)) => Some(udp::Packet::new_unchecked(&self.bytes.as_ref()[o..self.layout.end])),
            _ => None,
        }
    }

    /// SCTP view of the packet.
    pub fn sctp(&self) -> Option<sctp::Packet<&[u8]>> {
        match (self.layout.protocol, self.layout.l4) {
            (proto::SCTP, Some(o)) => Some(sctp::Packet::new_unchecked(&self.bytes.as_ref()[o..self.layout.end])),
            _ => None,
        }
    }

    /// ICMP (IPv4) or ICMPv6 (IPv6) view of the message.
    pub fn icmp(&self) -> Option<icmp::Packet<&[u8]>> {
        if self.layout.is_icmp() {
            self.layout.l4.map(|o| icmp::Packet::new_unchecked(&self.bytes.as_ref()[o..self.layout.end]))
        } else {
            None
        }
    }

    /// ICMP/ICMPv6 type.
    pub fn icmp_type(&self) -> Option<u8> {
        self.icmp().map(|p| p.msg_type())
    }

    /// ICMP/ICMPv6 code.
    pub fn icmp_code(&self) -> Option<u8> {
        self.icmp().map(|p| p.code())
    }

    /// Identifier of an ICMP query or reply (echo, timestamp, info; ICMPv6 echo).
    pub fn icmp_ident(&self) -> Option<u16> {
        self.icmp().filter(|p| self.icmp_has_ident(p.msg_type())).map(|p| p.echo_ident())
    }

    /// Sequence number of an ICMP query or reply.
    pub fn icmp_seq(&self) -> Option<u16> {
        self.icmp().filter(|p| self.icmp_has_ident(p.msg_type())).map(|p| p.echo_seq())
    }

    /// Whether the ICMP message is an error quoting another packet.
    pub fn icmp_is_error(&self) -> bool {
        self.icmp().is_some_and(|p| match self.layout.family {
            Family::V4 => icmp::is_error(p.msg_type()),
            Family::V6 => icmpv6::is_error(p.msg_type()),
        })
    }

    fn icmp_has_ident(&self, t: u8) -> bool {
        match self.layout.family {
            Family::V4 => icmp::has_ident(t),
            Family::V6 => icmpv6::has_ident(t),
        }
    }

    /// The transport payload: after the TCP/UDP/SCTP/ICMP header (UDP: up to its length field);
    /// the whole segment for other protocols; the IP payload of a non-first fragment.
    pub fn payload(&self) -> &[u8] {
        let end = self.layout.end;
        let Some(o) = self.layout.l4 else {
            return &self.bytes.as_ref()[self.ip_payload_start()..end];
        };
        let hl = match self.layout.protocol {
            proto::TCP => self.tcp().map_or(0, |t| t.header_len()),
            proto::UDP => udp::HEADER_LEN,
            proto::SCTP => sctp::HEADER_LEN,
            _ if self.layout.is_icmp() => icmp::HEADER_LEN,
            _ => 0,
        };
        let stop = match self.udp() {
            Some(u) => (o + usize::from(u.len())).clamp(o + hl, end),
            None => end,
        };
        &self.bytes.as_ref()[o + hl..stop]
    }

    fn ip_payload_start(&self) -> usize {
        match self.layout.family {
            Family::V4 => self.layout.l3 + usize::from(self.ip()[0] & 0x0f) * 4,
            Family::V6 => {
                let end = self.layout.end - self.layout.l3;
                self.layout.l3 + ipv6::walk_extensions(&self.ip()[..end]).map_or(40, |w| w.transport_offset)
            }
        }
    }

    /// The packet quoted by an ICMP/ICMPv6 error; `Ok(None)` for anything else.
    ///
    /// # Errors
    /// [`crate::Error::Packet`] when the quote is too short for an IP header or of the wrong version.
    pub fn quoted(&self) -> Result<Option<super::quoted::Quoted>> {
        super::quoted::Quoted::parse(self.bytes.as_ref(), &self.layout)
    }

    /// Source MAC when the packet starts with Ethernet.
    pub fn src_mac(&self) -> Option<ethernet::Mac> {
        (self.layout.link == Link::Ethernet).then(|| ethernet::Packet::new_unchecked(self.bytes.as_ref()).src())
    }

    /// Destination MAC when the packet starts with Ethernet.
    pub fn dst_mac(&self) -> Option<ethernet::Mac> {
        (self.layout.link == Link::Ethernet).then(|| ethernet::Packet::new_unchecked(self.bytes.as_ref()).dst())
    }

    /// VLAN tag control information when the frame is tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.layout.link == Link::Ethernet {
            ethernet::Packet::new_unchecked(self.bytes.as_ref()).vlan_tci()
        } else {
            None
        }
    }

    /// Whether every checksum this packet carries is valid (IPv4 header; TCP, UDP, ICMP,
    /// ICMPv6 and SCTP when their header is present and the packet is not a fragment).
    pub fn checksums_valid(&self) -> bool {
        super::nat::checksums_valid(self.bytes.as_ref(), &self.layout)
    }

    /// The same packet without its link header (an IP packet, padding dropped).
    ///
    /// # Panics
    /// Never: the layout of a bare IP copy is the shifted layout of this one.
    pub fn to_ip(&self) -> IpPacket {
        let shift_by = self.layout.l3;
        let l = self.layout;
        IpPacket {
            bytes: self.ip_bytes().to_vec(),
            layout: Layout { link: Link::Ip, l3: 0, end: l.end - shift_by, l4: l.l4.map(|o| o - shift_by), ..l },
        }
    }

    /// The same IP packet behind an Ethernet header (any existing link header is replaced).
    pub fn with_ethernet(&self, src: ethernet::Mac, dst: ethernet::Mac, vlan_tci: Option<u16>) -> IpPacket {
        let et = match self.layout.family {
            Family::V4 => ethertype::IPV4,
            Family::V6 => ethertype::IPV6,
        };
        let r = ethernet::Repr { dst, src, vlan_tci, ethertype: et };
        let hl = r.buffer_len();
        let mut bytes = vec![0u8; hl];
        r.emit(&mut bytes);
        bytes.extend_from_slice(self.ip_bytes());
        let l = self.layout;
        let moved = |o: usize| o - l.l3 + hl;
        IpPacket { bytes, layout: Layout { link: Link::Ethernet, l3: hl, end: moved(l.end), l4: l.l4.map(moved), ..l } }
    }

    /// Re-reads the layout after the bytes were changed through [`IpPacket::bytes_mut`].
    ///
    /// # Errors
    /// As [`IpPacket::parse`].
    pub fn reparse(self) -> Result<IpPacket<B>> {
        IpPacket::parse(self.bytes, self.layout.link)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> IpPacket<B> {
    /// Mutable bytes and the layout, for the in-place rewriters of [`super::nat`].
    /// Changing header lengths or protocol fields through this breaks the layout.
    pub fn bytes_mut(&mut self) -> (&mut [u8], &Layout) {
        (self.bytes.as_mut(), &self.layout)
    }
}

fn v6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

impl<B: AsRef<[u8]>> fmt::Display for IpPacket<B> {
    /// `tcp 10.0.0.1:1234 -> 10.96.0.10:80 [S]`, `icmp 10.0.0.1 -> 10.0.0.2 type 8 code 0 id 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = proto::name(self.protocol()).map_or_else(|| format!("proto {}", self.protocol()), str::to_string);
        let addr = |a: IpAddr, p: Option<u16>| match (a, p) {
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        write!(f, "{name} {} -> {}", addr(self.src(), self.sport()), addr(self.dst(), self.dport()))?;
        if let Some(fl) = self.tcp_flags_full() {
            write!(f, " [{}]", tcp::flags_to_string(fl))?;
        }
        if let (Some(t), Some(c)) = (self.icmp_type(), self.icmp_code()) {
            write!(f, " type {t} code {c}")?;
            if let Some(id) = self.icmp_ident() {
                write!(f, " id {id}")?;
            }
        }
        if self.is_fragment() {
            write!(f, " frag {}{}", u32::from(self.frag_offset()) * 8, if self.more_fragments() { "+" } else { "" })?;
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]>> fmt::Debug for IpPacket<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpPacket({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{build, nat};
    use crate::Error;

    /// xorshift64*: a tiny deterministic generator so the test needs no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap()
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut out = Vec::new();
        for (s, d) in [(a("10.0.0.1"), a("10.0.0.2")), (a("fd00::1"), a("fd00::2"))] {
            out.push(build::tcp(s, d, 1, 2).tcp_options(vec![2, 4, 5, 0xb4]).payload(vec![1; 9]).to_bytes().unwrap());
            out.push(build::udp(s, d, 1, 2).payload(vec![2; 5]).to_bytes().unwrap());
            out.push(build::sctp(s, d, 1, 2).payload(vec![1, 0, 0, 4]).to_bytes().unwrap());
            let inner = build::udp(d, s, 3, 4).to_bytes().unwrap();
            out.push(build::icmp(s, d, if s.is_ipv4() { 3 } else { 1 }, 3, 0).payload(inner).to_bytes().unwrap());
            out.push(build::echo_request(s, d, 5, 6).ethernet([2; 6], [4; 6], Some(3)).to_bytes().unwrap());
        }
        // A first IPv4 fragment: the UDP length covers more than the bytes present.
        let mut frag = build::udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2).payload(vec![3; 8]).to_bytes().unwrap();
        frag[6] = 0x20;
        frag[25] = 200;
        out.push(frag);
        // IPv6 with hop-by-hop and a fragment header in front of TCP.
        let mut v6 = build::tcp(a("fd00::1"), a("fd00::2"), 1, 2).to_bytes().unwrap();
        v6[6] = proto::HOPOPTS;
        let ext = [proto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0, proto::TCP, 0, 0, 1, 0, 0, 0, 1];
        v6.splice(40..40, ext);
        v6[5] += 16;
        out.push(v6);
        out
    }

    /// Everything a caller may do with a parsed packet; must never panic.
    fn exercise(p: &IpPacket) {
        let _ = (p.src(), p.dst(), p.protocol(), p.ttl(), p.tos(), p.len(), p.ident());
        let _ = (p.sport(), p.dport(), p.tcp_flags(), p.tcp_flags_full(), p.icmp_type(), p.icmp_code());
        let _ = (p.icmp_ident(), p.icmp_seq(), p.icmp_is_error(), p.frag_offset(), p.more_fragments());
        let _ = (p.dont_fragment(), p.ip_options(), p.payload(), p.src_mac(), p.vlan_tci(), p.l4_bytes());
        let _ = (p.checksums_valid(), p.to_string(), p.to_ip());
        if let Ok(Some(q)) = p.quoted() {
            let b = p.bytes();
            let _ = (q.sport(b), q.dport(b), q.icmp_type_code(b), q.icmp_ident(b));
            let mut c = p.clone();
            let (buf, layout) = c.bytes_mut();
            let layout = *layout;
            let rw = nat::Rewrite { src: Some(q.src), dst: Some(q.dst), sport: Some(7), dport: Some(9) };
            let _ = q.rewrite(buf, &layout, &rw);
        }
        let mut c = p.clone();
        let (buf, layout) = c.bytes_mut();
        let layout = *layout;
        let rw = nat::Rewrite { src: Some(p.dst()), dst: Some(p.src()), sport: Some(7), dport: Some(9) };
        let _ = nat::rewrite_nat(buf, &layout, &rw);
        let _ = nat::decrement_ttl(buf, &layout);
        nat::fill_checksums(buf, &layout);
    }

    #[test]
    fn mutated_and_random_bytes_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let seeds = seeds();
        for seed in &seeds {
            for link in [Link::Ip, Link::Ethernet] {
                if let Ok(p) = IpPacket::parse(seed.clone(), link) {
                    exercise(&p);
                }
            }
        }
        for _ in 0..20_000 {
            let mut b = seeds[rng.below(seeds.len())].clone();
            match rng.below(4) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(b.len());
                        b[i] = rng.next().to_le_bytes()[0];
                    }
                }
                2 => b = (0..rng.below(90)).map(|_| rng.next().to_le_bytes()[0]).collect(),
                _ => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                    b.truncate(b.len() - rng.below(4).min(b.len()));
                }
            }
            for r in [
                IpPacket::parse(b.clone(), Link::Ip),
                IpPacket::parse(b.clone(), Link::Ethernet),
                IpPacket::parse_auto(b),
            ] {
                match r {
                    Ok(p) => exercise(&p),
                    Err(Error::Packet { offset, .. }) => assert!(offset <= 100),
                    Err(e) => panic!("not a packet error: {e}"),
                }
            }
        }
    }

    #[test]
    fn ipv6_extension_headers_reach_the_transport() {
        let v6 = seeds().pop().unwrap();
        let p = IpPacket::parse(v6, Link::Ip).unwrap();
        assert_eq!(p.protocol(), proto::TCP);
        assert_eq!(p.layout().l4, Some(56));
        assert_eq!((p.sport(), p.dport()), (Some(1), Some(2)));
        assert!(p.is_fragment() && p.more_fragments() && p.frag_offset() == 0);
        assert_eq!(p.ident(), 1);
    }

    #[test]
    fn non_first_ipv4_fragment_has_no_ports() {
        let mut b = build::udp("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 1, 2).to_bytes().unwrap();
        b[6] = 0x20;
        b[7] = 0x03;
        let p = IpPacket::parse(b, Link::Ip).unwrap();
        assert_eq!((p.sport(), p.frag_offset(), p.more_fragments()), (None, 3, true));
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.to_string(), "udp 10.0.0.1 -> 10.0.0.2 frag 24+");
        // A first fragment cut inside the TCP header has no transport header to read; the
        // same bytes without MF are a truncated TCP header.
        let mut t = build::raw("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 99)
            .payload(vec![0, 1, 0, 2, 0, 0, 0, 0])
            .to_bytes()
            .unwrap();
        t[9] = proto::TCP;
        assert!(matches!(IpPacket::parse(t.clone(), Link::Ip), Err(Error::Packet { layer: "tcp", offset: 28, .. })));
        t[6] = 0x20;
        let p = IpPacket::parse(t, Link::Ip).unwrap();
        assert_eq!((p.protocol(), p.sport(), p.layout().l4), (proto::TCP, None, None));
    }

    #[test]
    fn ethernet_framing_round_trips() {
        for seed in seeds() {
            let Ok(p) = IpPacket::parse_auto(seed) else { continue };
            for vlan in [None, Some(7)] {
                let e = p.with_ethernet([2; 6], [4; 6], vlan);
                assert_eq!(IpPacket::parse(e.bytes().to_vec(), Link::Ethernet).unwrap(), e);
                assert_eq!(e.to_ip(), p.to_ip());
                assert_eq!(e.vlan_tci(), vlan);
            }
        }
    }

    #[test]
    fn borrowed_packets_read_like_owned_ones() {
        for seed in seeds() {
            let Ok(owned) = IpPacket::parse_auto(seed.clone()) else { continue };
            let borrowed = IpPacket::parse_auto(&seed[..]).unwrap();
            assert_eq!(borrowed.to_string(), owned.to_string());
            assert_eq!(borrowed.to_owned_packet(), owned);
        }
    }

    #[test]
    fn auto_link_reports_the_ip_error() {
        let mut b = build::tcp("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 1, 2).to_bytes().unwrap();
        b[3] = 200;
        assert!(matches!(IpPacket::parse_auto(b), Err(Error::Packet { field: "total_length", offset: 2, .. })));
        assert!(matches!(
            IpPacket::parse_auto(vec![0x02; 20]),
            Err(Error::Packet { layer: "ethernet", field: "ethertype", offset: 12, .. })
        ));
    }
}
