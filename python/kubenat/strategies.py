"""Hypothesis strategies for fuzzing your own rules and manifests with kubenat.

    from hypothesis import given
    from kubenat import Netfilter, strategies as kst

    @given(kst.packets(dst=kst.addresses_in("10.96.0.0/16")))
    def test_no_service_packet_is_dropped(packet):
        assert Netfilter(my_rules).evaluate(packet).verdict != "DROP"

Strategies: :func:`packets` (IPv4/IPv6; TCP, UDP, SCTP, ICMP), :func:`rulesets` (random
iptables-save text from the supported matches and targets, loadable into a kernel),
:func:`services` and :func:`endpoint_slices` (Kubernetes objects as ``kubectl -o json`` gives
them), :func:`kube_rulesets` (kube-proxy's rules for random services), :func:`flannel_frames`
(VXLAN frames a flannel node sends). Hypothesis loads this module through its entry point and
registers :func:`packets` for ``st.from_type(kubenat.Packet)``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import strategies as st

from kubenat._core import Packet
from kubenat.strategies_rules import rulesets

PROTOCOLS = ("tcp", "udp", "sctp", "icmp")

# ----------------------------------------------------------------------------------- addresses


def addresses_in(network: str) -> st.SearchStrategy[str]:
    """Host addresses inside ``network`` (``"10.96.0.0/16"``, ``"fd00::/112"``)."""
    net = ipaddress.ip_network(network, strict=False)
    lo, hi = int(net.network_address), int(net.broadcast_address)
    return st.integers(lo, hi).map(lambda n: str(ipaddress.ip_address(n)))


def ipv4_addresses() -> st.SearchStrategy[str]:
    """Any IPv4 unicast-looking address (no 0.0.0.0/8, multicast or broadcast)."""
    return addresses_in("1.0.0.0/8") | addresses_in("10.0.0.0/8") | addresses_in("192.168.0.0/16")


def ipv6_addresses() -> st.SearchStrategy[str]:
    return addresses_in("fd00::/64") | addresses_in("2001:db8::/64")


ports = st.integers(1, 65535)

# ----------------------------------------------------------------------------------- packets


@st.composite
def packets(
    draw: st.DrawFn,
    *,
    family: int | None = None,
    protocols: tuple[str, ...] = PROTOCOLS,
    src: st.SearchStrategy[str] | None = None,
    dst: st.SearchStrategy[str] | None = None,
    dport: st.SearchStrategy[int] | None = None,
    ttl: st.SearchStrategy[int] | None = None,
) -> Packet:
    """A :class:`kubenat.Packet` with valid checksums.

    ``src``/``dst`` strategies fix the family (draw from :func:`addresses_in`); otherwise
    ``family`` (4 or 6) or either. ``ttl`` defaults to any TTL from 1 (a forwarded packet with
    TTL 1 expires on the node, as in the kernel).
    """
    # A given address strategy decides the family; the other side follows it.
    source = draw(src) if src is not None else None
    dest = draw(dst) if dst is not None else None
    fixed = source or dest
    fam = ipaddress.ip_address(fixed).version if fixed else family or draw(st.sampled_from([4, 6]))
    pick = ipv4_addresses() if fam == 4 else ipv6_addresses()
    source = source if source is not None else draw(pick)
    dest = dest if dest is not None else draw(pick)
    if ipaddress.ip_address(source).version != ipaddress.ip_address(dest).version:
        dest = source  # the two given strategies disagree on the family: keep the draw valid
    proto = draw(st.sampled_from(protocols))
    ttl = draw(ttl if ttl is not None else st.integers(1, 255))
    payload = draw(st.binary(max_size=64))
    if proto == "icmp":
        return Packet.icmp(
            src=source, dst=dest, id=draw(st.integers(0, 65535)), seq=draw(st.integers(0, 65535)), ttl=ttl
        )
    sport = draw(ports)
    dp = draw(dport if dport is not None else ports)
    if proto == "tcp":
        flags = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R"]))
        return Packet.tcp(src=source, dst=dest, sport=sport, dport=dp, flags=flags, ttl=ttl, payload=payload)
    if proto == "udp":
        return Packet.udp(src=source, dst=dest, sport=sport, dport=dp, ttl=ttl, payload=payload)
    return Packet.sctp(src=source, dst=dest, sport=sport, dport=dp, ttl=ttl)


# ----------------------------------------------------------------------------------- rulesets

# rulesets(*, tables, family, nets, ports, endpoints, snat_sources, in_interfaces, out_interfaces)
# lives in kubenat.strategies_rules (it is also the kernel suite's generator).

# ----------------------------------------------------------------------------------- Kubernetes

_names = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")


@st.composite
def services(
    draw: st.DrawFn, *, namespace: str = "default", cluster_cidr: str = "10.96.0.0/16"
) -> dict[str, Any]:
    """A Service object (``kubectl get svc -o json`` form): ClusterIP, NodePort or
    LoadBalancer, one to three ports, optional ClientIP affinity and traffic policies."""
    kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
    count = draw(st.integers(1, 3))
    port_numbers = draw(st.lists(ports, min_size=count, max_size=count, unique=True))
    node_ports = draw(st.lists(st.integers(30000, 32767), min_size=count, max_size=count, unique=True))
    spec_ports = []
    for i, number in enumerate(port_numbers):
        entry: dict[str, Any] = {
            "name": f"p{i}",
            "port": number,
            "targetPort": draw(ports),
            "protocol": draw(st.sampled_from(["TCP", "UDP", "SCTP"])),
        }
        if kind != "ClusterIP":
            entry["nodePort"] = node_ports[i]
        spec_ports.append(entry)
    spec: dict[str, Any] = {"type": kind, "clusterIP": draw(addresses_in(cluster_cidr)), "ports": spec_ports}
    if draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
    if kind != "ClusterIP":
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": draw(_names), "namespace": namespace},
        "spec": spec,
    }
    if kind == "LoadBalancer":
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": draw(addresses_in("203.0.113.0/24"))}]}}
    return svc


@st.composite
def endpoint_slices(
    draw: st.DrawFn,
    service: dict[str, Any],
    *,
    pod_cidr: str = "10.244.0.0/16",
    nodes: tuple[str, ...] = ("node-a",),
) -> dict[str, Any]:
    """An EndpointSlice for ``service``: its ports, zero to five endpoints with ready /
    serving / terminating conditions."""
    meta = service["metadata"]
    addresses = draw(st.lists(addresses_in(pod_cidr), max_size=5, unique=True))
    endpoints = []
    for addr in addresses:
        ready = draw(st.booleans())
        endpoints.append(
            {
                "addresses": [addr],
                "conditions": {
                    "ready": ready,
                    "serving": ready or draw(st.booleans()),
                    "terminating": not ready,
                },
                "nodeName": draw(st.sampled_from(nodes)),
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{meta['name']}-abcde",
            "namespace": meta["namespace"],
            "labels": {"kubernetes.io/service-name": meta["name"]},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": p["name"], "port": p["targetPort"], "protocol": p["protocol"]}
            for p in service["spec"]["ports"]
        ],
    }


@st.composite
def clusters(draw: st.DrawFn, *, max_services: int = 4) -> list[dict[str, Any]]:
    """Services with their EndpointSlices, uniquely named, as a list of objects."""
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for svc in draw(st.lists(services(), min_size=1, max_size=max_services)):
        if svc["metadata"]["name"] in used:
            continue
        used.add(svc["metadata"]["name"])
        out += [svc, draw(endpoint_slices(svc))]
    return out


@st.composite
def kube_rulesets(draw: st.DrawFn, *, node_ip: str = "192.168.7.2", **config: Any) -> str:
    """kube-proxy's complete iptables-mode ruleset for random services (see :func:`clusters`)."""
    from kubenat import proxy

    objects = draw(clusters())
    options = {"node_name": "node-a", "node_ips": (node_ip,), "cluster_cidrs": ("10.244.0.0/16",), **config}
    return proxy.build_text(objects, "iptables", **options)


