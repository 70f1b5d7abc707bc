"""Packet dissection and NAT rewriting: kubenat.Packet against scapy, measured in the same run.

Run: ``PYTHONPATH=python python3 benches/bench_packets.py [N]``. Prints operations per second
and the ratio to scapy doing the same work (no absolute thresholds).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from kubenat import Packet


def rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    from scapy.layers.inet import IP, TCP

    raw = bytes(IP(src="10.0.0.1", dst="10.96.0.10") / TCP(sport=1234, dport=80) / (b"x" * 100))
    pkt = Packet.from_bytes(raw)

    def scapy_nat() -> bytes:
        s = IP(raw)
        s.dst = "10.244.1.5"
        s[TCP].dport = 8080
        del s.chksum
        del s[TCP].chksum
        return bytes(s)

    def kubenat_nat() -> bytes:
        return bytes(pkt.with_nat(dst="10.244.1.5", dport=8080))

    assert kubenat_nat() == scapy_nat(), "kubenat and scapy disagree on the rewritten bytes"
    rows = [
        ("dissect", lambda: Packet.from_bytes(raw), lambda: IP(raw)),
        ("dissect + 5-tuple", lambda: _tuple(Packet.from_bytes(raw)), lambda: _scapy_tuple(IP(raw))),
        ("NAT rewrite", kubenat_nat, scapy_nat),
    ]
    small = max(n // 20, 100)
    print(f"{'operation':<20} {'kubenat/s':>12} {'scapy/s':>10} {'ratio':>8}")
    for name, ours, theirs in rows:
        k = rate(ours, n)
        s = rate(theirs, small)
        print(f"{name:<20} {k:>12,.0f} {s:>10,.0f} {k / s:>7.0f}x")


def _tuple(p: Packet) -> tuple[object, ...]:
    return (p.src, p.dst, p.protocol, p.sport, p.dport)


def _scapy_tuple(s: object) -> tuple[object, ...]:
    from scapy.layers.inet import TCP

    ip = s
    return (ip.src, ip.dst, ip.proto, ip[TCP].sport, ip[TCP].dport)  # type: ignore[attr-defined,index]


if __name__ == "__main__":
    main()
