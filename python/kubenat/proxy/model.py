"""kube-proxy's view of services and endpoints: service ports, endpoint info, CategorizeEndpoints."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from kubenat.k8s import Cluster, EndpointSlice, Service, ServicePort
from kubenat.k8s.node import ZONE_LABEL
from kubenat.proxy import chains
from kubenat.proxy.config import ProxyConfig

TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints")


@dataclass(frozen=True)
class EndpointInfo:
    """One endpoint of a service port (``BaseEndpointInfo``)."""

    ip: str
    port: int
    is_local: bool
    ready: bool
    serving: bool
    terminating: bool
    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()
    node_name: str | None = None

    @property
    def string(self) -> str:
        """``ip:port`` as kube-proxy prints and hashes it."""
        return chains.endpoint_string(self.ip, self.port)


@dataclass(frozen=True)
class ServicePortInfo:
    """One service port as kube-proxy sees it (``servicePortInfo``), with its chain names."""

    service: Service
    port: ServicePort
    name_string: str
    protocol: str
    cluster_ip: str
    external_ips: tuple[str, ...]
    load_balancer_vips: tuple[str, ...]
    load_balancer_source_ranges: tuple[str, ...]
    node_port: int
    health_check_node_port: int
    session_affinity_client_ip: bool
    sticky_seconds: int
    external_policy_local: bool
    internal_policy_local: bool

    @property
    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.load_balancer_vips) or bool(self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)

    @cached_property
    def svc_chain(self) -> str:
        return chains.svc_chain(self.name_string, self.protocol)

    @cached_property
    def svl_chain(self) -> str:
        return chains.svl_chain(self.name_string, self.protocol)

    @cached_property
    def ext_chain(self) -> str:
        return chains.ext_chain(self.name_string, self.protocol)

    @cached_property
    def fw_chain(self) -> str:
        return chains.fw_chain(self.name_string, self.protocol)

    def sep_chain(self, endpoint: EndpointInfo) -> str:
        return _sep_chain(self.name_string, self.protocol, endpoint.string)


@lru_cache(maxsize=65536)
def _sep_chain(spn: str, protocol: str, endpoint: str) -> str:
    return chains.sep_chain(spn, protocol, endpoint)


def _cluster_ip(service: Service, config: ProxyConfig) -> str:
    """``GetClusterIPByFamily``."""
    if not service.cluster_ips:
        return service.cluster_ip if service.cluster_ip and config.family_ok(service.cluster_ip) else ""
    for ip in service.cluster_ips:
        if ip != "None" and config.family_ok(ip):
            return ip
    return ""


def service_ports(service: Service, config: ProxyConfig) -> list[ServicePortInfo]:
    """The service ports kube-proxy programs for this service.

    None for ExternalName and headless services, or when the cluster IP is of the other family.
    """
    if service.type == "ExternalName" or service.cluster_ip in ("", "None"):
        return []
    cluster_ip = _cluster_ip(service, config)
    if not cluster_ip:
        return []
    lb_vips = []
    for ingress in service.load_balancer_ingress:
        if not ingress.ip or not config.family_ok(ingress.ip):
            continue
        # The LoadBalancerIPMode gate (on since 1.30): "Proxy" VIPs are not captured on nodes.
        if config.version == "current" and ingress.ip_mode == "Proxy":
            continue
        lb_vips.append(ingress.ip)
    etp_local = service.type in ("NodePort", "LoadBalancer") and service.external_traffic_policy == "Local"
    hcnp = service.health_check_node_port if service.type == "LoadBalancer" and etp_local else 0
    out = []
    for port in service.ports:
        spn = chains.service_port_name(service.namespace, service.name, port.name)
        out.append(
            ServicePortInfo(
                service=service,
                port=port,
                name_string=spn,
                protocol=port.protocol.lower(),
                cluster_ip=cluster_ip,
                external_ips=tuple(ip for ip in service.external_ips if config.family_ok(ip)),
                load_balancer_vips=tuple(lb_vips),
                load_balancer_source_ranges=tuple(
                    r for r in service.load_balancer_source_ranges if config.family_ok(r)
                ),
                node_port=port.node_port,
                health_check_node_port=hcnp,
                session_affinity_client_ip=service.session_affinity == "ClientIP",
                sticky_seconds=service.session_affinity_timeout,
                external_policy_local=etp_local,
                internal_policy_local=service.internal_traffic_policy == "Local",
            )
        )
    return out


def endpoints_for(
    info: ServicePortInfo, slices: tuple[EndpointSlice, ...], config: ProxyConfig
) -> list[EndpointInfo]:
    """The endpoints of one service port (``EndpointSliceCache``): matched by port name and
    protocol, ``addresses[0]`` only, deduplicated by ``ip:port`` (a local copy wins), sorted
    by the endpoint string."""
    found: dict[str, EndpointInfo] = {}
    for slc in slices:
        if slc.address_type == "FQDN":
            continue
        for port in slc.ports:
            if port.port is None or port.name != info.port.name or port.protocol != info.port.protocol:
                continue
            for ep in slc.endpoints:
                if not ep.addresses:
                    continue
                # The loader stores addresses in canonical form already.
                ip = ep.addresses[0]
                if not config.family_ok(ip):
                    continue
                is_local = ep.node_name is not None and ep.node_name == config.node_name
                c = ep.conditions
                epi = EndpointInfo(
                    ip=ip,
                    port=port.port,
                    is_local=is_local,
                    ready=c.is_ready,
                    serving=c.is_serving,
                    terminating=c.is_terminating,
                    zone_hints=frozenset(ep.zone_hints),
                    node_hints=frozenset(ep.node_hints),
                    node_name=ep.node_name,
                )
                if epi.string not in found or is_local:
                    found[epi.string] = epi
    return [found[k] for k in sorted(found)]


def _can_use_topology(
    info: ServicePortInfo, endpoints: list[EndpointInfo], config: ProxyConfig
) -> str | None:
    """The zone to filter Ready endpoints by, or None (topology-aware routing not in effect)."""
    if config.version == "1.28":
        mode = None
        for key in TOPOLOGY_ANNOTATIONS:
            mode = info.service.annotation(key) or mode
        if mode not in ("Auto", "auto"):
            return None
    zone = dict(config.node_labels).get(ZONE_LABEL)
    if not zone:
        return None
    has_zone = False
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.zone_hints:
            return None
        has_zone = has_zone or zone in ep.zone_hints
    return zone if has_zone else None


@dataclass(frozen=True)
class Categorized:
    cluster: list[EndpointInfo]
    local: list[EndpointInfo]
    all_reachable: list[EndpointInfo]
    has_any: bool


def categorize(info: ServicePortInfo, endpoints: list[EndpointInfo], config: ProxyConfig) -> Categorized:
    """``CategorizeEndpoints``: cluster, local and all locally reachable endpoints."""
    cluster: list[EndpointInfo] = []
    local: list[EndpointInfo] = []
    has_any = False
    zone = None
    if info.uses_cluster_endpoints:
        zone = _can_use_topology(info, endpoints, config)
        cluster = [e for e in endpoints if e.ready and (zone is None or zone in e.zone_hints)]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not info.uses_local_endpoints:
        return Categorized(cluster, [], cluster, has_any)
    local_ready = local_serving_terminating = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.is_local
        elif e.serving and e.terminating:
            has_any = True
            local_serving_terminating = local_serving_terminating or e.is_local
    use_terminating = False
    if local_ready:
        local = [e for e in endpoints if e.is_local and e.ready]
    elif local_serving_terminating:
        use_terminating = True
        local = [e for e in endpoints if e.is_local and e.serving and e.terminating]
    if not info.uses_cluster_endpoints:
        return Categorized(cluster, local, local, has_any)
    if zone is None and not use_terminating:
        return Categorized(cluster, local, cluster, has_any)
    merged = {e.string: e for e in cluster}
    merged.update({e.string: e for e in local})
    return Categorized(cluster, local, [merged[k] for k in sorted(merged)], has_any)


def service_port_infos(
    cluster: Cluster, config: ProxyConfig
) -> list[tuple[ServicePortInfo, list[EndpointInfo]]]:
    """Every programmed service port with its endpoints, services sorted by namespace/name."""
    out = []
    for service in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
        slices = cluster.slices_for(service)
        for info in service_ports(service, config):
            out.append((info, endpoints_for(info, slices, config)))
    return out
