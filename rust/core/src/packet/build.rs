//! Builders: whole packets from field values, with every length and checksum filled in.
//!
//! ```
//! use kubenat_core::packet::build;
//! let pkt = build::udp("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), 5353, 53)
//!     .payload(b"hi".to_vec())
//!     .build()
//!     .unwrap();
//! assert!(pkt.checksums_valid());
//! ```

use std::net::IpAddr;

use super::dissect::{icmp_protocol, IpPacket, Link};
use super::ethernet::{self, ethertype, Mac};
use super::{icmp, icmpv6, ipv4, ipv6, nat, proto, sctp, tcp, udp};
use crate::error::{Error, Result};
use crate::net::Family;

pub use super::tcp::flags as tcp_flags;

/// The transport part of a packet being built.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Transport {
    Tcp(tcp::Repr),
    Udp { sport: u16, dport: u16, checksum: bool },
    Sctp(sctp::Repr),
    Icmp(icmp::Repr),
    Raw(u8),
}

/// A packet under construction; finish with [`Builder::build`] or [`Builder::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tos: u8,
    ident: u16,
    dont_frag: bool,
    flow_label: u32,
    ip_options: Vec<u8>,
    transport: Transport,
    payload: Vec<u8>,
    ethernet: Option<(Mac, Mac, Option<u16>)>,
}

fn base(src: IpAddr, dst: IpAddr, transport: Transport) -> Builder {
    Builder {
        src,
        dst,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: false,
        flow_label: 0,
        ip_options: Vec::new(),
        transport,
        payload: Vec::new(),
        ethernet: None,
    }
}

/// A TCP segment (flags SYN, window 8192, seq/ack 0 by default, like scapy).
pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Builder {
    base(
        src,
        dst,
        Transport::Tcp(tcp::Repr {
            src_port: sport,
            dst_port: dport,
            seq: 0,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 8192,
            urgent: 0,
            options: Vec::new(),
        }),
    )
}

/// A UDP datagram with its checksum computed.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Builder {
    base(src, dst, Transport::Udp { sport, dport, checksum: true })
}

/// An SCTP packet (common header; the payload is the chunk bytes), CRC32c computed.
pub fn sctp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Builder {
    base(src, dst, Transport::Sctp(sctp::Repr { src_port: sport, dst_port: dport, verification_tag: 0 }))
}

/// An ICMP (IPv4) or ICMPv6 (IPv6) message with the given type, code and rest-of-header.
pub fn icmp(src: IpAddr, dst: IpAddr, msg_type: u8, code: u8, rest: u32) -> Builder {
    base(src, dst, Transport::Icmp(icmp::Repr { msg_type, code, rest }))
}

/// An echo request (ICMP type 8, or ICMPv6 type 128 for IPv6 addresses).
pub fn echo_request(src: IpAddr, dst: IpAddr, ident: u16, seq: u16) -> Builder {
    let t = if src.is_ipv6() { icmpv6::kind::ECHO_REQUEST } else { icmp::kind::ECHO_REQUEST };
    base(src, dst, Transport::Icmp(icmp::Repr::echo(t, ident, seq)))
}

/// An IP packet with an arbitrary protocol number and the payload as its body.
pub fn raw(src: IpAddr, dst: IpAddr, protocol: u8) -> Builder {
    base(src, dst, Transport::Raw(protocol))
}

