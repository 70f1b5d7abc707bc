"""kubenat against the Linux kernel on generated rulesets and packets: zero disagreements.

Each hypothesis example loads a ruleset into the testbed's node (all other tables emptied),
sends its probes (fresh connections), and compares what the kernel did with kubenat's exact
outcomes for the same node: verdict, addresses and ports after NAT, masquerade, mark, output
interface, local delivery, conntrack tuples; when kubenat has a single outcome, the bytes
``Netfilter.process`` writes equal the bytes the kernel emitted. The kernel's ``iptables-save``
must equal ``Ruleset.save()`` for the same text. A disagreement fails with hypothesis's
shrunk ruleset and probes.

``KUBENAT_DIFFERENTIAL_EXAMPLES=2000 pytest tests/kernel/test_differential.py`` runs a larger search.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from rulegen import TESTBED_OPTIONS, Probe, general_rulesets, kube_rulesets, probes

import kubenat
from kubenat.kernel import Testbed, _wire, build_packet
from kubenat.kernel.model import Model

KINDS: Counter[tuple[object, ...]] = Counter()
EXAMPLES = int(os.environ.get("KUBENAT_DIFFERENTIAL_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def bed():
    with Testbed(**TESTBED_OPTIONS) as tb:
        yield tb


def _tables(text: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = line[1:]
            tables[current] = []
        elif current is not None:
            tables[current].append(re.sub(r" \[\d+:\d+\]$", " [0:0]", line))
    return tables


def _kernel_values(obs: object, chosen: dict[str, object]) -> dict[str, object]:
    """The kernel's values of the fields kubenat says the kernel chooses (ICMP id: ``sport``)."""
    names = {"src": "src", "dst": "dst", "sport": "sport", "dport": "dport", "icmp_id": "sport"}
    return {names[f]: getattr(obs, names[f]) for f in chosen if f in names}


def check(bed: Testbed, text: str, batch: list[Probe], family: int = 4) -> tuple[int, list[str]]:
    """Load ``text``, send ``batch``; (number of comparisons, disagreements)."""
    bed.clear_recent()
    bed.load(text, reset=True, family=family)
    problems = []
    ruleset = kubenat.Ruleset.parse(text, family="ipv6" if family == 6 else "ipv4")
    ours = _tables(ruleset.save())
    kernel = _tables(bed.save(family=family))
    for table, lines in ours.items():
        if kernel.get(table) != lines:
            problems.append(f"save() of *{table} differs from iptables-save:\n{kernel.get(table)}\n{lines}")
    model = Model(ruleset, bed)
    count = 0
    for path in ("in", "out"):
        chosen = [p for p in batch if p.path == path]
        packets = [build_packet(p.proto, p.src, p.dst, p.sport, p.dport) for p in chosen]
        for probe, obs in zip(chosen, bed.inject_batch(packets, path=path), strict=True):
            count += 1
            KINDS[(obs.verdict, obs.local_delivery, obs.dnat, obs.masquerade, obs.mark or 0, path)] += 1
            verdicts = model.outcomes(obs.sent, path)
            diffs = verdicts.explain(obs)
            certain = verdicts.certain
            if not diffs and certain is not None and obs.emitted is not None and not obs.local_delivery:
                written = model.process(obs.sent, path)
                if written is not None and certain.chosen:
                    # Fields the kernel chooses itself were checked to be in range: take its values.
                    written = _wire.with_fields(written, **_kernel_values(obs, certain.chosen))
                if written != obs.emitted:
                    shown = written.hex() if written else None
                    diffs.append(f"bytes: kernel {obs.emitted.hex()}, kubenat {shown}")
            if diffs:
                problems.append(f"{probe}: " + "; ".join(diffs))
    return count, problems


def test_general_rulesets(bed: Testbed) -> None:
    compared: list[int] = []

    @SETTINGS
    @given(text=general_rulesets(), batch=probes())
    def run(text: str, batch: list[Probe]) -> None:
        count, problems = check(bed, text, batch)
        compared.append(count)
        assert not problems, "kubenat and the kernel disagree:\n" + "\n".join(problems) + "\n\n" + text

    run()
    print(sum(compared), sorted(KINDS.items(), key=lambda kv: -kv[1]))
    assert sum(compared) >= 6 * EXAMPLES  # every example compares at least 6 packets


def test_kube_proxy_rulesets(bed: Testbed) -> None:
    compared: list[int] = []

    @SETTINGS
    @given(case=kube_rulesets())
    def run(case: tuple[str, list[Probe]]) -> None:
        text, batch = case
        count, problems = check(bed, text, batch)
        compared.append(count)
        assert not problems, "kubenat and the kernel disagree:\n" + "\n".join(problems) + "\n\n" + text

    run()
    print(sum(compared), sorted(KINDS.items(), key=lambda kv: -kv[1]))
    assert sum(compared) >= 6 * EXAMPLES
