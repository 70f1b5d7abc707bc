//! The flow key and metadata the evaluator looks at: what netfilter matches read from a packet.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::net::Family;

/// IP protocol numbers the evaluator treats specially.
pub mod proto {
    /// ICMP
    pub const ICMP: u8 = 1;
    /// TCP
    pub const TCP: u8 = 6;
    /// UDP
    pub const UDP: u8 = 17;
    /// ICMPv6
    pub const ICMPV6: u8 = 58;
    /// SCTP
    pub const SCTP: u8 = 132;
    /// UDP-Lite
    pub const UDPLITE: u8 = 136;
    /// DCCP
    pub const DCCP: u8 = 33;
}

/// TCP flag bits as they sit in the header's flags byte.
pub mod tcp_flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
    /// ECE
    pub const ECE: u8 = 0x40;
    /// CWR
    pub const CWR: u8 = 0x80;
}

/// Everything about one packet that a match, a target or conntrack reads.
///
/// Ports are 0 for protocols without ports; for ICMP echo the identifier stands in for both
/// ports (as conntrack keys ICMP queries by id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (upper-layer protocol for IPv6).
    pub proto: u8,
    /// Source port (TCP/UDP/SCTP/UDP-Lite/DCCP), else 0.
    pub sport: u16,
    /// Destination port, else 0.
    pub dport: u16,
    /// TCP flags byte (0 for other protocols).
    pub tcp_flags: u8,
    /// ICMP/ICMPv6 type (0 for other protocols).
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// ICMP echo identifier.
    pub icmp_id: u16,
    /// Fragment offset in 8-byte units (non-zero: a later fragment, without transport header).
    pub fragment_offset: u16,
    /// More-fragments flag.
    pub more_fragments: bool,
    /// Total IP length in bytes.
    pub length: u16,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Type of the first SCTP chunk (`None`: no chunk, or not SCTP); conntrack only opens an
    /// SCTP connection on INIT (1) or HEARTBEAT (4).
    pub sctp_chunk: Option<u8>,
    /// ICMP/ICMPv6 error: the packet it quotes, when conntrack can read that packet's tuple
    /// (`None` for anything else, and for a quote conntrack cannot use: the error is INVALID).
    pub quote: Option<Quote>,
    /// The ICMP/ICMPv6 checksum is wrong (conntrack, with `nf_conntrack_checksum=1`, finds such
    /// a packet INVALID in PREROUTING).
    pub icmp_checksum_bad: bool,
}

/// The packet an ICMP error quotes, as conntrack reads it to relate the error to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quote {
    /// The quoted packet's tuple in its own direction (a quoted ICMP query: its identifier as
    /// both ports, as [`Flow::tuple`] keys queries).
    pub tuple: Tuple,
    /// Transport bytes the quote holds: NAT needs 8 to rewrite quoted ports and drops the error
    /// otherwise; TCP's checksum is only updated when all 20 header bytes are there.
    pub l4_len: u16,
}

impl Quote {
    /// Whether NAT rewrites ports (or the ICMP identifier) inside the quote.
    pub fn has_ports(&self) -> bool {
        matches!(self.tuple.proto, proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE | proto::DCCP)
            || self.is_icmp_query()
    }

    /// Whether the quoted packet is an ICMP/ICMPv6 query (its tuple holds the identifier).
    pub fn is_icmp_query(&self) -> bool {
        let family = Family::of(&self.tuple.src);
        matches!((family, self.tuple.proto), (Family::V4, proto::ICMP) | (Family::V6, proto::ICMPV6))
    }
}

impl Flow {
    /// A flow of any protocol with ports (0 where the protocol has none).
    ///
    /// # Errors
    /// [`Error::Invalid`] when source and destination are of different families.
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Result<Flow> {
        if Family::of(&src) != Family::of(&dst) {
            return Err(Error::invalid(
                "flow",
                format!("source {src} and destination {dst} are of different families"),
            ));
        }
        let has_ports = matches!(proto, proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE | proto::DCCP);
        let is_icmp = matches!(proto, proto::ICMP | proto::ICMPV6);
        let echo_request = if Family::of(&src) == Family::V4 { 8 } else { 128 };
        Ok(Flow {
            src,
            dst,
            proto,
            sport: if has_ports { sport } else { 0 },
            dport: if has_ports { dport } else { 0 },
            tcp_flags: if proto == proto::TCP { tcp_flags::SYN } else { 0 },
            icmp_type: if is_icmp { echo_request } else { 0 },
            icmp_code: 0,
            icmp_id: if is_icmp { sport } else { 0 },
            fragment_offset: 0,
            more_fragments: false,
            length: if Family::of(&src) == Family::V4 { 60 } else { 80 },
            ttl: 64,
            sctp_chunk: (proto == proto::SCTP).then_some(1),
            quote: None,
            icmp_checksum_bad: false,
        })
    }

