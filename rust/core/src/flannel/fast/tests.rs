//! The batch paths against the single-packet ones: same bytes, same errors, for random and
//! mangled packets under several configurations.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::flannel::{Lease, Local, Mac};
use crate::packet::checksum as csum;

/// SplitMix64: deterministic test inputs.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn mac(node: u8, vtep: bool) -> Mac {
    [0x02, if vtep { 0xaa } else { 0 }, 0, 0, 0, node]
}

fn node(me: u8, config: vxlan::Config, mtu: usize, v6_peer: bool) -> Encapsulator {
    let local = Local {
        ipv4: Some(Ipv4Addr::new(192, 168, 50, me)),
        ipv6: Some("fd00::1".parse().unwrap()),
        underlay_mac: Some(mac(me, false)),
        vtep_mac: Some(mac(me, true)),
        vtep_mac_v6: None,
    };
    let mut leases: Vec<Lease> = (1..=6u8)
        .filter(|&n| n != me)
        .map(|n| Lease {
            subnet: format!("10.244.{n}.0/24").parse().unwrap(),
            public_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 50, n)),
            vtep_mac: Some(mac(n, true)),
            underlay_mac: (n != 5).then_some(mac(n, false)),
        })
        .collect();
    // A /28 lease, one without a VTEP MAC, one behind an IPv6 underlay.
    leases.push(Lease {
        subnet: "10.245.0.16/28".parse().unwrap(),
        public_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 50, 30)),
        vtep_mac: Some(mac(30, true)),
        underlay_mac: Some(mac(30, false)),
    });
    leases.push(Lease {
        subnet: "10.246.0.0/24".parse().unwrap(),
        public_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 50, 31)),
        vtep_mac: None,
        underlay_mac: Some(mac(31, false)),
    });
    if v6_peer {
        leases.push(Lease {
            subnet: "10.247.0.0/24".parse().unwrap(),
            public_ip: "fd00::2".parse().unwrap(),
            vtep_mac: Some(mac(32, true)),
            underlay_mac: Some(mac(32, false)),
        });
    }
    Encapsulator::new(Backend::Vxlan { config, mtu }, local, leases, None).unwrap()
}

