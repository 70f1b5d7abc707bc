"""One simulated node: its interfaces, routes, rules (kube-proxy + hostPort + flannel) and overlay."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from kubenat._core import Netfilter
from kubenat.flannel import ANNOTATION_PREFIX, Lease, NetConf, lease_from_node
from kubenat.flannel_overlay import Overlay
from kubenat.k8s import Cluster as Manifests
from kubenat.k8s import Node, Pod
from kubenat.proxy import ProxyConfig, node_text
from kubenat.proxy.build import make_config
from kubenat.proxy.compose import overlay as merge_rules
from kubenat.proxy.userspace_proxy import UserspaceProxy

EXTERNAL_IFACE = "eth0"
LOOPBACK = "lo"


def _mac(seed: str) -> str:
    """A stable, locally administered unicast MAC derived from a name (VTEP and NIC MACs)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


@dataclass
class SimNode:
    """A node of the simulated cluster, ready to evaluate packets.

    ``netfilter`` is stateful (conntrack, ``recent`` lists), so a reply evaluated after its
    request gets the reverse translation, as on a real node.
    """

    name: str
    ip: str
    pod_cidr: ipaddress.IPv4Network
    bridge: str
    underlay_prefix: int
    rules: str
    netfilter: Netfilter
    overlay: Overlay
    proxy: UserspaceProxy | None
    interfaces: dict[str, list[str]] = field(default_factory=dict)
    routes: list[tuple[str, str]] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)

    @property
    def bridge_ip(self) -> str:
        """The bridge's address: the pod subnet's first host, the pods' default gateway."""
        return str(self.pod_cidr.network_address + 1)

    @property
    def flannel_device(self) -> str:
        return self.overlay.device or EXTERNAL_IFACE

    @property
    def flannel_ip(self) -> str:
        """flannel.<VNI> carries the subnet's network address (/32), as flannel assigns it."""
        return str(self.pod_cidr.network_address)

    @property
    def mac(self) -> str:
        return _mac(f"nic:{self.name}")

    def source_address_for(self, dst: str) -> str:
        """The address a local process's connection to ``dst`` leaves from: the first address of
        the interface the longest matching route points at (what the kernel picks at connect)."""
        addr = ipaddress.ip_address(dst)
        if addr.is_loopback:
            return "127.0.0.1"
        if any(a.split("/")[0] == dst for addrs in self.interfaces.values() for a in addrs):
            return dst
        best: tuple[int, str] | None = None
        for prefix, iface in self.routes:
            net = ipaddress.ip_network(prefix)
            if addr in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, iface)
        iface = best[1] if best is not None else EXTERNAL_IFACE
        return self.interfaces.get(iface, [f"{self.ip}/32"])[0].split("/")[0]

    def pod_with_ip(self, ip: str) -> Pod | None:
        return next((p for p in self.pods if p.pod_ip == ip and not p.host_network), None)


def _node_ip(node: Node) -> str:
    ips = node.ips()
    if not ips:
        raise ValueError(f"Node {node.name}: status.addresses has no InternalIP")
    return str(ips[0])


def lease_for(node: Node, backend: str) -> Lease:
    """The flannel lease this node holds: from its ``flannel.alpha.coreos.com/*`` annotations
    when they are for ``backend``; otherwise its podCIDR, its IP and a stable VTEP MAC."""
    if not node.pod_cidrs:
        raise ValueError(f"Node {node.name}: spec.podCIDR is missing; flannel needs one subnet per node")
    ip = _node_ip(node)
    annotations = dict(node.annotations)
    if annotations.get(f"{ANNOTATION_PREFIX}/backend-type") == backend:
        published = lease_from_node(
            {
                "metadata": {"name": node.name, "annotations": annotations},
                "spec": {"podCIDRs": list(node.pod_cidrs)},
            }
        )
        return replace(published, underlay_mac=_mac(f"nic:{node.name}"))
    return Lease(
        subnet=ipaddress.IPv4Network(node.pod_cidrs[0]),
        public_ip=ipaddress.IPv4Address(ip),
        backend_type=backend,
        vtep_mac=_mac(f"vtep:{node.name}") if backend == "vxlan" else None,
        vni=1 if backend == "vxlan" else None,
        underlay_mac=_mac(f"nic:{node.name}"),
    )


