//! The outer headers both overlays put around their payload: an underlay Ethernet header
//! (optional), IPv4 or IPv6, and UDP. Building them, and checking them on receive the way the
//! kernel's IP and UDP input paths do before a tunnel socket sees the payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::subnet::Mac;
use super::Link;
use crate::error::{Error, Result};
use crate::packet::{checksum, ethernet, ipv4, ipv6, proto, udp};

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// IPv4 header length (outer headers never carry options).
pub const IPV4_LEN: usize = 20;
/// IPv6 header length.
pub const IPV6_LEN: usize = 40;
/// UDP header length.
pub const UDP_LEN: usize = 8;

/// Everything that goes into the outer headers of one datagram.
#[derive(Debug, Clone, Copy)]
pub struct OuterSpec {
    /// Underlay (source, destination) MACs; `None` when emitting bare IP.
    pub macs: Option<(Mac, Mac)>,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address (same family as `src`).
    pub dst: IpAddr,
    /// TOS / traffic class.
    pub tos: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification (ignored for IPv6).
    pub ident: u16,
    /// IPv4 Don't Fragment (ignored for IPv6).
    pub dont_frag: bool,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
    /// Whether to compute the UDP checksum (IPv4 may send zero; IPv6 always computes it).
    pub udp_checksum: bool,
}

/// Appends the outer headers and then `parts` (the UDP payload, in pieces) to `out`, built
/// with the packet module's `Repr`s.
///
/// # Errors
/// [`Error::Invalid`] when the datagram would exceed the IP length fields, or the two addresses
/// are of different families.
pub fn emit(spec: &OuterSpec, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<()> {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let udp_len = UDP_LEN + payload_len;
    let ip = match (spec.src, spec.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Ip::V4(ipv4::Repr {
            src,
            dst,
            protocol: proto::UDP,
            ttl: spec.ttl,
            tos: spec.tos,
            ident: spec.ident,
            dont_frag: spec.dont_frag,
            more_frags: false,
            frag_offset: 0,
            options: Vec::new(),
            payload_len: udp_len,
        }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Ip::V6(ipv6::Repr {
            src,
            dst,
            next_header: proto::UDP,
            hop_limit: spec.ttl,
            traffic_class: spec.tos,
            flow_label: 0,
            payload_len: udp_len,
        }),
        _ => return Err(Error::invalid("outer address", "source and destination families differ")),
    };
    let eth = spec.macs.map(|(src, dst)| ethernet::Repr {
        dst,
        src,
        vlan_tci: None,
        ethertype: if matches!(ip, Ip::V6(_)) { ethernet::ethertype::IPV6 } else { ethernet::ethertype::IPV4 },
    });
    let eth_len = eth.map_or(0, |e| e.buffer_len());
    let ip_len = match &ip {
        Ip::V4(r) => r.buffer_len(),
        Ip::V6(r) => r.buffer_len(),
    };
    let start = out.len();
    out.resize(start + eth_len + ip_len + UDP_LEN, 0);
    let buf = &mut out[start..];
    if let Some(e) = eth {
        e.emit(buf);
    }
    let emitted = match &ip {
        Ip::V4(r) => r.emit(&mut buf[eth_len..]),
        Ip::V6(r) => r.emit(&mut buf[eth_len..]),
    };
    let udp = udp::Repr { src_port: spec.sport, dst_port: spec.dport, payload_len };
    if let Err(e) = emitted.and_then(|()| udp.emit(&mut buf[eth_len + ip_len..])) {
        out.truncate(start);
        return Err(e);
    }
    let udp_at = start + eth_len + ip_len;
    for p in parts {
        out.extend_from_slice(p);
    }
    if spec.udp_checksum || spec.src.is_ipv6() {
        udp::Packet::new_unchecked(&mut out[udp_at..]).fill_checksum(spec.src, spec.dst);
    }
    Ok(())
}

enum Ip {
    V4(ipv4::Repr),
    V6(ipv6::Repr),
}

/// What the receive side expects of the outer headers.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// The receiving NIC's MAC; frames to another unicast MAC are not for this host.
    pub local_mac: Option<Mac>,
    /// The local IPv4 address (outer destination), if the node has one.
    pub local_v4: Option<Ipv4Addr>,
    /// The local IPv6 address, if the node has one.
    pub local_v6: Option<Ipv6Addr>,
    /// The UDP port the tunnel socket listens on.
    pub port: u16,
}

/// The outer headers of a received datagram, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// Outer TOS / traffic class (for ECN decapsulation).
    pub tos: u8,
    /// Outer UDP source port.
    pub sport: u16,
    /// Offset of the UDP payload in the frame.
    pub payload_start: usize,
    /// End of the UDP payload (UDP length; link padding excluded).
    pub payload_end: usize,
}

