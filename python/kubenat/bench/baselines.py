"""The slow baselines the compiled path is compared with — the pure-Python reference evaluator
and the kernel in throwaway namespaces — and flannel's VXLAN encapsulation rates."""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any

import numpy as np

from kubenat.bench.workload import NODE


def reference_rate(
    text: str, src: np.ndarray, dst: np.ndarray, sport: np.ndarray, budget: float = 1.0
) -> tuple[float, str, float]:
    """(packets/s, what ran, setup seconds) of the pure-Python reference evaluator
    (:class:`kubenat.reference.ReferenceNode`, which computes every ``statistic`` branch of a
    packet with its exact probability), on packets until ``budget`` seconds are spent."""
    from kubenat import reference

    start = time.perf_counter()
    node = reference.ReferenceNode(text, NODE["local"], NODE["interfaces"], NODE["routes"])
    setup = time.perf_counter() - start
    packets = [
        (str(ipaddress.IPv4Address(s)), str(ipaddress.IPv4Address(d)), p)
        for s, d, p in zip(src.tolist(), dst.tolist(), sport.tolist(), strict=True)
    ]
    done, spent = 0, 0.0
    for s, d, p in packets:
        start = time.perf_counter()
        node.outcomes(s, d, "tcp", p, 80)
        spent += time.perf_counter() - start
        done += 1
        if spent >= budget:
            break
    return done / spent, "kubenat.reference (every branch)", setup


def kernel_rate(text: str, src: np.ndarray, dst: np.ndarray, dport: np.ndarray) -> tuple[float | None, str]:
    """Packets answered per second by netfilter in throwaway ``kn-`` namespaces (root only): sent
    from a client namespace through the node to a sink and captured, so the test bed's own
    injection and capture are part of each packet's cost."""
    if os.geteuid() != 0:
        return None, "not root"
    try:
        from kubenat.kernel import Testbed, build_packet
    except ImportError as e:
        return None, f"kubenat.kernel unavailable: {e}"
    try:
        with Testbed(routes={"10.64.0.0/10": "sink", "172.16.0.0/12": "sink"}, settle=0.01) as tb:
            start = time.perf_counter()
            tb.load(text)
            loaded = time.perf_counter() - start
            pkts = [
                build_packet(
                    "tcp", str(ipaddress.IPv4Address(s)), str(ipaddress.IPv4Address(d)), 40000 + i, p
                )
                for i, (s, d, p) in enumerate(zip(src.tolist(), dst.tolist(), dport.tolist(), strict=True))
            ]
            start = time.perf_counter()
            tb.inject_batch(pkts)
            rate = len(pkts) / (time.perf_counter() - start)
            return rate, f"kernel (rules loaded in {loaded:.1f} s)"
    except Exception as e:
        return None, f"kernel: {type(e).__name__}: {e}"


def _vxlan_nodes() -> tuple[Any, Any]:
    from kubenat import _core

    def node(me: int) -> Any:
        leases = [
            (f"10.244.{n}.0/24", f"192.168.50.{n}", f"02:aa:00:00:00:{n:02x}", f"02:00:00:00:00:{n:02x}")
            for n in range(1, 201)
            if n != me
        ]
        return _core.Encapsulator(
            "vxlan",
            public_ip=f"192.168.50.{me}",
            underlay_mac=f"02:00:00:00:00:{me:02x}",
            vtep_mac=f"02:aa:00:00:00:{me:02x}",
            leases=leases,
        )

    return node(1), node(2)


def vxlan_rates(in_cache: int = 4096, large: int = 262_144, list_n: int = 50_000) -> dict[str, Any]:
    """Packets/s of flannel VXLAN on 64-byte inner TCP packets (UDP checksum on, as flannel's
    device has it): the buffer calls on a batch that stays in cache (best of many) and on one
    that does not, and the list-of-bytes batch calls."""
    from kubenat import Packet

    a, b = _vxlan_nodes()
    template = [
        bytes(
            Packet.tcp(
                src="10.244.1.5", dst=f"10.244.2.{i % 250}", sport=1024 + i, dport=80, payload=b"x" * 24
            )
        )
        for i in range(256)
    ]
    size = len(template[0])
    out: dict[str, Any] = {"inner_bytes": size, "in_cache_packets": in_cache, "large_packets": large}

    def buffer_rates(n: int, repeat: int) -> tuple[float, float]:
        data = b"".join(template[i % 256] for i in range(n))
        offsets = np.arange(n, dtype=np.uint64) * size
        lengths = np.full(n, size, np.uint32)
        frames: list[Any] = []
        enc = best_of(lambda: frames.__setitem__(slice(None), a.encap_buffer(data, offsets, lengths)), repeat)
        f, fo, fl, errors = frames
        if errors:
            raise RuntimeError(f"encap failed: {next(iter(errors.values()))}")
        dec = best_of(lambda: b.decap_buffer(f, fo, fl), repeat)
        return n / enc, n / dec

    out["encap_pps"], out["decap_pps"] = buffer_rates(in_cache, 200)
    out["encap_large_pps"], out["decap_large_pps"] = buffer_rates(large, 3)
    pkts = [template[i % 256] for i in range(list_n)]
    out["encap_list_pps"] = list_n / best_of(lambda: a.encap_batch(pkts), 3)
    good = [f for f in a.encap_batch(pkts[:list_n]) if isinstance(f, bytes)]
    out["decap_list_pps"] = len(good) / best_of(lambda: b.decap_batch(good), 3)
    out["note"] = "Encapsulator.encap_buffer/decap_buffer; list rates: encap_batch/decap_batch"
    return out


def best_of(fn: Any, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
