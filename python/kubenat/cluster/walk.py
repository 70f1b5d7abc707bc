"""Following a packet through the cluster: pod namespace, node hooks, overlay, and back.

The walk is a loop over "the packet is at node N, arriving from interface I": the node's
netfilter decides (verdict, NAT, routing), then the packet is delivered to a local socket, to a
pod behind the bridge, to another node through the flannel overlay, or onto the underlay. The
same loop carries the reply back; the nodes' conntrack tables give it the reverse translation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubenat._core import Packet, Result
from kubenat.cluster.journey import Hop
from kubenat.cluster.nodes import EXTERNAL_IFACE, SimNode
from kubenat.errors import DecapError, InvalidArgument
from kubenat.proxy.userspace_proxy import ProxiedConnection

if TYPE_CHECKING:
    from kubenat.cluster.model import Cluster

#: A packet crosses at most this many nodes; more means a routing loop in the model.
MAX_NODE_VISITS = 8


@dataclass(frozen=True)
class Arrival:
    """Where a walk ended."""

    hops: list[Hop]
    verdict: str
    delivered_to: str | None
    packet: Packet
    node: SimNode | None


def make_packet(protocol: str, src: str, dst: str, sport: int, dport: int, *, flags: str = "S") -> Packet:
    proto = protocol.lower()
    if proto == "tcp":
        return Packet.tcp(src=src, dst=dst, sport=sport, dport=dport, flags=flags)
    if proto == "udp":
        return Packet.udp(src=src, dst=dst, sport=sport, dport=dport)
    if proto == "sctp":
        return Packet.sctp(src=src, dst=dst, sport=sport, dport=dport)
    raise InvalidArgument(
        f"protocol: {protocol!r} is not tcp, udp or sctp", what="protocol", reason="unknown"
    )


def reply_to(packet: Packet) -> Packet:
    """The first answer to ``packet`` (SYN-ACK for TCP), addressed back to its sender."""
    assert packet.sport is not None and packet.dport is not None
    return make_packet(packet.proto, packet.dst, packet.src, packet.dport, packet.sport, flags="SA")


def fired_rules(result: Result) -> tuple[str, ...]:
    """The rules whose matches all held, with what they did, in the order they fired."""
    out = []
    for step in result.trace:
        if step.kind == "rule" and step.matched:
            text = step.text.removeprefix(f"-A {step.chain} ")
            out.append(f"{step.table}/{step.chain}: {text}  → {step.action}")
        elif step.kind == "policy" and step.action.endswith(("DROP", "REJECT")):
            out.append(f"{step.table}/{step.chain}: {step.action}")
    return tuple(out)


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def netfilter_summary(result: Result) -> str:
    """One line: the verdict, each rewrite with what caused it, and where the packet goes next."""
    before, parts = result.original, [result.verdict]
    new_conn = result.ct_state == "NEW"
    if (before.dst, before.dport) != (result.dst, result.dport):
        why = "REDIRECT" if "REDIRECT" in result.nat else "DNAT" if new_conn else "conntrack"
        was, now = _endpoint(before.dst, before.dport), _endpoint(result.dst, result.dport)
        parts.append(f"{why}: destination {was} → {now}")
    if (before.src, before.sport) != (result.src, result.sport):
        why = ("MASQUERADE" if result.masquerade else "SNAT") if new_conn else "conntrack"
        parts.append(
            f"{why}: source {_endpoint(before.src, before.sport)} → {_endpoint(result.src, result.sport)}"
        )
    if not new_conn and result.ct_state:
        parts.append(f"ct {result.ct_state}")
    if result.verdict == "ACCEPT":
        parts.append("local delivery" if result.local_delivery else f"out {result.out_interface}")
    return ", ".join(parts)


def outcome_lines(node: SimNode, packet: Packet, from_: str) -> tuple[str, ...]:
    """Every result the node's rules could give this packet, with its exact probability."""
    lines = []
    outcomes = node.netfilter.outcomes(packet, from_=from_, trace=False)
    if len(outcomes) < 2:
        return ()
    for outcome in outcomes:
        r = outcome.result
        where = _endpoint(r.dst, r.dport) if r.verdict == "ACCEPT" else ""
        lines.append(f"{outcome.probability:7.2%}  {r.verdict} {where}".rstrip())
    return tuple(lines)


def listening_container(node: SimNode, pod_ip: str, protocol: str, port: int) -> str | None:
    """``pod ns/name container c :port`` when a container of the pod at ``pod_ip`` listens there."""
    pod = node.pod_with_ip(pod_ip)
    if pod is None:
        return None
    for container in pod.containers:
        for p in container.ports:
            if p.container_port == port and p.protocol.lower() == protocol.lower():
                return f"pod {pod.namespace}/{pod.name} container {container.name} :{port}"
    # A port not declared in the spec may still be open; say so rather than guess a container.
    return f"pod {pod.namespace}/{pod.name} :{port} (no container declares this port)"


