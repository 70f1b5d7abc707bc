"""Netfilter evaluation: the Rust evaluator against the pure-Python reference, same run.

Run: ``PYTHONPATH=python python3 benches/bench_evaluator.py [SERVICES...]``. For kube-proxy
shaped rulesets of N services (3 endpoints each), prints packets per second for
``Netfilter.evaluate`` (sampling, no trace), ``Netfilter.outcomes`` (exact, no trace) and the
reference's exact outcomes, and the ratio Rust/reference. No thresholds: ratios only.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import kubenat
from kubenat.reference import ReferenceNode


def ruleset(services: int) -> str:
    """nat KUBE-SERVICES → KUBE-SVC-i → KUBE-SEP-i-j (statistic), with masquerade marking."""
    chains = [":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    chains += [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]", ":KUBE-POSTROUTING - [0:0]"]
    rules = [
        "-A PREROUTING -j KUBE-SERVICES",
        "-A OUTPUT -j KUBE-SERVICES",
        "-A POSTROUTING -j KUBE-POSTROUTING",
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A KUBE-POSTROUTING -j MASQUERADE",
    ]
    for i in range(services):
        vip = f"10.96.{i // 250}.{i % 250 + 1}"
        svc = f"KUBE-SVC-{i}"
        chains.append(f":{svc} - [0:0]")
        rules.append(f"-A KUBE-SERVICES -d {vip}/32 -p tcp -m tcp --dport 80 -j {svc}")
        rules.append(f"-A {svc} ! -s 10.244.0.0/16 -d {vip}/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ")
        for j, p in enumerate(["0.33333333349", "0.50000000000", None]):
            sep = f"KUBE-SEP-{i}-{j}"
            chains.append(f":{sep} - [0:0]")
            stat = f" -m statistic --mode random --probability {p}" if p else ""
            rules.append(f"-A {svc}{stat} -j {sep}")
            rules.append(f"-A {sep} -p tcp -m tcp -j DNAT --to-destination 10.{i % 200 + 1}.{j}.5:8080")
    return "*nat\n" + "\n".join(chains + rules) + "\nCOMMIT\n"


def rate(fn: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - start)


def measure(n: int) -> tuple[float, float, float]:
    """(evaluate/s, outcomes/s, reference outcomes/s) for a ruleset of n services."""
    text = ruleset(n)
    nf = kubenat.Netfilter(kubenat.Ruleset.parse(text), local_addresses=["192.168.0.2"], stateless=True)
    ref = ReferenceNode(text, ["192.168.0.2"])
    rng = random.Random(1)
    vips = [f"10.96.{i // 250}.{i % 250 + 1}" for i in (rng.randrange(n) for _ in range(1000))]
    flows = [kubenat.Flow("1.2.3.4", v, 80, sport=1000 + k) for k, v in enumerate(vips)]
    ev = rate(lambda i: nf.evaluate(flows[i % 1000], seed=i, trace=False), 3000)
    oc = rate(lambda i: nf.outcomes(flows[i % 1000], trace=False), 3000)
    rf = rate(lambda i: ref.outcomes("1.2.3.4", vips[i % 1000], "tcp", 1000 + i, 80), max(20, 3000 // n))
    return ev, oc, rf


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    print(f"{'services':>8} {'evaluate/s':>12} {'outcomes/s':>12} {'reference/s':>12} {'ratio':>8}")
    for n in sizes:
        ev, oc, rf = measure(n)
        print(f"{n:>8} {ev:>12,.0f} {oc:>12,.0f} {rf:>12,.0f} {oc / rf:>7.0f}x")


if __name__ == "__main__":
    main()
