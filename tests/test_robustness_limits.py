"""Bounded resources: large and pathological inputs finish with a result or a clean error.

Time is bounded by pytest-timeout (generous, never a timed assertion); memory by the peak RSS
of a fresh interpreter. The full-size numbers (100k services, 1.4M lines) are measured by
``benches/bench_limits.py`` and kept in docs/robustness.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kubenat
from kubenat import _bigdump

PYTHON_DIR = str(Path(kubenat.__file__).resolve().parent.parent)


def deep_chains(n: int) -> str:
    """INPUT jumps through `n` user chains in a row; the last one accepts."""
    decl = "".join(f":C{i} - [0:0]\n" for i in range(n))
    jumps = "".join(f"-A C{i} -j C{i + 1}\n" for i in range(n - 1))
    return f"*filter\n:INPUT DROP [0:0]\n{decl}-A INPUT -j C0\n{jumps}-A C{n - 1} -j ACCEPT\nCOMMIT\n"


@pytest.mark.timeout(300)
def test_deep_chain_nesting_is_evaluated_without_stack_overflow() -> None:
    n = 10_000
    nf = kubenat.Netfilter(kubenat.Ruleset.parse(deep_chains(n)), local_addresses=["192.168.0.2"])
    packet = kubenat.Packet.tcp(src="10.0.0.5", dst="192.168.0.2", sport=1234, dport=22)
    result = nf.evaluate(packet, seed=1)
    assert result.verdict == "ACCEPT"
    assert max(step.depth for step in result.trace) >= n
    # The same walk without the final ACCEPT falls back to INPUT's policy.
    dropped = kubenat.Netfilter(
        kubenat.Ruleset.parse(deep_chains(n).replace(f"-A C{n - 1} -j ACCEPT\n", "")),
        local_addresses=["192.168.0.2"],
    )
    assert dropped.evaluate(packet, seed=1, trace=False).verdict == "DROP"


@pytest.mark.timeout(300)
def test_a_deep_loop_is_refused_without_stack_overflow() -> None:
    text = deep_chains(20_000).replace("-A C19999 -j ACCEPT", "-A C19999 -j C0")
    with pytest.raises(kubenat.ParseError, match="loop"):
        kubenat.Ruleset.parse(text)


@pytest.mark.timeout(300)
def test_100k_chains() -> None:
    n = 100_000
    text = "*filter\n" + "".join(
        f":C{i} - [0:0]\n-A C{i} -s 10.{i >> 16}.{(i >> 8) & 255}.{i & 255} -j RETURN\n" for i in range(n)
    )
    text += "".join(f"-A INPUT -j C{i}\n" for i in range(0, n, 1000)) + "COMMIT\n"
    ruleset = kubenat.Ruleset.parse(text)
    assert len(ruleset.chains("filter")) == n + 3
    nf = kubenat.Netfilter(ruleset, local_addresses=["192.168.0.2"])
    packet = kubenat.Packet.udp(src="10.9.9.9", dst="192.168.0.2", sport=1, dport=2)
    assert nf.evaluate(packet, seed=1, trace=False).verdict == "ACCEPT"


@pytest.mark.timeout(300)
def test_10k_endpoints_in_one_service() -> None:
    ruleset = kubenat.Ruleset.parse(_bigdump.text(1, endpoints=10_000))
    nf = kubenat.Netfilter(ruleset, local_addresses=["192.168.0.2"], stateless=True)
    packet = kubenat.Packet.tcp(src="10.0.0.5", dst=_bigdump.service_ip(0), sport=1234, dport=80)
    seen = {nf.evaluate(packet, seed=seed, trace=False).dnat for seed in range(20)}
    assert len(seen) > 10 and all(d and d.endswith(":8080") for d in seen)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", [10 * 2**20, 2 * 2**20])
def test_a_huge_single_line_is_refused_quickly(size: int) -> None:
    text = "*filter\n-A INPUT -m comment --comment " + "x" * size + " -j ACCEPT\nCOMMIT\n"
    with pytest.raises((kubenat.LimitError, kubenat.ParseError)) as info:
        kubenat.Ruleset.parse(text)
    assert "line 2" in str(info.value) or getattr(info.value, "line", 2) == 2


@pytest.mark.timeout(120)
def test_a_huge_packet_is_handled() -> None:
    payload = b"\x00" * 65_000
    packet = kubenat.Packet.udp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, payload=payload)
    assert kubenat.Packet.from_bytes(packet.to_bytes()).length == len(packet.to_bytes())
    with pytest.raises(kubenat.KubenatError):
        kubenat.Packet.udp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, payload=b"\x00" * 70_000)
    with pytest.raises(kubenat.PacketError):
        kubenat.Packet.from_bytes(b"\x45" + b"\x00" * (10 * 2**20))


MEASURE = r"""
import json, sys
import kubenat
from kubenat import _bigdump
text = _bigdump.text(int(sys.argv[1]))
def hwm_kb():
    # VmHWM is this process's own peak; ru_maxrss would also count the parent at fork time.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
before = hwm_kb()
nf = kubenat.Netfilter(kubenat.Ruleset.parse(text), local_addresses=["192.168.0.2"])
p = kubenat.Packet.tcp(src="10.0.0.5", dst=_bigdump.service_ip(7), sport=1234, dport=80)
r = nf.evaluate(p, seed=1, trace=False)
peak = hwm_kb()
print(json.dumps({"lines": text.count("\n"), "before_kb": before, "peak_kb": peak, "dnat": r.dnat}))
"""


@pytest.mark.timeout(600)
def test_memory_of_a_10k_service_dump_stays_bounded() -> None:
    """10k services (140k lines, 14 MB): the measured peak is ~160 MB; the bound is generous."""
    env = {**os.environ, "PYTHONPATH": PYTHON_DIR}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, "10000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["lines"] > 130_000
    assert out["dnat"] and out["dnat"].endswith(":8080")
    assert out["peak_kb"] < 600 * 1024, out
