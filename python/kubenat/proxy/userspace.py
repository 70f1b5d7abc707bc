"""kube-proxy's userspace mode (Kubernetes 1.1-1.2): portal rules that hand traffic to a local proxy.

For every service port the proxier listens on a local "proxy port" and installs, in the nat
table, one rule per destination in KUBE-PORTALS-CONTAINER (traffic arriving from containers
or the network; ``REDIRECT --to-ports``) and one in KUBE-PORTALS-HOST (traffic the node sends
itself; ``DNAT --to-destination nodeIP:proxyPort``, since REDIRECT misbehaves for local
traffic), plus the same pair without ``-d`` for a NodePort in KUBE-NODEPORT-CONTAINER/HOST.
Rules were installed with ``iptables -A`` one by one; this module prints them as
``iptables-save`` shows them, with the hook jumps in PREROUTING and OUTPUT.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from kubenat.errors import InvalidArgument
from kubenat.k8s import Cluster, Service, ServicePort

PORTALS_CONTAINER = "KUBE-PORTALS-CONTAINER"
PORTALS_HOST = "KUBE-PORTALS-HOST"
NODEPORT_CONTAINER = "KUBE-NODEPORT-CONTAINER"
NODEPORT_HOST = "KUBE-NODEPORT-HOST"
CHAINS = (NODEPORT_CONTAINER, NODEPORT_HOST, PORTALS_CONTAINER, PORTALS_HOST)
PORTAL_COMMENT = "handle ClusterIPs; NOTE: this must be before the NodePort rules"
NODEPORT_COMMENT = "handle service NodePorts; NOTE: this must be the last rule in the chain"
#: Where the proxier's sockets land when no --proxy-port-range is given (the kernel's ephemeral range).
DEFAULT_PORT_RANGE = (32768, 60999)


@dataclass(frozen=True)
class Portal:
    """One service port as the userspace proxier serves it."""

    service: Service
    port: ServicePort
    name: str  # "ns/name:port" (1.1 always writes the colon)
    proxy_port: int

    @property
    def protocol(self) -> str:
        return self.port.protocol.lower()

    @property
    def destinations(self) -> tuple[str, ...]:
        """The IPs that get a portal pair: cluster IP, external IPs, load-balancer ingress IPs."""
        ips = [self.service.cluster_ip, *self.service.external_ips]
        ips += [i.ip for i in self.service.load_balancer_ingress if i.ip]
        return tuple(dict.fromkeys(ips))


def portal_name(service: Service, port: ServicePort) -> str:
    """``ServicePortName.String()`` of the 1.1 proxier: ``ns/name:port``, colon even when unnamed."""
    return f"{service.namespace}/{service.name}:{port.name}"


def _parse_range(text: str) -> tuple[int, int]:
    if not text:
        return DEFAULT_PORT_RANGE
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high if sep else low)
    except ValueError:
        raise InvalidArgument(
            f"port range: {text!r} is not LOW-HIGH", what="port_range", reason="syntax"
        ) from None
    if not 1 <= lo <= hi <= 65535:
        raise InvalidArgument(
            f"port range: {text!r} is not within 1-65535", what="port_range", reason="range"
        )
    return lo, hi


def portals(
    cluster: Cluster, proxy_ports: Mapping[str, int] | None = None, seed: int = 0, port_range: str = ""
) -> list[Portal]:
    """Every proxied service port with its proxy port, services sorted by namespace/name.

    ``proxy_ports`` maps ``ns/name:port``, ``ns/name`` or ``name`` to a port; the rest are drawn
    without repetition from ``port_range`` (default: the ephemeral range) by a generator seeded
    with ``seed``, so the same input always gives the same ports.
    """
    given = dict(proxy_ports or {})
    lo, hi = _parse_range(port_range)
    rng = random.Random(seed)
    used = set(given.values())
    out = []
    for service in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
        if service.cluster_ip in ("", "None") or service.type == "ExternalName":
            continue
        for port in service.ports:
            name = portal_name(service, port)
            keys = (name, name.rstrip(":"), f"{service.namespace}/{service.name}", service.name)
            chosen = next((given[k] for k in keys if k in given), None)
            if chosen is None:
                if len(used) >= hi - lo + 1:
                    raise InvalidArgument(
                        f"port range {lo}-{hi} has no free proxy port left",
                        what="proxy_ports",
                        reason="exhausted",
                    )
                chosen = rng.randint(lo, hi)
                while chosen in used:
                    chosen = rng.randint(lo, hi)
            if not 1 <= chosen <= 65535:
                raise InvalidArgument(
                    f"proxy port for {name}: {chosen} is not a port", what="proxy_ports", reason="range"
                )
            used.add(chosen)
            out.append(Portal(service, port, name, chosen))
    unknown = set(given) - {
        k
        for p in out
        for k in (p.name, p.name.rstrip(":"), f"{p.service.namespace}/{p.service.name}", p.service.name)
    }
    if unknown:
        raise InvalidArgument(
            f"proxy ports given for unknown services: {', '.join(sorted(unknown))}",
            what="proxy_ports",
            reason="unknown",
        )
    return out


def _rule(chain: str, portal: Portal, dest: str | None, dport: int, target: list[str]) -> str:
    """One portal rule in iptables-save form (``-d``/``-p`` first, then the matches in order)."""
    parts = ["-A", chain]
    if dest is not None:
        parts += ["-d", f"{dest}/32" if ":" not in dest else f"{dest}/128"]
    parts += ["-p", portal.protocol, "-m", "comment", "--comment", f'"{portal.name}"']
    parts += ["-m", portal.protocol, "--dport", str(dport), *target]
    return " ".join(parts)


def nat_rules(portal_list: list[Portal], host_ip: str, listen_ip: str = "0.0.0.0") -> dict[str, list[str]]:
    """The rules of the four chains, per chain."""
    any_ip = listen_ip in ("0.0.0.0", "::")
    rules: dict[str, list[str]] = {chain: [] for chain in CHAINS}
    for p in portal_list:
        container = (
            ["-j", "REDIRECT", "--to-ports", str(p.proxy_port)]
            if any_ip
            else ["-j", "DNAT", "--to-destination", f"{listen_ip}:{p.proxy_port}"]
        )
        host = ["-j", "DNAT", "--to-destination", f"{host_ip if any_ip else listen_ip}:{p.proxy_port}"]
        for dest in p.destinations:
            rules[PORTALS_CONTAINER].append(_rule(PORTALS_CONTAINER, p, dest, p.port.port, container))
            rules[PORTALS_HOST].append(_rule(PORTALS_HOST, p, dest, p.port.port, host))
        if p.port.node_port:
            rules[NODEPORT_CONTAINER].append(_rule(NODEPORT_CONTAINER, p, None, p.port.node_port, container))
            rules[NODEPORT_HOST].append(_rule(NODEPORT_HOST, p, None, p.port.node_port, host))
    return rules


def hook_rules() -> dict[str, list[str]]:
    """PREROUTING/OUTPUT after ``iptablesInit``: portal jumps prepended, nodeport jumps appended."""
    return {
        "PREROUTING": [
            f'-A PREROUTING -m comment --comment "{PORTAL_COMMENT}" -j {PORTALS_CONTAINER}',
            f'-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "{NODEPORT_COMMENT}" '
            f"-j {NODEPORT_CONTAINER}",
        ],
        "OUTPUT": [
            f'-A OUTPUT -m comment --comment "{PORTAL_COMMENT}" -j {PORTALS_HOST}',
            f'-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "{NODEPORT_COMMENT}" '
            f"-j {NODEPORT_HOST}",
        ],
    }


def build_text(
    cluster: Cluster, config: object, *, proxy_ports: Mapping[str, int] | None = None, seed: int = 0
) -> str:
    """The nat table of a userspace-mode node, as ``iptables-save`` prints it."""
    from kubenat.proxy.config import ProxyConfig

    assert isinstance(config, ProxyConfig)
    config = config.with_cluster(cluster)
    host_ip = config.node_ip
    if host_ip is None:
        raise InvalidArgument(
            "userspace mode needs the node IP (--node-ip, or a Node object for --node-name): "
            "host traffic is DNATed to nodeIP:proxyPort",
            what="node_ips",
            reason="missing",
        )
    portal_list = portals(cluster, proxy_ports, seed, config.port_range)
    rules = nat_rules(portal_list, host_ip, config.bind_address)
    hooks = hook_rules()
    lines = ["*nat"]
    lines += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    lines += [f":{c} - [0:0]" for c in CHAINS]
    lines += hooks["PREROUTING"] + hooks["OUTPUT"]
    for chain in CHAINS:
        lines += rules[chain]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
