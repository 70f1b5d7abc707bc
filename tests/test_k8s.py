"""kubenat.k8s: every loading form, every manifest error form."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kubenat
from kubenat import k8s

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: http
    nodePort: 30080
  - name: dns
    port: 53
    protocol: UDP
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
"""

SLICE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [
        {
            "addresses": ["10.244.1.5"],
            "conditions": {"ready": False, "serving": True, "terminating": True},
            "nodeName": "node-a",
            "zone": "z1",
            "hints": {"forZones": [{"name": "z1"}]},
        },
        {"addresses": ["10.244.2.007"]},
    ],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
}


def manifest_error(source: Any) -> kubenat.ManifestError:
    with pytest.raises(kubenat.ManifestError) as info:
        k8s.load(source)
    return info.value


def test_service_fields() -> None:
    (svc,) = k8s.load(SERVICE).services
    assert svc.ref == "Service default/web"
    assert svc.type == "NodePort" and svc.cluster_ip == "10.96.0.10"
    assert svc.ports[0] == k8s.ServicePort("http", 80, "TCP", "http", 30080)
    assert svc.ports[1].protocol == "UDP" and svc.ports[1].target_port == 53 and svc.ports[1].node_port == 0
    assert svc.session_affinity == "ClientIP" and svc.session_affinity_timeout == 60
    assert svc.label("app") == "web" and dict(svc.selector) == {"app": "web"}
    assert hash(svc)  # frozen and hashable


def test_endpoint_slice_fields() -> None:
    (slc,) = k8s.load(SLICE).endpoint_slices
    assert slc.service_name == "web"
    first, second = slc.endpoints
    assert first.conditions == k8s.EndpointConditions(False, True, True)
    assert not first.conditions.is_ready and first.conditions.is_serving and first.conditions.is_terminating
    assert first.node_name == "node-a" and first.zone == "z1" and first.zone_hints == ("z1",)
    assert second.addresses == ("10.244.2.7",)  # parsed sloppily, printed canonically
    assert (
        second.conditions.is_ready and second.conditions.is_serving and not second.conditions.is_terminating
    )
    assert slc.ports == (k8s.EndpointPort("http", 8080, "TCP"),)


def test_legacy_endpoints_become_slices() -> None:
    cluster = k8s.load(
        SERVICE,
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web"},
            "subsets": [
                {
                    "addresses": [{"ip": "10.1.0.1", "nodeName": "a"}],
                    "notReadyAddresses": [{"ip": "10.1.0.2"}],
                    "ports": [{"name": "http", "port": 8080}],
                }
            ],
        },
    )
    (slc,) = cluster.slices_for(cluster.services[0])
    assert [e.addresses[0] for e in slc.endpoints] == ["10.1.0.1", "10.1.0.2"]
    assert [e.conditions.is_ready for e in slc.endpoints] == [True, False]
    assert slc.endpoints[0].node_name == "a"


def test_slices_win_over_legacy_endpoints() -> None:
    legacy = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}, "subsets": []}
    cluster = k8s.load(SERVICE, SLICE, legacy)
    assert [s.name for s in cluster.slices_for(cluster.services[0])] == ["web-abc"]


def test_node_and_pod() -> None:
    cluster = k8s.load(
        """
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {topology.kubernetes.io/zone: z1}}
spec: {podCIDR: 10.244.1.0/24}
status:
  addresses:
  - {type: Hostname, address: n1}
  - {type: ExternalIP, address: 1.2.3.4}
  - {type: InternalIP, address: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec:
  nodeName: n1
  containers:
  - name: c
    ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 53, protocol: UDP}]
status: {podIP: 10.244.1.5, hostIP: 10.0.0.1}
"""
    )
    (node,) = cluster.nodes
    assert (
        node.ips() == ("10.0.0.1", "1.2.3.4") and node.pod_cidrs == ("10.244.1.0/24",) and node.zone == "z1"
    )
    (pod,) = cluster.pods
    assert pod.ref == "Pod ns/p" and pod.node_name == "n1" and pod.pod_ip == "10.244.1.5"
    assert [(c.name, p.host_port) for c, p in pod.host_ports] == [("c", 8080)]


def test_list_kinds_and_multi_document() -> None:
    items = [json.loads(json.dumps(SLICE))]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [*items]})
    assert len(k8s.load(text).endpoint_slices) == 1
    typed = {"kind": "EndpointSliceList", "items": [{k: v for k, v in SLICE.items() if k != "kind"}]}
    assert len(k8s.load(typed).endpoint_slices) == 1
    multi = SERVICE + "---\n" + SERVICE.replace("name: web", "name: web2") + "---\n"
    assert [s.name for s in k8s.load(multi).services] == ["web", "web2"]


