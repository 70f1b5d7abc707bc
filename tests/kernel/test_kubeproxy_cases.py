"""The upstream kube-proxy cases' packet flows, through the rules kubenat builds, in a real kernel.

Each case's rules (``kubenat.proxy.build_text``, complete with the hook jumps) are loaded into a
testbed whose node carries the case's addresses; every flow is sent ``COPIES`` times with fresh
source ports (from the client, or by the node itself when the source is a node address), and the
kernel's set of DNAT destinations, verdict and masquerade are compared with the case's expected
output. Where upstream's simplified tracer and the kernel differ, the kernel's answer is
recorded in ``KERNEL_DIFFERS`` with the reason.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from kubenat.kernel import Testbed, build_packet
from kubenat.proxy import build_text
from proxy_cases import Case, config, load_cases

CASES = [c for c in load_cases() if c.flows]
COPIES = 120
"""Copies per flow: the smallest kube-proxy branch probability in the cases is 1/4, so an endpoint
is missed by chance with probability at most 4 * (3/4)^120 < 1e-14 per flow."""

AFFINITY_COPIES = 80
"""Copies, each a first connection (recent lists emptied), for ClientIP-affinity services
(at most 3 endpoints there: a third is missed by chance with probability < 3 * (2/3)^80 < 3e-14)."""

KERNEL_DIFFERS: dict[tuple[str, str], str] = {}
"""(case id, flow name) → why the kernel's answer differs from upstream's tracer."""


def _previous_chains(case: Case) -> list[str]:
    if case.previous is None:
        return []
    text = build_text(case.previous.objects, config=config(case.harness), restore_payload=True)
    return re.findall(r"^:(\S+) ", text.split("*nat\n", 1)[1], flags=re.M)


def _kernel_output(observations: list[Any]) -> tuple[str, bool]:
    """The kernel's answer in the cases' format: DNAT targets (sorted) or ACCEPT/DROP/REJECT."""
    verdicts = {o.verdict for o in observations}
    if verdicts != {"ACCEPT"}:
        return ", ".join(sorted(verdicts)), False
    targets = set()
    for o in observations:
        if o.original is not None and o.dnat:
            targets.add(f"{o.dst}:{o.dport}")
    masq = any(o.masquerade for o in observations)
    return (", ".join(sorted(targets, key=_endpoint_key)) if targets else "ACCEPT"), masq


def _endpoint_key(text: str) -> tuple[int, int]:
    addr, _, port = text.rpartition(":")
    return int(ipaddress.ip_address(addr.strip("[]"))), int(port)


def _expected(flow: dict[str, Any]) -> tuple[str, bool]:
    words = [w for w in flow["output"].split(", ") if w]
    targets = sorted((w for w in words if ":" in w), key=_endpoint_key)
    if targets:
        return ", ".join(targets), flow["masq"]
    terminal = [w for w in words if w in ("DROP", "REJECT")]
    return (terminal[0] if terminal else "ACCEPT"), False


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_flows_in_kernel(case: Case) -> None:
    harness = case.harness
    text = build_text(case.objects, config=config(harness), previous_chains=_previous_chains(case))
    addresses = {
        "eth0": [a for a in harness["interfaces"]["eth0"]],
        "lo": [a for a in harness["interfaces"].get("lo", []) if a not in ("127.0.0.1/8", "::1/128")],
    }
    with Testbed(addresses=addresses) as tb:
        tb.load(text, family=6 if harness["ipFamily"] == "IPv6" else 4)
        local = set(tb.local_addresses)
        problems = []
        for flow in case.flows:
            proto = flow.get("protocol") or "tcp"
            src, dst, dport = flow["sourceIP"], flow["destIP"], flow["destPort"]
            path = "out" if src in local else "in"
            packet = build_packet(proto, src, dst, 1, dport)
            if "--rcheck" in text:
                # ClientIP affinity: the kernel sends every later connection of this client to
                # the endpoint it chose first. Check that, then the first choice's spread.
                sticky = _kernel_output(tb.inject_batch(_copies(packet, 10), path=path))[0]
                if "," in sticky:
                    problems.append(f"{flow['name']}: affinity not kept, kernel chose {sticky}")
                observations = []
                for copy in _copies(packet, AFFINITY_COPIES):
                    tb.clear_recent()
                    observations.append(tb.inject(copy, path=path))
            else:
                observations = tb.inject_batch(_copies(packet, COPIES), path=path)
            got = _kernel_output(observations)
            want = _expected(flow)
            known = KERNEL_DIFFERS.get((case.id, flow["name"]))
            if got != want and known is None:
                problems.append(f"{flow['name']}: kernel {got}, upstream expects {want}")
        assert not problems, "\n".join(problems)


def _copies(packet: bytes, n: int) -> list[bytes]:
    from kubenat.kernel import _wire

    return [_wire.with_source_port(packet, 30000 + i) for i in range(n)]
