"""``kubenat bench``: the compiled classifier against its baselines, all measured in one run.

For each ruleset size it measures the compiled batch path (one thread and ``threads``), the
single-packet Python calls (``Classifier.classify`` and ``LeanClassifier.classify``), the plain
Rust evaluator (linear first-match walk), the pure-Python reference evaluator
(:mod:`kubenat.reference`) and — as root — the kernel in throwaway namespaces; plus parse +
compile time and the compiled structures' bytes per service. The slow baselines run up to a
size limit each (their setup alone grows to minutes: the reference parses 10k services in about
20 s, the kernel loads them in about 10 s). VXLAN encap/decap rates of the buffer calls are
measured once. :func:`run` returns plain data; :mod:`kubenat.bench.report` prints and draws it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kubenat import Classifier, LeanClassifier, Ruleset
from kubenat.bench import baselines, workload

DEFAULT_SIZES = (100, 1_000, 10_000, 20_000, 100_000)
QUICK_SIZES = (100, 1_000, 10_000)
#: Largest ruleset the pure-Python reference / the kernel are measured on by default.
REFERENCE_MAX = 10_000
KERNEL_MAX = 20_000
#: Seconds each slow engine is given per size (it classifies packets until then).
SLOW_BUDGET = 1.0

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


#: How each figure is taken.
TARGET_NOTES = {
    "batch_mpps_10k": "compiled batch, 1 thread, 10k services",
    "scaling_20k": "batch Mpps at 20k / at 1k",
    "scaling_100k": "batch Mpps at 100k / at 1k",
    "single_call_ns": "cheaper of classify / LeanClassifier.classify, 10k services (else the largest)",
    "parse_compile_10k_ms": "Ruleset.parse + Classifier, 10k services",
    "bytes_per_service": "compiled structures / services, 10k services",
    "vxlan_encap_mpps": "encap_buffer, 64-byte packets, batch in cache",
    "vs_python": "batch over pure-Python reference, smallest over sizes",
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
    lean_call_ns: float
    plain_mpps: float
    python_pps: float | None
    python_kind: str
    kernel_pps: float | None
    kernel_note: str
    consistent: bool
    dnat_share: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    """How much of the slow baselines to run."""

    plain_sample: int = 20_000
    python_sample: int = 200
    reference_max: int = REFERENCE_MAX
    kernel: bool = True
    kernel_max: int = KERNEL_MAX
    budget: float = SLOW_BUDGET


def _timed_prefix(run_one: Callable[[int, int], float], n: int, budget: float) -> tuple[int, float]:
    """Runs ``run_one(start, stop)`` (which returns the seconds it measured) on growing chunks of
    ``n`` items until the budget is spent; returns (items done, seconds)."""
    done, chunk, spent = 0, 8, 0.0
    while done < n and spent < budget:
        stop = min(n, done + chunk)
        spent += run_one(done, stop)
        done, chunk = stop, chunk * 2
    return done, spent


def _agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two engines decided a chunk alike (the same per-packet seeds draw alike)."""
    return all(bool((a[name] == b[name]).all()) for name in ("verdict", "dst", "dport", "src", "mark"))


