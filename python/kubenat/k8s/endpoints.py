"""EndpointSlice (discovery.k8s.io/v1) and the legacy Endpoints (core/v1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kubenat.k8s._fields import Fields, describe, fail, ip_field
from kubenat.k8s.meta import lookup, read_meta
from kubenat.k8s.service import PROTOCOLS

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


@dataclass(frozen=True)
class EndpointConditions:
    """The three conditions; None means unset (kube-proxy reads unset ready/serving as true)."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready is None or self.ready

    @property
    def is_serving(self) -> bool:
        return self.serving is None or self.serving

    @property
    def is_terminating(self) -> bool:
        return bool(self.terminating)


@dataclass(frozen=True)
class Endpoint:
    """One entry of an EndpointSlice's ``endpoints``."""

    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    node_name: str | None = None
    zone: str | None = None
    hostname: str | None = None
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()
    target_ref: str | None = None


@dataclass(frozen=True)
class EndpointPort:
    """One entry of an EndpointSlice's ``ports``; ``port`` None means "all ports" (kube-proxy skips it)."""

    name: str = ""
    port: int | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


@dataclass(frozen=True)
class EndpointSlice:
    """An EndpointSlice, joined to its Service through the ``kubernetes.io/service-name`` label."""

    namespace: str
    name: str
    address_type: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    kind: ClassVar[str] = "EndpointSlice"

    @property
    def ref(self) -> str:
        return f"EndpointSlice {self.namespace}/{self.name}"

    @property
    def service_name(self) -> str | None:
        """The Service this slice belongs to (its ``kubernetes.io/service-name`` label)."""
        return lookup(self.labels, SERVICE_NAME_LABEL)


@dataclass(frozen=True)
class EndpointAddress:
    """One address of a legacy Endpoints subset."""

    ip: str
    node_name: str | None = None
    hostname: str | None = None
    target_ref: str | None = None


@dataclass(frozen=True)
class EndpointSubset:
    """One legacy Endpoints subset: addresses x ports."""

    addresses: tuple[EndpointAddress, ...] = ()
    not_ready_addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[EndpointPort, ...] = ()