fn d(kind: &'static str, offset: usize, message: impl Into<String>) -> Error {
    Error::decap(kind, offset, message)
}

fn truncated(offset: usize, what: &str, need: usize, have: usize) -> Error {
    d("truncated", offset, format!("{what} needs {need} bytes, only {have} left"))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Validates the outer headers as the kernel's Ethernet, IP and UDP input paths do, in their order.
///
/// # Errors
/// [`Error::Decap`] with the kind and byte offset of the first check that fails.
pub fn receive(frame: &[u8], link: Link, expect: &Expect) -> Result<Received> {
    let mut at = 0;
    let ethertype = match link {
        Link::Ethernet => {
            if frame.len() < ETH_LEN {
                return Err(truncated(0, "outer Ethernet header", ETH_LEN, frame.len()));
            }
            let dst: Mac = frame[0..6].try_into().unwrap_or_default();
            if let Some(local) = expect.local_mac {
                if dst[0] & 1 == 0 && dst != local {
                    return Err(d("outer_dst_mac", 0, "outer destination MAC is another host's (PACKET_OTHERHOST)"));
                }
            }
            at = ETH_LEN;
            Some(be16(frame, 12))
        }
        Link::Ip => None,
    };
    let version = frame.get(at).map(|b| b >> 4);
    let (src, dst, tos, ip_end, l4) = match (ethertype, version) {
        (Some(0x0800), _) | (None, Some(4)) => ipv4(frame, at, expect)?,
        (Some(0x86dd), _) | (None, Some(6)) => ipv6(frame, at, expect)?,
        (Some(t), _) => {
            return Err(d("outer_ethertype", 12, format!("outer ethertype 0x{t:04x} is neither IPv4 nor IPv6")));
        }
        (None, Some(v)) => return Err(d("outer_ip_version", 0, format!("IP version {v} is neither 4 nor 6"))),
        (None, None) => return Err(truncated(0, "outer IP header", IPV4_LEN, 0)),
    };
    if ip_end - l4 < UDP_LEN {
        return Err(truncated(l4, "UDP header", UDP_LEN, ip_end - l4));
    }
    let ulen = usize::from(be16(frame, l4 + 4));
    if ulen < UDP_LEN || ulen > ip_end - l4 {
        return Err(d(
            "udp_length",
            l4 + 4,
            format!("UDP length {ulen} is outside 8..={} (the IP payload)", ip_end - l4),
        ));
    }
    let dport = be16(frame, l4 + 2);
    if dport != expect.port {
        return Err(d(
            "udp_port",
            l4 + 2,
            format!("destination port {dport} has no tunnel socket (listening on {})", expect.port),
        ));
    }
    let csum = be16(frame, l4 + 6);
    let udp = &frame[l4..l4 + ulen];
    #[allow(clippy::cast_possible_truncation)]
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => checksum::pseudo_header_v4(s, t, 17, ulen as u32),
        (IpAddr::V6(s), IpAddr::V6(t)) => checksum::pseudo_header_v6(s, t, 17, ulen as u32),
        _ => unreachable!("one IP header gives one family"),
    };
    if csum == 0 {
        if src.is_ipv6() {
            return Err(d("udp_checksum", l4 + 6, "zero UDP checksum over IPv6 is refused (udp6zerocsumrx is off)"));
        }
    } else if !checksum::verify(checksum::sum(pseudo, udp)) {
        return Err(d(
            "udp_checksum",
            l4 + 6,
            format!("bad UDP checksum 0x{csum:04x} (the kernel counts UdpInCsumErrors)"),
        ));
    }
    Ok(Received { src, dst, tos, sport: be16(frame, l4), payload_start: l4 + UDP_LEN, payload_end: l4 + ulen })
}

