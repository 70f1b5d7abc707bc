"""Kubernetes manifests as frozen dataclasses: Service, EndpointSlice, Endpoints, Node, Pod.

``kubenat.k8s.load(...)`` reads YAML/JSON files, directories, stdin, strings, dicts and
client model objects into a :class:`Cluster`. Invalid values raise ``kubenat.ManifestError``
naming the object and the field path, e.g.
``Service default/web: spec.ports[1].port: 70000 is not a port``.
"""

from __future__ import annotations

from kubenat.k8s._fields import snake_case
from kubenat.k8s.endpoints import (
    SERVICE_NAME_LABEL,
    Endpoint,
    EndpointAddress,
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    parse_endpoint_slice,
    parse_endpoints,
)
from kubenat.k8s.loader import (
    Cluster,
    KubeObject,
    OtherObject,
    load,
    load_dir,
    load_file,
    load_stream,
    load_text,
    parse_object,
)
from kubenat.k8s.meta import Meta
from kubenat.k8s.node import ZONE_LABEL, Node, NodeAddress, parse_node
from kubenat.k8s.pod import Container, ContainerPort, Pod, parse_pod
from kubenat.k8s.service import LoadBalancerIngress, Service, ServicePort, parse_service

__all__ = [
    "SERVICE_NAME_LABEL",
    "ZONE_LABEL",
    "Cluster",
    "Container",
    "ContainerPort",
    "Endpoint",
    "EndpointAddress",
    "EndpointConditions",
    "EndpointPort",
    "EndpointSlice",
    "EndpointSubset",
    "Endpoints",
    "KubeObject",
    "LoadBalancerIngress",
    "Meta",
    "Node",
    "NodeAddress",
    "OtherObject",
    "Pod",
    "Service",
    "ServicePort",
    "load",
    "load_dir",
    "load_file",
    "load_stream",
    "load_text",
    "parse_endpoint_slice",
    "parse_endpoints",
    "parse_node",
    "parse_object",
    "parse_pod",
    "parse_service",
    "snake_case",
]