@dataclass(frozen=True)
class Endpoints:
    """The legacy Endpoints object (named like its Service)."""

    namespace: str
    name: str
    subsets: tuple[EndpointSubset, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    kind: ClassVar[str] = "Endpoints"

    @property
    def ref(self) -> str:
        return f"Endpoints {self.namespace}/{self.name}"

    def to_slices(self) -> tuple[EndpointSlice, ...]:
        """The EndpointSlices the mirroring controller would write: one per subset.

        Ready addresses become ready endpoints, ``notReadyAddresses`` not-ready (and not
        serving) ones; every address of a subset serves every port of that subset.
        """
        slices = []
        for i, subset in enumerate(self.subsets):
            endpoints = [
                Endpoint(
                    addresses=(address.ip,),
                    conditions=EndpointConditions(ready=ready, serving=ready, terminating=False),
                    node_name=address.node_name,
                    hostname=address.hostname,
                    target_ref=address.target_ref,
                )
                for addresses, ready in ((subset.addresses, True), (subset.not_ready_addresses, False))
                for address in addresses
            ]
            family = "IPv6" if any(":" in e.addresses[0] for e in endpoints) else "IPv4"
            slices.append(
                EndpointSlice(
                    namespace=self.namespace,
                    name=f"{self.name}-{i}",
                    address_type=family,
                    endpoints=tuple(endpoints),
                    ports=subset.ports,
                    labels=((SERVICE_NAME_LABEL, self.name),),
                )
            )
        return tuple(slices)


def _protocol(fields: Fields) -> str:
    value = fields.raw("protocol")
    if value is None or value == "":
        return "TCP"
    if value not in PROTOCOLS:
        fields.fail("protocol", f"{describe(value)} is not one of {', '.join(PROTOCOLS)}")
    return str(value)


def _endpoint_port(entry: Fields, *, required: bool) -> EndpointPort:
    port = entry.port("port", required=required) or None
    return EndpointPort(
        name=entry.string("name", ""),
        port=port,
        protocol=_protocol(entry),
        app_protocol=entry.opt_string("appProtocol"),
    )


def _target_ref(fields: Fields) -> str | None:
    ref = fields.child("targetRef")
    if ref is None:
        return None
    kind = ref.string("kind", "")
    namespace = ref.string("namespace", "")
    name = ref.string("name", "")
    return f"{kind} {namespace}/{name}".strip() if namespace else f"{kind} {name}".strip()


def _hints(entry: Fields, key: str) -> tuple[str, ...]:
    hints = entry.child("hints")
    if hints is None:
        return ()
    return tuple(item.string("name", required=True) for item in hints.mappings(key))


def parse_endpoint_slice(data: Any) -> EndpointSlice:
    """Build an :class:`EndpointSlice` from a manifest mapping; raises ``ManifestError``."""
    fields, meta, label = read_meta("EndpointSlice", data)
    address_type = fields.string("addressType", required=True)
    if address_type not in ADDRESS_TYPES:
        fields.fail("addressType", f"{describe(address_type)} is not one of {', '.join(ADDRESS_TYPES)}")
    endpoints = []
    for entry in fields.mappings("endpoints"):
        addresses = entry.items("addresses", required=True)
        if not addresses:
            entry.fail("addresses", "must contain at least one address")
        if address_type == "FQDN":
            values = tuple(str(v) for _, v in addresses)
        else:
            values = tuple(ip_field(entry, "", v, path) for path, v in addresses)
            for path, value in zip((p for p, _ in addresses), values, strict=True):
                if (":" in value) != (address_type == "IPv6"):
                    fail(label, path, f"{value} is not an {address_type} address")
        cond = entry.child("conditions")
        conditions = (
            EndpointConditions(cond.boolean("ready"), cond.boolean("serving"), cond.boolean("terminating"))
            if cond is not None
            else EndpointConditions()
        )
        endpoints.append(
            Endpoint(
                addresses=values,
                conditions=conditions,
                node_name=entry.opt_string("nodeName"),
                zone=entry.opt_string("zone"),
                hostname=entry.opt_string("hostname"),
                zone_hints=_hints(entry, "forZones"),
                node_hints=_hints(entry, "forNodes"),
                target_ref=_target_ref(entry),
            )
        )
    ports = tuple(_endpoint_port(entry, required=False) for entry in fields.mappings("ports"))
    return EndpointSlice(
        namespace=meta.namespace,
        name=meta.name,
        address_type=address_type,
        endpoints=tuple(endpoints),
        ports=ports,
        labels=meta.labels,
    )


def _address(entry: Fields) -> EndpointAddress:
    raw = entry.raw("ip")
    if raw is None:
        entry.fail("ip", "required field is missing")
    return EndpointAddress(
        ip=ip_field(entry, "ip", raw),
        node_name=entry.opt_string("nodeName"),
        hostname=entry.opt_string("hostname"),
        target_ref=_target_ref(entry),
    )


def parse_endpoints(data: Any) -> Endpoints:
    """Build a legacy :class:`Endpoints` from a manifest mapping; raises ``ManifestError``."""
    fields, meta, _ = read_meta("Endpoints", data)
    subsets = []
    for subset in fields.mappings("subsets"):
        subsets.append(
            EndpointSubset(
                addresses=tuple(_address(a) for a in subset.mappings("addresses")),
                not_ready_addresses=tuple(_address(a) for a in subset.mappings("notReadyAddresses")),
                ports=tuple(_endpoint_port(p, required=True) for p in subset.mappings("ports")),
            )
        )
    return Endpoints(namespace=meta.namespace, name=meta.name, subsets=tuple(subsets), labels=meta.labels)
