"""kube-proxy rule building: how load and build time grow with the number of services.

Run: ``PYTHONPATH=python python3 benches/bench_proxy_build.py [N]``. Builds N and 4N services
(10 endpoints each) and prints the time ratio for 4x the input: about 4 means linear growth.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from typing import Any

from kubenat import k8s, proxy


def objects(n: int, endpoints: int = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        name = f"svc{i}"
        out.append(
            {
                "kind": "Service",
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {
                    "type": "NodePort",
                    "clusterIP": str(ipaddress.IPv4Address(0x0A600000 + i)),
                    "ports": [{"name": "http", "port": 80, "nodePort": 30000 + i % 2700}],
                },
            }
        )
        labels = {"kubernetes.io/service-name": name}
        first = 0x0AF40000 + i * endpoints
        out.append(
            {
                "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": "bench", "labels": labels},
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [str(ipaddress.IPv4Address(first + j))], "nodeName": f"n{j}"}
                    for j in range(endpoints)
                ],
                "ports": [{"name": "http", "port": 8080}],
            }
        )
    return out


def measure(n: int) -> tuple[float, float, int]:
    objs = objects(n)
    t0 = time.perf_counter()
    cluster = k8s.load(objs)
    t1 = time.perf_counter()
    text = proxy.build_text(cluster, node_name="n1", cluster_cidrs=("10.244.0.0/16",))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, text.count("\n")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    small = measure(n)
    large = measure(4 * n)
    for size, (load, build, lines) in ((n, small), (4 * n, large)):
        print(f"{size:6d} services: load {load:6.2f} s, build {build:6.2f} s, {lines} lines")
    print(f"4x services -> load x{large[0] / small[0]:.1f}, build x{large[1] / small[1]:.1f} (4.0 = linear)")


if __name__ == "__main__":
    main()