def test_files_directories_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(SERVICE)
    (tmp_path / "b.json").write_text(json.dumps(SLICE))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert len(k8s.load(tmp_path)) == 2
    assert len(k8s.load(str(tmp_path))) == 2
    assert len(k8s.load(tmp_path / "a.yaml")) == 1
    assert len(k8s.load_file(str(tmp_path / "b.json"))) == 1
    assert len(k8s.load(io.StringIO(SERVICE))) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(SERVICE))
    assert len(k8s.load("-")) == 1


def test_snake_case_client_dicts() -> None:
    """The official client's ``to_dict()`` spelling, with None for unset fields and no kind."""

    class V1Service:
        def to_dict(self) -> dict[str, Any]:
            return {
                "api_version": None,
                "kind": None,
                "metadata": {"name": "web", "namespace": "default", "labels": None},
                "spec": {
                    "cluster_ip": "10.96.0.10",
                    "cluster_i_ps": ["10.96.0.10"],
                    "external_i_ps": ["192.0.2.1"],
                    "external_traffic_policy": None,
                    "ports": [
                        {"name": None, "port": 80, "target_port": 8080, "node_port": None, "protocol": "TCP"}
                    ],
                    "session_affinity_config": {"client_ip": {"timeout_seconds": 30}},
                    "session_affinity": "ClientIP",
                },
                "status": {"load_balancer": {"ingress": [{"ip": "203.0.113.1", "ip_mode": "VIP"}]}},
            }

    (svc,) = k8s.load(V1Service()).services
    assert svc.external_ips == ("192.0.2.1",) and svc.session_affinity_timeout == 30
    assert svc.ports[0].target_port == 8080 and svc.load_balancer_ingress[0].ip_mode == "VIP"


def test_snake_case_names() -> None:
    assert k8s.snake_case("clusterIPs") == "cluster_i_ps"
    assert k8s.snake_case("podCIDRs") == "pod_cid_rs"
    assert k8s.snake_case("externalTrafficPolicy") == "external_traffic_policy"


def test_unknown_kinds_are_kept_and_unknown_fields_ignored() -> None:
    cluster = k8s.load(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}},
        SERVICE.replace("spec:\n", "spec:\n  someFutureField: 1\n"),
    )
    assert cluster.others == (k8s.OtherObject("Deployment", "apps/v1", "x", "d"),)
    assert len(cluster.services) == 1


