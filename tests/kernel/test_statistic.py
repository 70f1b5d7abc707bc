"""Statistic rules judged by repeating a packet with fresh source ports."""

from __future__ import annotations

from fractions import Fraction

from kubenat.kernel import Testbed, build_packet

# kube-proxy's three-endpoint service: 1/3, then 1/2 of the rest, then the rest.
RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j SVC
-A SVC -p tcp -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 10.244.2.1:80
-A SVC -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.244.2.2:80
-A SVC -p tcp -j DNAT --to-destination 10.244.2.3:80
COMMIT
"""


def _stored(p: str) -> Fraction:
    """The kernel keeps a probability as a 31-bit fraction, truncated."""
    return Fraction(int(Fraction(p) * 2**31), 2**31)


def test_three_endpoints_distribution() -> None:
    first, second = _stored("0.33333333349"), _stored("0.5")
    probabilities = {"10.244.2.1": first, "10.244.2.2": (1 - first) * second}
    probabilities["10.244.2.3"] = 1 - sum(probabilities.values())
    expected = {("ACCEPT", dst, 80, False, False): float(p) for dst, p in probabilities.items()}
    with Testbed() as tb:
        tb.load(RULES)
        packet = build_packet("tcp", "10.0.0.5", "10.96.0.10", 1, 80)
        judgement = tb.judge_distribution(packet, expected, n=3000)
        assert judgement.ok, str(judgement)
        # The same counts must be rejected against a clearly wrong distribution (the test can fail).
        wrong = {key: p for key, p in zip(expected, (0.6, 0.2, 0.2), strict=True)}
        from kubenat.kernel.stats import judge

        assert not judge(judgement.counts, wrong).ok


def test_kernel_distribution_matches_kubenat_outcomes() -> None:
    """kube-proxy's four-endpoint service, built by kubenat.proxy: the kernel's endpoint frequencies
    against kubenat's exact outcome probabilities (exact binomial tests, false alarm < 1e-6)."""
    from kubenat.kernel.model import Model
    from kubenat.proxy import build_text

    endpoints = [f"10.244.5.{i}" for i in range(1, 5)]
    objects = [
        {
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
        },
        {
            "kind": "EndpointSlice",
            "metadata": {"name": "web-a", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in endpoints],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    ]
    text = build_text(objects, node_name="n1", node_ips=("192.168.7.2",), cluster_cidrs=("10.244.0.0/16",))
    with Testbed() as tb:
        tb.load(text)
        model = Model(text, tb)
        packet = build_packet("tcp", "10.244.1.5", "10.96.0.10", 1, 80)
        expected: dict[object, float] = {}
        for probability, result in model.outcomes(packet, "in").outcomes:
            key = (result.verdict, result.dst, result.dport, result.masquerade, result.local_delivery)
            expected[key] = expected.get(key, 0.0) + probability
        assert len(expected) == 4
        judgement = tb.judge_distribution(packet, expected, n=4000)
        assert judgement.ok, str(judgement)
