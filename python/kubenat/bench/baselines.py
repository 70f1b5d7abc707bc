"""The slow baselines the compiled path is compared with: a pure-Python evaluator, the kernel
in throwaway namespaces, and flannel's VXLAN encapsulation."""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any

import numpy as np

from kubenat.bench.workload import NODE


def python_scan(text: str, src: np.ndarray, dst: np.ndarray, dport: np.ndarray) -> float:
    """Packets per second of a naive pure-Python first-match walk of the nat PREROUTING path
    (KUBE-SERVICES scanned rule by rule, then the service's statistic ladder and DNAT). Used
    when ``kubenat.reference`` (the full pure-Python evaluator) is not available."""
    services: list[tuple[int, int, str]] = []
    chains: dict[str, list[tuple[float | None, str | None, str | None]]] = {}
    for line in text.splitlines():
        if not line.startswith("-A KUBE-"):
            continue
        words = line.split()
        chain = words[1]
        target = words[words.index("-j") + 1]
        if chain == "KUBE-SERVICES" and "-d" in words:
            d = int(ipaddress.IPv4Address(words[words.index("-d") + 1]))
            services.append((d, int(words[words.index("--dport") + 1]), target))
        elif chain.startswith(("KUBE-SVC-", "KUBE-SEP-")):
            p = float(words[words.index("--probability") + 1]) if "--probability" in words else None
            to = words[words.index("--to-destination") + 1] if "--to-destination" in words else None
            chains.setdefault(chain, []).append((p, target, to))
    import random

    rnd = random.Random(1)
    start = time.perf_counter()
    for s, d, p in zip(src.tolist(), dst.tolist(), dport.tolist(), strict=True):
        for sd, sp, target in services:
            if sd == d and sp == p:
                for prob, to_chain, _ in chains[target]:
                    if prob is None or rnd.random() < prob:
                        if to_chain and to_chain.startswith("KUBE-SEP-"):
                            _ = [t for _, _, t in chains[to_chain] if t]
                            break
                break
        _ = s
    return len(src) / (time.perf_counter() - start)


def reference_rate(text: str, src: np.ndarray, dst: np.ndarray, dport: np.ndarray) -> tuple[float, str]:
    """(packets/s, which) of the pure-Python reference evaluator, or the naive scan without it."""
    try:
        from kubenat import reference  # type: ignore[attr-defined]

        evaluator = reference.Netfilter(text, **NODE)
    except Exception:
        return python_scan(text, src, dst, dport), "python scan"
    start = time.perf_counter()
    for s, d, p in zip(src.tolist(), dst.tolist(), dport.tolist(), strict=True):
        evaluator.evaluate(str(ipaddress.IPv4Address(s)), str(ipaddress.IPv4Address(d)), "tcp", 40000, p)
    return len(src) / (time.perf_counter() - start), "kubenat.reference"


def kernel_rate(text: str, src: np.ndarray, dst: np.ndarray, dport: np.ndarray) -> tuple[float | None, str]:
    """Packets answered per second by netfilter in throwaway ``kn-`` namespaces (root only)."""
    if os.geteuid() != 0:
        return None, "not root"
    try:
        from kubenat.kernel import Testbed, build_packet  # type: ignore[attr-defined]
    except ImportError as e:
        return None, f"kubenat.kernel unavailable: {e}"
    try:
        with Testbed(routes={"10.64.0.0/10": "sink", "172.16.0.0/12": "sink"}, settle=0.01) as tb:
            tb.load(text)
            pkts = [
                build_packet(
                    "tcp", str(ipaddress.IPv4Address(s)), str(ipaddress.IPv4Address(d)), 40000 + i, p
                )
                for i, (s, d, p) in enumerate(zip(src.tolist(), dst.tolist(), dport.tolist(), strict=True))
            ]
            start = time.perf_counter()
            tb.inject_batch(pkts)
            return len(pkts) / (time.perf_counter() - start), "kernel"
    except Exception as e:
        return None, f"kernel: {type(e).__name__}: {e}"


def vxlan_rates(n: int = 100_000) -> tuple[float | None, float | None, str]:
    """(encap, decap) packets/s of flannel VXLAN on 64-byte inner packets, batch API."""
    try:
        from kubenat import _core

        a = _core.Encapsulator(
            "vxlan",
            public_ip="192.168.50.1",
            underlay_mac="02:00:00:00:00:01",
            vtep_mac="02:00:00:00:01:01",
            leases=[("10.244.2.0/24", "192.168.50.2", "02:00:00:00:01:02", None)],
        )
        b = _core.Encapsulator(
            "vxlan",
            public_ip="192.168.50.2",
            underlay_mac="02:00:00:00:00:02",
            vtep_mac="02:00:00:00:01:02",
            leases=[("10.244.1.0/24", "192.168.50.1", "02:00:00:00:01:01", None)],
        )
        from kubenat import Packet

        inner = bytes(Packet.tcp(src="10.244.1.5", dst="10.244.2.5", sport=1234, dport=80, payload=b"x" * 24))
        batch = [inner] * n
        start = time.perf_counter()
        frames = a.encap_batch(batch, link="ip")
        enc = n / (time.perf_counter() - start)
        good = [f for f in frames if isinstance(f, bytes)]
        if not good:
            return enc, None, f"encap failed: {frames[0]}"
        start = time.perf_counter()
        b.decap_batch(good)
        dec = len(good) / (time.perf_counter() - start)
        return enc, dec, "Encapsulator.encap_batch/decap_batch"
    except Exception as e:
        return None, None, f"{type(e).__name__}: {e}"


def best_of(fn: Any, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
