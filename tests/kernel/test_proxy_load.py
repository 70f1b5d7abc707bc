"""Generated kube-proxy and hostPort rules load into a real kernel (throwaway kn- namespace)."""

from __future__ import annotations

import re

import pytest

from kubenat import examples, hostport, proxy
from kubenat.kernel import Testbed
from proxy_cases import config, load_cases

CASES = load_cases()
ISSUE_LINES = (
    "REDIRECT   tcp  --  anywhere             192.168.235.209      "
    "/* default/my-first-nginx: */ tcp dpt:http redir ports 43321",
    "DNAT       tcp  --  anywhere             anywhere             "
    "/* default/my-second-nginx: */ tcp dpt:31150 to:10.96.219.141:50563",
)


@pytest.fixture
def bed():
    # A fresh namespace per test: re-adding an nfacct object that rules reference fails (EBUSY).
    with Testbed() as tb:
        yield tb


@pytest.fixture(scope="module")
def shared_bed():
    """One namespace for the 1.28-form cases, which use no nfacct objects."""
    with Testbed() as tb:
        yield tb


def _chains(text: str) -> set[tuple[str, str]]:
    out = set()
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            out.add((table, line[1:].split()[0]))
    return out


def _load_and_check(bed: Testbed, text: str, family: int = 4) -> None:
    bed.load(text, family=family)
    saved = bed.save(family=family)
    missing = _chains(text) - _chains(saved)
    assert not missing, missing
    assert len(re.findall(r"^-A ", saved, flags=re.M)) >= len(re.findall(r"^-A ", text, flags=re.M))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_rulesets_load(shared_bed: Testbed, case) -> None:
    text = proxy.build_text(case.objects, config=config(case.harness))
    assert "nfacct" not in text
    _load_and_check(shared_bed, text)


@pytest.mark.parametrize("version", ["1.28", "current"])
def test_walkthrough_iptables_mode_loads(bed: Testbed, version: str) -> None:
    cfg = examples.walkthrough_config(version=version)
    text = proxy.build_text(examples.walkthrough(), config=cfg)
    _load_and_check(bed, text)
    if version == "current":
        saved = bed.save()
        assert "--nfacct-name  localhost_nps_accepted_pkts" in saved or "localhost_nps_accepted_pkts" in saved


def test_restore_payload_loads_over_hooks(bed: Testbed) -> None:
    """kube-proxy's own restore input applies (--noflush semantics aside) once its chains exist."""
    cfg = examples.walkthrough_config()
    bed.load(proxy.build_text(examples.walkthrough(), config=cfg))
    payload = proxy.build_text(examples.walkthrough(), config=cfg, restore_payload=True)
    bed.run("node", ["iptables-restore", "--noflush", "--counters"], input=payload.encode())
    saved = bed.save()
    assert '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in saved


def test_userspace_mode_loads_and_lists_as_issue_says(bed: Testbed) -> None:
    text = proxy.build_text(
        examples.walkthrough(),
        "userspace",
        examples.walkthrough_config(),
        proxy_ports=examples.WALKTHROUGH_PROXY_PORTS,
    )
    _load_and_check(bed, text)
    # Numeric listing: without -n, iptables resolves every address through DNS, which in a
    # namespace with no network only times out. The issue's lines, with names made numeric
    # (iptables 1.8.9 also prints the protocol number under -n):
    listing = bed.listing("nat", numeric=True).splitlines()
    for line in ISSUE_LINES:
        numeric = line.replace("anywhere            ", "0.0.0.0/0           ").replace("dpt:http", "dpt:80")
        numeric = numeric.replace("tcp  --", "6    --")
        assert numeric in listing, "\n".join(listing)


def test_ipv6_rules_load(bed: Testbed) -> None:
    svc = {
        "kind": "Service",
        "metadata": {"name": "v6", "namespace": "ns"},
        "spec": {"type": "NodePort", "clusterIP": "fd00:10::1", "ports": [{"port": 80, "nodePort": 30001}]},
    }
    slc = {
        "kind": "EndpointSlice",
        "metadata": {"name": "v6", "namespace": "ns", "labels": {"kubernetes.io/service-name": "v6"}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00:244::5"]}, {"addresses": ["fd00:244::6"], "nodeName": "n"}],
        "ports": [{"name": "", "port": 8080}],
    }
    text = proxy.build_text([svc, slc], node_name="n", ip_family="IPv6", node_ips=("fd00::2",))
    _load_and_check(bed, text, family=6)


@pytest.mark.parametrize("style", ["cni", "docker"])
def test_hostport_rules_load(bed: Testbed, style: str) -> None:
    text = hostport.build_text(examples.walkthrough(), style, node_name=examples.WALKTHROUGH_NODE)
    _load_and_check(bed, text)


def test_every_service_shape_loads(bed: Testbed) -> None:
    """TCP/UDP/SCTP, affinity, source ranges, external IPs, Local policies, no endpoints, in one ruleset."""
    objects = []
    shapes = [
        ("tcp-affinity", {"type": "ClusterIP", "sessionAffinity": "ClientIP"}, "TCP"),
        ("udp-np", {"type": "NodePort", "externalTrafficPolicy": "Local"}, "UDP"),
        ("sctp-lb", {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}, "SCTP"),
        (
            "ext",
            {"type": "ClusterIP", "externalIPs": ["198.51.100.7"], "internalTrafficPolicy": "Local"},
            "TCP",
        ),
        (
            "empty",
            {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000},
            "TCP",
        ),
    ]
    for i, (name, spec, proto) in enumerate(shapes):
        port = {"name": "p", "port": 80, "protocol": proto}
        if spec["type"] != "ClusterIP":
            port["nodePort"] = 30100 + i
        svc = {
            "kind": "Service",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"clusterIP": f"10.96.1.{i + 1}", "ports": [port], **spec},
        }
        if spec["type"] == "LoadBalancer":
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": f"203.0.113.{i + 1}"}]}}
        objects.append(svc)
        if name != "empty":
            objects.append(
                {
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": name,
                        "namespace": "ns",
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "addressType": "IPv4",
                    "endpoints": [
                        {"addresses": ["10.244.1.5"], "nodeName": "n1"},
                        {
                            "addresses": ["10.244.2.5"],
                            "nodeName": "n2",
                            "conditions": {"ready": False, "serving": True, "terminating": True},
                        },
                        {"addresses": ["10.244.3.5"], "nodeName": "n3"},
                    ],
                    "ports": [{"name": "p", "port": 8080, "protocol": proto}],
                }
            )
    for version in ("1.28", "current"):
        text = proxy.build_text(
            objects,
            node_name="n1",
            node_ips=("192.168.0.2",),
            cluster_cidrs=("10.244.0.0/16",),
            version=version,
        )
        for word in (
            "-p sctp",
            "-p udp",
            "--rcheck",
            "KUBE-FW-",
            "KUBE-SVL-",
            "health check node port",
            "REJECT",
            "DROP",
        ):
            assert word in text
        _load_and_check(bed, text)


@pytest.mark.parametrize(
    ("mode", "style"), [("userspace", "docker"), ("iptables", "cni"), ("iptables", "docker")]
)
def test_node_rulesets_load(bed: Testbed, mode: str, style: str) -> None:
    text = proxy.node_text(
        examples.walkthrough(),
        mode,
        examples.walkthrough_config(),
        hostports=style,
        proxy_ports=examples.WALKTHROUGH_PROXY_PORTS,
    )
    _load_and_check(bed, text)
