"""hostPort mappings: node:port -> pod:port, as the node's NAT rules implement them.

Two styles:

* ``"cni"``: the CNI ``portmap`` plugin (kubelet with CNI, today's norm). CNI-HOSTPORT-DNAT
  (hooked from PREROUTING and OUTPUT for LOCAL destinations) jumps, per pod, to
  ``CNI-DN-<hash>`` (sha512 of network name + container id, 28 characters) which marks hairpin
  and localhost traffic through CNI-HOSTPORT-SETMARK and DNATs; CNI-HOSTPORT-MASQ (hooked,
  prepended, from POSTROUTING) masquerades marked packets.
* ``"docker"``: Docker publishing the pause container's ports, as Kubernetes 1.1-era nodes
  did (``-p 0.0.0.0:80:80``): the DOCKER chains of the nat and filter tables, Docker 1.9 style
  with the userland proxy on.

Rules are printed as ``iptables-save`` shows them (complete tables, built-in chains included).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubenat.errors import InvalidArgument
from kubenat.k8s import Cluster, Pod, load

DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
#: portmap's default ``markMasqBit``.
DEFAULT_MARK_BIT = 13
MAX_CHAIN_LENGTH = 28
STYLES = ("cni", "docker")


@dataclass(frozen=True)
class PortMapping:
    """One hostPort of a pod (portmap's ``PortMapEntry``)."""

    pod: Pod
    host_port: int
    container_port: int
    protocol: str  # lower case, as the CNI runtime config carries it
    host_ip: str | None
    pod_ip: str


def container_id(pod: Pod) -> str:
    """A stable stand-in for the pod sandbox's container id (manifests do not carry it)."""
    return hashlib.sha256(f"{pod.namespace}/{pod.name}".encode()).hexdigest()


def dn_chain(network: str, cid: str) -> str:
    """``MustFormatChainNameWithPrefix(network, cid, "DN-")``: ``CNI-DN-`` + sha512 hex, 28 chars."""
    digest = hashlib.sha512((network + cid).encode()).hexdigest()
    return f"CNI-DN-{digest}"[:MAX_CHAIN_LENGTH]


def mappings(cluster: Cluster, node_name: str | None = None) -> list[PortMapping]:
    """Every hostPort of every pod (on ``node_name``, if given) that is not on the host network."""
    out = []
    for pod in sorted(cluster.pods, key=lambda p: (p.namespace, p.name)):
        if pod.host_network or not pod.host_ports:
            continue
        if node_name is not None and pod.node_name != node_name:
            continue
        if pod.pod_ip is None:
            raise InvalidArgument(
                f"{pod.ref}: status.podIP: required to map its hostPorts", what="pod", reason="no pod IP"
            )
        for _container, port in pod.host_ports:
            out.append(
                PortMapping(
                    pod, port.host_port, port.container_port, port.protocol.lower(), port.host_ip, pod.pod_ip
                )
            )
    return out


def _addr(ip: str) -> str:
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


def _hostport_dest(m: PortMapping) -> list[str]:
    if m.host_ip and m.host_ip not in ("0.0.0.0", "::"):
        return ["-d", _addr(m.host_ip)]
    return []


def _escape(comment: str) -> str:
    return '"' + comment.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cni_rules(
    maps: list[PortMapping],
    *,
    network: str = "cbr0",
    container_ids: Mapping[str, str] | None = None,
    mark_bit: int = DEFAULT_MARK_BIT,
    snat: bool = True,
) -> str:
    """The nat table the portmap plugin leaves behind for these mappings."""
    ids = dict(container_ids or {})
    mark = f"{1 << mark_bit:#x}/{1 << mark_bit:#x}"
    by_pod: dict[tuple[str, str], list[PortMapping]] = {}
    for m in maps:
        by_pod.setdefault((m.pod.namespace, m.pod.name), []).append(m)
    chains = [DNAT_CHAIN] + ([SETMARK_CHAIN, MASQ_CHAIN] if snat else [])
    top: list[str] = []
    per_pod: list[str] = []
    for (ns, name), entries in by_pod.items():
        pod = entries[0].pod
        cid = ids.get(f"{ns}/{name}", container_id(pod))
        chain = dn_chain(network, cid)
        chains.append(chain)
        comment = _escape(f'dnat name: "{network}" id: "{cid}"'[:255])
        for proto in sorted({e.protocol for e in entries}):
            ports = [str(e.host_port) for e in entries if e.protocol == proto]
            for i in range(0, len(ports), 15):
                top.append(
                    f"-A {DNAT_CHAIN} -p {proto} -m comment --comment {comment} "
                    f"-m multiport --dports {','.join(ports[i : i + 15])} -j {chain}"
                )
        for e in entries:
            base = [*_hostport_dest(e), "-p", e.protocol, "-m", e.protocol, "--dport", str(e.host_port)]
            sources = [e.pod_ip] + (["127.0.0.1"] if ":" not in e.pod_ip else []) if snat else []
            for source in sources:
                per_pod.append(" ".join(["-A", chain, "-s", _addr(source), *base, "-j", SETMARK_CHAIN]))
            to = f"[{e.pod_ip}]:{e.container_port}" if ":" in e.pod_ip else f"{e.pod_ip}:{e.container_port}"
            per_pod.append(" ".join(["-A", chain, *base, "-j", "DNAT", "--to-destination", to]))
    lines = ["*nat"]
    lines += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    lines += [f":{c} - [0:0]" for c in chains]
    lines.append(f"-A PREROUTING -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}")
    lines.append(f"-A OUTPUT -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}")
    if snat:
        lines.append(
            f'-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j {MASQ_CHAIN}'
        )
    lines += top
    if snat:
        lines.append(
            f'-A {SETMARK_CHAIN} -m comment --comment "CNI portfwd masquerade mark" '
            f"-j MARK --set-xmark {mark}"
        )
        lines.append(f"-A {MASQ_CHAIN} -m mark --mark {mark} -j MASQUERADE")
    lines += per_pod
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def docker_rules(maps: list[PortMapping], *, bridge: str = "docker0", bridge_cidr: str | None = None) -> str:
    """The filter and nat tables Docker (1.9, userland proxy on) writes when publishing these ports."""
    nat_post = [f"-A POSTROUTING -s {bridge_cidr} ! -o {bridge} -j MASQUERADE"] if bridge_cidr else []
    nat_docker: list[str] = []
    filt_docker: list[str] = []
    for m in maps:
        proto = ["-p", m.protocol, "-m", m.protocol, "--dport"]
        dest = _hostport_dest(m)
        nat_post.append(
            " ".join(
                ["-A POSTROUTING -s", _addr(m.pod_ip), "-d", _addr(m.pod_ip), *proto, str(m.container_port)]
            )
            + " -j MASQUERADE"
        )
        nat_docker.append(
            " ".join(["-A DOCKER", *dest, "!", "-i", bridge, *proto, str(m.host_port)])
            + f" -j DNAT --to-destination {m.pod_ip}:{m.container_port}"
        )
        filt_docker.append(
            " ".join(
                [
                    "-A DOCKER -d",
                    _addr(m.pod_ip),
                    "!",
                    "-i",
                    bridge,
                    "-o",
                    bridge,
                    *proto,
                    str(m.container_port),
                ]
            )
            + " -j ACCEPT"
        )
    lines = ["*filter"]
    lines += [f":{c} ACCEPT [0:0]" for c in ("INPUT", "FORWARD", "OUTPUT")]
    lines.append(":DOCKER - [0:0]")
    lines += [
        f"-A FORWARD -o {bridge} -j DOCKER",
        f"-A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT",
        f"-A FORWARD -i {bridge} -o {bridge} -j ACCEPT",
        *filt_docker,
        "COMMIT",
        "*nat",
    ]
    lines += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    lines.append(":DOCKER - [0:0]")
    lines += [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
        *nat_post,
        *nat_docker,
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def build_text(
    objects: Any,
    style: str = "cni",
    *,
    node_name: str | None = None,
    network: str = "cbr0",
    container_ids: Mapping[str, str] | None = None,
    mark_bit: int = DEFAULT_MARK_BIT,
    snat: bool = True,
    bridge: str = "docker0",
    bridge_cidr: str | None = None,
) -> str:
    """hostPort rules for the pods in ``objects`` (on ``node_name`` if given), as iptables-save text.

    ``container_ids`` maps ``ns/name`` to the sandbox container id portmap hashes into the chain
    name (default: a stable hash of the pod's name). For the docker style, ``bridge_cidr``
    defaults to the node's podCIDR (Docker's ``--bip`` under flannel) when a Node is given.
    """
    if style not in STYLES:
        raise InvalidArgument(
            f"style: {style!r} is not one of {', '.join(STYLES)}", what="style", reason="unknown"
        )
    if not 0 <= mark_bit <= 31:
        raise InvalidArgument(
            f"mark_bit: {mark_bit} is not between 0 and 31", what="mark_bit", reason="range"
        )
    cluster = objects if isinstance(objects, Cluster) else load(objects)
    maps = mappings(cluster, node_name)
    if style == "cni":
        return cni_rules(maps, network=network, container_ids=container_ids, mark_bit=mark_bit, snat=snat)
    if bridge_cidr is None and node_name is not None:
        node = cluster.node(node_name)
        if node is not None and node.pod_cidr:
            bridge_cidr = node.pod_cidr
    return docker_rules(maps, bridge=bridge, bridge_cidr=bridge_cidr)
