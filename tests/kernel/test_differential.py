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

import pytest
from differential import FEEDERS, KINDS, check
from hypothesis import HealthCheck, given, settings
from rulegen import TESTBED_OPTIONS, Probe, general_rulesets, kube_rulesets, probes

from kubenat.kernel import Testbed

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


def test_general_rulesets(bed: Testbed) -> None:
    compared: list[int] = []

    @SETTINGS
    @given(text=general_rulesets(), batch=probes())
    def run(text: str, batch: list[Probe]) -> None:
        count, problems = check(bed, text, batch, test=FEEDERS[0])
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
        count, problems = check(bed, text, batch, test=FEEDERS[1])
        compared.append(count)
        assert not problems, "kubenat and the kernel disagree:\n" + "\n".join(problems) + "\n\n" + text

    run()
    print(sum(compared), sorted(KINDS.items(), key=lambda kv: -kv[1]))
    assert sum(compared) >= 6 * EXAMPLES
