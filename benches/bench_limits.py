"""Resource use on large and pathological inputs: time and peak memory, printed (never asserted).

    PYTHONPATH=python python3 benches/bench_limits.py [--services 100000]

Each case runs in a fresh interpreter so that its peak RSS (``ru_maxrss``) is its own. The
budgets these numbers are held to are in docs/robustness.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = r"""
import json, resource, sys, time
import kubenat
from kubenat import _bigdump

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

kind, n = sys.argv[1], int(sys.argv[2])
out = {"case": kind, "n": n}
t = time.perf_counter()
if kind == "services":
    text = _bigdump.text(n)
elif kind == "endpoints":
    text = _bigdump.text(1, endpoints=n)
elif kind == "chains":
    text = "*filter\n" + "".join(f":C{i} - [0:0]\n" for i in range(n)) + "-A INPUT -j C0\n" + "".join(
        f"-A C{i} -j C{i + 1}\n" for i in range(n - 1)) + "COMMIT\n"
elif kind == "long-line":
    text = "*filter\n-A INPUT -m comment --comment " + "x" * n + " -j ACCEPT\nCOMMIT\n"
out["lines"] = text.count("\n")
out["mb_text"] = round(len(text) / 2**20, 1)
out["s_generate"] = round(time.perf_counter() - t, 2)
out["rss_before_mb"] = round(rss_mb())
t = time.perf_counter()
try:
    rs = kubenat.Ruleset.parse(text)
except kubenat.KubenatError as e:
    out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
    rs = None
out["s_parse"] = round(time.perf_counter() - t, 2)
if rs is not None:
    del text
    t = time.perf_counter()
    nf = kubenat.Netfilter(rs, local_addresses=["192.168.0.2"])
    out["s_compile"] = round(time.perf_counter() - t, 2)
    # The last service (the longest scan), or the node itself (through INPUT and every chain).
    targets = {"services": _bigdump.service_ip(n - 1), "endpoints": _bigdump.service_ip(0)}
    dst = targets.get(kind, "192.168.0.2")
    p = kubenat.Packet.tcp(src="10.0.0.5", dst=dst, sport=1234, dport=80)
    t = time.perf_counter()
    r = nf.evaluate(p, seed=1)
    out["ms_evaluate"] = round((time.perf_counter() - t) * 1000, 1)
    out["verdict"] = f"{r.verdict} {r.dnat}"
out["rss_peak_mb"] = round(rss_mb())
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=100_000)
    args = ap.parse_args()
    cases = [
        ("services", 10_000),
        ("services", args.services),
        ("endpoints", 10_000),
        ("chains", 100_000),
        ("long-line", 10 * 2**20),
    ]
    for kind, n in cases:
        done = subprocess.run(
            [sys.executable, "-c", CASE, kind, str(n)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(json.dumps({"case": kind, "n": n, "exit": done.returncode, "stderr": done.stderr[-500:]}))
            continue
        print(done.stdout.strip())
    print("budgets: docs/robustness.md")


if __name__ == "__main__":
    main()