def _svc(spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    spec = {"ports": [{"port": 80}], **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec, **extra}


ERRORS = [
    (
        _svc({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 70000}]}),
        "Service default/web: spec.ports[1].port: 70000 is not a port",
    ),
    (_svc({"ports": [{"name": "a"}]}), "Service default/web: spec.ports[0].port: required field is missing"),
    (_svc({"ports": [{"port": "80"}]}), "Service default/web: spec.ports[0].port: '80' is not a port"),
    (
        _svc({"ports": [{"port": 80, "protocol": "ICMP"}]}),
        "Service default/web: spec.ports[0].protocol: 'ICMP' is not one of TCP, UDP, SCTP",
    ),
    (
        _svc({"ports": [{"port": 80}, {"port": 81}]}),
        "Service default/web: spec.ports[0].name: required when a service has more than one port",
    ),
    (
        _svc({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
        "Service default/web: spec.ports[1].name: 'a' is used by two ports",
    ),
    (
        _svc({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
        "Service default/web: spec.ports[1].port: 80/TCP duplicates spec.ports[0]",
    ),
    (
        _svc({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}),
        "Service default/web: spec.ports[0].targetPort: "
        "'Not_A_Name' is neither a port number nor a port name",
    ),
    (
        _svc({"ports": [{"port": 80, "nodePort": 30000}]}),
        "Service default/web: spec.ports[0].nodePort: may not be set when type is 'ClusterIP'",
    ),
    (
        _svc({"clusterIP": "10.0.0.300"}),
        "Service default/web: spec.clusterIP: '10.0.0.300' is not an IP address",
    ),
    (
        _svc({"type": "Weird"}),
        "Service default/web: spec.type: "
        "'Weird' is not one of ClusterIP, NodePort, LoadBalancer, ExternalName",
    ),
    (_svc({"externalIPs": ["x"]}), "Service default/web: spec.externalIPs[0]: 'x' is not an IP address"),
    (
        _svc({"loadBalancerSourceRanges": ["10.0.0.0/33"]}),
        "Service default/web: spec.loadBalancerSourceRanges[0]: '10.0.0.0/33' is not a CIDR",
    ),
    (
        _svc({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}),
        "Service default/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: "
        "0 is not between 1 and 86400",
    ),
    (_svc({"ports": "80"}), "Service default/web: spec.ports: expected a list, got str"),
    (
        _svc({"ports": []}),
        "Service default/web: spec.ports: required unless the service is headless or of type ExternalName",
    ),
    (
        _svc({"type": "ExternalName"}),
        "Service default/web: spec.externalName: required when type is 'ExternalName'",
    ),
    (
        _svc({}, status={"loadBalancer": {"ingress": [{"ip": "nope"}]}}),
        "Service default/web: status.loadBalancer.ingress[0].ip: 'nope' is not an IP address",
    ),
    (
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}},
        "Service default/web: spec: required field is missing",
    ),
    (
        {"apiVersion": "v1", "kind": "Service", "metadata": {}, "spec": {}},
        "Service default/?: metadata.name: required field is missing",
    ),
    ({"apiVersion": "v1", "kind": "Service", "spec": {}}, "Service: metadata: required field is missing"),
    (
        {"apiVersion": "v1", "metadata": {"name": "x"}},
        "object x in <object>: kind: required field is missing",
    ),
    (
        {**SLICE, "addressType": "IPv5"},
        "EndpointSlice default/web-abc: addressType: 'IPv5' is not one of IPv4, IPv6, FQDN",
    ),
    (
        {**SLICE, "endpoints": [{"addresses": []}]},
        "EndpointSlice default/web-abc: endpoints[0].addresses: must contain at least one address",
    ),
    (
        {**SLICE, "endpoints": [{"conditions": {}}]},
        "EndpointSlice default/web-abc: endpoints[0].addresses: required field is missing",
    ),
    (
        {**SLICE, "endpoints": [{"addresses": ["fd00::1"]}]},
        "EndpointSlice default/web-abc: endpoints[0].addresses[0]: fd00::1 is not an IPv4 address",
    ),
    (
        {**SLICE, "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}}]},
        "EndpointSlice default/web-abc: endpoints[0].conditions.ready: 'yes' is not a boolean",
    ),
    (
        {**SLICE, "ports": [{"port": 0}]},
        "EndpointSlice default/web-abc: ports[0].port: 0 is not a port",
    ),
    (
        {"kind": "Endpoints", "metadata": {"name": "e"}, "subsets": [{"addresses": [{"nodeName": "x"}]}]},
        "Endpoints default/e: subsets[0].addresses[0].ip: required field is missing",
    ),
    (
        {"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0"}},
        "Node n: spec.podCIDR: '10.0.0.0' is not a CIDR",
    ),
    (
        {
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {"addresses": [{"type": "InternalIP", "address": "x"}]},
        },
        "Node n: status.addresses[0].address: 'x' is not an IP address",
    ),
    (
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}},
        "Pod default/p: spec.containers: must contain at least one container",
    ),
    (
        {
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 99999}]}]},
        },
        "Pod default/p: spec.containers[0].ports[0].hostPort: 99999 is not a port",
    ),
    (
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"ports": []}]}},
        "Pod default/p: spec.containers[0].name: required field is missing",
    ),
    ("- just\n- a list\n", "<string>: expected a Kubernetes object (a mapping), got str"),
    (
        "kind: Service\nmetadata: {name: [}\n",
        "<string>: YAML error at line 2 column 19: expected the node content, but found '}'",
    ),
    ('{"kind": ', "<string>: JSON error at line 1 column 10: Expecting value"),
    ("/no/such/manifest.yaml", "/no/such/manifest.yaml: no such file or directory"),
]


@pytest.mark.parametrize(("source", "message"), ERRORS, ids=[m.split(": ", 1)[-1][:40] for _, m in ERRORS])
def test_error_messages(source: Any, message: str) -> None:
    err = manifest_error(source)
    assert str(err) == message
    obj, _, rest = message.partition(": ")
    assert err.object == obj
    if err.path:
        assert rest == f"{err.path}: {err.reason}"


def test_error_attributes() -> None:
    err = manifest_error(_svc({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 70000}]}))
    assert (err.object, err.path, err.reason) == (
        "Service default/web",
        "spec.ports[1].port",
        "70000 is not a port",
    )
    assert isinstance(err, kubenat.KubenatError) and isinstance(err, ValueError)


def test_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kubenat.k8s.loader.MAX_MANIFEST_BYTES", 10)
    with pytest.raises(kubenat.LimitError):
        k8s.load_text(SERVICE)


@given(st.integers())
def test_port_validation_property(port: int) -> None:
    """Every integer is either a valid port (loads) or the exact 'is not a port' error."""
    source = _svc({"ports": [{"port": port}]})
    if 1 <= port <= 65535:
        assert k8s.load(source).services[0].ports[0].port == port
    else:
        assert str(manifest_error(source)) == f"Service default/web: spec.ports[0].port: {port} is not a port"


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=5), max_size=5))
def test_unknown_fields_never_matter(extra: dict[str, Any]) -> None:
    spec: dict[str, Any] = {"ports": [{"port": 80}], "clusterIP": "10.0.0.1"}
    known = {"ports", "clusterIP"}
    spec.update({f"x-{k}": v for k, v in extra.items() if f"x-{k}" not in known})
    assert k8s.load(_svc(spec)).services[0].cluster_ip == "10.0.0.1"
