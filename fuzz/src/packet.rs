//! Target `packet`: the dissector (Ethernet, VLAN, IPv4/IPv6 with extension headers, TCP, UDP,
//! SCTP, ICMP, ICMPv6) and the in-place NAT rewriters on arbitrary bytes.
//!
//! Input: one control byte (bits 0–1: link — IP, Ethernet or guessed; the others choose the
//! rewrites), then the packet bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kubenat_core::iptables::flow::Flow;
use kubenat_core::net::Family;
use kubenat_core::packet::{nat, IpPacket, Link};

use crate::input::Input;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let control = input.byte();
    let port = input.u16();
    let bytes = input.rest().to_vec();
    let parsed = match control & 3 {
        0 => IpPacket::parse(bytes, Link::Ip),
        1 => IpPacket::parse(bytes, Link::Ethernet),
        _ => IpPacket::parse_auto(bytes),
    };
    let Ok(p) = parsed else { return };
    inspect(&p);
    let ip = p.to_ip();
    // The bare IP copy is the same packet: it dissects again, to the same flow.
    let again = IpPacket::parse(ip.bytes().to_vec(), Link::Ip).expect("the IP part of a dissected packet dissects");
    assert_eq!(Flow::from_packet(&again).tuple(), Flow::from_packet(&p).tuple());
    assert_eq!(again.layout(), ip.layout());
    rewrite(p, control, port);
}

/// Calls every accessor: none may panic on a packet that dissected.
fn inspect(p: &IpPacket) {
    let _ = (p.src(), p.dst(), p.protocol(), p.ttl(), p.tos(), p.len(), p.ident());
    let _ = (p.frag_offset(), p.more_fragments(), p.dont_fragment(), p.is_fragment(), p.ip_options());
    let _ = (p.sport(), p.dport(), p.tcp_flags(), p.tcp_flags_full(), p.tcp(), p.udp(), p.sctp(), p.icmp());
    let _ = (p.icmp_type(), p.icmp_code(), p.icmp_ident(), p.icmp_seq(), p.icmp_is_error(), p.payload());
    let _ = (p.src_mac(), p.dst_mac(), p.vlan_tci(), p.l4_bytes(), p.ip_bytes(), p.checksums_valid());
    let _ = (p.to_string(), format!("{p:?}"), Flow::from_packet(p).to_string());
}

/// NAT rewrites keep a packet that had valid checksums valid (incremental updates are exact),
/// and never change its layout.
fn rewrite(mut p: IpPacket, control: u8, port: u16) {
    let valid = p.checksums_valid();
    let layout = *p.layout();
    let (src, dst) = match p.family() {
        Family::V4 => (IpAddr::V4(Ipv4Addr::new(10, 244, 1, control)), IpAddr::V4(Ipv4Addr::from(u32::from(port)))),
        Family::V6 => (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(control))),
            IpAddr::V6(Ipv6Addr::from(u128::from(port))),
        ),
    };
    {
        let (buf, l) = p.bytes_mut();
        if control & 4 != 0 {
            nat::set_src(buf, l, src).expect("same-family address");
        }
        if control & 8 != 0 {
            nat::set_dst(buf, l, dst).expect("same-family address");
        }
        if control & 16 != 0 {
            let _ = nat::set_sport(buf, l, port);
        }
        if control & 32 != 0 {
            let _ = nat::set_dport(buf, l, port.rotate_left(3));
        }
        if control & 64 != 0 {
            let _ = nat::decrement_ttl(buf, l);
        }
    }
    if valid {
        assert!(p.checksums_valid(), "NAT rewrite broke the checksums of {p}");
    }
    if control & 128 != 0 {
        let (buf, l) = p.bytes_mut();
        nat::fill_checksums(buf, l);
        // A packet whose transport header is present gets correct checksums.
        let fresh = p.checksums_valid();
        assert!(fresh || p.is_fragment(), "fill_checksums left invalid checksums in {p}");
    }
    let p = p.reparse().expect("a rewritten packet dissects again");
    assert_eq!(*p.layout(), layout);
}
