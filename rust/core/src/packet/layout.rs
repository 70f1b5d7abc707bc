//! Where the headers of a packet are: the link, the IP header, the transport header, and the
//! fragment state. [`Layout::parse`] validates every header it steps over.

use super::ethernet::{self, ethertype};
use super::{icmp, ipv4, ipv6, proto, sctp, shift, tcp, udp};
use crate::error::{Error, Result};
use crate::net::Family;

/// What the bytes start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// A bare IP packet (what a TUN device, flannel's UDP backend and iptables see).
    Ip,
    /// An Ethernet II frame (optionally VLAN-tagged) carrying IPv4 or IPv6.
    Ethernet,
}

impl Link {
    /// `"ip"` or `"ethernet"`.
    pub fn name(self) -> &'static str {
        match self {
            Link::Ip => "ip",
            Link::Ethernet => "ethernet",
        }
    }
}

/// Where the headers of a packet are. Computed once by [`Layout::parse`]; the accessors of
/// [`super::IpPacket`] and the rewriters in [`super::nat`] read and write through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// What the buffer starts with.
    pub link: Link,
    /// Offset of the IP header.
    pub l3: usize,
    /// IP family.
    pub family: Family,
    /// End of the IP packet (IPv4 total length / IPv6 payload length); later bytes are padding.
    pub end: usize,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Offset of the transport header. `Some` only when this packet carries it whole (not a
    /// non-first fragment, nor a first fragment cut inside it); a known protocol's header has
    /// been checked to fit.
    pub l4: Option<usize>,
    /// Fragment offset in 8-byte units (0 when not fragmented).
    pub frag_offset: u16,
    /// More Fragments flag.
    pub more_frags: bool,
    /// Whether the packet is a fragment at all (IPv4 MF or offset, or an IPv6 fragment header).
    pub fragment: bool,
}

impl Layout {
    /// Dissects `buf` as `link`.
    ///
    /// # Errors
    /// [`Error::Packet`] with the absolute offset of the first field that cannot be read.
    pub fn parse(buf: &[u8], link: Link) -> Result<Layout> {
        match link {
            Link::Ip => Self::parse_ip(buf, 0, Link::Ip),
            Link::Ethernet => {
                let eth = ethernet::Packet::new_checked(buf)?;
                let l3 = eth.header_len();
                match eth.ethertype() {
                    ethertype::IPV4 | ethertype::IPV6 => Self::parse_ip(buf, l3, Link::Ethernet),
                    other => Err(Error::packet(
                        "ethernet",
                        "ethertype",
                        l3 - 2,
                        format!("ethertype {other:#06x} is neither IPv4 nor IPv6"),
                    )),
                }
            }
        }
    }

    /// Dissects `buf`, guessing the link: a first nibble of 4 or 6 that parses as IP is IP,
    /// anything else is tried as Ethernet. Errors come from the IP attempt when the first
    /// nibble says IP, from the Ethernet attempt otherwise.
    ///
    /// # Errors
    /// As [`Layout::parse`].
    pub fn parse_auto(buf: &[u8]) -> Result<Layout> {
        let looks_ip = matches!(buf.first().map(|b| b >> 4), Some(4 | 6));
        if !looks_ip {
            return Self::parse(buf, Link::Ethernet);
        }
        match Self::parse(buf, Link::Ip) {
            Ok(l) => Ok(l),
            Err(ip_err) => Self::parse(buf, Link::Ethernet).map_err(|_| ip_err),
        }
    }

    fn parse_ip(buf: &[u8], l3: usize, link: Link) -> Result<Layout> {
        let ip = &buf[l3..];
        match ip.first().map(|b| b >> 4) {
            Some(6) => Self::parse_v6(ip, l3, link).map_err(shift(l3)),
            Some(4) => Self::parse_v4(ip, l3, link).map_err(shift(l3)),
            None => Err(Error::packet("ip", "version", l3, "truncated: no IP header")),
            Some(v) => Err(Error::packet("ip", "version", l3, format!("unknown version {v}"))),
        }
    }