    /// A TCP SYN.
    ///
    /// # Errors
    /// As [`Flow::new`].
    pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Result<Flow> {
        Flow::new(src, dst, proto::TCP, sport, dport)
    }

    /// A UDP datagram.
    ///
    /// # Errors
    /// As [`Flow::new`].
    pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Result<Flow> {
        Flow::new(src, dst, proto::UDP, sport, dport)
    }

    /// The flow key of a parsed packet (ports, flags and ICMP fields where present; a later
    /// fragment has no transport fields).
    pub fn from_packet(p: &crate::packet::IpPacket) -> Flow {
        Flow {
            src: p.src(),
            dst: p.dst(),
            proto: p.protocol(),
            sport: p.sport().unwrap_or(0),
            dport: p.dport().unwrap_or(0),
            tcp_flags: p.tcp_flags().unwrap_or(0),
            icmp_type: p.icmp_type().unwrap_or(0),
            icmp_code: p.icmp_code().unwrap_or(0),
            icmp_id: p.icmp_ident().unwrap_or(0),
            fragment_offset: p.frag_offset(),
            more_fragments: p.more_fragments(),
            length: u16::try_from(p.len()).unwrap_or(u16::MAX),
            ttl: p.ttl(),
            // The first chunk's type byte follows the 12-byte common header.
            sctp_chunk: if p.protocol() == proto::SCTP { p.l4_bytes().and_then(|b| b.get(12).copied()) } else { None },
            quote: quote_of(p),
            icmp_checksum_bad: icmp_checksum_bad(p),
        }
    }

    /// Family of the flow.
    pub fn family(&self) -> Family {
        Family::of(&self.src)
    }

    /// Whether the protocol carries ports the port matches read.
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE | proto::DCCP)
    }

    /// Whether the protocol is ICMP of the flow's family.
    pub fn is_icmp(&self) -> bool {
        (self.proto == proto::ICMP && self.family() == Family::V4)
            || (self.proto == proto::ICMPV6 && self.family() == Family::V6)
    }

    /// Whether this is an ICMP query conntrack can track (echo, timestamp, info, address mask).
    pub fn is_icmp_query(&self) -> bool {
        self.is_icmp() && icmp_query_reply(self.family(), self.icmp_type).is_some()
    }

    /// Whether this is an ICMP error (which conntrack relates to the connection it quotes).
    pub fn is_icmp_error(&self) -> bool {
        if !self.is_icmp() {
            return false;
        }
        match self.family() {
            Family::V4 => matches!(self.icmp_type, 3 | 4 | 5 | 11 | 12),
            Family::V6 => self.icmp_type < 128,
        }
    }

    /// A later fragment (offset ≠ 0): transport matches never match it.
    pub fn is_later_fragment(&self) -> bool {
        self.fragment_offset != 0
    }

    /// The conntrack tuple of this packet in its own direction.
    pub fn tuple(&self) -> Tuple {
        let (sport, dport) = if self.is_icmp() { (self.icmp_id, self.icmp_id) } else { (self.sport, self.dport) };
        Tuple { proto: self.proto, src: self.src, sport, dst: self.dst, dport }
    }

    /// Rewrites addresses and ports (ICMP: the id) to those of a tuple, as NAT does.
    pub fn set_tuple(&mut self, t: &Tuple) {
        self.src = t.src;
        self.dst = t.dst;
        if self.is_icmp() {
            self.icmp_id = t.sport;
        } else if self.has_ports() {
            self.sport = t.sport;
            self.dport = t.dport;
        }
    }
}

/// The tuple conntrack reads from the packet an ICMP error quotes (`nf_ct_get_tuplepr` on the
/// quote, then `nf_ct_invert_tuple`): `None` when it cannot — no quote or an unreadable one, a
/// quoted later fragment, fewer than 4 quoted port bytes, or a quoted ICMP message that is not
/// a query (8 bytes needed). Another protocol is keyed by addresses alone.
fn quote_of(p: &crate::packet::IpPacket) -> Option<Quote> {
    let q = p.quoted().ok()??;
    let l4 = q.l4?;
    let buf = p.bytes();
    let l4_len = q.end.saturating_sub(l4);
    let family = Family::of(&q.src);
    let port = |at: usize| crate::packet::be16(buf, l4 + at);
    let (sport, dport) = match q.protocol {
        proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE | proto::DCCP => {
            if l4_len < 4 {
                return None;
            }
            (port(0), port(2))
        }
        proto::ICMP | proto::ICMPV6 if q.protocol == crate::packet::dissect::icmp_protocol(family) => {
            // The quoted message must be a query whose tuple conntrack can invert.
            if l4_len < 8 {
                return None;
            }
            icmp_query_reply(family, buf[l4])?;
            (port(4), port(4))
        }
        _ => (0, 0),
    };
    let tuple = Tuple { proto: q.protocol, src: q.src, sport, dst: q.dst, dport };
    Some(Quote { tuple, l4_len: u16::try_from(l4_len).unwrap_or(u16::MAX) })
}

