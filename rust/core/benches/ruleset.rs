//! Rule evaluation: parse and compile of the synthetic kube-proxy dump, the compiled classifier
//! on one packet and on a batch, and the plain evaluator on the same packet.
//!
//! `cargo bench -p kubenat-core --bench ruleset` measures 100 to 100k services; run without
//! `--bench` (as `cargo test --benches` does) each benchmark runs once at 100 services.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use kubenat_core::iptables::compile::{packet_seed, Compiled, Packet4, Scratch};
use kubenat_core::iptables::compiled::synth;
use kubenat_core::iptables::eval::Origin;
use kubenat_core::iptables::{ast::Ruleset, parse};

/// Packets per batch benchmark (a batch stays in cache, the ruleset may not).
const BATCH: usize = 4096;

/// Whether this is a measuring run (`cargo bench`) rather than a smoke run.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn sizes(full: &[u32]) -> Vec<u32> {
    if measuring() {
        full.to_vec()
    } else {
        vec![100]
    }
}

fn ruleset(services: u32) -> (String, Arc<Ruleset>) {
    let text = synth::kube_proxy_text(services, 4);
    let parsed = parse(&text).expect("the synthetic dump parses");
    (text, Arc::new(parsed))
}

fn packets(services: u32, n: usize) -> Vec<Packet4> {
    synth::packets(services, n, 7)
        .into_iter()
        .map(|(src, dst, sport, dport)| Packet4 {
            src,
            dst,
            proto: 6,
            sport,
            dport,
            tcp_flags: 0x02,
            ttl: 64,
            iface: 0,
        })
        .collect()
}

fn parse_and_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    for s in sizes(&[100, 1_000, 10_000]) {
        let (text, _) = ruleset(s);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(s), &text, |b, text| b.iter(|| parse(black_box(text))));
    }
    g.finish();
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    for s in sizes(&[100, 1_000, 10_000]) {
        let (_, rules) = ruleset(s);
        g.bench_with_input(BenchmarkId::from_parameter(s), &rules, |b, rules| {
            b.iter_batched(|| Arc::clone(rules), |r| Compiled::new(r, synth::kube_proxy_node()), BatchSize::LargeInput);
        });
    }
    g.finish();
}

fn classify(c: &mut Criterion) {
    let mut one = c.benchmark_group("classify_one");
    for s in sizes(&[1_000, 10_000, 100_000]) {
        let (_, rules) = ruleset(s);
        let compiled = Compiled::new(rules, synth::kube_proxy_node()).expect("compiles");
        let pkts = packets(s, BATCH);
        let mut scratch = Scratch::default();
        let hit = pkts.iter().find(|p| p.dst != pkts[0].dst || p.dst >> 24 != 8).copied().unwrap_or(pkts[0]);
        one.bench_function(BenchmarkId::new("compiled", s), |b| {
            b.iter(|| compiled.classify(black_box(&hit), 1, &mut scratch));
        });
        if s <= 10_000 {
            // The linear walk: every KUBE-SERVICES rule up to the service's.
            let flow = hit.to_flow();
            let origin = Origin::Interface(compiled.interfaces()[usize::from(hit.iface)].clone());
            one.bench_function(BenchmarkId::new("plain", s), |b| {
                b.iter(|| scratch.plain_netfilter(&compiled).evaluate(black_box(&flow), &origin, Some(1), false));
            });
        }
        drop(compiled);
    }
    one.finish();
    let mut batch = c.benchmark_group("classify_batch");
    batch.throughput(Throughput::Elements(BATCH as u64));
    for s in sizes(&[1_000, 10_000, 100_000]) {
        let (_, rules) = ruleset(s);
        let compiled = Compiled::new(rules, synth::kube_proxy_node()).expect("compiles");
        let pkts = packets(s, BATCH);
        let mut scratch = Scratch::default();
        batch.bench_function(BenchmarkId::new("compiled", s), |b| {
            b.iter(|| {
                let mut dnat = 0u32;
                for (i, p) in pkts.iter().enumerate() {
                    if let Ok(d) = compiled.classify(p, packet_seed(1, i as u64), &mut scratch) {
                        dnat += u32::from(d.dst != p.dst);
                    }
                }
                dnat
            });
        });
    }
    batch.finish();
}

criterion_group!(benches, parse_and_compile, classify);
criterion_main!(benches);
