"""``kubenat.cluster.Cluster``: manifests + kube-proxy mode + flannel → nodes that move packets."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from kubenat import k8s
from kubenat.cluster.journey import Hop, Journey
from kubenat.cluster.nodes import EXTERNAL_IFACE, SimNode, build_node, default_netconf, lease_for
from kubenat.cluster.walk import listening_container, make_packet, reply_to, walk
from kubenat.errors import InvalidArgument
from kubenat.flannel import NetConf
from kubenat.k8s import Pod
from kubenat.proxy import ProxyConfig
from kubenat.proxy.build import make_config

#: An external client on the nodes' LAN (used when the source is "external").
DEFAULT_EXTERNAL_CLIENT = "10.96.219.100"
#: The first ephemeral port a client uses (Linux's ip_local_port_range starts at 32768).
DEFAULT_SPORT = 40000


class Cluster:
    """A cluster built from manifests: one :class:`SimNode` per Node object.

    Each node runs kube-proxy's rules in ``mode`` (``"iptables"`` or ``"userspace"``), the
    hostPort rules of its pods (``hostports``: ``"cni"`` portmap or ``"docker"``), and flannel
    (``backend``: ``"vxlan"``, ``"udp"`` or ``"host-gw"``, or a full ``netconf``).
    """

    def __init__(
        self,
        objects: Any,
        *,
        mode: str = "iptables",
        proxy_config: Any = None,
        backend: str = "vxlan",
        netconf: NetConf | Mapping[str, Any] | None = None,
        hostports: str = "cni",
        proxy_ports: Mapping[str, int] | None = None,
        seed: int = 0,
        underlay_prefix: int = 24,
        external_client: str = DEFAULT_EXTERNAL_CLIENT,
    ) -> None:
        self.manifests = objects if isinstance(objects, k8s.Cluster) else k8s.load(objects)
        if not self.manifests.nodes:
            raise InvalidArgument("the manifests have no Node objects", what="objects", reason="no nodes")
        self.mode = mode
        self.seed = seed
        self.external_client = external_client
        # Each send is a new connection: a fresh ephemeral port keeps conntrack entries apart,
        # while `recent` lists (ClientIP affinity) and the userspace balancers keep their state.
        self._next_sport = DEFAULT_SPORT
        base: ProxyConfig = make_config(proxy_config)
        if netconf is None:
            conf = default_netconf(self.manifests, base, backend)
        elif isinstance(netconf, NetConf):
            conf = netconf
        else:
            conf = NetConf.parse(netconf)
        self.netconf = conf
        leases = {n.name: lease_for(n, conf.backend.type) for n in self.manifests.nodes}
        self.nodes: dict[str, SimNode] = {
            n.name: build_node(
                self.manifests,
                n,
                mode=mode,
                base_config=base,
                netconf=conf,
                leases=leases,
                hostports=hostports,
                proxy_ports=dict(proxy_ports or {}),
                seed=seed,
                underlay_prefix=underlay_prefix,
            )
            for n in self.manifests.nodes
        }

    # ------------------------------------------------------------------ lookups

    def node(self, name: str) -> SimNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise InvalidArgument(
                f"no node {name!r}; have {', '.join(self.nodes)}", what="node", reason="unknown"
            ) from None

    def node_with_ip(self, ip: str) -> SimNode | None:
        return next((n for n in self.nodes.values() if n.ip == ip), None)

    def node_for_pod_ip(self, ip: str) -> SimNode | None:
        addr = ipaddress.ip_address(ip)
        return next((n for n in self.nodes.values() if addr in n.pod_cidr), None)

    def pod(self, name: str) -> Pod:
        """A pod by ``name`` or ``namespace/name``."""
        ns, _, short = name.rpartition("/")
        for pod in self.manifests.pods:
            if pod.name == short and (not ns or pod.namespace == ns):
                return pod
        raise InvalidArgument(f"no pod {name!r}", what="pod", reason="unknown")

    def _address_of(self, name: str) -> str:
        """A destination given as an IP, ``localhost``, a service, a pod or a node name."""
        if name == "localhost":
            return "127.0.0.1"
        try:
            return str(ipaddress.ip_address(name))
        except ValueError:
            pass
        ns, _, short = name.rpartition("/")
        for svc in self.manifests.services:
            if svc.name == short and (not ns or svc.namespace == ns) and svc.cluster_ip not in ("", "None"):
                return str(svc.cluster_ip)
        if short in self.nodes:
            return self.nodes[short].ip
        pod = self.pod(name)
        if pod.pod_ip is None:
            raise InvalidArgument(f"pod {name!r} has no status.podIP", what="destination", reason="no IP")
        return pod.pod_ip

    # ------------------------------------------------------------------ sending

    def send(
        self,
        source: str,
        destination: str,
        protocol: str = "tcp",
        port: int = 80,
        *,
        sport: int | None = None,
        via: str | None = None,
        seed: int | None = None,
    ) -> Journey:
        """Send one connection's first packet and its reply; return the journey.

        ``source``: a pod (``name`` or ``ns/name``), a node name, or ``"external"`` (a client at
        ``external_client`` outside the cluster; ``via`` names the node it reaches first when
        the destination is not a node IP — a load balancer's choice). ``destination``: an IP,
        ``localhost``, or a service, pod or node name.
        """
        draw = self.seed if seed is None else seed
        if sport is None:
            sport, self._next_sport = self._next_sport, self._next_sport + 1
        dst = self._address_of(destination)
        proto = protocol.lower()
        if source in self.nodes:
            node = self.nodes[source]
            src_ip = node.source_address_for(dst)
            packet = make_packet(proto, src_ip, dst, sport, port)
            return self._journey(
                f"node-to-{self._kind(dst)}",
                source,
                destination,
                proto,
                port,
                node,
                packet,
                "local",
                [],
                draw,
            )
        if source == "external":
            node = self.node_with_ip(dst) or self.node(via or next(iter(self.nodes)))
            packet = make_packet(proto, self.external_client, dst, sport, port)
            first = Hop(
                "wire",
                node.name,
                f"external client {self.external_client} → {node.name} {EXTERNAL_IFACE}",
                packet.to_bytes(),
            )
            return self._journey(
                "external-to-internal",
                source,
                destination,
                proto,
                port,
                node,
                packet,
                EXTERNAL_IFACE,
                [first],
                draw,
            )
        pod = self.pod(source)
        if pod.pod_ip is None or pod.node_name not in self.nodes:
            raise InvalidArgument(
                f"pod {source!r} has no podIP or node", what="source", reason="not scheduled"
            )
        node = self.nodes[pod.node_name]
        if dst == pod.pod_ip or ipaddress.ip_address(dst).is_loopback:
            return self._inside_pod(pod, node, source, destination, proto, port, sport, dst)
        packet = make_packet(proto, pod.pod_ip, dst, sport, port)
        first = Hop(
            "veth",
            node.name,
            f"pod {pod.namespace}/{pod.name} eth0 → veth → {node.bridge}",
            packet.to_bytes(),
        )
        return self._journey(
            f"pod-to-{self._kind(dst)}",
            source,
            destination,
            proto,
            port,
            node,
            packet,
            node.bridge,
            [first],
            draw,
        )

    def _kind(self, dst: str) -> str:
        if self.node_for_pod_ip(dst) is not None:
            return "pod"
        if self.node_with_ip(dst) is not None:
            return "node"
        return "service"

    def _inside_pod(
        self,
        pod: Pod,
        node: SimNode,
        source: str,
        destination: str,
        proto: str,
        port: int,
        sport: int,
        dst: str,
    ) -> Journey:
        """Containers of a pod share the pause container's network namespace: localhost (or the
        pod's own IP) reaches a sibling container without touching the node's rules."""
        assert pod.pod_ip is not None
        packet = make_packet(proto, dst, dst, sport, port)
        hop = Hop(
            "namespace",
            f"{pod.namespace}/{pod.name}",
            f"pod network namespace (shared with the pause container), lo → {dst}:{port}",
            packet.to_bytes(),
        )
        where = listening_container(node, pod.pod_ip, proto, port)
        hops = [hop]
        if where is not None:
            hops.append(Hop("deliver", hop.where, f"delivered to {where}", packet.to_bytes()))
        reply = reply_to(packet)
        back = (
            Hop(
                "namespace",
                hop.where,
                f"reply {reply.src}:{reply.sport} → {reply.dst}:{reply.dport} on lo",
                reply.to_bytes(),
            ),
        )
        return Journey(
            "container-to-container",
            source,
            destination,
            proto,
            port,
            tuple(hops),
            back if where else (),
            where,
            f"{dst}:{port}" if where else None,
            "ACCEPT" if where else "REJECT",
        )

    def _journey(
        self,
        model: str,
        source: str,
        destination: str,
        proto: str,
        port: int,
        node: SimNode,
        packet: Any,
        from_: str,
        first: list[Hop],
        seed: int,
    ) -> Journey:
        there = walk(self, node, packet, from_, seed=seed)
        hops = first + there.hops
        if there.delivered_to is None or there.node is None:
            return Journey(
                model, source, destination, proto, port, tuple(hops), (), None, None, there.verdict
            )
        endpoint = f"{there.packet.dst}:{there.packet.dport}"
        # The reply starts where the request was accepted and goes back to the source address
        # the endpoint saw; conntrack on each node undoes its translations on the way.
        answer = reply_to(there.packet)
        end = there.node
        if end.pod_with_ip(answer.src) is not None:
            back_from = end.bridge
        else:
            back_from = "local"
        client = self.external_client if source == "external" else None
        back = walk(self, end, answer, back_from, seed=seed, destination_client=client)
        reply = list(back.hops)
        proxied = next((h for h in hops if h.kind == "proxy"), None)
        if proxied is not None and back.delivered_to is not None and back.node is not None:
            # userspace mode: the answer reached the proxier's backend socket; the proxier copies
            # it to the client's connection, whose reply conntrack turns back into the service.
            accepted = proxied.packet
            towards = reply_to(accepted)
            reply.append(
                Hop(
                    "proxy",
                    back.node.name,
                    "kube-proxy (userspace) copies the answer to the client's connection",
                    towards.to_bytes(),
                )
            )
            reply += walk(self, back.node, towards, "local", seed=seed, destination_client=client).hops
        return Journey(
            model,
            source,
            destination,
            proto,
            port,
            tuple(hops),
            tuple(reply),
            there.delivered_to,
            endpoint,
            "ACCEPT",
        )

    def environment(self, namespace: str = "default") -> list[tuple[str, str]]:
        """The service environment variables kubelet gives containers of ``namespace``."""
        from kubenat import envvars

        return envvars.service_env(self.manifests, namespace)
