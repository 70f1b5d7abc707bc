"""Service (core/v1): the part kube-proxy and kubelet read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kubenat.k8s._fields import Fields, describe, fail, ip_field, is_port_name, parse_cidr_sloppy
from kubenat.k8s.meta import lookup, read_meta

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
DEFAULT_AFFINITY_SECONDS = 10800
MAX_AFFINITY_SECONDS = 86400


@dataclass(frozen=True)
class ServicePort:
    """One entry of ``spec.ports``. ``node_port`` 0 means none; ``target_port`` is a number or a name."""

    name: str
    port: int
    protocol: str = "TCP"
    target_port: int | str = 0
    node_port: int = 0
    app_protocol: str | None = None


@dataclass(frozen=True)
class LoadBalancerIngress:
    """One entry of ``status.loadBalancer.ingress``."""

    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None


@dataclass(frozen=True)
class Service:
    """A Service. ``cluster_ip`` is ``""`` when unassigned and ``"None"`` when headless."""

    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ip: str = ""
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    selector: tuple[tuple[str, str], ...] = ()
    external_ips: tuple[str, ...] = ()
    external_name: str = ""
    session_affinity: str = "None"
    session_affinity_timeout: int = DEFAULT_AFFINITY_SECONDS
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    health_check_node_port: int = 0
    load_balancer_source_ranges: tuple[str, ...] = ()
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()
    ip_families: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    kind: ClassVar[str] = "Service"

    @property
    def ref(self) -> str:
        """``Service ns/name``, as errors and comments name it."""
        return f"Service {self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    def label(self, key: str) -> str | None:
        return lookup(self.labels, key)

    def annotation(self, key: str) -> str | None:
        return lookup(self.annotations, key)

    def port_named(self, name: str) -> ServicePort | None:
        for port in self.ports:
            if port.name == name:
                return port
        return None


def _enum(fields: Fields, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.raw(key)
    if value is None or value == "":
        return default
    if value not in allowed:
        fields.fail(key, f"{describe(value)} is not one of {', '.join(allowed)}")
    return str(value)


def _port(entry: Fields, service_type: str) -> ServicePort:
    port = entry.port("port", required=True)
    protocol = _enum(entry, "protocol", PROTOCOLS, "TCP")
    raw_target = entry.raw("targetPort")
    target: int | str
    if raw_target is None or raw_target == 0:
        target = port
    elif isinstance(raw_target, bool):
        entry.fail("targetPort", f"{raw_target} is not a port")
    elif isinstance(raw_target, int):
        target = entry.port("targetPort")
    elif isinstance(raw_target, str):
        if raw_target.isdigit():
            # IntOrString from YAML written as a quoted number; the API server would refuse
            # it as a name, kube-proxy never sees it. Accept it as the number it means.
            number = int(raw_target)
            if not 1 <= number <= 65535:
                entry.fail("targetPort", f"{number} is not a port")
            target = number
        elif not is_port_name(raw_target):
            entry.fail("targetPort", f"{describe(raw_target)} is neither a port number nor a port name")
        else:
            target = raw_target
    else:
        entry.fail("targetPort", f"{describe(raw_target)} is neither a port number nor a port name")
    node_port = entry.port("nodePort")
    if node_port and service_type not in ("NodePort", "LoadBalancer"):
        entry.fail("nodePort", f"may not be set when type is {service_type!r}")
    name = entry.string("name", "")
    return ServicePort(
        name=name,
        port=port,
        protocol=protocol,
        target_port=target,
        node_port=node_port,
        app_protocol=entry.opt_string("appProtocol"),
    )


def parse_service(data: Any) -> Service:
    """Build a :class:`Service` from a manifest mapping; raises ``ManifestError``."""
    fields, meta, label = read_meta("Service", data)
    spec = fields.child("spec", required=True)
    assert spec is not None
    service_type = _enum(spec, "type", SERVICE_TYPES, "ClusterIP")

    cluster_ips = []
    for path, value in spec.items("clusterIPs"):
        cluster_ips.append("None" if value == "None" else ip_field(spec, "", value, path))
    raw_cip = spec.raw("clusterIP")
    if raw_cip is None:
        cluster_ip = cluster_ips[0] if cluster_ips else ""
    elif raw_cip in ("", "None"):
        cluster_ip = raw_cip
    else:
        cluster_ip = ip_field(spec, "clusterIP", raw_cip)
    if cluster_ips and cluster_ip and cluster_ips[0] != cluster_ip:
        spec.fail("clusterIPs[0]", f"{cluster_ips[0]} differs from spec.clusterIP {cluster_ip}")

    ports = tuple(_port(entry, service_type) for entry in spec.mappings("ports"))
    seen: dict[tuple[str, int], int] = {}
    names: set[str] = set()
    for i, port in enumerate(ports):
        if len(ports) > 1 and not port.name:
            fail(label, f"spec.ports[{i}].name", "required when a service has more than one port")
        if port.name in names:
            fail(label, f"spec.ports[{i}].name", f"{port.name!r} is used by two ports")
        names.add(port.name)
        key = (port.protocol, port.port)
        if key in seen:
            fail(
                label,
                f"spec.ports[{i}].port",
                f"{port.port}/{port.protocol} duplicates spec.ports[{seen[key]}]",
            )
        seen[key] = i

    if not ports and cluster_ip != "None" and service_type != "ExternalName":
        spec.fail("ports", "required unless the service is headless or of type ExternalName")
    external_name = spec.string("externalName", "")
    if service_type == "ExternalName" and not external_name:
        spec.fail("externalName", "required when type is 'ExternalName'")

    external_ips = tuple(ip_field(spec, "", v, path) for path, v in spec.items("externalIPs"))
    ranges = []
    for path, value in spec.items("loadBalancerSourceRanges"):
        cidr = parse_cidr_sloppy(value) if isinstance(value, str) else None
        if cidr is None:
            fail(label, path, f"{describe(value)} is not a CIDR")
        ranges.append(str(cidr))

    affinity = _enum(spec, "sessionAffinity", ("None", "ClientIP"), "None")
    timeout = DEFAULT_AFFINITY_SECONDS
    config = spec.child("sessionAffinityConfig")
    client_ip = config.child("clientIP") if config is not None else None
    if client_ip is not None:
        timeout = client_ip.integer("timeoutSeconds", DEFAULT_AFFINITY_SECONDS)
        if not 1 <= timeout <= MAX_AFFINITY_SECONDS:
            client_ip.fail("timeoutSeconds", f"{timeout} is not between 1 and {MAX_AFFINITY_SECONDS}")

    ingress = []
    status = fields.child("status")
    lb = status.child("loadBalancer") if status is not None else None
    if lb is not None:
        for entry in lb.mappings("ingress"):
            raw_ip = entry.raw("ip")
            ip = None if raw_ip in (None, "") else ip_field(entry, "ip", raw_ip)
            ingress.append(
                LoadBalancerIngress(
                    ip=ip, hostname=entry.opt_string("hostname"), ip_mode=entry.opt_string("ipMode")
                )
            )

    return Service(
        namespace=meta.namespace,
        name=meta.name,
        type=service_type,
        cluster_ip=cluster_ip,
        cluster_ips=tuple(cluster_ips) or ((cluster_ip,) if cluster_ip else ()),
        ports=ports,
        selector=spec.string_map("selector"),
        external_ips=external_ips,
        external_name=external_name,
        session_affinity=affinity,
        session_affinity_timeout=timeout,
        external_traffic_policy=_enum(spec, "externalTrafficPolicy", ("Cluster", "Local"), "Cluster"),
        internal_traffic_policy=_enum(spec, "internalTrafficPolicy", ("Cluster", "Local"), "Cluster"),
        health_check_node_port=spec.port("healthCheckNodePort"),
        load_balancer_source_ranges=tuple(ranges),
        load_balancer_ingress=tuple(ingress),
        ip_families=tuple(_enum_value(spec, path, v) for path, v in spec.items("ipFamilies")),
        labels=meta.labels,
        annotations=meta.annotations,
    )


def _enum_value(spec: Fields, path: str, value: Any) -> str:
    if value not in ("IPv4", "IPv6"):
        fail(spec.obj, path, f"{describe(value)} is not one of IPv4, IPv6")
    return str(value)
