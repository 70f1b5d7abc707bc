"""The cluster walk: each network model's journey checked against the builder, the evaluator
and the flannel code directly (not against printed text)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kubenat
from kubenat import examples
from kubenat.cluster import Cluster
from kubenat.pcap import Reader

ENDPOINTS = {"192.168.20.2:80", "192.168.55.5:80"}


def walkthrough(mode: str = "iptables", backend: str = "vxlan") -> Cluster:
    return Cluster(
        examples.walkthrough(),
        mode=mode,
        proxy_config=examples.walkthrough_config(),
        backend=backend,
        hostports="docker" if mode == "userspace" else "cni",
        proxy_ports=examples.WALKTHROUGH_PROXY_PORTS,
    )


def assert_bytes_valid(journey: kubenat.cluster.Journey) -> None:
    for hop in journey.hops + journey.reply:
        pkt = hop.packet
        assert pkt.checksums_valid(), f"bad checksum at {hop.kind} {hop.where}: {pkt!r}"


def test_container_to_container_stays_in_the_pod() -> None:
    journey = walkthrough().send("nginxpod", "localhost", "tcp", 8800)
    assert journey.model == "container-to-container"
    assert journey.delivered_to == "pod default/nginxpod container centos :8800"
    assert all(h.kind in ("namespace", "deliver") for h in journey.hops + journey.reply)
    assert journey.first.dst == "127.0.0.1"


def test_pod_to_pod_crosses_flannel_unchanged() -> None:
    cluster = walkthrough()
    journey = cluster.send("nginxpod", "192.168.55.5", "tcp", 80)
    assert journey.model == "pod-to-pod"
    assert journey.delivered_to == "pod default/my-first-nginx-d3e4f container my-first-nginx :80"
    (frame,) = [h for h in journey.hops if h.kind == "encap"]
    outer = frame.packet
    assert (outer.src, outer.dst, outer.dport) == ("10.96.219.141", "10.96.219.142", 8472)
    # The remote node's overlay decapsulates the frame to the packet that left node 1's rules.
    inner = cluster.node("kube-node-2").overlay.decap(frame.data, link="ethernet")
    sent = next(h for h in journey.hops if h.kind == "netfilter")
    assert inner == sent.data
    arrived = journey.arrived
    assert arrived is not None
    assert (arrived.src, arrived.dst, arrived.dport) == ("192.168.20.3", "192.168.55.5", 80)
    assert_bytes_valid(journey)


def test_pod_to_service_reaches_an_endpoint_and_the_reply_comes_from_the_service() -> None:
    cluster = walkthrough()
    seen = set()
    for seed in range(12):
        journey = cluster.send("nginxpod", "my-first-nginx", "tcp", 80, seed=seed)
        assert journey.model == "pod-to-service"
        assert journey.endpoint in ENDPOINTS
        seen.add(journey.endpoint)
        last = journey.reply[-1].packet
        assert (last.src, last.sport) == ("192.168.235.209", 80)
        assert (last.dst, last.dport) == ("192.168.20.3", journey.first.sport)
        assert_bytes_valid(journey)
    assert seen == ENDPOINTS


def test_pod_to_service_probabilities_equal_the_evaluators() -> None:
    cluster = walkthrough()
    journey = cluster.send("nginxpod", "192.168.235.209", "tcp", 80)
    first = next(h for h in journey.hops if h.kind == "netfilter")
    rules = kubenat.proxy.node_text(
        cluster.manifests, "iptables", examples.walkthrough_config(), hostports="cni"
    )
    nf = kubenat.Netfilter(
        rules,
        local_addresses=["10.96.219.141", "192.168.20.1", "127.0.0.1"],
        interfaces={"eth0": ["10.96.219.141/24"], "cni0": ["192.168.20.1/24"]},
        routes=[("192.168.20.0/24", "cni0"), ("0.0.0.0/0", "eth0")],
    )
    outcomes = nf.outcomes(journey.first, from_="cni0")
    expected = sorted(f"{o.probability:7.2%}  ACCEPT {o.result.dst}:{o.result.dport}" for o in outcomes)
    assert sorted(first.choices) == expected
    assert sum(o.probability for o in outcomes) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("destination", "port"), [("10.96.219.141", 31150), ("192.168.156.93", 80)], ids=["nodeport", "lb"]
)
def test_external_to_service_is_masqueraded_and_answered(destination: str, port: int) -> None:
    journey = walkthrough().send("external", destination, "tcp", port)
    assert journey.model == "external-to-internal"
    assert journey.endpoint in ENDPOINTS
    arrived = journey.arrived
    assert arrived is not None
    # Masqueraded so that the answer comes back through the node that translated it.
    assert arrived.src in ("192.168.20.0", "192.168.20.1")
    last = journey.reply[-1]
    assert last.summary == "delivered to external client 10.96.219.100"
    assert (last.packet.src, last.packet.sport) == (destination, port)
    assert_bytes_valid(journey)


def test_hostport_reaches_the_published_container() -> None:
    for mode in ("iptables", "userspace"):
        journey = walkthrough(mode).send("external", "10.96.219.141", "tcp", 8800)
        assert journey.delivered_to == "pod default/nginxpod container centos :8800", mode
        assert journey.endpoint == "192.168.20.3:8800"


def test_userspace_mode_goes_through_the_proxy_process() -> None:
    cluster = walkthrough("userspace")
    endpoints = set()
    for _ in range(4):
        journey = cluster.send("nginxpod", "my-first-nginx", "tcp", 80)
        kinds = [h.kind for h in journey.hops]
        assert "proxy" in kinds
        redirect = journey.hops[kinds.index("proxy") - 1]
        assert redirect.packet.dport == 43321
        assert "REDIRECT" in redirect.nat
        endpoints.add(journey.endpoint)
        last = journey.reply[-1].packet
        assert (last.src, last.sport) == ("192.168.235.209", 80)
    # The userspace proxier balances round robin: both endpoints in four connections.
    assert endpoints == ENDPOINTS


@pytest.mark.parametrize("backend", ["udp", "host-gw"])
def test_other_flannel_backends(backend: str) -> None:
    journey = walkthrough(backend=backend).send("nginxpod", "192.168.55.5", "tcp", 80)
    assert journey.delivered_to is not None
    frames = journey.encapsulated()
    if backend == "udp":
        assert frames and frames[0].packet.dport == 8285
    else:
        assert not frames


def test_journey_pcap_round_trip(tmp_path: object) -> None:
    journey = walkthrough().send("nginxpod", "my-first-nginx", "tcp", 80)
    from kubenat.cluster.journey import write_pcap

    path = f"{tmp_path}/j.pcap"
    count = write_pcap(path, [journey])
    with open(path, "rb") as f:
        records = list(Reader(f))
    assert count == len(records) == len(journey.hops) + len(journey.reply)
    for record, hop in zip(records, journey.hops + journey.reply, strict=True):
        pkt = kubenat.Packet.from_bytes(record.data, link="ethernet")
        assert pkt.to_ip().to_bytes() == hop.packet.to_ip().to_bytes()


def test_unknown_names_are_clear_errors() -> None:
    cluster = walkthrough()
    with pytest.raises(kubenat.InvalidArgument, match="no pod 'nosuchpod'"):
        cluster.send("nosuchpod", "my-first-nginx")
    with pytest.raises(kubenat.InvalidArgument, match="protocol"):
        cluster.send("nginxpod", "my-first-nginx", "gre", 80)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32), port=st.sampled_from([80, 8800, 31150, 443]))
def test_any_external_connection_ends_delivered_or_dropped_with_valid_bytes(seed: int, port: int) -> None:
    journey = walkthrough().send("external", "10.96.219.141", "tcp", port, seed=seed)
    assert journey.hops
    if port in (80, 8800, 31150):
        assert journey.delivered
    assert_bytes_valid(journey)