    fn parse_v4(ip: &[u8], l3: usize, link: Link) -> Result<Layout> {
        let p = ipv4::Packet::new_checked(ip)?;
        let hl = p.header_len();
        let total = usize::from(p.total_len());
        let frag_offset = p.frag_offset();
        let protocol = p.protocol();
        let l4 =
            if frag_offset == 0 { transport_at(Family::V4, protocol, ip, hl, total, p.more_frags())? } else { None };
        Ok(Layout {
            link,
            l3,
            family: Family::V4,
            end: l3 + total,
            protocol,
            l4: l4.map(|o| l3 + o),
            frag_offset,
            more_frags: p.more_frags(),
            fragment: frag_offset != 0 || p.more_frags(),
        })
    }

    fn parse_v6(ip: &[u8], l3: usize, link: Link) -> Result<Layout> {
        let p = ipv6::Packet::new_checked(ip)?;
        let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
        let walk = ipv6::walk_extensions(&ip[..end])?;
        let (frag_offset, more_frags) = walk.frag.map_or((0, false), |f| (f.offset, f.more));
        let l4 = if frag_offset == 0 && walk.protocol != proto::NONE {
            transport_at(Family::V6, walk.protocol, ip, walk.transport_offset, end, more_frags)?
        } else {
            None
        };
        Ok(Layout {
            link,
            l3,
            family: Family::V6,
            end: l3 + end,
            protocol: walk.protocol,
            l4: l4.map(|o| l3 + o),
            frag_offset,
            more_frags,
            fragment: walk.frag.is_some(),
        })
    }

    /// Whether the transport protocol has ports (TCP, UDP, SCTP) and its header is present.
    pub fn has_ports(&self) -> bool {
        self.l4.is_some() && matches!(self.protocol, proto::TCP | proto::UDP | proto::SCTP)
    }

    /// Whether the transport is this family's ICMP and its header is present.
    pub fn is_icmp(&self) -> bool {
        self.l4.is_some() && self.protocol == icmp_protocol(self.family)
    }
}

/// The ICMP protocol number of a family (1 or 58).
pub fn icmp_protocol(family: Family) -> u8 {
    match family {
        Family::V4 => proto::ICMP,
        Family::V6 => proto::ICMPV6,
    }
}

/// Checks that a known transport header fits in `seg` (offsets relative to `seg`).
/// Where the transport header is, when it is in this packet: `Some(at)` once a known
/// protocol's header has been checked to fit into `ip[at..end]`. A first fragment may be cut
/// inside the header (the rest follows in the next fragment): then there is no transport
/// header to read (`None`), where an unfragmented packet is an error.
fn transport_at(
    family: Family,
    protocol: u8,
    ip: &[u8],
    at: usize,
    end: usize,
    first_fragment: bool,
) -> Result<Option<usize>> {
    match check_transport(family, protocol, &ip[at..end], first_fragment) {
        Ok(()) => Ok(Some(at)),
        Err(_) if first_fragment => Ok(None),
        Err(e) => Err(shift(at)(e)),
    }
}

/// A first fragment holds only part of the datagram, so the UDP length (which covers all of it)
/// is not checked against the bytes present then.
fn check_transport(family: Family, protocol: u8, seg: &[u8], first_fragment: bool) -> Result<()> {
    match (family, protocol) {
        (_, proto::TCP) => tcp::Packet::new_checked(seg).map(|_| ()),
        (_, proto::UDP) if first_fragment => udp::Packet::new_unchecked(seg).check_header_len(),
        (_, proto::UDP) => udp::Packet::new_checked(seg).map(|_| ()),
        (_, proto::SCTP) => sctp::Packet::new_checked(seg).map(|_| ()),
        (Family::V4, proto::ICMP) => icmp::Packet::new_checked(seg).map(|_| ()),
        (Family::V6, proto::ICMPV6) => icmp::Packet::new_checked_as(seg, "icmpv6").map(|_| ()),
        _ => Ok(()),
    }
}
