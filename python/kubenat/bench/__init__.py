"""``kubenat bench``: the compiled classifier against its baselines, all measured in one run.

For each ruleset size it measures the compiled batch path (one thread and ``threads``), the
single-packet Python call, the plain Rust evaluator (linear first-match walk), a pure-Python
evaluator on a small sample, and — as root — the kernel in throwaway namespaces; plus parse +
compile time and the compiled structures' bytes per service. VXLAN encap/decap rates are
measured once. :func:`run` returns plain data; :mod:`kubenat.bench.report` prints and draws it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kubenat import Classifier, Ruleset
from kubenat.bench import baselines, workload

DEFAULT_SIZES = (100, 1_000, 10_000, 20_000, 100_000)
QUICK_SIZES = (100, 1_000, 10_000)

# Targets the figures are reported against (never asserted).
TARGETS = {
    "batch_mpps_10k": 50.0,
    "scaling_20k": 0.85,
    "scaling_100k": 0.5,
    "single_call_ns": 300.0,
    "parse_compile_10k_ms": 200.0,
    "bytes_per_service": 128.0,
    "vxlan_encap_mpps": 100.0,
    "vs_python": 5000.0,
}


@dataclass
class Row:
    """Measurements at one ruleset size."""

    services: int
    rules: int
    parse_ms: float
    compile_ms: float
    bytes_per_service: float
    dispatch_bytes_per_service: float
    batch_mpps: float
    batch_threads_mpps: float
    threads: int
    single_call_ns: float
    plain_mpps: float
    python_pps: float
    python_kind: str
    kernel_pps: float | None
    kernel_note: str
    consistent: bool
    dnat_share: float
    notes: list[str] = field(default_factory=list)


def _measure(
    services: int,
    endpoints: int,
    n: int,
    threads: int,
    plain_sample: int,
    python_sample: int,
    kernel: bool,
    step: Callable[[str], None],
) -> Row:
    step(f"{services} services: generate")
    text = workload.ruleset_text(services, endpoints)
    step(f"{services} services: parse + compile")
    start = time.perf_counter()
    ruleset = Ruleset.parse(text)
    parsed = time.perf_counter()
    c = Classifier(ruleset, **workload.NODE)
    compiled = time.perf_counter()
    mem = c.memory()
    src, dst, proto, sport, dport = workload.packets(services, n)
    step(f"{services} services: compiled batch")
    c.classify_batch(src[:1000], dst[:1000], proto[:1000], sport[:1000], dport[:1000], seed=1)
    result: dict[str, Any] = {}

    def batch() -> None:
        result.update(c.classify_batch(src, dst, proto, sport, dport, seed=7))

    one = baselines.best_of(batch, 3)
    multi = baselines.best_of(
        lambda: c.classify_batch(src, dst, proto, sport, dport, seed=7, threads=threads), 3
    )
    step(f"{services} services: single call")
    f = c.classify
    s0, d0 = int(src[0]), int(dst[0])
    calls = 20_000

    def single() -> None:
        for _ in range(calls):
            f(s0, d0, 6, 1234, 80, None, 1)

    single_ns = baselines.best_of(single, 3) / calls * 1e9
    step(f"{services} services: plain evaluator")
    k = min(plain_sample, n)
    start_plain = time.perf_counter()
    plain = c.classify_batch(src[:k], dst[:k], proto[:k], sport[:k], dport[:k], seed=7, engine="plain")
    plain_s = time.perf_counter() - start_plain
    consistent = all(
        (plain[name] == result[name][:k]).all() for name in ("verdict", "dst", "dport", "src", "mark")
    )
    step(f"{services} services: pure Python")
    m = min(python_sample, n)
    py_pps, py_kind = baselines.reference_rate(text, src[:m], dst[:m], dport[:m])
    kernel_pps: float | None = None
    kernel_note = "skipped"
    if kernel:
        step(f"{services} services: kernel")
        kernel_pps, kernel_note = baselines.kernel_rate(text, src[:200], dst[:200], dport[:200])
    return Row(
        services=services,
        rules=c.rule_count,
        parse_ms=(parsed - start) * 1e3,
        compile_ms=(compiled - parsed) * 1e3,
        bytes_per_service=mem["total"] / services,
        dispatch_bytes_per_service=mem["dispatch"] / services,
        batch_mpps=n / one / 1e6,
        batch_threads_mpps=n / multi / 1e6,
        threads=threads,
        single_call_ns=single_ns,
        plain_mpps=k / plain_s / 1e6,
        python_pps=py_pps,
        python_kind=py_kind,
        kernel_pps=kernel_pps,
        kernel_note=kernel_note,
        consistent=bool(consistent),
        dnat_share=float((result["nat"] & 1).mean()),
    )


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    endpoints: int = 4,
    packets: int = 1_000_000,
    threads: int = 2,
    plain_sample: int = 2_000,
    python_sample: int = 200,
    kernel: bool = True,
    vxlan: bool = True,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Runs the suite; returns ``{"rows": [...], "vxlan": {...}, "summary": {...}, ...}``."""
    rows = [
        _measure(s, endpoints, packets, threads, plain_sample, python_sample, kernel, step) for s in sizes
    ]
    enc = dec = None
    vx_note = "skipped"
    if vxlan:
        step("VXLAN encap/decap")
        enc, dec, vx_note = baselines.vxlan_rates()
    data: dict[str, Any] = {
        "packets": packets,
        "endpoints": endpoints,
        "rows": [asdict(r) for r in rows],
        "vxlan": {"encap_pps": enc, "decap_pps": dec, "note": vx_note},
    }
    data["summary"] = summary(data)
    return data


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured figure and whether it is met (None: not measured)."""
    rows = {r["services"]: r for r in data["rows"]}
    out: dict[str, Any] = {}

    def put(name: str, value: float | None, higher_is_better: bool = True) -> None:
        target = TARGETS[name]
        met = None if value is None else (value >= target if higher_is_better else value <= target)
        out[name] = {"value": value, "target": target, "met": met}

    put("batch_mpps_10k", rows[10_000]["batch_mpps"] if 10_000 in rows else None)
    base = rows.get(1_000, {}).get("batch_mpps")
    put("scaling_20k", rows[20_000]["batch_mpps"] / base if base and 20_000 in rows else None)
    put("scaling_100k", rows[100_000]["batch_mpps"] / base if base and 100_000 in rows else None)
    put("single_call_ns", min(r["single_call_ns"] for r in data["rows"]) if rows else None, False)
    if 10_000 in rows:
        put("parse_compile_10k_ms", rows[10_000]["parse_ms"] + rows[10_000]["compile_ms"], False)
        put("bytes_per_service", rows[10_000]["bytes_per_service"], False)
    else:
        put("parse_compile_10k_ms", None, False)
        put("bytes_per_service", None, False)
    enc = data["vxlan"]["encap_pps"]
    put("vxlan_encap_mpps", enc / 1e6 if enc else None)
    ratios = [r["batch_mpps"] * 1e6 / r["python_pps"] for r in data["rows"] if r["python_pps"]]
    put("vs_python", min(ratios) if ratios else None)
    return out