/// Whether an ICMP/ICMPv6 message (not a fragment) fails its checksum.
fn icmp_checksum_bad(p: &crate::packet::IpPacket) -> bool {
    use crate::packet::icmpv6;
    let Some(msg) = p.icmp().filter(|_| !p.layout().fragment) else { return false };
    match crate::packet::nat::pseudo_addrs(p.bytes(), p.layout()) {
        (IpAddr::V6(s), IpAddr::V6(d)) => !icmpv6::verify_checksum(&msg, s, d),
        _ => !msg.verify_checksum(),
    }
}

/// The reply type of an ICMP query type, if it is a query conntrack tracks.
pub fn icmp_query_reply(family: Family, kind: u8) -> Option<u8> {
    match family {
        Family::V4 => match kind {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        },
        Family::V6 => match kind {
            128 => Some(129),
            129 => Some(128),
            _ => None,
        },
    }
}

/// A conntrack tuple: protocol, source and destination address and port (ICMP: id in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    /// IP protocol.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Source port (ICMP id).
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (ICMP id).
    pub dport: u16,
}

impl Tuple {
    /// The same connection seen from the other side.
    pub fn invert(&self) -> Tuple {
        Tuple { proto: self.proto, src: self.dst, sport: self.dport, dst: self.src, dport: self.sport }
    }
}

/// `ip:port` with brackets for IPv6.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", proto_name(self.proto), endpoint(self.src, self.sport), endpoint(self.dst, self.dport))
    }
}

/// Lower-case protocol name as iptables prints it, or the number.
pub fn proto_name(p: u8) -> String {
    match p {
        0 => "all".into(),
        proto::ICMP => "icmp".into(),
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ICMPV6 => "ipv6-icmp".into(),
        proto::SCTP => "sctp".into(),
        proto::UDPLITE => "udplite".into(),
        proto::DCCP => "dccp".into(),
        n => n.to_string(),
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.has_ports() {
            write!(
                f,
                "{} {} -> {}",
                proto_name(self.proto),
                endpoint(self.src, self.sport),
                endpoint(self.dst, self.dport)
            )
        } else if self.is_icmp() {
            write!(
                f,
                "{} {} -> {} type {} code {}",
                proto_name(self.proto),
                self.src,
                self.dst,
                self.icmp_type,
                self.icmp_code
            )
        } else {
            write!(f, "{} {} -> {}", proto_name(self.proto), self.src, self.dst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tuple_inverts() {
        let f = Flow::tcp(ip("10.0.0.1"), ip("10.96.0.1"), 1234, 80).unwrap();
        let t = f.tuple();
        assert_eq!(t.invert().invert(), t);
        assert_eq!(t.invert().src, ip("10.96.0.1"));
        assert_eq!(t.to_string(), "tcp 10.0.0.1:1234 -> 10.96.0.1:80");
    }

    #[test]
    fn from_packet_reads_the_headers() {
        use crate::packet::{build, IpPacket, Link};
        let bytes = build::tcp(ip("10.0.0.1"), ip("10.96.0.10"), 1234, 80).flags(0x12).to_bytes().unwrap();
        let f = Flow::from_packet(&IpPacket::parse(bytes, Link::Ip).unwrap());
        assert_eq!((f.src, f.dst, f.sport, f.dport, f.tcp_flags), (ip("10.0.0.1"), ip("10.96.0.10"), 1234, 80, 0x12));
        assert_eq!(f.proto, proto::TCP);
    }

    #[test]
    fn mixed_families_are_refused() {
        assert!(Flow::tcp(ip("10.0.0.1"), ip("::1"), 1, 2).is_err());
    }

    #[test]
    fn icmp_uses_id_as_ports() {
        let f = Flow::new(ip("10.0.0.1"), ip("10.0.0.2"), proto::ICMP, 77, 0).unwrap();
        assert_eq!(f.tuple().sport, 77);
        assert_eq!(f.tuple().dport, 77);
        assert!(f.is_icmp_query());
        assert!(!f.has_ports());
    }
}
