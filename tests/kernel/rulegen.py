"""Hypothesis strategies for the differential suite: rulesets the kernel accepts, and packets that hit them.

Two shapes (matches: -s -d -p -i -o, tcp/udp/sctp ports and ranges, multiport, --syn, --tcp-flags,
icmp types, mark, connmark, comment, addrtype, conntrack, state, statistic; targets: ACCEPT, DROP,
REJECT, RETURN, jump, goto, MARK, CONNMARK, LOG, NFLOG, NOTRACK/CT, DNAT, SNAT, MASQUERADE,
REDIRECT; the kube-proxy shape adds recent, nfacct and MASQUERADE --random-fully):
* ``general_rulesets``: random rules from the supported set of matches and targets, in the raw,
  mangle, nat and filter tables, with user chains jumped to (``-j``/``-g``) from one built-in
  chain each, so that every target is used only where the kernel allows it.
* ``kube_rulesets``: kube-proxy's rules for random Services/EndpointSlices, built by
  ``kubenat.proxy.build_text`` (ClusterIP, NodePort, LoadBalancer, external IPs, session affinity,
  traffic policies, no-endpoint REJECTs).

The testbed's node has ``eth0`` (10.253.1.1, towards the client), ``eth1`` (10.253.2.1, the
default route) and ``eth2`` (10.253.3.1, for 10.244.3.0/24), plus 192.168.7.2 on eth0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from kubenat import strategies as kst

NODE_IP = "192.168.7.2"
LOCAL = (NODE_IP, "10.253.1.1", "10.253.2.1", "127.0.0.1")
HOSTS = ("10.1.2.3", "10.1.2.4", "10.1.9.9", "10.96.0.10", "10.96.0.11", "10.244.3.7", "203.0.113.5", NODE_IP)
NETS = (
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.96.0.10/32",
    "10.244.3.0/24",
    "203.0.113.0/24",
    "192.168.7.2/32",
)
PORTS = (53, 80, 443, 8080, 30080)
ENDPOINTS = ("10.244.3.7", "10.244.3.8", "10.1.9.9", "203.0.113.9")
NETS6 = ("fd00:1::/64", "fd00:1::3/128", "fd00:96::10/128", "fd00:244:3::/64", "fd00:253:2::1/128")
ENDPOINTS6 = ("fd00:244:3::7", "fd00:244:3::8", "fd00:1::9")
LOCAL6 = ("fd00:253:1::1", "fd00:253:2::1")
HOSTS6 = ("fd00:1::3", "fd00:1::9", "fd00:96::10", "fd00:244:3::7", "fd00:253:2::1", "fd00:9::9")


@dataclass(frozen=True)
class Probe:
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    path: str

    def __str__(self) -> str:
        return f"{self.proto} {self.src}:{self.sport} -> {self.dst}:{self.dport} ({self.path})"


def general_rulesets(family: int = 4) -> st.SearchStrategy[str]:
    """Random rulesets (``kubenat.strategies.rulesets``) aimed at the testbed's node."""
    if family == 6:
        return kst.rulesets(
            family=6,
            nets=NETS6,
            endpoints=ENDPOINTS6,
            snat_sources=("fd00:253:2::1", "fd00:9::9"),
        )
    return kst.rulesets(nets=NETS, endpoints=ENDPOINTS, snat_sources=("10.253.2.1", NODE_IP, "10.9.9.9"))


@st.composite
def probes(draw: st.DrawFn, first_port: int = 40000, family: int = 4) -> list[Probe]:
    """A handful of packets likely to hit the generated rules; distinct source ports."""
    if family == 6:
        local, remote, hosts = LOCAL6, ("fd00:1::3", "fd00:1::9", "2001:db8::5"), HOSTS6
    else:
        local, remote, hosts = LOCAL[:3], ("10.1.2.3", "10.1.9.9", "203.0.113.5"), HOSTS
    result = []
    for i in range(draw(st.integers(6, 16))):
        proto = draw(st.sampled_from(["tcp", "udp", "icmp", "sctp"]))
        path = draw(st.sampled_from(["in", "in", "in", "out"]))
        src = draw(st.sampled_from(local if path == "out" else remote))
        dst = draw(st.sampled_from(hosts))
        sport = first_port + i if draw(st.integers(0, 5)) else 1000 + i
        dport = 0 if proto == "icmp" else draw(st.sampled_from(PORTS))
        result.append(Probe(proto, src, dst, sport, dport, path))
    return result


