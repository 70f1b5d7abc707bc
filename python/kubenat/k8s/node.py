"""Node (core/v1): addresses, pod CIDRs and the labels topology routing reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kubenat.k8s._fields import describe, fail, ip_field, parse_cidr_sloppy
from kubenat.k8s.meta import lookup, read_meta

ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class NodeAddress:
    """One entry of ``status.addresses`` (type InternalIP, ExternalIP, Hostname, ...)."""

    type: str
    address: str


@dataclass(frozen=True)
class Node:
    """A Node."""

    name: str
    addresses: tuple[NodeAddress, ...] = ()
    pod_cidr: str | None = None
    pod_cidrs: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    kind: ClassVar[str] = "Node"

    @property
    def ref(self) -> str:
        return f"Node {self.name}"

    @property
    def namespace(self) -> str:
        return ""

    def label(self, key: str) -> str | None:
        return lookup(self.labels, key)

    @property
    def zone(self) -> str | None:
        return self.label(ZONE_LABEL)

    def ips(self, kind: str | None = None) -> tuple[str, ...]:
        """IP addresses of the node (optionally only of one address type), InternalIP first."""
        order = {"InternalIP": 0, "ExternalIP": 1}
        picked = [a for a in self.addresses if kind is None or a.type == kind]
        picked.sort(key=lambda a: order.get(a.type, 2))
        return tuple(a.address for a in picked if a.type in ("InternalIP", "ExternalIP"))


def parse_node(data: Any) -> Node:
    """Build a :class:`Node` from a manifest mapping; raises ``ManifestError``."""
    fields, meta, label = read_meta("Node", data, namespaced=False)
    spec = fields.child("spec")
    cidrs: list[str] = []
    pod_cidr = None
    if spec is not None:
        for path, value in spec.items("podCIDRs"):
            cidr = parse_cidr_sloppy(value) if isinstance(value, str) else None
            if cidr is None:
                fail(label, path, f"{describe(value)} is not a CIDR")
            cidrs.append(str(cidr))
        raw = spec.raw("podCIDR")
        if raw is not None:
            cidr = parse_cidr_sloppy(raw) if isinstance(raw, str) else None
            if cidr is None:
                spec.fail("podCIDR", f"{describe(raw)} is not a CIDR")
            pod_cidr = str(cidr)
    if pod_cidr is None and cidrs:
        pod_cidr = cidrs[0]
    if pod_cidr is not None and not cidrs:
        cidrs = [pod_cidr]
    addresses = []
    status = fields.child("status")
    if status is not None:
        for entry in status.mappings("addresses"):
            kind = entry.string("type", required=True)
            raw_address = entry.string("address", required=True)
            if kind in ("InternalIP", "ExternalIP"):
                address = ip_field(entry, "address", raw_address)
            else:
                address = raw_address
            addresses.append(NodeAddress(kind, address))
    return Node(
        name=meta.name,
        addresses=tuple(addresses),
        pod_cidr=pod_cidr,
        pod_cidrs=tuple(cidrs),
        labels=meta.labels,
        annotations=meta.annotations,
    )
