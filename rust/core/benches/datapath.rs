//! Per-packet byte work: the NAT rewrite with incremental checksums, and flannel's VXLAN and
//! UDP encapsulation/decapsulation (single-packet path and the batch fast path).
//!
//! `cargo bench -p kubenat-core --bench datapath`; `cargo test --benches` runs each once.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use kubenat_core::flannel::fast::FastPath;
use kubenat_core::flannel::{udp, vxlan, Backend, Encapsulator, Lease, Link, Local};
use kubenat_core::packet::nat::{rewrite_nat, Rewrite};
use kubenat_core::packet::{build, Layout};

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn nat(c: &mut Criterion) {
    let pkt =
        build::tcp(ip([10, 64, 1, 5]), ip([172, 16, 0, 9]), 40000, 80).payload(vec![0u8; 24]).build().expect("builds");
    let mut buf = pkt.bytes().to_vec();
    let layout = Layout::parse(&buf, kubenat_core::packet::Link::Ip).expect("parses");
    let there = Rewrite { dst: Some(ip([10, 64, 3, 7])), dport: Some(8080), ..Rewrite::default() };
    let back = Rewrite { dst: Some(ip([172, 16, 0, 9])), dport: Some(80), ..Rewrite::default() };
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(2));
    g.bench_function("dnat_and_back", |b| {
        b.iter(|| {
            rewrite_nat(black_box(&mut buf), &layout, &there).expect("rewrites");
            rewrite_nat(black_box(&mut buf), &layout, &back).expect("rewrites");
        });
    });
    g.finish();
}

fn node(backend: Backend, me: u8) -> Encapsulator {
    let mac = |n: u8, vtep: bool| [2, if vtep { 0xaa } else { 0 }, 0, 0, 0, n];
    let local = Local {
        ipv4: Some(Ipv4Addr::new(192, 168, 50, me)),
        ipv6: None,
        underlay_mac: Some(mac(me, false)),
        vtep_mac: Some(mac(me, true)),
        vtep_mac_v6: None,
    };
    let leases = (1..=200u8)
        .filter(|&n| n != me)
        .map(|n| Lease {
            subnet: format!("10.244.{n}.0/24").parse().expect("cidr"),
            public_ip: ip([192, 168, 50, n]),
            vtep_mac: Some(mac(n, true)),
            underlay_mac: Some(mac(n, false)),
        })
        .collect();
    Encapsulator::new(backend, local, leases, None).expect("node")
}

/// 64-byte inner TCP packets from node 1's pods to node 2's, varied ports (flow hashes).
fn inner(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let sport = 1024 + (i % 50_000) as u16;
            build::tcp(ip([10, 244, 1, 5]), ip([10, 244, 2, (i % 250) as u8]), sport, 80)
                .payload(vec![0u8; 24])
                .build()
                .expect("builds")
                .bytes()
                .to_vec()
        })
        .collect()
}

fn flannel(c: &mut Criterion) {
    let backends = [
        ("vxlan", Backend::Vxlan { config: vxlan::Config::default(), mtu: 1450 }),
        ("udp", Backend::Udp(udp::Config::default())),
    ];
    let pkts = inner(4096);
    let mut g = c.benchmark_group("flannel_one");
    for (name, backend) in backends {
        let (a, b) = (node(backend, 1), node(backend, 2));
        let frame = a.encap(&pkts[0], 1, 0, Link::Ethernet).expect("encap");
        let mut out = Vec::with_capacity(2048);
        g.bench_function(BenchmarkId::new("encap", name), |bn| {
            bn.iter(|| {
                out.clear();
                a.encap_into(black_box(&pkts[0]), 1, 0, Link::Ethernet, &mut out)
            });
        });
        g.bench_function(BenchmarkId::new("decap", name), |bn| {
            bn.iter(|| {
                out.clear();
                b.decap_into(black_box(&frame), Link::Ethernet, &mut out)
            });
        });
    }
    g.finish();

    // The batch fast path over one buffer (in cache: 4096 x 64 B in, ~520 KiB out).
    let a = node(Backend::Vxlan { config: vxlan::Config::default(), mtu: 1450 }, 1);
    let b = node(Backend::Vxlan { config: vxlan::Config::default(), mtu: 1450 }, 2);
    let n = pkts.len();
    let data: Vec<u8> = pkts.concat();
    let offsets: Vec<u64> = (0..n as u64).map(|i| i * 64).collect();
    let lengths = vec![64u32; n];
    let mut out = vec![0u8; FastPath::encap_capacity(n, data.len())];
    let (mut oo, mut ol) = (vec![0u64; n], vec![0u32; n]);
    let mut g = c.benchmark_group("vxlan_batch");
    g.throughput(Throughput::Elements(n as u64));
    let fa = FastPath::new(&a, Link::Ethernet, 0);
    g.bench_function("encap", |bn| {
        bn.iter(|| fa.encap_buffer(&data, &offsets, &lengths, 1, 0, &mut out, &mut oo, &mut ol).expect("fits"));
    });
    let frames = out.clone();
    let (fo, fl) = (oo.clone(), ol.clone());
    let mut inner_out = vec![0u8; frames.len()];
    let fb = FastPath::new(&b, Link::Ethernet, 0);
    g.bench_function("decap", |bn| {
        bn.iter(|| fb.decap_buffer(&frames, &fo, &fl, &mut inner_out, &mut oo, &mut ol).expect("fits"));
    });
    g.finish();
}

criterion_group!(benches, nat, flannel);
criterion_main!(benches);