impl Builder {
    /// TTL / hop limit (default 64).
    #[must_use]
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// TOS / traffic class (default 0).
    #[must_use]
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }

    /// IPv4 identification (default 0).
    #[must_use]
    pub fn ident(mut self, ident: u16) -> Self {
        self.ident = ident;
        self
    }

    /// IPv4 Don't Fragment (default off).
    #[must_use]
    pub fn dont_frag(mut self, df: bool) -> Self {
        self.dont_frag = df;
        self
    }

    /// IPv6 flow label (default 0).
    #[must_use]
    pub fn flow_label(mut self, label: u32) -> Self {
        self.flow_label = label;
        self
    }

    /// IPv4 option bytes (padded to 4 bytes; at most 40).
    #[must_use]
    pub fn ip_options(mut self, options: Vec<u8>) -> Self {
        self.ip_options = options;
        self
    }

    /// Transport payload (SCTP: chunk bytes).
    #[must_use]
    pub fn payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// TCP flag bits (see [`tcp_flags`]); ignored for other protocols.
    #[must_use]
    pub fn flags(mut self, flags: u16) -> Self {
        if let Transport::Tcp(t) = &mut self.transport {
            t.flags = flags;
        }
        self
    }

    /// TCP sequence and acknowledgment numbers.
    #[must_use]
    pub fn seq_ack(mut self, seq: u32, ack: u32) -> Self {
        if let Transport::Tcp(t) = &mut self.transport {
            t.seq = seq;
            t.ack = ack;
        }
        self
    }

    /// TCP window.
    #[must_use]
    pub fn window(mut self, window: u16) -> Self {
        if let Transport::Tcp(t) = &mut self.transport {
            t.window = window;
        }
        self
    }

    /// TCP option bytes (padded to 4 bytes; at most 40).
    #[must_use]
    pub fn tcp_options(mut self, options: Vec<u8>) -> Self {
        if let Transport::Tcp(t) = &mut self.transport {
            t.options = options;
        }
        self
    }

    /// SCTP verification tag.
    #[must_use]
    pub fn verification_tag(mut self, vtag: u32) -> Self {
        if let Transport::Sctp(s) = &mut self.transport {
            s.verification_tag = vtag;
        }
        self
    }

    /// UDP: whether to compute the checksum (IPv4 only may leave it 0).
    #[must_use]
    pub fn udp_checksum(mut self, on: bool) -> Self {
        if let Transport::Udp { checksum, .. } = &mut self.transport {
            *checksum = on;
        }
        self
    }

    /// Puts an Ethernet header (and optionally a VLAN tag) in front.
    #[must_use]
    pub fn ethernet(mut self, src: Mac, dst: Mac, vlan_tci: Option<u16>) -> Self {
        self.ethernet = Some((src, dst, vlan_tci));
        self
    }

    fn protocol(&self, family: Family) -> u8 {
        match &self.transport {
            Transport::Tcp(_) => proto::TCP,
            Transport::Udp { .. } => proto::UDP,
            Transport::Sctp(_) => proto::SCTP,
            Transport::Icmp(_) => icmp_protocol(family),
            Transport::Raw(p) => *p,
        }
    }

    /// The finished bytes.
    ///
    /// # Errors
    /// [`Error::Invalid`] for mixed address families, IPv4 options on IPv6, over-long options
    /// or a packet over 65535 bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let family = Family::of(&self.src);
        if Family::of(&self.dst) != family {
            return Err(Error::invalid("dst", format!("{} and {} are of different families", self.src, self.dst)));
        }
        let l4_header = match &self.transport {
            Transport::Tcp(t) => t.buffer_len(),
            Transport::Udp { .. } => udp::HEADER_LEN,
            Transport::Sctp(_) => sctp::HEADER_LEN,
            Transport::Icmp(_) => icmp::HEADER_LEN,
            Transport::Raw(_) => 0,
        };
        let l4_len = l4_header + self.payload.len();
        if l4_len > 65535 {
            return Err(Error::invalid("payload", format!("{} bytes do not fit in one IP packet", self.payload.len())));
        }
        let protocol = self.protocol(family);
        let mut out = Vec::with_capacity(18 + 60 + l4_len);
        if let Some((src, dst, vlan_tci)) = self.ethernet {
            let et = if family == Family::V4 { ethertype::IPV4 } else { ethertype::IPV6 };
            let r = ethernet::Repr { dst, src, vlan_tci, ethertype: et };
            out.resize(r.buffer_len(), 0);
            r.emit(&mut out);
        }
        let l3 = out.len();
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let r = ipv4::Repr {
                    src,
                    dst,
                    protocol,
                    ttl: self.ttl,
                    tos: self.tos,
                    ident: self.ident,
                    dont_frag: self.dont_frag,
                    more_frags: false,
                    frag_offset: 0,
                    options: self.ip_options.clone(),
                    payload_len: l4_len,
                };
                out.resize(l3 + r.buffer_len(), 0);
                r.emit(&mut out[l3..])?;
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                if !self.ip_options.is_empty() {
                    return Err(Error::invalid("ip_options", "IPv4 options given for an IPv6 packet"));
                }
                let r = ipv6::Repr {
                    src,
                    dst,
                    next_header: protocol,
                    hop_limit: self.ttl,
                    traffic_class: self.tos,
                    flow_label: self.flow_label,
                    payload_len: l4_len,
                };
                out.resize(l3 + r.buffer_len(), 0);
                r.emit(&mut out[l3..])?;
            }
            _ => unreachable!("families checked above"),
        }
        let l4 = out.len();
        out.resize(l4 + l4_header, 0);
        match &self.transport {
            Transport::Tcp(t) => t.emit(&mut out[l4..])?,
            Transport::Udp { sport, dport, .. } => {
                udp::Repr { src_port: *sport, dst_port: *dport, payload_len: self.payload.len() }
                    .emit(&mut out[l4..])?;
            }
            Transport::Sctp(s) => s.emit(&mut out[l4..]),
            Transport::Icmp(i) => i.emit(&mut out[l4..]),
            Transport::Raw(_) => {}
        }
        out.extend_from_slice(&self.payload);
        let link = if self.ethernet.is_some() { Link::Ethernet } else { Link::Ip };
        let layout = super::Layout::parse(&out, link)?;
        if let Transport::Udp { checksum: true, .. } = self.transport {
            // A zero placeholder would read as "no checksum" over IPv4; mark it present.
            out[l4 + 6] = 0xff;
        }
        nat::fill_checksums(&mut out, &layout);
        Ok(out)
    }

    /// The finished, dissected packet.
    ///
    /// # Errors
    /// As [`Builder::to_bytes`].
    pub fn build(&self) -> Result<IpPacket> {
        let link = if self.ethernet.is_some() { Link::Ethernet } else { Link::Ip };
        IpPacket::parse(self.to_bytes()?, link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_protocol_both_families_has_valid_checksums() {
        for (s, d) in [(a("10.0.0.1"), a("10.96.0.10")), (a("fd00::1"), a("fd00:10::a"))] {
            let builders = [
                tcp(s, d, 1234, 80).payload(b"GET /".to_vec()).tcp_options(vec![2, 4, 5, 0xb4]),
                udp(s, d, 5353, 53).payload(vec![1, 2, 3]),
                sctp(s, d, 5000, 38412).payload(vec![1, 0, 0, 4]).verification_tag(7),
                echo_request(s, d, 77, 1).payload(b"ping".to_vec()),
                raw(s, d, 47).payload(vec![0; 4]),
            ];
            for b in builders {
                let p = b.build().unwrap();
                assert!(p.checksums_valid(), "{p}");
                assert_eq!(p.src(), s);
                assert_eq!(p.dst(), d);
            }
        }
    }

    #[test]
    fn accessors_and_display() {
        let p = tcp(a("10.0.0.1"), a("10.96.0.10"), 1234, 80).build().unwrap();
        assert_eq!(p.to_string(), "tcp 10.0.0.1:1234 -> 10.96.0.10:80 [S]");
        assert_eq!(p.tcp_flags(), Some(0x02));
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.len(), 40);
        let e = echo_request(a("fd00::1"), a("fd00::2"), 9, 3).build().unwrap();
        assert_eq!(e.protocol(), proto::ICMPV6);
        assert_eq!(e.icmp_type(), Some(128));
        assert_eq!(e.icmp_ident(), Some(9));
        assert_eq!(e.icmp_seq(), Some(3));
        assert_eq!(e.sport(), None);
        assert_eq!(e.to_string(), "ipv6-icmp fd00::1 -> fd00::2 type 128 code 0 id 9");
        let u = udp(a("fd00::1"), a("fd00::2"), 1, 2).payload(vec![7; 3]).build().unwrap();
        assert_eq!(u.to_string(), "udp [fd00::1]:1 -> [fd00::2]:2");
        assert_eq!(u.payload(), &[7, 7, 7]);
    }

    #[test]
    fn udp_zero_checksum_over_ipv4_stays_zero() {
        let p = udp(a("10.0.0.1"), a("10.0.0.2"), 1, 2).udp_checksum(false).build().unwrap();
        assert_eq!(p.udp().unwrap().checksum(), 0);
        assert!(p.checksums_valid());
    }

    #[test]
    fn ethernet_and_vlan_framing() {
        let p = tcp(a("10.0.0.1"), a("10.0.0.2"), 1, 2)
            .ethernet([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], Some(10))
            .build()
            .unwrap();
        assert_eq!(p.layout().l3, 18);
        assert_eq!(p.vlan_tci(), Some(10));
        assert_eq!(p.src_mac(), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(IpPacket::parse_auto(p.bytes().to_vec()).unwrap(), p);
        let ip = p.to_ip();
        assert_eq!(IpPacket::parse(ip.bytes().to_vec(), Link::Ip).unwrap(), ip);
    }

    #[test]
    fn mixed_families_are_refused() {
        assert!(tcp(a("10.0.0.1"), a("fd00::1"), 1, 2).build().is_err());
        assert!(udp(a("fd00::1"), a("fd00::2"), 1, 2).ip_options(vec![1]).build().is_err());
    }
}