TESTBED_OPTIONS: dict[str, Any] = {
    "sinks": 2,
    "routes": {"10.244.3.0/24": "sink1", "fd00:244:3::/64": "sink1"},
    "addresses": {"eth0": [f"{NODE_IP}/24"]},
}


CLUSTER_CIDR = "10.244.0.0/16"
_PROTOCOL_LISTS = st.lists(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=1, max_size=2, unique=True)


@st.composite
def kube_rulesets(draw: st.DrawFn) -> tuple[str, list[Probe]]:
    """kube-proxy's rules for 1-3 random Services (via ``kubenat.proxy``), and probes aimed at
    them: cluster IPs, NodePorts, load-balancer and external IPs, from pods, from outside and
    from the node itself. Every probe has its own source address (so ClientIP affinity of one
    probe never steers another)."""
    from kubenat.proxy import build_text

    objects: list[dict[str, Any]] = []
    targets: list[tuple[str, str, int, bool]] = []  # (proto, address, port, node-port?)
    for index in range(draw(st.integers(1, 3))):
        name = f"svc{index}"
        protocols = draw(
            st.lists(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=1, max_size=2, unique=True)
        )
        kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
        cluster_ip = f"10.96.{index}.10"
        ports = []
        for i, proto in enumerate(protocols):
            port: dict[str, Any] = {"name": f"p{i}", "port": 80 + i, "protocol": proto}
            if kind != "ClusterIP":
                port["nodePort"] = 30000 + 10 * index + i
            ports.append(port)
        spec: dict[str, Any] = {
            "type": kind,
            "clusterIP": cluster_ip,
            "ports": ports,
            "sessionAffinity": draw(st.sampled_from(["None", "None", "ClientIP"])),
            "internalTrafficPolicy": draw(st.sampled_from(["Cluster", "Cluster", "Local"])),
        }
        external = [f"198.51.100.{index * 4 + 1}"] if draw(st.booleans()) else []
        if external:
            spec["externalIPs"] = external
        if kind != "ClusterIP":
            spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
        service: dict[str, Any] = {
            "kind": "Service",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": spec,
        }
        lb = []
        if kind == "LoadBalancer":
            lb = [f"198.51.100.{index * 4 + 2}"]
            service["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb]}}
            if draw(st.booleans()):
                spec["loadBalancerSourceRanges"] = ["203.0.113.0/28"]
        endpoints = [
            {
                "addresses": [f"10.244.{draw(st.sampled_from([3, 5]))}.{10 * index + j + 1}"],
                "nodeName": draw(st.sampled_from(["n1", "n2"])),
                "conditions": {"ready": draw(st.sampled_from([True, True, True, False])), "serving": True},
            }
            for j in range(draw(st.sampled_from([0, 1, 2, 2, 3, 3])))
        ]
        objects += [
            service,
            {
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-a",
                    "namespace": "ns",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [
                    {"name": p["name"], "port": 8080 + i, "protocol": p["protocol"]}
                    for i, p in enumerate(ports)
                ],
            },
        ]
        for p in ports:
            proto = p["protocol"].lower()
            targets += [(proto, cluster_ip, p["port"], False)]
            targets += [(proto, addr, p["port"], False) for addr in external + lb]
            if "nodePort" in p:
                targets.append((proto, NODE_IP, p["nodePort"], True))
    version = draw(st.sampled_from(["1.28", "current"]))
    text = build_text(
        objects,
        node_name="n1",
        node_ips=(NODE_IP,),
        cluster_cidrs=(CLUSTER_CIDR,),
        interface_addresses=(f"{NODE_IP}/24", "10.253.1.1/24", "10.253.2.1/24", "10.253.3.1/24"),
        version=version,
    )
    batch = []
    for i in range(draw(st.integers(6, 16))):
        proto, dst, dport, node_port = draw(st.sampled_from(targets))
        source = draw(
            st.sampled_from(
                ["pod", "outside", "node", "localhost"] if node_port else ["pod", "outside", "node"]
            )
        )
        path = "out" if source in ("node", "localhost") else "in"
        src = {
            "pod": f"10.244.1.{i + 1}",
            "outside": f"203.0.113.{i + 1}",
            "node": NODE_IP,
            "localhost": "127.0.0.1",
        }[source]
        if source == "localhost":
            dst = "127.0.0.1"
        batch.append(Probe(proto, src, dst, 40000 + i, dport, path))
    return text, batch
