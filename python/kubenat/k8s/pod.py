"""Pod (core/v1): containers and their ports (hostPort), host networking, placement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kubenat.k8s._fields import Fields, describe, ip_field
from kubenat.k8s.meta import lookup, read_meta
from kubenat.k8s.service import PROTOCOLS


@dataclass(frozen=True)
class ContainerPort:
    """One entry of a container's ``ports``. ``host_port`` 0 means not published on the node."""

    container_port: int
    protocol: str = "TCP"
    name: str | None = None
    host_port: int = 0
    host_ip: str | None = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str | None = None
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True)
class Pod:
    """A Pod: where it runs, its IPs and the ports its containers expose."""

    namespace: str
    name: str
    containers: tuple[Container, ...] = ()
    node_name: str | None = None
    host_network: bool = False
    pod_ip: str | None = None
    pod_ips: tuple[str, ...] = ()
    host_ip: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    kind: ClassVar[str] = "Pod"

    @property
    def ref(self) -> str:
        return f"Pod {self.namespace}/{self.name}"

    def label(self, key: str) -> str | None:
        return lookup(self.labels, key)

    @property
    def host_ports(self) -> tuple[tuple[Container, ContainerPort], ...]:
        """Every (container, port) published on the node."""
        return tuple((c, p) for c in self.containers for p in c.ports if p.host_port)


def _container_port(entry: Fields, host_network: bool) -> ContainerPort:
    port = entry.port("containerPort", required=True)
    protocol = entry.raw("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        entry.fail("protocol", f"{describe(protocol)} is not one of {', '.join(PROTOCOLS)}")
    host_port = entry.port("hostPort")
    if host_network and host_port and host_port != port:
        entry.fail("hostPort", f"{host_port} must equal containerPort {port} when hostNetwork is true")
    raw_host_ip = entry.raw("hostIP")
    host_ip = None if raw_host_ip in (None, "") else ip_field(entry, "hostIP", raw_host_ip)
    return ContainerPort(
        container_port=port,
        protocol=str(protocol),
        name=entry.opt_string("name"),
        host_port=host_port,
        host_ip=host_ip,
    )


def parse_pod(data: Any) -> Pod:
    """Build a :class:`Pod` from a manifest mapping; raises ``ManifestError``."""
    fields, meta, _ = read_meta("Pod", data)
    spec = fields.child("spec", required=True)
    assert spec is not None
    host_network = bool(spec.boolean("hostNetwork"))
    containers = []
    entries = spec.mappings("containers", required=True)
    if not entries:
        spec.fail("containers", "must contain at least one container")
    for entry in entries:
        containers.append(
            Container(
                name=entry.string("name", required=True),
                image=entry.opt_string("image"),
                ports=tuple(_container_port(p, host_network) for p in entry.mappings("ports")),
            )
        )
    status = fields.child("status")
    pod_ip = pod_ips = host_ip = None
    if status is not None:
        raw = status.raw("podIP")
        pod_ip = None if raw in (None, "") else ip_field(status, "podIP", raw)
        pod_ips = tuple(ip_field(e, "ip", e.raw("ip")) for e in status.mappings("podIPs") if e.has("ip"))
        raw = status.raw("hostIP")
        host_ip = None if raw in (None, "") else ip_field(status, "hostIP", raw)
    if pod_ip is None and pod_ips:
        pod_ip = pod_ips[0]
    return Pod(
        namespace=meta.namespace,
        name=meta.name,
        containers=tuple(containers),
        node_name=spec.opt_string("nodeName"),
        host_network=host_network,
        pod_ip=pod_ip,
        pod_ips=pod_ips or ((pod_ip,) if pod_ip else ()),
        host_ip=host_ip,
        labels=meta.labels,
        annotations=meta.annotations,
    )
