//! Encapsulator tests over static frames.

use super::*;

const LOCAL_NIC: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const PEER_NIC: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const LOCAL_VTEP: Mac = [0x02, 0xaa, 0, 0, 0, 1];
const PEER_VTEP: Mac = [0x02, 0xbb, 0, 0, 0, 1];

/// UDP 10.244.1.5:12345 → 10.244.2.5:80, TOS 0x03 (CE), TTL 63, 4 payload bytes.
fn inner_udp() -> Vec<u8> {
    let mut p = vec![
        0x45, 0x03, 0, 32, 0x00, 0x07, 0x40, 0, 63, 17, 0, 0, 10, 244, 1, 5, 10, 244, 2, 5, 0x30, 0x39, 0, 80, 0, 12,
        0, 0, b'p', b'i', b'n', b'g',
    ];
    let c = csum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn node(backend: Backend, me: u8) -> Encapsulator {
    let (my_ip, my_nic, my_vtep, peer_ip, peer_nic, peer_vtep, peer_subnet) = if me == 1 {
        ([192, 168, 50, 1], LOCAL_NIC, LOCAL_VTEP, [192, 168, 50, 2], PEER_NIC, PEER_VTEP, "10.244.2.0/24")
    } else {
        ([192, 168, 50, 2], PEER_NIC, PEER_VTEP, [192, 168, 50, 1], LOCAL_NIC, LOCAL_VTEP, "10.244.1.0/24")
    };
    let local = Local {
        ipv4: Some(Ipv4Addr::from(my_ip)),
        ipv6: None,
        underlay_mac: Some(my_nic),
        vtep_mac: Some(my_vtep),
        vtep_mac_v6: None,
    };
    let lease = Lease {
        subnet: peer_subnet.parse().unwrap(),
        public_ip: IpAddr::V4(Ipv4Addr::from(peer_ip)),
        vtep_mac: Some(peer_vtep),
        underlay_mac: Some(peer_nic),
    };
    Encapsulator::new(backend, local, vec![lease], None).unwrap()
}

fn vxlan_backend() -> Backend {
    Backend::Vxlan { config: vxlan::Config::default(), mtu: 1450 }
}

fn kind(r: Result<Vec<u8>>) -> (&'static str, usize) {
    match r {
        Err(Error::Decap { kind, offset, .. }) => (kind, offset),
        other => panic!("expected a decap error, got {other:?}"),
    }
}

#[test]
fn vxlan_frame_layout_matches_the_kernel() {
    let a = node(vxlan_backend(), 1);
    let inner = inner_udp();
    let f = a.encap(&inner, 0x1017, 0, Link::Ethernet).unwrap();
    assert_eq!(f.len(), 14 + 50 + inner.len());
    assert_eq!(&f[0..6], &PEER_NIC);
    assert_eq!(&f[6..12], &LOCAL_NIC);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    // version/IHL, TOS = ECT(0) for inner CE, total length, ID, no DF, TTL 64, UDP
    assert_eq!(&f[14..24], &[0x45, 0x02, 0, 82, 0x10, 0x17, 0, 0, 64, 17]);
    assert_eq!(&f[26..34], &[192, 168, 50, 1, 192, 168, 50, 2]);
    assert!(csum::verify(csum::sum(0, &f[14..34])));
    let sport = u16::from_be_bytes([f[34], f[35]]);
    assert!((32768..60999).contains(&sport));
    assert_eq!(&f[36..40], &[0x21, 0x18, 0, 62]);
    assert_ne!(&f[40..42], &[0, 0]);
    assert_eq!(&f[42..50], &[0x08, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&f[50..56], &PEER_VTEP);
    assert_eq!(&f[56..62], &LOCAL_VTEP);
    assert_eq!(&f[62..64], &[0x08, 0x00]);
    assert_eq!(&f[64..], &inner[..]);
    // the receiving node gets the inner packet back
    let b = node(vxlan_backend(), 2);
    assert_eq!(b.decap(&f, Link::Ethernet).unwrap(), inner);
    // the sender does not accept its own frame: the outer destination is not itself
    assert_eq!(kind(a.decap(&f, Link::Ethernet)), ("outer_dst_mac", 0));
}

#[test]
fn vxlan_without_checksum_and_raw_ip() {
    let cfg = vxlan::Config { udp_checksum: false, ..vxlan::Config::default() };
    let a = node(Backend::Vxlan { config: cfg, mtu: 1450 }, 1);
    let f = a.encap(&inner_udp(), 1, 0, Link::Ip).unwrap();
    assert_eq!(f[0], 0x45);
    assert_eq!(&f[26..28], &[0, 0]);
    let b = node(Backend::Vxlan { config: cfg, mtu: 1450 }, 2);
    assert_eq!(b.decap(&f, Link::Ip).unwrap(), inner_udp());
}

#[test]
fn vxlan_source_port_is_per_flow() {
    let a = node(vxlan_backend(), 1);
    let one = a.encap(&inner_udp(), 1, 0, Link::Ip).unwrap();
    let two = a.encap(&inner_udp(), 2, 0, Link::Ip).unwrap();
    assert_eq!(&one[20..22], &two[20..22]);
    let mut other = inner_udp();
    other[21] = 0x3a; // another source port
    let c = csum::checksum(&{
        let mut h = other[..20].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    other[10..12].copy_from_slice(&c.to_be_bytes());
    let three = a.encap(&other, 3, 0, Link::Ip).unwrap();
    assert_ne!(&one[20..22], &three[20..22]);
}

#[test]
fn vxlan_decap_rejections() {
    let a = node(vxlan_backend(), 1);
    let b = node(vxlan_backend(), 2);
    let good = a.encap(&inner_udp(), 7, 0, Link::Ethernet).unwrap();
    // payload edits zero the UDP checksum (allowed over IPv4) so that the later checks are reached
    let with = |at: usize, v: u8| {
        let mut f = good.clone();
        if at >= 42 {
            f[40] = 0;
            f[41] = 0;
        }
        f[at] = v;
        b.decap(&f, Link::Ethernet)
    };
    assert_eq!(kind(with(42, 0x00)), ("vxlan_flags", 42));
    assert_eq!(kind(with(42, 0x0c)), ("vxlan_reserved", 42));
    assert_eq!(kind(with(49, 1)), ("vxlan_reserved", 49));
    assert_eq!(kind(with(48, 2)), ("vni", 46));
    assert_eq!(kind(with(50, 0x04)), ("inner_dst_mac", 50));
    assert_eq!(kind(with(40, good[40] ^ 0x55)), ("udp_checksum", 40));
    assert_eq!(kind(with(37, 0x35)), ("udp_port", 36));
    assert_eq!(kind(with(23, 6)), ("outer_ip_checksum", 24));
    for cut in [0, 10, 20, 40, 45, 55, 70] {
        let (k, _) = kind(b.decap(&good[..cut], Link::Ethernet));
        assert!(k == "truncated" || k == "udp_length" || k == "outer_ip_length", "{cut}: {k}");
    }
    // a zero UDP checksum is fine over IPv4
    let mut zero = good.clone();
    zero[40] = 0;
    zero[41] = 0;
    assert!(b.decap(&zero, Link::Ethernet).is_ok());
    // loop: inner source is the receiver's own MAC
    let mut looped = good.clone();
    looped[56..62].copy_from_slice(&PEER_VTEP);
    let mut sum_fixed = looped.clone();
    sum_fixed[40] = 0;
    sum_fixed[41] = 0;
    assert_eq!(kind(b.decap(&sum_fixed, Link::Ethernet)), ("inner_src_mac", 56));
}

#[test]
fn vxlan_outer_ce_marks_inner_ect() {
    let b = node(vxlan_backend(), 2);
    let a = node(vxlan_backend(), 1);
    let mut inner = inner_udp();
    inner[1] = 0x02; // ECT(0)
    inner[10] = 0;
    inner[11] = 0;
    let c = csum::checksum(&inner[..20]);
    inner[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = a.encap(&inner, 1, 0, Link::Ip).unwrap();
    f[1] = 0x03; // CE on the outer
    f[10] = 0;
    f[11] = 0;
    let c = csum::checksum(&f[..20]);
    f[10..12].copy_from_slice(&c.to_be_bytes());
    let out = b.decap(&f, Link::Ip).unwrap();
    assert_eq!(out[1], 0x03);
    assert!(csum::verify(csum::sum(0, &out[..20])));
    // CE over not-ECT is dropped
    let mut plain = inner_udp();
    plain[1] = 0;
    plain[10] = 0;
    plain[11] = 0;
    let c = csum::checksum(&plain[..20]);
    plain[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = a.encap(&plain, 1, 0, Link::Ip).unwrap();
    f[1] = 0x03;
    f[10] = 0;
    f[11] = 0;
    let c = csum::checksum(&f[..20]);
    f[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(kind(b.decap(&f, Link::Ip)).0, "ecn");
}

#[test]
fn vxlan_unknown_destination_and_oversize() {
    let a = node(vxlan_backend(), 1);
    let mut inner = inner_udp();
    inner[18] = 9;
    assert_eq!(kind(a.encap(&inner, 1, 0, Link::Ip)), ("no_route", 16));
    let mut big = vec![0u8; 1451];
    big[..20].copy_from_slice(&inner_udp()[..20]);
    assert_eq!(kind(a.encap(&big, 1, 0, Link::Ip)).0, "oversize");
}

fn udp_backend() -> Backend {
    Backend::Udp(udp::Config { tun_addr: Ipv4Addr::new(10, 244, 1, 0), ..udp::Config::default() })
}

#[test]
fn udp_backend_frames() {
    let a = node(udp_backend(), 1);
    let inner = inner_udp();
    let f = a.encap(&inner, 0, 0, Link::Ethernet).unwrap();
    assert_eq!(f.len(), 14 + 28 + inner.len());
    assert_eq!(&f[14..24], &[0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 17]);
    assert_eq!(&f[34..40], &[0x20, 0x5d, 0x20, 0x5d, 0, 40]);
    // payload: the inner packet with TTL 62 and the patched checksum
    assert_eq!(f[42 + 8], 62);
    assert!(csum::verify(csum::sum(0, &f[42..62])));
    let b = node(udp_backend(), 2);
    let back = b.decap(&f, Link::Ethernet).unwrap();
    assert_eq!(back[8], 61);
    assert_eq!(&back[..8], &inner[..8]);
    assert_eq!(&back[12..], &inner[12..]);
    assert!(csum::verify(csum::sum(0, &back[..20])));
}

#[test]
fn udp_backend_drops_and_answers() {
    let a = node(udp_backend(), 1);
    let mut ttl1 = inner_udp();
    ttl1[8] = 1;
    assert_eq!(kind(a.encap(&ttl1, 0, 0, Link::Ip)), ("ttl_expired", 8));
    let mut lost = inner_udp();
    lost[18] = 77;
    lost[8] = 1; // route lookup comes before the TTL
    assert_eq!(kind(a.encap(&lost, 0, 0, Link::Ip)), ("net_unreachable", 16));
    let icmp = a.net_unreachable(&lost).unwrap();
    assert_eq!(&icmp[12..16], &[10, 244, 1, 0]);
    assert_eq!(a.net_unreachable(&inner_udp()), None);
    let b = node(udp_backend(), 2);
    let f = a.encap(&inner_udp(), 0, 0, Link::Ip).unwrap();
    let mut short = f.clone();
    short.truncate(28 + 19);
    short[2..4].copy_from_slice(&47u16.to_be_bytes());
    short[24..26].copy_from_slice(&27u16.to_be_bytes());
    short[10] = 0;
    short[11] = 0;
    let c = csum::checksum(&short[..20]);
    short[10..12].copy_from_slice(&c.to_be_bytes());
    short[26] = 0;
    short[27] = 0;
    assert_eq!(kind(b.decap(&short, Link::Ip)).0, "truncated");
}

#[test]
fn host_gw_is_routing_only() {
    let a = node(Backend::HostGw { mtu: 1500 }, 1);
    let f = a.encap(&inner_udp(), 0, 0, Link::Ethernet).unwrap();
    assert_eq!(&f[0..6], &PEER_NIC);
    assert_eq!(&f[14..], &inner_udp()[..]);
    let b = node(Backend::HostGw { mtu: 1500 }, 2);
    assert_eq!(b.decap(&f, Link::Ethernet).unwrap(), inner_udp());
}

#[test]
fn batches_number_ip_ids() {
    let a = node(vxlan_backend(), 1);
    let mut bad = inner_udp();
    bad[18] = 99;
    let out = a.encap_batch(&[inner_udp(), bad, inner_udp()], 10, 0, Link::Ip);
    assert_eq!(&out[0].as_ref().unwrap()[4..6], &[0, 10]);
    assert!(out[1].is_err());
    assert_eq!(&out[2].as_ref().unwrap()[4..6], &[0, 11]);
    let b = node(vxlan_backend(), 2);
    let frames: Vec<Vec<u8>> = out.into_iter().filter_map(Result::ok).collect();
    assert!(b.decap_batch(&frames, Link::Ip).iter().all(Result::is_ok));
}

#[test]
fn garbage_never_panics() {
    let nodes = [node(vxlan_backend(), 2), node(udp_backend(), 2), node(Backend::HostGw { mtu: 1500 }, 2)];
    let mut seed = 0x1234_5678u32;
    for len in 0..200usize {
        let mut buf = vec![0u8; len];
        for b in &mut buf {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = seed as u8;
        }
        for n in &nodes {
            for link in [Link::Ethernet, Link::Ip] {
                let _ = n.decap(&buf, link);
                let _ = n.encap(&buf, 0, 0, link);
            }
        }
    }
}

/// Decodes a hex string (test data only).
fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A frame captured from Linux 6.18's `flannel.1` (`vxlan id 1 dstport 8472 nolearning udpcsum`,
/// TX offload off) for an inner UDP packet with TOS 0x03 (CE): kubenat builds the same bytes once
/// given the kernel's two unpredictable fields, the IP ID and the flow-hashed source port.
#[test]
fn vxlan_matches_a_frame_captured_from_the_kernel() {
    let inner = hex("450300211234400040110fa40af401050af402050fa00035000d933b68656c6c6f");
    let kernel = hex(concat!(
        "0200000000020200000000010800450200535f7d0000401135c7c0a83201c0a83202c60a2118003f35a2",
        "080000000000010002bb0000000102aa000000010800450300211234400040110fa40af401050af40205",
        "0fa00035000d933b68656c6c6f"
    ));
    let a = node(vxlan_backend(), 1);
    let mut ours = a.encap(&inner, 0x5f7d, 0, Link::Ethernet).unwrap();
    let sport = u16::from_be_bytes([kernel[34], kernel[35]]);
    assert!((32768..60999).contains(&sport));
    ours[34..36].copy_from_slice(&kernel[34..36]);
    let (src, dst) = (IpAddr::V4(Ipv4Addr::new(192, 168, 50, 1)), IpAddr::V4(Ipv4Addr::new(192, 168, 50, 2)));
    crate::packet::udp::Packet::new_unchecked(&mut ours[34..]).fill_checksum(src, dst);
    assert_eq!(ours, kernel);
    assert_eq!(node(vxlan_backend(), 2).decap(&kernel, Link::Ethernet).unwrap(), inner);
}

/// The same packet from a `noudpcsum` device: checksum 0.
#[test]
fn vxlan_noudpcsum_matches_the_kernel() {
    let inner = hex("450300211234400040110fa40af401050af402050fa00035000d933b68656c6c6f");
    let kernel = hex(concat!(
        "020000000002020000000001080045020053f6db000040119e68c0a83201c0a83202c60a2118003f0000",
        "080000000000010002bb0000000102aa000000010800450300211234400040110fa40af401050af40205",
        "0fa00035000d933b68656c6c6f"
    ));
    let cfg = vxlan::Config { udp_checksum: false, ..vxlan::Config::default() };
    let a = node(Backend::Vxlan { config: cfg, mtu: 1450 }, 1);
    let mut ours = a.encap(&inner, 0xf6db, 0, Link::Ethernet).unwrap();
    ours[34..36].copy_from_slice(&kernel[34..36]);
    assert_eq!(ours, kernel);
}

/// Every single-byte change of valid frames, at every offset and for every value: decap either
/// succeeds or names an offset inside the frame; it never panics.
#[test]
fn every_single_byte_mutation_is_handled() {
    let backends = [vxlan_backend(), udp_backend(), Backend::HostGw { mtu: 1500 }];
    for backend in backends {
        let a = node(backend, 1);
        let b = node(backend, 2);
        for link in [Link::Ethernet, Link::Ip] {
            let good = a.encap(&inner_udp(), 9, 0, link).unwrap();
            for at in 0..good.len() {
                for v in 0..=255u8 {
                    let mut f = good.clone();
                    f[at] = v;
                    match b.decap(&f, link) {
                        Ok(inner) => assert!(inner.len() <= f.len()),
                        Err(Error::Decap { offset, .. }) => assert!(offset < f.len(), "{at} {v}: offset {offset}"),
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
            }
        }
    }
}