type IpParts = (IpAddr, IpAddr, u8, usize, usize);

fn ipv4(frame: &[u8], at: usize, expect: &Expect) -> Result<IpParts> {
    let have = frame.len() - at;
    if have < IPV4_LEN {
        return Err(truncated(at, "outer IPv4 header", IPV4_LEN, have));
    }
    let h = &frame[at..];
    if h[0] >> 4 != 4 {
        return Err(d("outer_ip_version", at, format!("version {} in an IPv4 frame", h[0] >> 4)));
    }
    let hl = usize::from(h[0] & 0x0f) * 4;
    if hl < IPV4_LEN {
        return Err(d("outer_ip_header", at, format!("IHL {} is below 5", hl / 4)));
    }
    if have < hl {
        return Err(truncated(at, "outer IPv4 header with options", hl, have));
    }
    if !checksum::verify(checksum::sum(0, &h[..hl])) {
        return Err(d("outer_ip_checksum", at + 10, format!("bad IPv4 header checksum 0x{:04x}", be16(h, 10))));
    }
    let total = usize::from(be16(h, 2));
    if total < hl {
        return Err(d("outer_ip_length", at + 2, format!("total length {total} is below the header length {hl}")));
    }
    if total > have {
        return Err(truncated(at + 2, "outer IPv4 packet (total length)", total, have));
    }
    if be16(h, 6) & 0x3fff != 0 {
        return Err(d("outer_fragment", at + 6, "outer packet is a fragment; reassemble before decapsulating"));
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    if let Some(local) = expect.local_v4 {
        if dst != local {
            return Err(d("outer_dst_ip", at + 16, format!("outer destination {dst} is not this node ({local})")));
        }
    }
    if h[9] != 17 {
        return Err(d("outer_protocol", at + 9, format!("outer protocol {} is not UDP", h[9])));
    }
    Ok((IpAddr::V4(src), IpAddr::V4(dst), h[1], at + total, at + hl))
}

fn ipv6(frame: &[u8], at: usize, expect: &Expect) -> Result<IpParts> {
    let have = frame.len() - at;
    if have < IPV6_LEN {
        return Err(truncated(at, "outer IPv6 header", IPV6_LEN, have));
    }
    let h = &frame[at..];
    if h[0] >> 4 != 6 {
        return Err(d("outer_ip_version", at, format!("version {} in an IPv6 frame", h[0] >> 4)));
    }
    let plen = usize::from(be16(h, 4));
    if IPV6_LEN + plen > have {
        return Err(truncated(at + 4, "outer IPv6 payload (payload length)", IPV6_LEN + plen, have));
    }
    let mut s = [0u8; 16];
    s.copy_from_slice(&h[8..24]);
    let mut t = [0u8; 16];
    t.copy_from_slice(&h[24..40]);
    let dst = Ipv6Addr::from(t);
    if let Some(local) = expect.local_v6 {
        if dst != local {
            return Err(d("outer_dst_ip", at + 24, format!("outer destination {dst} is not this node ({local})")));
        }
    }
    if h[6] != 17 {
        return Err(d("outer_protocol", at + 6, format!("outer next header {} is not UDP", h[6])));
    }
    let tclass = ((h[0] & 0x0f) << 4) | (h[1] >> 4);
    Ok((IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(dst), tclass, at + IPV6_LEN + plen, at + IPV6_LEN))
}