def _single_call_ns(f: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    calls = 20_000

    def loop() -> None:
        for _ in range(calls):
            f(*args, **kwargs)

    return baselines.best_of(loop, 5) / calls * 1e9


def _measure(
    services: int, endpoints: int, n: int, threads: int, limits: Limits, step: Callable[[str], None]
) -> Row:
    step(f"{services:,} services: generate")
    text = workload.ruleset_text(services, endpoints)
    step(f"{services:,} services: parse + compile")
    start = time.perf_counter()
    ruleset = Ruleset.parse(text)
    parsed = time.perf_counter()
    c = Classifier(ruleset, **workload.NODE)
    compiled = time.perf_counter()
    del ruleset
    mem = c.memory()
    src, dst, proto, sport, dport = workload.packets(services, n)
    step(f"{services:,} services: compiled batch")
    c.classify_batch(src[:1000], dst[:1000], proto[:1000], sport[:1000], dport[:1000], seed=1)
    result: dict[str, Any] = {}

    def batch() -> None:
        result.update(c.classify_batch(src, dst, proto, sport, dport, seed=7))

    one = baselines.best_of(batch, 3)
    multi = baselines.best_of(
        lambda: c.classify_batch(src, dst, proto, sport, dport, seed=7, threads=threads), 3
    )
    step(f"{services:,} services: single calls")
    s0, d0 = int(src[0]), int(dst[0])
    single_ns = _single_call_ns(c.classify, (s0, d0, 6, 1234, 80), {"seed": 1})
    lean_ns = _single_call_ns(LeanClassifier(c).classify, (s0, d0, 6, 1234, 80, 1), {})
    step(f"{services:,} services: plain evaluator")
    agree: list[bool] = []

    def plain_run(a: int, b: int) -> float:
        cols = (src[a:b], dst[a:b], proto[a:b], sport[a:b], dport[a:b])
        start = time.perf_counter()
        r = c.classify_batch(*cols, seed=7, engine="plain")
        spent = time.perf_counter() - start
        agree.append(_agree(r, c.classify_batch(*cols, seed=7)))
        return spent

    k, plain_s = _timed_prefix(plain_run, min(limits.plain_sample, n), limits.budget)
    consistent = all(agree)
    notes: list[str] = []
    py_pps: float | None = None
    py_kind = f"skipped above {limits.reference_max:,} services"
    if services <= limits.reference_max:
        step(f"{services:,} services: pure-Python reference")
        m = min(limits.python_sample, n)
        py_pps, py_kind, py_setup = baselines.reference_rate(text, src[:m], dst[:m], sport[:m], limits.budget)
        notes.append(f"reference setup {py_setup:.1f} s")
    kernel_pps: float | None = None
    kernel_note = "skipped"
    if limits.kernel and services <= limits.kernel_max:
        step(f"{services:,} services: kernel")
        kernel_pps, kernel_note = baselines.kernel_rate(text, src[:200], dst[:200], dport[:200])
    elif limits.kernel:
        kernel_note = f"skipped above {limits.kernel_max:,}"
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
        lean_call_ns=lean_ns,
        plain_mpps=k / plain_s / 1e6,
        python_pps=py_pps,
        python_kind=py_kind,
        kernel_pps=kernel_pps,
        kernel_note=kernel_note,
        consistent=bool(consistent),
        dnat_share=float((result["nat"] & 1).mean()),
        notes=notes,
    )


def steps(sizes: Sequence[int], limits: Limits, vxlan: bool = True) -> int:
    """How many progress steps :func:`run` reports."""
    per_size = 5
    slow = sum((s <= limits.reference_max) + (limits.kernel and s <= limits.kernel_max) for s in sizes)
    return per_size * len(sizes) + slow + int(vxlan)


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    endpoints: int = 4,
    packets: int = 1_000_000,
    threads: int | None = None,
    limits: Limits | None = None,
    vxlan: bool = True,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Runs the suite; returns ``{"rows": [...], "vxlan": {...}, "summary": {...}, ...}``.
    ``threads`` defaults to the number of CPUs."""
    limits = limits or Limits()
    threads = threads or os.cpu_count() or 1
    rows = [_measure(s, endpoints, packets, threads, limits, step) for s in sizes]
    vx: dict[str, Any] = {"note": "skipped"}
    if vxlan:
        step("VXLAN encap/decap")
        vx = baselines.vxlan_rates()
    data: dict[str, Any] = {
        "packets": packets,
        "endpoints": endpoints,
        "threads": threads,
        "cpus": os.cpu_count(),
        "limits": asdict(limits),
        "rows": [asdict(r) for r in rows],
        "vxlan": vx,
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
        out[name] = {"value": value, "target": target, "met": met, "how": TARGET_NOTES[name]}

    put("batch_mpps_10k", rows[10_000]["batch_mpps"] if 10_000 in rows else None)
    base = rows.get(1_000, {}).get("batch_mpps")
    put("scaling_20k", rows[20_000]["batch_mpps"] / base if base and 20_000 in rows else None)
    put("scaling_100k", rows[100_000]["batch_mpps"] / base if base and 100_000 in rows else None)
    # The cheaper of the two calls, at 10k services when measured (else the largest size).
    at = rows.get(10_000) or (data["rows"][-1] if data["rows"] else None)
    put("single_call_ns", min(at["single_call_ns"], at["lean_call_ns"]) if at else None, False)
    if 10_000 in rows:
        put("parse_compile_10k_ms", rows[10_000]["parse_ms"] + rows[10_000]["compile_ms"], False)
        put("bytes_per_service", rows[10_000]["bytes_per_service"], False)
    else:
        put("parse_compile_10k_ms", None, False)
        put("bytes_per_service", None, False)
    enc = data["vxlan"].get("encap_pps")
    put("vxlan_encap_mpps", enc / 1e6 if enc else None)
    ratios = [r["batch_mpps"] * 1e6 / r["python_pps"] for r in data["rows"] if r["python_pps"]]
    put("vs_python", min(ratios) if ratios else None)
    return out
