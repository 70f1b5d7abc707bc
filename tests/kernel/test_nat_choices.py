"""Fields the kernel chooses itself under NAT, against kubenat's ``Result.chosen``.

With ``--random``/``--random-fully`` the kernel draws an ICMP echo identifier from 0-65535 (for
DNAT and REDIRECT too, not only source NAT), a port from the given range (or, for source NAT
without one, from the original port's class); source NAT to a port range that does not hold
the original port searches it from a random offset; an address range is hashed. kubenat must
name exactly those fields in ``chosen`` (never claim one exact value for them) and the kernel's
value must lie in kubenat's span. Fields not in ``chosen`` must equal kubenat's value.

False alarms: the span checks are exact. The one check on the kernel's randomness (with
``--random`` at least one of 10 fresh ICMP echoes gets a new identifier) fails by chance with
probability (1/65536)^10 < 1e-48 per case. Probes whose source port the kernel picks are sent
one per round (``Model.inject``), so no pick can clash with a port another probe keeps.
"""

from __future__ import annotations

import pytest
from rulegen import TESTBED_OPTIONS

import kubenat
from kubenat.kernel import Testbed, _wire, build_packet
from kubenat.kernel.model import Model
from kubenat.kernel.observe import within

HEAD = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
)
TO = "-A PREROUTING -d 10.96.0.10/32"
FROM = "-A POSTROUTING -d 10.96.0.10/32"

# (rule, protocol, the field kubenat must name in chosen or None, whether the kernel varies it)
CASES = [
    (f"{TO} -j DNAT --to-destination 10.244.3.7", "icmp", None),
    (f"{TO} -j DNAT --to-destination 10.244.3.7 --random", "icmp", "icmp_id"),
    (f"{TO} -j DNAT --to-destination 10.244.3.7 --random --persistent", "icmp", "icmp_id"),
    (f"{TO} -j REDIRECT", "icmp", None),
    (f"{TO} -j REDIRECT --random", "icmp", "icmp_id"),
    (f"{FROM} -j SNAT --to-source 10.253.2.1", "icmp", None),
    (f"{FROM} -j SNAT --to-source 10.253.2.1 --random", "icmp", "icmp_id"),
    (f"{FROM} -j SNAT --to-source 10.253.2.1 --random-fully", "icmp", "icmp_id"),
    (f"{FROM} -j MASQUERADE", "icmp", None),
    (f"{FROM} -j MASQUERADE --random", "icmp", "icmp_id"),
    (f"{FROM} -j MASQUERADE --random-fully", "icmp", "icmp_id"),
    (f"{TO} -p udp -j DNAT --to-destination 10.244.3.7 --random", "udp", None),
    (f"{TO} -p udp -j DNAT --to-destination 10.244.3.7:8080-8090", "udp", None),
    (f"{TO} -p udp -j DNAT --to-destination 10.244.3.7:8080-8090 --random", "udp", "dport"),
    (f"{TO} -p udp -j REDIRECT --to-ports 5000-5010", "udp", None),
    (f"{TO} -p udp -j REDIRECT --to-ports 5000-5010 --random", "udp", "dport"),
    (f"{FROM} -p udp -j SNAT --to-source 10.253.2.1:1000-2000", "udp", "sport"),
    (f"{FROM} -p udp -j SNAT --to-source 10.253.2.1 --random", "udp", "sport"),
    (f"{FROM} -p udp -j MASQUERADE --to-ports 1000-2000", "udp", "sport"),
    (f"{TO} -p udp -j DNAT --to-destination 10.244.3.7-10.244.3.9", "udp", "dst"),
    (f"{TO} -p udp -j DNAT --to-destination 10.244.3.7-10.244.3.9 --persistent", "udp", "dst"),
    (f"{FROM} -p udp -j SNAT --to-source 10.253.2.1-10.253.2.9", "udp", "src"),
    (f"{TO} -j DNAT --to-destination 10.244.3.7-10.244.3.9 --random", "icmp", "dst"),
]

SOURCES = ("10.1.2.3", "10.1.2.4", "10.1.9.9", "10.1.2.5", "203.0.113.5", "203.0.113.6")


@pytest.fixture(scope="module")
def bed():
    with Testbed(**TESTBED_OPTIONS) as tb:
        yield tb


def _probes(proto: str) -> list[bytes]:
    # ICMP: identifiers 1000..1009; UDP: source ports 40000.. (and 1500, inside 1000-2000).
    if proto == "icmp":
        return [build_packet("icmp", SOURCES[i % 6], "10.96.0.10", 1000 + i, 1) for i in range(10)]
    ports = [40000 + i for i in range(9)] + [1500]
    return [build_packet("udp", SOURCES[i % 6], "10.96.0.10", p, 53) for i, p in enumerate(ports)]


@pytest.mark.parametrize(
    ("rule", "proto", "field"), CASES, ids=[c[0].split(" -j ")[1] + " " + c[1] for c in CASES]
)
def test_kernel_choices_are_inside_kubenats_span(
    bed: Testbed, rule: str, proto: str, field: str | None
) -> None:
    text = HEAD + rule + "\nCOMMIT\n"
    ruleset = kubenat.Ruleset.parse(text)
    bed.load(ruleset, reset=True)
    model = Model(ruleset, bed)
    packets = _probes(proto)
    problems, varied = [], 0
    for packet, obs in zip(packets, model.inject(packets, "in"), strict=True):
        sent = _wire.parse(packet)
        verdicts = model.outcomes(obs.sent, "in")
        result = verdicts.certain
        assert result is not None
        if field is not None and field in ("icmp_id", "sport", "dport"):
            # A UDP source port already inside the SNAT range is kept: then nothing is chosen.
            kept = field == "sport" and "1000-2000" in rule and sent.sport == 1500
            if not kept:
                assert field in result.chosen, f"kubenat does not flag {field} as chosen: {result.chosen}"
        if field is not None and field in ("src", "dst"):
            assert field in result.chosen, f"kubenat does not flag {field} as chosen: {result.chosen}"
        if field is None:
            assert not result.chosen, f"kubenat flags {result.chosen} but the kernel keeps them"
        diffs = verdicts.explain(obs)
        if diffs:
            problems.append(diffs)
        if field == "icmp_id":
            assert within(obs.sport, result.chosen["icmp_id"])
            varied += obs.sport != sent.sport
        elif field is not None and field in result.chosen:
            value = getattr(obs, field)
            assert within(value, result.chosen[field])
            varied += value != getattr(result, field)
    assert not problems, problems
    if field == "icmp_id":
        # (1/65536)^10 that all keep their identifier by chance.
        assert varied > 0, "the kernel kept every ICMP identifier; kubenat says it draws them"
