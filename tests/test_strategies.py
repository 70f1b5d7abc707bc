"""kubenat.strategies: everything they generate is valid input for kubenat (and the kernel)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

import kubenat
from kubenat import k8s
from kubenat import strategies as kst
from kubenat.flannel import Lease, NetConf
from kubenat.flannel_overlay import Overlay


@given(kst.packets())
def test_packets_are_valid_and_round_trip(packet: kubenat.Packet) -> None:
    assert packet.checksums_valid()
    assert kubenat.Packet.from_bytes(packet.to_bytes()) == packet


@given(kst.packets(dst=kst.addresses_in("10.96.0.0/16"), protocols=("tcp",)))
def test_packets_honour_constraints(packet: kubenat.Packet) -> None:
    assert packet.proto == "tcp"
    assert ipaddress.ip_address(packet.dst) in ipaddress.ip_network("10.96.0.0/16")


@settings(max_examples=60)
@given(kst.rulesets())
def test_rulesets_parse_and_evaluate(text: str) -> None:
    ruleset = kubenat.Ruleset.parse(text)
    assert kubenat.Ruleset.parse(ruleset.save()) == ruleset
    nf = kubenat.Netfilter(ruleset, local_addresses=["10.253.1.1"], interfaces={"eth0": ["10.253.1.1/24"]})
    result = nf.evaluate(kubenat.Packet.tcp(src="10.1.2.3", dst="10.96.0.10", sport=40000, dport=80))
    assert result.verdict in ("ACCEPT", "DROP", "REJECT")


@settings(max_examples=30)
@given(kst.clusters())
def test_clusters_load_as_manifests(objects: list[dict[str, object]]) -> None:
    loaded = k8s.load(objects)
    assert len(loaded.services) == len(loaded.endpoint_slices) == len(objects) // 2


@settings(max_examples=30)
@given(kst.kube_rulesets())
def test_kube_rulesets_parse(text: str) -> None:
    ruleset = kubenat.Ruleset.parse(text)
    assert "KUBE-SERVICES" in ruleset.chains("nat")


@settings(max_examples=50)
@given(kst.flannel_frames())
def test_flannel_frames_decapsulate_on_the_peer(frame: bytes) -> None:
    conf = NetConf.parse({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})
    peer = Overlay(
        conf,
        Lease(
            ipaddress.IPv4Network("10.244.2.0/24"),
            ipaddress.IPv4Address("10.96.0.2"),
            "vxlan",
            "02:00:00:00:02:02",
        ),
        [
            Lease(
                ipaddress.IPv4Network("10.244.1.0/24"),
                ipaddress.IPv4Address("10.96.0.1"),
                "vxlan",
                "02:00:00:00:01:01",
            )
        ],
    )
    inner = kubenat.Packet.from_bytes(peer.decap(frame), link="ip")
    assert ipaddress.ip_address(inner.dst) in ipaddress.ip_network("10.244.2.0/24")


def test_setup_hook_registers_packets() -> None:
    kst._hypothesis_setup_hook()

    @settings(max_examples=10)
    @given(st.from_type(kubenat.Packet))
    def inner(packet: kubenat.Packet) -> None:
        assert isinstance(packet, kubenat.Packet)

    inner()