# ----------------------------------------------------------------------------------- flannel


@st.composite
def flannel_frames(draw: st.DrawFn, *, vni: int = 1) -> bytes:
    """A VXLAN frame as a flannel node (10.96.0.1, pods 10.244.1.0/24) sends it to 10.96.0.2
    (pods 10.244.2.0/24), carrying a random pod-to-pod packet."""
    from kubenat.flannel import Lease, NetConf
    from kubenat.flannel_overlay import Overlay

    conf = NetConf.parse({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": vni}})
    here = Lease(
        ipaddress.IPv4Network("10.244.1.0/24"),
        ipaddress.IPv4Address("10.96.0.1"),
        "vxlan",
        "02:00:00:00:01:01",
    )
    there = Lease(
        ipaddress.IPv4Network("10.244.2.0/24"),
        ipaddress.IPv4Address("10.96.0.2"),
        "vxlan",
        "02:00:00:00:02:02",
    )
    overlay = Overlay(conf, here, [there], underlay_mac="02:00:00:00:00:01", gateway_mac="02:00:00:00:00:02")
    inner = draw(packets(family=4, src=addresses_in("10.244.1.0/24"), dst=addresses_in("10.244.2.0/24")))
    return overlay.encap(inner.to_bytes(), ip_id=draw(st.integers(0, 65535)))


def _hypothesis_setup_hook() -> None:
    """Called by hypothesis (entry point ``hypothesis``): ``st.from_type(Packet)`` works."""
    st.register_type_strategy(Packet, packets())


__all__ = [
    "addresses_in",
    "clusters",
    "endpoint_slices",
    "flannel_frames",
    "ipv4_addresses",
    "ipv6_addresses",
    "kube_rulesets",
    "packets",
    "rulesets",
    "services",
]
