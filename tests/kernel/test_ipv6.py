"""IPv6 through the testbed (ip6tables-restore), judged by hand and compared with kubenat."""

from __future__ import annotations

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
