//! Target `decap`: flannel's receive path (VXLAN, UDP backend, host-gw) on arbitrary frames,
//! and the encapsulation round trip on arbitrary inner packets.
//!
//! Input: one control byte (bits 0–1: backend — VXLAN, UDP, host-gw, VXLAN with GBP; bit 2:
//! Ethernet frames rather than raw IP; bit 3: VXLAN without UDP checksums), a big-endian u16
//! (outer IPv4 ID and packet mark), then the frame. The same bytes are also encapsulated as an
//! inner packet by a peer, and what the peer sends must decapsulate back to them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kubenat_core::flannel::{inner_ip_len, udp, vxlan, Backend, Encapsulator, Lease, Link, Local, Mac};
use kubenat_core::net::Cidr;

use crate::input::Input;

/// The receiving node's underlay NIC (the seeds' outer destination MAC).
pub const NIC: Mac = [0x02, 0, 0, 0, 0, 0x01];
/// The receiving node's VTEP (the seeds' inner destination MAC).
pub const VTEP: Mac = [0x02, 0, 0, 0, 0, 0x02];
const PEER_NIC: Mac = [0x02, 0, 0, 0, 0, 0x03];

fn backend(control: u8) -> Backend {
    let vx = vxlan::Config { udp_checksum: control & 8 == 0, gbp: control & 3 == 3, ..vxlan::Config::default() };
    match control & 3 {
        1 => Backend::Udp(udp::Config {
            tun_addr: Ipv4Addr::new(10, 244, 1, 0),
            decrement_ttl: false,
            ..udp::Config::default()
        }),
        2 => Backend::HostGw { mtu: 0 },
        _ => Backend::Vxlan { config: vx, mtu: 0 },
    }
}

/// This node (192.168.0.2, fd00::2) and a peer (192.168.0.3, fd00::3) that routes everything to it.
fn nodes(control: u8) -> (Encapsulator, Encapsulator) {
    let me = Local {
        ipv4: Some(Ipv4Addr::new(192, 168, 0, 2)),
        ipv6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        underlay_mac: Some(NIC),
        vtep_mac: Some(VTEP),
        vtep_mac_v6: Some(VTEP),
    };
    let peer = Local {
        ipv4: Some(Ipv4Addr::new(192, 168, 0, 3)),
        ipv6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3)),
        underlay_mac: Some(PEER_NIC),
        vtep_mac: Some(PEER_NIC),
        vtep_mac_v6: Some(PEER_NIC),
    };
    let lease =
        |subnet: Cidr, public_ip: IpAddr| Lease { subnet, public_ip, vtep_mac: Some(VTEP), underlay_mac: Some(NIC) };
    let to_me = vec![
        lease(Cidr::any(kubenat_core::net::Family::V4), IpAddr::V4(me.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED))),
        lease(Cidr::any(kubenat_core::net::Family::V6), IpAddr::V6(me.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED))),
    ];
    let receiver = Encapsulator::new(backend(control), me, vec![], None).expect("receiver configuration");
    let sender = Encapsulator::new(backend(control), peer, to_me, None).expect("sender configuration");
    (receiver, sender)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let control = input.byte();
    let id = input.u16();
    let bytes = input.rest();
    let link = if control & 4 != 0 { Link::Ethernet } else { Link::Ip };
    let (receiver, sender) = nodes(control);
    if let Ok(inner) = receiver.decap(bytes, link) {
        assert!(inner.len() <= bytes.len(), "decap grew the frame");
    }
    // What a peer sends for an inner packet the receiving IP layer accepts decapsulates to that
    // packet (the sender itself does not check the inner bytes, as the kernel does not).
    let Ok(frame) = sender.encap(bytes, id, u32::from(id), link) else { return };
    let Ok(len) = inner_ip_len(bytes, 0, 0) else { return };
    match receiver.decap(&frame, link) {
        // Trailing bytes beyond the inner IP length are trimmed, as the kernel does.
        Ok(back) => assert_eq!(back.as_slice(), &bytes[..len], "the inner packet changed on the way"),
        Err(e) => panic!("own frame refused: {e}\n{frame:02x?}"),
    }
}
