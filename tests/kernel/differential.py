"""The comparison behind the differential tests: one ruleset, a batch of probes, kubenat against
the kernel. Every probe compared is counted in ``TALLY`` (the session checks the total).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from rulegen import Probe

import kubenat
from kubenat.kernel import Testbed, _wire, build_packet
from kubenat.kernel.model import Model

KINDS: Counter[tuple[object, ...]] = Counter()
"""How often each kind of kernel outcome was seen (printed by the tests, for a feel of coverage)."""


@dataclass
class Tally:
    """Ruleset-by-packet examples compared with the kernel in this session, per test."""

    compared: Counter[str] = field(default_factory=Counter)
    disagreements: Counter[str] = field(default_factory=Counter)

    def add(self, test: str, compared: int, disagreements: int) -> None:
        self.compared[test] += compared
        self.disagreements[test] += disagreements


TALLY = Tally()
FEEDERS = (
    "test_differential.py::test_general_rulesets",
    "test_differential.py::test_kube_proxy_rulesets",
    "test_ipv6.py::test_general_ipv6_rulesets",
)
"""The tests that feed ``TALLY`` (the session-end check needs all of them to have run)."""
MIN_COMPARED = 1000


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


def check(
    bed: Testbed, text: str, batch: list[Probe], family: int = 4, test: str = ""
) -> tuple[int, list[str]]:
    """Load ``text``, send ``batch``; (number of comparisons, disagreements). Counted in
    ``TALLY`` under ``test``."""
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
        for probe, obs in zip(chosen, model.inject(packets, path), strict=True):
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
    TALLY.add(test, count, len(problems))
    return count, problems