/// A random inner packet: mostly well-formed IPv4 to a lease, sometimes not.
fn packet(g: &mut Gen) -> Vec<u8> {
    let payload = g.below(120) as usize;
    let opts = if g.below(8) == 0 { 4 * g.below(3) as usize } else { 0 };
    let hl = 20 + opts;
    let mut p = vec![0u8; hl + payload];
    for b in p.iter_mut() {
        *b = g.byte();
    }
    p[0] = 0x40 | (hl / 4) as u8;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[6] = if g.below(6) == 0 { g.byte() } else { 0x40 };
    p[7] = if g.below(6) == 0 { g.byte() } else { 0 };
    p[9] = [6, 17, 1, 132, 136, 47][g.below(6) as usize];
    let dst = match g.below(10) {
        0 => [10, 245, 0, 16 + g.below(20) as u8],
        1 => [10, 246, 0, g.byte()],
        2 => [10, 247, 0, g.byte()],
        3 => [8, 8, g.byte(), g.byte()],
        _ => [10, 244, 1 + g.below(6) as u8, g.byte()],
    };
    p[16..20].copy_from_slice(&dst);
    p[10..12].copy_from_slice(&[0, 0]);
    let c = csum::checksum(&p[..hl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    match g.below(40) {
        0 => p.truncate(g.below(p.len() as u64 + 1) as usize),
        1 => p[0] = g.byte(),
        2 => p[0] = 0x60,
        _ => {}
    }
    p
}

/// Lays packets out in one buffer with random gaps; returns (data, offsets, lengths).
fn lay_out(g: &mut Gen, packets: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>, Vec<u32>) {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    let mut lengths = Vec::new();
    for p in packets {
        let gap = g.below(3) as usize;
        data.resize(data.len() + gap, 0xee);
        offsets.push(data.len() as u64);
        lengths.push(p.len() as u32);
        data.extend_from_slice(p);
    }
    (data, offsets, lengths)
}

fn encap_all(
    enc: &Encapsulator,
    packets: &[Vec<u8>],
    g: &mut Gen,
    id: u16,
    mark: u32,
    link: Link,
) -> Vec<Result<Vec<u8>>> {
    let (data, offsets, lengths) = lay_out(g, packets);
    let n = packets.len();
    let mut out = vec![0u8; FastPath::encap_capacity(n, data.len())];
    let (mut oo, mut ol) = (vec![0u64; n], vec![0u32; n]);
    let fp = FastPath::new(enc, link, mark);
    let mut failures = fp.encap_buffer(&data, &offsets, &lengths, id, mark, &mut out, &mut oo, &mut ol).unwrap();
    failures.reverse();
    (0..n)
        .map(|i| match failures.last() {
            Some((j, _)) if *j == i => Err(failures.pop().unwrap().1),
            _ => Ok(out[oo[i] as usize..oo[i] as usize + ol[i] as usize].to_vec()),
        })
        .collect()
}

fn decap_all(enc: &Encapsulator, frames: &[Vec<u8>], g: &mut Gen, link: Link) -> Vec<Result<Vec<u8>>> {
    let (data, offsets, lengths) = lay_out(g, frames);
    let n = frames.len();
    let mut out = vec![0u8; data.len()];
    let (mut oo, mut ol) = (vec![0u64; n], vec![0u32; n]);
    let fp = FastPath::new(enc, link, 0);
    let mut failures = fp.decap_buffer(&data, &offsets, &lengths, &mut out, &mut oo, &mut ol).unwrap();
    failures.reverse();
    (0..n)
        .map(|i| match failures.last() {
            Some((j, _)) if *j == i => Err(failures.pop().unwrap().1),
            _ => Ok(out[oo[i] as usize..oo[i] as usize + ol[i] as usize].to_vec()),
        })
        .collect()
}

fn mangle(g: &mut Gen, f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    match g.below(12) {
        0 if !f.is_empty() => {
            let at = g.below(f.len() as u64) as usize;
            f[at] ^= 1 << g.below(8);
        }
        1 => f.truncate(g.below(f.len() as u64 + 1) as usize),
        2 => f.extend_from_slice(&[0, 0, 0]),
        3 if f.len() > 15 => f[15] |= 3, // outer CE
        _ => {}
    }
    f
}

fn check(config: vxlan::Config, mtu: usize, link: Link, mark: u32, seed: u64) {
    let a = node(1, config, mtu, true);
    let b = node(2, config, mtu, true);
    let mut g = Gen(seed);
    let packets: Vec<Vec<u8>> = (0..3000).map(|_| packet(&mut g)).collect();
    let slow = a.encap_batch(&packets, 0xfff0, mark, link);
    let fast = encap_all(&a, &packets, &mut g, 0xfff0, mark, link);
    assert_eq!(slow.len(), fast.len());
    for (i, (s, f)) in slow.iter().zip(&fast).enumerate() {
        assert_eq!(s, f, "packet {i}: {:02x?}", packets[i]);
    }
    assert!(fast.iter().filter(|r| r.is_ok()).count() > 1000, "too few packets encapsulated");
    // The fast path itself took most of them (unless a GBP mark sends all to the slow path).
    let fp = FastPath::new(&a, link, mark);
    let mut buf = vec![0u8; 2000];
    let took = packets
        .iter()
        .filter(|p| {
            match link {
                Link::Ethernet => fp.encap_one::<14>(p, 0, &mut 0, &mut buf),
                Link::Ip => fp.encap_one::<0>(p, 0, &mut 0, &mut buf),
            }
            .is_some()
        })
        .count();
    assert!(took > 1000 || (config.gbp && mark != 0), "fast path took only {took}");
    // What node 2 receives: its frames, some mangled, plus frames for other nodes.
    let frames: Vec<Vec<u8>> = slow.iter().flatten().map(|f| mangle(&mut g, f)).collect();
    let slow = b.decap_batch(&frames, link);
    let fast = decap_all(&b, &frames, &mut g, link);
    for (i, (s, f)) in slow.iter().zip(&fast).enumerate() {
        assert_eq!(s, f, "frame {i}: {:02x?}", frames[i]);
    }
    assert!(fast.iter().filter(|r| r.is_ok()).count() > 50, "too few frames decapsulated");
    let fp = FastPath::new(&b, link, 0);
    let took = frames.iter().filter(|f| fp.decap_one(f, &mut buf).is_some()).count();
    // (frames with GBP fields set take the single-packet path)
    assert!(took > 50 || (config.gbp && mark != 0), "fast decap took only {took}");
}

#[test]
fn encap_and_decap_equal_the_single_packet_path() {
    let base = vxlan::Config::default();
    check(base, 1450, Link::Ethernet, 0, 1);
    check(base, 1450, Link::Ip, 0, 2);
    check(vxlan::Config { udp_checksum: false, hash_seed: 77, ..base }, 0, Link::Ethernet, 0, 3);
    check(vxlan::Config { gbp: true, vni: 0x12_3456, ..base }, 100, Link::Ethernet, 0x0048_1234, 4);
    check(vxlan::Config { gbp: true, port: 4789, port_range: (1000, 1001), ..base }, 1450, Link::Ip, 0, 5);
}

#[test]
fn other_backends_take_the_single_packet_path() {
    let a = node(1, vxlan::Config::default(), 1450, false);
    let udp = Encapsulator::new(
        Backend::Udp(crate::flannel::udp::Config::default()),
        *a.local(),
        a.leases().leases().to_vec(),
        None,
    )
    .unwrap();
    let fp = FastPath::new(&udp, Link::Ethernet, 0);
    assert!(!fp.is_fast());
    let mut g = Gen(9);
    let packets: Vec<Vec<u8>> = (0..500).map(|_| packet(&mut g)).collect();
    let slow = udp.encap_batch(&packets, 1, 0, Link::Ethernet);
    assert_eq!(slow, encap_all(&udp, &packets, &mut g, 1, 0, Link::Ethernet));
}

#[test]
fn bad_spans_and_small_buffers_are_errors() {
    let a = node(1, vxlan::Config::default(), 1450, false);
    let fp = FastPath::new(&a, Link::Ethernet, 0);
    assert!(fp.is_fast());
    let data = [0u8; 10];
    let mut out = [0u8; 1000];
    let (mut oo, mut ol) = ([0u64; 1], [0u32; 1]);
    let e = fp.encap_buffer(&data, &[5], &[6], 0, 0, &mut out, &mut oo, &mut ol).unwrap_err();
    assert!(e.to_string().contains("offsets[0]"), "{e}");
    let e = fp.encap_buffer(&data, &[u64::MAX], &[1], 0, 0, &mut out, &mut oo, &mut ol).unwrap_err();
    assert!(e.to_string().contains("offsets[0]"), "{e}");
    let e = fp.encap_buffer(&data, &[0, 1], &[1], 0, 0, &mut out, &mut oo, &mut ol).unwrap_err();
    assert!(e.to_string().contains("equal"), "{e}");
    let e = fp.encap_buffer(&data, &[0], &[10], 0, 0, &mut out[..50], &mut oo, &mut ol).unwrap_err();
    assert!(e.to_string().contains("out"), "{e}");
    let e = fp.decap_buffer(&data, &[0], &[10], &mut out[..5], &mut oo, &mut ol).unwrap_err();
    assert!(e.to_string().contains("out"), "{e}");
}

#[test]
fn wide_sum_equals_the_rfc1071_sum() {
    let mut g = Gen(5);
    for _ in 0..2000 {
        let n = g.below(300) as usize;
        let d: Vec<u8> = (0..n).map(|_| g.byte()).collect();
        assert_eq!(fold64(sum_words(&d)), csum::fold(csum::sum(0, &d)), "{d:02x?}");
    }
    assert_eq!(fold64(sum_words(&[0xff; 4096])), 0xffff);
    assert_eq!(fold64(sum_words(&[])), 0);
}