def walk(
    cluster: Cluster,
    node: SimNode,
    packet: Packet,
    from_: str,
    *,
    seed: int,
    destination_client: str | None = None,
) -> Arrival:
    """Carry ``packet`` from its arrival at ``node`` (on ``from_``, or ``"local"``) to its end.

    ``destination_client`` is the address of an external client that the packet may leave
    the cluster towards (replies to outside traffic).
    """
    hops: list[Hop] = []
    for _ in range(MAX_NODE_VISITS):
        choices = outcome_lines(node, packet, from_)
        result = node.netfilter.evaluate(packet, from_=from_, seed=seed)
        out = result.packet if result.packet is not None else packet
        hops.append(
            Hop(
                "netfilter",
                node.name,
                netfilter_summary(result),
                out.to_bytes(),
                rules=fired_rules(result),
                nat=tuple(result.nat),
                choices=choices,
            )
        )
        if result.verdict != "ACCEPT":
            answer = " (an ICMP error or TCP RST goes back)" if result.verdict == "REJECT" else ""
            hops.append(Hop("drop", node.name, f"{result.verdict} on {node.name}{answer}", out.to_bytes()))
            return Arrival(hops, result.verdict, None, out, node)
        packet = out
        dst, dport, proto = packet.dst, packet.dport or 0, packet.proto
        if result.local_delivery:
            if node.proxy is not None and (conn := _userspace_portal(node, packet)) is not None:
                # The userspace proxier accepted the connection on its port and opens its own.
                hops.append(
                    Hop(
                        "proxy",
                        node.name,
                        f"kube-proxy (userspace) accepts on :{dport} for {conn.service}, "
                        f"connects to {conn.endpoint}",
                        packet.to_bytes(),
                    )
                )
                src = node.source_address_for(conn.endpoint_ip)
                packet = make_packet(proto, src, conn.endpoint_ip, 40000 + (seed % 20000), conn.endpoint_port)
                from_ = "local"
                continue
            return Arrival(
                [*hops, _deliver(node, packet, "node process")],
                "ACCEPT",
                f"node {node.name} :{dport}",
                packet,
                node,
            )
        iface = result.out_interface
        if iface == node.bridge:
            where = listening_container(node, dst, proto, dport)
            if where is None:
                hops.append(Hop("drop", node.name, f"no pod has {dst} on {node.bridge}", packet.to_bytes()))
                return Arrival(hops, "DROP", None, packet, node)
            hops.append(Hop("veth", node.name, f"{node.bridge} → veth → pod eth0 ({dst})", packet.to_bytes()))
            hops.append(_deliver(node, packet, where))
            return Arrival(hops, "ACCEPT", where, packet, node)
        if iface == node.overlay.device:
            remote = cluster.node_for_pod_ip(dst)
            if remote is None:
                hops.append(Hop("drop", node.name, f"no flannel lease covers {dst}", packet.to_bytes()))
                return Arrival(hops, "DROP", None, packet, node)
            try:
                frame = node.overlay.encap(packet.to_bytes(), link="ethernet")
            except DecapError as e:
                hops.append(Hop("drop", node.name, f"flannel drops it: {e}", packet.to_bytes()))
                return Arrival(hops, "DROP", None, packet, node)
            hops.append(Hop("encap", node.name, _encap_summary(node, remote, frame), frame, link="ethernet"))
            try:
                inner = remote.overlay.decap(frame, link="ethernet")
            except DecapError as e:
                hops.append(
                    Hop("drop", remote.name, f"{remote.overlay.device} drops it: {e}", frame, "ethernet")
                )
                return Arrival(hops, "DROP", None, packet, remote)
            hops.append(Hop("decap", remote.name, f"{remote.overlay.device} decapsulates", inner))
            node, packet, from_ = (
                remote,
                Packet.from_bytes(inner, link="ip"),
                remote.overlay.device or "flannel",
            )
            continue
        if iface == EXTERNAL_IFACE:
            other = cluster.node_with_ip(dst)
            if other is not None and other is not node:
                hops.append(Hop("wire", node.name, f"underlay {node.ip} → {other.ip}", packet.to_bytes()))
                node, from_ = other, EXTERNAL_IFACE
                continue
            if destination_client is not None and dst == destination_client:
                where = f"external client {dst}"
                hops.append(_deliver(node, packet, where))
                return Arrival(hops, "ACCEPT", where, packet, node)
            hops.append(
                Hop(
                    "wire",
                    node.name,
                    f"leaves the cluster towards {dst} via {EXTERNAL_IFACE}",
                    packet.to_bytes(),
                )
            )
            return Arrival(hops, "ACCEPT", f"outside the cluster ({dst})", packet, node)
        hops.append(
            Hop("drop", node.name, f"routed to {iface}, which the model does not follow", packet.to_bytes())
        )
        return Arrival(hops, "DROP", None, packet, node)
    raise InvalidArgument("the packet crossed too many nodes: a routing loop", what="route", reason="loop")


def _deliver(node: SimNode, packet: Packet, where: str) -> Hop:
    return Hop("deliver", node.name, f"delivered to {where}", packet.to_bytes())


def _encap_summary(node: SimNode, remote: SimNode, frame: bytes) -> str:
    outer = Packet.from_bytes(frame, link="ethernet")
    backend = node.overlay.backend
    return (
        f"flannel {backend}: outer {outer.src}:{outer.sport} → {outer.dst}:{outer.dport} "
        f"({len(frame)} bytes on the wire, {node.name} → {remote.name})"
    )


def _userspace_portal(node: SimNode, packet: Packet) -> ProxiedConnection | None:
    """When ``packet`` reached one of the userspace proxier's ports, where the proxier sends it."""
    assert node.proxy is not None
    port = packet.dport or 0
    if port not in node.proxy.portals:
        return None
    return node.proxy.connect(port, packet.src)
