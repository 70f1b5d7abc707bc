"""kube-proxy iptables mode: the transcribed upstream cases, byte for byte, and properties."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kubenat
from kubenat import k8s
from kubenat.proxy import ProxyConfig, build, build_text, chains
from proxy_cases import Case, config, load_cases
from proxy_tracer import trace

CASES = load_cases()
WITH_DUMP = [c for c in CASES if c.expected is not None]


def test_cases_present() -> None:
    assert len(CASES) >= 30 and len(WITH_DUMP) >= 20


@pytest.mark.parametrize("case", WITH_DUMP, ids=[c.id for c in WITH_DUMP])
def test_restore_payload_matches_upstream_dump(case: Case) -> None:
    assert build_text(case.objects, config=config(case.harness), restore_payload=True) == case.expected


def _previous_chains(case: Case) -> list[str]:
    if case.previous is None:
        return []
    text = build_text(case.previous.objects, config=config(case.harness), restore_payload=True)
    nat = text.split("*nat\n", 1)[1]
    return re.findall(r"^:(\S+) ", nat, flags=re.M)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_flows(case: Case) -> None:
    """The cases' packet flows, traced as kube-proxy's test tracer does, through the complete ruleset."""
    text = build_text(case.objects, config=config(case.harness), previous_chains=_previous_chains(case))
    local = ["127.0.0.1", case.harness["nodeIP"]]
    for flow in case.flows:
        got = trace(
            text, local, flow["sourceIP"], flow["destIP"], flow["destPort"], flow.get("protocol") or "tcp"
        )
        assert got == (flow["output"], flow["masq"]), flow["name"]


def test_after_delete_removes_stale_chains() -> None:
    case = next(
        c for c in CASES if c.previous is not None and c.previous.expected and "Cluster/ready" in c.id
    )
    stale = _previous_chains(case)
    text = build_text(case.objects, config=config(case.harness), restore_payload=True, previous_chains=stale)
    deleted = [chain for chain in stale if chain.startswith(chains.SERVICE_CHAIN_PREFIXES)]
    assert deleted and all(f"-X {chain}\n" in text and f":{chain} - [0:0]\n" in text for chain in deleted)
    assert '-A KUBE-SERVICES -m comment --comment "ns1/svc1 has no endpoints"' in text
    assert text.index("-X ") > text.rindex("-A KUBE-SVC") if "-A KUBE-SVC" in text else True


def test_hash_checks() -> None:
    assert chains.svc_chain("ns1/svc1:p80", "tcp") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert chains.sep_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert chains.svc_chain("ns1/svc1", "tcp") == "KUBE-SVC-AQI2S6QIMU7PVVRP"
    assert chains.svc_chain("default/kubernetes:https", "tcp") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert chains.endpoint_string("fd00::1", 80) == "[fd00::1]:80"


@pytest.mark.parametrize(("n", "text"), [(2, "0.5000000000"), (3, "0.3333333333"), (100001, "0.0000099999")])
def test_probability_format(n: int, text: str) -> None:
    assert chains.probability(n) == text


def _objects(**spec: Any) -> list[dict[str, Any]]:
    ports = spec.pop("ports", [{"name": "p80", "port": 80, "nodePort": 30080}])
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc1", "namespace": "ns1"},
        "spec": {"type": "NodePort", "clusterIP": "172.30.0.41", "ports": ports, **spec},
    }
    eps = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "s", "namespace": "ns1", "labels": {"kubernetes.io/service-name": "svc1"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.180.0.1"], "nodeName": "n1"}, {"addresses": ["10.180.1.1"]}],
        "ports": [
            {"name": p["name"], "port": 8000 + p["port"], "protocol": p.get("protocol", "TCP")} for p in ports
        ],
    }
    return [svc, eps]


def test_current_form_adds_nfacct_and_kernel_mark() -> None:
    text = build_text(_objects(), node_name="n1", node_ips=("192.168.0.2",), restore_payload=True)
    assert (
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID "
        "-m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP" in text
    )
    assert (
        "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 30080 "
        "-m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-XPGD46QRK7WJZT7O"
    ) in text
    # kube-proxy formats the mark with %#08x; its unit tests inject "0x4000" instead.
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000" in text
    assert "-j MASQUERADE --random-fully" in text
    old = build_text(_objects(), node_name="n1", version="1.28", restore_payload=True)
    assert "nfacct" not in old
    no_counters = build_text(_objects(), node_name="n1", nfacct=False, restore_payload=True)
    assert "nfacct" not in no_counters


def test_complete_ruleset_has_hooks_in_prepend_order() -> None:
    text = build_text(_objects(), node_name="n1")
    filt = text.split("*filter\n", 1)[1].split("COMMIT", 1)[0]
    inputs = [line for line in filt.splitlines() if line.startswith("-A INPUT ")]
    assert inputs == [
        "-A INPUT -j KUBE-FIREWALL",
        "-A INPUT -m conntrack --ctstate NEW "
        '-m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        "-A INPUT -m conntrack --ctstate NEW "
        '-m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    ]
    assert ":INPUT ACCEPT [0:0]" in filt and ":KUBE-PROXY-CANARY - [0:0]" in filt
    assert text.index("*filter") < text.index("*mangle") < text.index("*nat")
    nat = text.split("*nat\n", 1)[1]
    assert '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in nat
    assert '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' in nat
    # every jump target is declared
    for table in text.split("COMMIT\n")[:-1]:
        declared = set(re.findall(r"^:(\S+)", table, flags=re.M))
        for target in re.findall(r"-j (KUBE-\S+)", table):
            assert target in declared


@pytest.mark.parametrize(
    ("options", "local", "not_local"),
    [
        ({"cluster_cidrs": ("10.0.0.0/8",)}, "-s 10.0.0.0/8", "! -s 10.0.0.0/8"),
        (
            {"detect_local_mode": "NodeCIDR", "node_pod_cidrs": ("10.244.1.0/24",)},
            "-s 10.244.1.0/24",
            "! -s 10.244.1.0/24",
        ),
        ({"detect_local_mode": "BridgeInterface", "bridge_interface": "cbr0"}, "-i cbr0", "! -i cbr0"),
        (
            {"detect_local_mode": "InterfaceNamePrefix", "interface_name_prefix": "veth"},
            "-i veth+",
            "! -i veth+",
        ),
    ],
)
def test_local_detectors(options: dict[str, Any], local: str, not_local: str) -> None:
    text = build_text(
        _objects(externalTrafficPolicy="Local"), node_name="n1", restore_payload=True, **options
    )
    assert f"--dport 80 {not_local} -j KUBE-MARK-MASQ" in text
    assert f'--comment "pod traffic for ns1/svc1:p80 external destinations" {local} -j KUBE-SVC-' in text


def test_masquerade_all_and_no_detector() -> None:
    text = build_text(_objects(), node_name="n1", masquerade_all=True, restore_payload=True)
    assert "--dport 80 -j KUBE-MARK-MASQ" in text
    plain = build_text(_objects(), node_name="n1", restore_payload=True)
    assert "--dport 80 -j KUBE-MARK-MASQ" not in plain and "! -s 10." not in plain


def test_node_cidr_from_node_object() -> None:
    node = {
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.244.7.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.9"}]},
    }
    text = build_text([*_objects(), node], node_name="n1", detect_local_mode="NodeCIDR", restore_payload=True)
    assert "! -s 10.244.7.0/24 -j KUBE-MARK-MASQ" in text


def test_udp_sctp_and_two_ports() -> None:
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "s", "port": 9, "protocol": "SCTP"}]
    text = build_text(_objects(type="ClusterIP", ports=ports), node_name="n1", restore_payload=True)
    assert "-m udp -p udp -d 172.30.0.41 --dport 53 -j KUBE-SVC-" in text
    assert "-m sctp -p sctp -j DNAT --to-destination 10.180.0.1:8009" in text
    assert "-m udp -p udp -j DNAT --to-destination 10.180.1.1:8053" in text


def test_ipv6() -> None:
    svc = {
        "kind": "Service",
        "metadata": {"name": "v6", "namespace": "ns"},
        "spec": {"type": "NodePort", "clusterIP": "fd00:10::1", "ports": [{"port": 80, "nodePort": 30001}]},
    }
    slc = {
        "kind": "EndpointSlice",
        "metadata": {"name": "v6", "namespace": "ns", "labels": {"kubernetes.io/service-name": "v6"}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00:244::5"]}],
        "ports": [{"name": "", "port": 8080}],
    }
    text = build_text([svc, slc], node_name="n", ip_family="IPv6", restore_payload=True)
    assert "--to-destination [fd00:244::5]:8080" in text
    assert "-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS" in text
    assert "KUBE-FIREWALL" not in text and "127.0.0.0/8" not in text
    assert "v6" not in build_text([svc, slc], node_name="n", restore_payload=True)  # IPv4 proxier skips it


def test_lb_ip_mode_proxy_skipped_in_current_form() -> None:
    objs = _objects(type="LoadBalancer")
    objs[0]["status"] = {
        "loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "Proxy"}, {"ip": "5.6.7.8"}]}
    }
    text = build_text(objs, node_name="n1", restore_payload=True)
    assert "-d 5.6.7.8" in text and "-d 1.2.3.4" not in text
    assert "-d 1.2.3.4" in build_text(objs, node_name="n1", version="1.28", restore_payload=True)


def test_topology_zone_hints() -> None:
    objs = _objects(type="ClusterIP", ports=[{"name": "p80", "port": 80}])
    objs[1]["endpoints"] = [
        {"addresses": ["10.180.0.1"], "hints": {"forZones": [{"name": "z1"}]}},
        {"addresses": ["10.180.1.1"], "hints": {"forZones": [{"name": "z2"}]}},
    ]
    node = {"kind": "Node", "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}
    text = build_text([*objs, node], node_name="n1", restore_payload=True)
    assert "10.180.0.1" in text and "10.180.1.1" not in text
    assert "10.180.1.1" in build_text([*objs, node], node_name="n1", version="1.28", restore_payload=True)


def test_large_cluster_drops_endpoint_comments() -> None:
    objs = _objects(type="ClusterIP", ports=[{"name": "p80", "port": 80}])
    objs[1]["endpoints"] = [{"addresses": [str(ipaddress.IPv4Address("10.0.0.0") + i)]} for i in range(1001)]
    text = build_text(objs, node_name="n1", restore_payload=True)
    assert "-A KUBE-SEP-" in text and "->" not in text
    assert re.search(r"^-A KUBE-SEP-\S+ -m tcp -p tcp -j DNAT", text, flags=re.M)


def test_build_returns_ruleset_or_text() -> None:
    result = build(_objects(), node_name="n1")
    if hasattr(kubenat, "Ruleset"):
        assert isinstance(result, kubenat.Ruleset)
    else:
        assert result == build_text(_objects(), node_name="n1")


def test_config_errors() -> None:
    with pytest.raises(kubenat.ConfigError, match="detectLocalMode"):
        ProxyConfig(detect_local_mode="Magic")
    with pytest.raises(kubenat.ConfigError, match=r"1\.2 wrote different rules"):
        ProxyConfig(version="1.2")
    with pytest.raises(kubenat.InvalidArgument):
        build_text(_objects(), mode="ipvs")


# --- properties --------------------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
_ip4 = st.integers(min_value=0x0A000001, max_value=0x0AFFFFFE).map(lambda i: str(ipaddress.IPv4Address(i)))


@st.composite
def services(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """A random valid Service with an EndpointSlice; also its (spn, protocol) pairs."""
    ns, name = draw(_names), draw(_names)
    protocols = draw(st.lists(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=1, max_size=3))
    svc_type = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
    ports = []
    for i, proto in enumerate(protocols):
        port: dict[str, Any] = {
            "name": f"p{i}" if len(protocols) > 1 else draw(st.sampled_from(["", "web"])),
            "port": 80 + i,
            "protocol": proto,
        }
        if svc_type != "ClusterIP":
            port["nodePort"] = 30000 + i
        ports.append(port)
    spec: dict[str, Any] = {
        "type": svc_type,
        "clusterIP": draw(_ip4),
        "ports": ports,
        "externalIPs": draw(st.lists(_ip4, max_size=2, unique=True)),
        "sessionAffinity": draw(st.sampled_from(["None", "ClientIP"])),
        "internalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
    }
    if svc_type != "ClusterIP":
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
    svc: dict[str, Any] = {"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}
    if svc_type == "LoadBalancer":
        spec["loadBalancerSourceRanges"] = draw(
            st.lists(st.sampled_from(["0.0.0.0/0", "192.168.0.0/16"]), max_size=1)
        )
        svc["status"] = {
            "loadBalancer": {"ingress": [{"ip": ip} for ip in draw(st.lists(_ip4, max_size=2, unique=True))]}
        }
    endpoints = [
        {
            "addresses": [draw(_ip4)],
            "nodeName": draw(st.sampled_from(["n1", "n2"])),
            "conditions": {
                "ready": draw(st.booleans()),
                "serving": draw(st.booleans()),
                "terminating": draw(st.booleans()),
            },
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    slc = {
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": p["name"], "port": 8080, "protocol": p["protocol"]} for p in ports],
    }
    pairs = [(chains.service_port_name(ns, name, p["name"]), p["protocol"].lower()) for p in ports]
    return [svc, slc], pairs


@settings(max_examples=60)
@given(services(), st.sampled_from(["1.28", "current"]))
def test_random_services_build_consistent_rules(
    case: tuple[list[dict[str, Any]], list[tuple[str, str]]], version: str
) -> None:
    objects, pairs = case
    text = build_text(
        objects, node_name="n1", node_ips=("192.168.0.2",), cluster_cidrs=("10.0.0.0/8",), version=version
    )
    for table in text.split("COMMIT\n")[:-1]:
        declared = set(re.findall(r"^:(\S+)", table, flags=re.M))
        for chain in re.findall(r"^-A (\S+)", table, flags=re.M):
            assert chain in declared
        for target in re.findall(r" -j (KUBE-\S+)", table):
            assert target in declared
    hashes = {chains.port_proto_hash(spn, proto) for spn, proto in pairs}
    for prefix, suffix in re.findall(r"KUBE-(SVC|SVL|EXT|FW)-(\S{16})", text):
        assert suffix in hashes, (prefix, suffix)
    cluster = k8s.load(objects)
    valid_seps = set()
    for slc in cluster.endpoint_slices:
        for spn, proto in pairs:
            for ep in slc.endpoints:
                valid_seps.add(chains.sep_chain(spn, proto, f"{ep.addresses[0]}:8080"))
    for sep in re.findall(r"KUBE-SEP-\S{16}", text):
        assert sep in valid_seps
    for p in re.findall(r"--probability (\S+)", text):
        assert re.fullmatch(r"0\.\d{10}", p)
    if hasattr(kubenat, "Ruleset"):
        kubenat.Ruleset.parse(text)


def test_write_order_is_kube_proxys_buffer_order() -> None:
    case = next(c for c in WITH_DUMP if c.id == "v128_TestLoadBalancer")
    text = build_text(case.objects, config=config(case.harness), restore_payload=True, order="write")
    assert sorted(text.splitlines()) == sorted(case.expected.splitlines())  # same lines
    filt = text.split("*nat", 1)[0].splitlines()
    assert filt[1:6] == [
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-EXTERNAL-SERVICES - [0:0]",
        ":KUBE-FORWARD - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-PROXY-FIREWALL - [0:0]",
    ]
    nat = text.split("*nat\n", 1)[1].splitlines()
    assert nat[4].startswith("-A KUBE-POSTROUTING -m mark") or nat[4].startswith(":KUBE-")
    rules = [line for line in nat if line.startswith("-A ")]
    assert rules[0].startswith("-A KUBE-POSTROUTING") and "must be the last rule" in rules[-1]
    with pytest.raises(kubenat.InvalidArgument):
        build_text(case.objects, restore_payload=True, order="random")
