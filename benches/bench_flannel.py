"""flannel encap/decap throughput: kubenat's batch API against per-packet calls and scapy.

Run: ``PYTHONPATH=python python3 benches/bench_flannel.py [N]``. Prints packets per second and
ratios measured in the same run (no absolute thresholds).
"""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Callable

from kubenat.flannel import Lease, NetConf, Overlay


def overlays(btype: str) -> tuple[Overlay, Overlay]:
    conf = NetConf.parse(f'{{"Network": "10.244.0.0/16", "Backend": {{"Type": "{btype}"}}}}')
    vx = btype == "vxlan"
    leases = [
        Lease(
            ipaddress.IPv4Network(f"10.244.{n}.0/24"),
            ipaddress.IPv4Address(f"192.168.50.{n}"),
            btype,
            f"02:aa:00:00:00:{n:02x}" if vx else None,
            1 if vx else None,
            underlay_mac=f"02:00:00:00:00:{n:02x}",
        )
        for n in range(1, 201)
    ]
    a = Overlay(conf, leases[0], leases[1:], underlay_mac="02:00:00:00:00:01")
    b = Overlay(conf, leases[1], [leases[0], *leases[2:]], underlay_mac="02:00:00:00:00:02")
    return a, b


def packets(n: int) -> list[bytes]:
    from scapy.layers.inet import IP, TCP

    template = [
        bytes(
            IP(src="10.244.1.5", dst=f"10.244.{2 + i % 199}.{i % 250}", ttl=63)
            / TCP(sport=1024 + i, dport=80)
        )
        for i in range(256)
    ]
    return [template[i % 256] for i in range(n)]


def rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    pkts = packets(n)
    for btype in ("vxlan", "udp"):
        a, b = overlays(btype)
        a.encap(pkts[0])  # build the Rust encapsulator outside the timing
        batch = rate(lambda a=a: a.encap_batch(pkts), n)
        single = rate(lambda a=a: [a.encap(p) for p in pkts], n)
        # decap what node b receives: the frames for its subnet
        to_b = [p for p in pkts if p[18] == 2] * 199
        frames = [f for f in a.encap_batch(to_b) if isinstance(f, bytes)]
        b.decap(frames[0])
        dbatch = rate(lambda b=b, frames=frames: b.decap_batch(frames), len(frames))
        ratio = batch / single
        print(
            f"{btype:5} encap_batch {batch:12,.0f} pkt/s  per-call {single:12,.0f} pkt/s  ratio {ratio:4.1f}x"
        )
        print(f"{btype:5} decap_batch {dbatch:12,.0f} pkt/s")
    try:
        from kubenat.packets import flannel_vxlan
    except ImportError:
        return
    m = 2000
    a, _ = overlays("vxlan")
    scapy_rate = rate(
        lambda: [
            bytes(
                flannel_vxlan(
                    p,
                    outer_src="192.168.50.1",
                    outer_dst="192.168.50.2",
                    vtep_src="02:aa:00:00:00:01",
                    vtep_dst="02:aa:00:00:00:02",
                )
            )
            for p in pkts[:m]
        ],
        m,
    )
    batch = rate(lambda: a.encap_batch(pkts), n)
    print(f"vxlan scapy build  {scapy_rate:12,.0f} pkt/s   kubenat batch / scapy {batch / scapy_rate:8.0f}x")


if __name__ == "__main__":
    main()
