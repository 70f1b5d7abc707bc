"""IPv6 through the testbed (ip6tables-restore): judged by hand and compared with kubenat, then
generated IPv6 rulesets and probes compared with kubenat (``KUBENAT_IPV6_EXAMPLES=500`` for a
larger search)."""

from __future__ import annotations

import os

from differential import FEEDERS, check
from hypothesis import HealthCheck, given, settings
from rulegen import TESTBED_OPTIONS, Probe, general_rulesets, probes

import kubenat
from kubenat.kernel import Testbed, build_packet
from kubenat.kernel.model import Model

RULES6 = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d fd00:96::10/128 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x4000/0x4000
-A PREROUTING -d fd00:96::10/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244::7]:8080
-A PREROUTING -d fd00:96::11/128 -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353
-A OUTPUT -d fd00:96::10/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244::7]:8080
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d fd00:96::20/128 -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -d fd00:96::21/128 -j REJECT --reject-with icmp6-adm-prohibited
-A FORWARD -d fd00:96::22/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP
COMMIT
"""

PROBES = [
    ("tcp", "fd00:1::5", "fd00:96::10", 40000, 80, "in"),
    ("udp", "fd00:1::5", "fd00:96::11", 40001, 53, "in"),
    ("tcp", "fd00:1::5", "fd00:96::20", 40002, 80, "in"),
    ("udp", "fd00:1::5", "fd00:96::21", 40003, 53, "in"),
    ("icmp", "fd00:1::5", "fd00:96::22", 40004, 1, "in"),
    ("udp", "fd00:1::5", "fd00:9::9", 40005, 53, "in"),
    ("tcp", "fd00:253:2::1", "fd00:96::10", 40006, 80, "out"),
]


def test_ipv6_observations_and_kubenat_agree() -> None:
    with Testbed() as tb:
        tb.load(kubenat.Ruleset.parse(RULES6, family="ipv6"))
        model = Model(kubenat.Ruleset.parse(RULES6, family="ipv6"), tb)
        seen = []
        for path in ("in", "out"):
            chosen = [p for p in PROBES if p[5] == path]
            packets = [build_packet(*p[:5]) for p in chosen]
            seen += list(zip(chosen, tb.inject_batch(packets, path=path), strict=True))
        outcome = {p[2]: o for p, o in seen if p[5] == "in"}
        dnat = outcome["fd00:96::10"]
        assert (dnat.verdict, dnat.dst, dnat.dport, dnat.masquerade, dnat.mark) == (
            "ACCEPT",
            "fd00:244::7",
            8080,
            True,
            0x4000,
        )
        assert dnat.src == "fd00:253:2::1" and dnat.out_interface == "eth1"
        redirect = outcome["fd00:96::11"]
        assert redirect.local_delivery and (redirect.dst, redirect.dport) == ("fd00:253:1::1", 5353)
        assert (outcome["fd00:96::20"].verdict, outcome["fd00:96::20"].reject_with) == ("REJECT", "tcp-reset")
        prohibited = outcome["fd00:96::21"]
        assert (prohibited.verdict, prohibited.reject_with) == ("REJECT", "icmp6-adm-prohibited")
        assert outcome["fd00:96::22"].verdict == "DROP"
        assert outcome["fd00:9::9"].verdict == "ACCEPT" and not outcome["fd00:9::9"].dnat
        local = next(o for p, o in seen if p[5] == "out")
        assert (local.verdict, local.dst, local.dport) == ("ACCEPT", "fd00:244::7", 8080)
        problems = []
        for probe, obs in seen:
            diffs = model.outcomes(obs.sent, probe[5]).explain(obs)
            if diffs:
                problems.append(f"{probe}: {diffs}")
        assert not problems, "\n".join(problems)


IPV6_EXAMPLES = int(os.environ.get("KUBENAT_IPV6_EXAMPLES", "60"))


def test_general_ipv6_rulesets() -> None:
    """Generated IPv6 rulesets (ip6tables-restore) and probes: kubenat and the kernel agree."""
    compared: list[int] = []
    with Testbed(**TESTBED_OPTIONS) as bed:

        @settings(
            max_examples=IPV6_EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(text=general_rulesets(family=6), batch=probes(family=6))
        def run(text: str, batch: list[Probe]) -> None:
            count, problems = check(bed, text, batch, family=6, test=FEEDERS[2])
            compared.append(count)
            assert not problems, "kubenat and the kernel disagree:\n" + "\n".join(problems) + "\n\n" + text

        run()
    assert sum(compared) >= 6 * IPV6_EXAMPLES


def test_ipv6_masquerade_to_a_local_address() -> None:
    """IPv6 source address selection prefers the destination itself when it is one of the node's
    addresses (RFC 6724 rule 1): MASQUERADE of node-to-node traffic over lo takes it."""
    text = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    text += ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"
    batch = [
        Probe(proto, "fd00:253:1::1", "fd00:253:2::1", 41000 + i, 53, "out")
        for i, proto in enumerate(("icmp", "udp", "tcp"))
    ]
    with Testbed(**TESTBED_OPTIONS) as bed:
        count, problems = check(
            bed, text, batch, family=6, test="test_ipv6.py::test_ipv6_masquerade_to_a_local_address"
        )
        local = bed.inject(build_packet("udp", "fd00:253:1::1", "fd00:253:2::1", 41009, 53), path="out")
    assert count == 3 and not problems, problems
    assert local.local_delivery and local.src == "fd00:253:2::1"
