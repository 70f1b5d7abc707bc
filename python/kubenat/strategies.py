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
) -> Packet:
    """A :class:`kubenat.Packet` with valid checksums.

    ``src``/``dst`` strategies fix the family (draw from :func:`addresses_in`); otherwise
    ``family`` (4 or 6) or either.
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
    ttl = draw(st.integers(1, 255))
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

_NETS = ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.96.0.10/32", "192.168.0.0/16")
_HOOKS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
_IN_HOOKS = {"PREROUTING", "INPUT", "FORWARD"}
_OUT_HOOKS = {"FORWARD", "OUTPUT", "POSTROUTING"}


def _match_kinds(hook: str, proto: str | None) -> list[str]:
    kinds = ["src", "dst", "mark", "comment", "addrtype", "ctstate", "statistic"]
    if proto in ("tcp", "udp", "sctp"):
        kinds += ["dport", "sport", "multiport"]
    if proto == "icmp":
        kinds.append("icmp")
    if hook in _IN_HOOKS:
        kinds.append("in")
    if hook in _OUT_HOOKS:
        kinds.append("out")
    return kinds


@st.composite
def _match(draw: st.DrawFn, kind: str, proto: str | None) -> str:
    neg = "! " if draw(st.integers(0, 4)) == 0 else ""
    if kind in ("src", "dst"):
        return f"{neg}-{kind[0]} {draw(st.sampled_from(_NETS))}"
    if kind == "mark":
        return f"-m mark {neg}--mark {draw(st.sampled_from(['0x1', '0x4000/0x4000', '0x2/0x3']))}"
    if kind == "comment":
        return f'-m comment --comment "{draw(st.sampled_from(["a", "kube svc", "x-y"]))}"'
    if kind == "addrtype":
        side = draw(st.sampled_from(["--dst-type", "--src-type"]))
        return f"-m addrtype {neg}{side} {draw(st.sampled_from(['LOCAL', 'UNICAST']))}"
    if kind == "ctstate":
        return f"-m conntrack {neg}--ctstate {draw(st.sampled_from(['NEW', 'ESTABLISHED', 'DNAT']))}"
    if kind == "statistic":
        return f"-m statistic --mode random --probability {draw(st.sampled_from(['0.5', '0.25']))}"
    if kind == "dport":
        return f"-m {proto} {neg}--dport {draw(st.sampled_from(['53', '80', '443', '30000:32767']))}"
    if kind == "sport":
        return f"-m {proto} {neg}--sport {draw(st.sampled_from(['1000', '40000:50000']))}"
    if kind == "multiport":
        return f"-m multiport {neg}--dports {draw(st.sampled_from(['80,443', '53,8080', '1:100,30080']))}"
    if kind == "icmp":
        return f"-m icmp {neg}--icmp-type {draw(st.sampled_from(['echo-request', 'echo-reply']))}"
    iface = draw(st.sampled_from(["eth0", "eth1", "eth+", "lo"]))
    return f"{neg}-{'i' if kind == 'in' else 'o'} {iface}"


@st.composite
def _target(draw: st.DrawFn, table: str, hook: str, proto: str | None, chains: list[str], user: bool) -> str:
    ported = proto in ("tcp", "udp", "sctp")
    options = ["MARK", "ACCEPT"] + (["RETURN"] if user else []) + (["jump", "goto"] if chains else [])
    if table == "filter":
        options += ["DROP", "REJECT"]
    elif table == "nat" and hook in ("PREROUTING", "OUTPUT"):
        options += ["DNAT", "REDIRECT"] if ported else ["DNAT"]
    elif table == "nat":
        options += ["SNAT", "MASQUERADE"] if hook == "POSTROUTING" else ["SNAT"]
    kind = draw(st.sampled_from(options))
    if kind == "MARK":
        how = draw(st.sampled_from(["--set-xmark 0x4000/0x4000", "--set-mark 0x1", "--or-mark 0x2"]))
        return f"-j MARK {how}"
    if kind in ("jump", "goto"):
        return f"{'-j' if kind == 'jump' else '-g'} {draw(st.sampled_from(chains))}"
    if kind == "REJECT":
        return "-j REJECT --reject-with " + draw(
            st.sampled_from(["icmp-port-unreachable", "icmp-host-prohibited"])
        )
    if kind == "DNAT":
        port = f":{draw(st.sampled_from([80, 8080]))}" if ported and draw(st.booleans()) else ""
        return f"-j DNAT --to-destination {draw(st.sampled_from(['10.244.3.7', '10.1.9.9']))}{port}"
    if kind == "REDIRECT":
        return f"-j REDIRECT --to-ports {draw(st.sampled_from([8080, 15001]))}"
    if kind == "SNAT":
        return f"-j SNAT --to-source {draw(st.sampled_from(['10.253.2.1', '10.9.9.9']))}"
    return f"-j {kind}"


@st.composite
def _rule(draw: st.DrawFn, table: str, hook: str, chains: list[str], user: bool) -> str:
    proto = draw(st.sampled_from([None, "tcp", "udp", "icmp", "sctp"]))
    parts = [f"-p {proto}"] if proto else []
    # iptables refuses a repeated -s/-d/-i/-o, so each kind of match appears at most once.
    kinds = draw(st.lists(st.sampled_from(_match_kinds(hook, proto)), max_size=3, unique=True))
    parts += [draw(_match(kind, proto)) for kind in kinds]
    parts.append(draw(_target(table, hook, proto, chains, user)))
    return " ".join(parts)


@st.composite
def rulesets(draw: st.DrawFn, *, tables: tuple[str, ...] = tuple(_HOOKS)) -> str:
    """iptables-save text of a random IPv4 ruleset that the kernel accepts (targets only where
    their table and hook allow them, user chains without loops)."""
    sections = []
    chosen = draw(st.lists(st.sampled_from(sorted(tables)), min_size=1, max_size=len(tables), unique=True))
    for table in sorted(chosen, key=list(_HOOKS).index):
        lines = [f"*{table}"]
        policies = {hook: "ACCEPT" for hook in _HOOKS[table]}
        if table == "filter":
            policies.update({hook: draw(st.sampled_from(["ACCEPT", "DROP"])) for hook in _HOOKS[table]})
        lines += [f":{hook} {policy} [0:0]" for hook, policy in policies.items()]
        rules: list[str] = []
        for hook in _HOOKS[table]:
            # Each user chain serves one hook, and may only jump to chains declared after it.
            names = [f"{hook[:3]}{i}" for i in range(draw(st.integers(0, 2)))]
            lines += [f":{name} - [0:0]" for name in names]
            for i, name in enumerate(names):
                rules += [
                    f"-A {name} {draw(_rule(table, hook, names[i + 1 :], True))}"
                    for _ in range(draw(st.integers(0, 3)))
                ]
            rules += [
                f"-A {hook} {draw(_rule(table, hook, names, False))}" for _ in range(draw(st.integers(0, 4)))
            ]
        sections.append("\n".join([*lines, *rules, "COMMIT"]))
    return "\n".join(sections) + "\n"


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