def build_node(
    manifests: Manifests,
    node: Node,
    *,
    mode: str,
    base_config: ProxyConfig,
    netconf: NetConf,
    leases: dict[str, Lease],
    hostports: str,
    proxy_ports: dict[str, int] | None,
    seed: int,
    underlay_prefix: int,
) -> SimNode:
    """Everything one node runs, from the manifests: rules, interfaces, routes, overlay."""
    ip = _node_ip(node)
    lease = leases[node.name]
    assert lease.subnet is not None  # lease_for always sets it
    remotes = [lease_ for name, lease_ in leases.items() if name != node.name]
    ov = Overlay(
        netconf,
        lease,
        remotes,
        underlay_mac=lease.underlay_mac,
        peer_macs={str(r.public_ip): r.underlay_mac for r in remotes if r.underlay_mac},
        underlay_prefix=f"{ip}/{underlay_prefix}",
    )
    bridge = "docker0" if hostports == "docker" else "cni0"
    config = make_config(base_config, node_name=node.name, node_ips=(ip,), node_pod_cidrs=()).with_cluster(
        manifests
    )
    rules = node_text(manifests, mode, config, hostports=hostports, proxy_ports=proxy_ports, seed=seed)
    rules = merge_rules(rules, ov.iptables_save(), lambda _t, _c, _r: False)
    subnet = lease.subnet
    bridge_ip = str(subnet.network_address + 1)
    interfaces: dict[str, list[str]] = {
        LOOPBACK: ["127.0.0.1/8"],
        EXTERNAL_IFACE: [f"{ip}/{underlay_prefix}"],
        bridge: [f"{bridge_ip}/{subnet.prefixlen}"],
    }
    routes: list[tuple[str, str]] = [(str(subnet), bridge)]
    if ov.device is not None:
        interfaces[ov.device] = [f"{subnet.network_address}/32"]
        routes += [(str(r.subnet), ov.device) for r in remotes if r.subnet is not None]
    routes += [(str(ipaddress.ip_network(f"{ip}/{underlay_prefix}", strict=False)), EXTERNAL_IFACE)]
    routes += [("0.0.0.0/0", EXTERNAL_IFACE)]
    local = sorted({addr.split("/")[0] for addrs in interfaces.values() for addr in addrs})
    nf = Netfilter(rules, local_addresses=local, interfaces=interfaces, routes=routes)
    proxy = (
        UserspaceProxy(manifests, ip, proxy_ports=dict(proxy_ports or {}), seed=seed)
        if mode == "userspace"
        else None
    )
    pods = [p for p in manifests.pods if p.node_name == node.name]
    return SimNode(
        name=node.name,
        ip=ip,
        pod_cidr=subnet,
        bridge=bridge,
        underlay_prefix=underlay_prefix,
        rules=rules,
        netfilter=nf,
        overlay=ov,
        proxy=proxy,
        interfaces=interfaces,
        routes=routes,
        pods=pods,
    )


def default_netconf(manifests: Manifests, config: ProxyConfig, backend: str) -> NetConf:
    """flannel's net-conf.json for the cluster: the cluster CIDR, or the smallest prefix holding
    every node's podCIDR, with the given backend."""
    network: Any = config.cluster_cidrs[0] if config.cluster_cidrs else None
    if network is None:
        cidrs = [ipaddress.IPv4Network(n.pod_cidrs[0]) for n in manifests.nodes if n.pod_cidrs]
        if not cidrs:
            raise ValueError("no clusterCIDR and no Node with spec.podCIDR: cannot lay out flannel")
        net = cidrs[0]
        while not all(c.subnet_of(net) for c in cidrs):
            net = net.supernet()
        network = str(net)
    prefix = max(
        (ipaddress.IPv4Network(n.pod_cidrs[0]).prefixlen for n in manifests.nodes if n.pod_cidrs), default=24
    )
    return NetConf.parse({"Network": network, "SubnetLen": prefix, "Backend": {"Type": backend}})
