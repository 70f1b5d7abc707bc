"""A model of the userspace proxy process (1.1-1.2): which pod a REDIRECTed connection reaches.

The iptables rules only bring a connection to the proxier's local socket (its proxy port);
the proxier then accepts it and opens a *new* connection from the node to an endpoint chosen
by its round-robin load balancer (``LoadBalancerRR``), honouring ClientIP session affinity
(sticky for 180 minutes by default in 1.1). Endpoints come from the Endpoints object (or the
EndpointSlices standing in for it): ready addresses only, in the order listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubenat.errors import InvalidArgument
from kubenat.k8s import Cluster
from kubenat.proxy.userspace import Portal, portals

#: 1.1's default ClientIP stickiness (``defaultStickyMaxAgeMinutes``), in seconds.
DEFAULT_STICKY_SECONDS = 180 * 60


@dataclass(frozen=True)
class ProxiedConnection:
    """Where the proxy sends a connection: the endpoint, and the node address it connects from."""

    service: str
    proxy_port: int
    endpoint_ip: str
    endpoint_port: int
    source_ip: str
    client_ip: str
    sticky: bool

    @property
    def endpoint(self) -> str:
        return f"{self.endpoint_ip}:{self.endpoint_port}"


@dataclass
class _Balancer:
    endpoints: list[tuple[str, int]]
    affinity: bool
    ttl: float
    index: int = 0
    clients: dict[str, tuple[tuple[str, int], float]] = field(default_factory=dict)

    def pick(self, client_ip: str, now: float) -> tuple[tuple[str, int], bool]:
        if self.affinity:
            hit = self.clients.get(client_ip)
            if hit is not None and hit[0] in self.endpoints and now - hit[1] < self.ttl:
                self.clients[client_ip] = (hit[0], now)
                return hit[0], True
        endpoint = self.endpoints[self.index % len(self.endpoints)]
        self.index = (self.index + 1) % len(self.endpoints)
        if self.affinity:
            self.clients[client_ip] = (endpoint, now)
        return endpoint, False


class UserspaceProxy:
    """The proxier's sockets and load balancers for one node.

    ``connect(proxy_port, client_ip)`` says where a connection REDIRECTed/DNATed to that
    proxy port goes. State (round-robin position, affinity table) persists across calls.
    """

    def __init__(
        self,
        cluster: Cluster,
        node_ip: str,
        *,
        proxy_ports: dict[str, int] | None = None,
        seed: int = 0,
        port_range: str = "",
        sticky_seconds: int | None = None,
    ) -> None:
        self.node_ip = node_ip
        self.portals: dict[int, Portal] = {}
        self._balancers: dict[int, _Balancer] = {}
        for portal in portals(cluster, proxy_ports, seed, port_range):
            self.portals[portal.proxy_port] = portal
            endpoints: list[tuple[str, int]] = []
            for slc in cluster.slices_for(portal.service):
                ports = [
                    p.port
                    for p in slc.ports
                    if p.name == portal.port.name and p.protocol == portal.port.protocol
                ]
                for port in ports:
                    for ep in slc.endpoints:
                        if ep.conditions.is_ready and port is not None:
                            endpoints.append((ep.addresses[0], port))
            ttl = sticky_seconds if sticky_seconds is not None else DEFAULT_STICKY_SECONDS
            self._balancers[portal.proxy_port] = _Balancer(
                endpoints, portal.service.session_affinity == "ClientIP", float(ttl)
            )

    def port_of(self, service: str) -> int:
        """The proxy port of ``ns/name:port`` (or ``ns/name``, or ``name``)."""
        for port, portal in self.portals.items():
            ns_name = f"{portal.service.namespace}/{portal.service.name}"
            if service in (portal.name, portal.name.rstrip(":"), ns_name, portal.service.name):
                return port
        raise InvalidArgument(f"no proxied service {service!r}", what="service", reason="unknown")

    def portal_for(
        self, dest_ip: str, dest_port: int, protocol: str = "TCP", *, local_ips: tuple[str, ...] = ()
    ) -> Portal | None:
        """The portal a packet to ``dest_ip:dest_port`` hits, as the KUBE-PORTALS-* rules (any
        of the service's IPs) or the KUBE-NODEPORT-* rules (a NodePort on one of ``local_ips``,
        the node IP by default) select it; None when no portal rule matches."""
        proto = protocol.upper()
        for portal in self.portals.values():
            if portal.port.protocol != proto:
                continue
            if dest_port == portal.port.port and dest_ip in portal.destinations:
                return portal
        for portal in self.portals.values():
            local = local_ips or (self.node_ip, "127.0.0.1")
            if portal.port.protocol == proto and portal.port.node_port == dest_port and dest_ip in local:
                return portal
        return None

    def route(
        self, client_ip: str, dest_ip: str, dest_port: int, protocol: str = "TCP", *, now: float = 0.0
    ) -> ProxiedConnection | None:
        """Follow a connection from ``client_ip`` to a service address through the portal rules
        and the proxy process to the pod it reaches (None when no portal matches)."""
        portal = self.portal_for(dest_ip, dest_port, protocol)
        return None if portal is None else self.connect(portal.proxy_port, client_ip, now=now)

    def connect(self, proxy_port: int, client_ip: str, *, now: float = 0.0) -> ProxiedConnection:
        """Accept a connection on ``proxy_port`` from ``client_ip`` at time ``now`` (seconds)."""
        portal = self.portals.get(proxy_port)
        if portal is None:
            raise InvalidArgument(
                f"nothing listens on proxy port {proxy_port}", what="proxy_port", reason="unknown"
            )
        balancer = self._balancers[proxy_port]
        if not balancer.endpoints:
            raise InvalidArgument(
                f"{portal.name} has no endpoints: the proxy closes the connection",
                what="endpoints",
                reason="none",
            )
        (ip, port), sticky = balancer.pick(client_ip, now)
        return ProxiedConnection(portal.name, proxy_port, ip, port, self.node_ip, client_ip, sticky)
