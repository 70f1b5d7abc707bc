"""Service environment variables, as kubelet writes them."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from kubenat import envvars, examples, k8s
from kubenat.cli import main


def test_walkthrough_variables_in_kubelet_order() -> None:
    pairs = envvars.service_env(examples.walkthrough(), "default")
    first = [p for p in pairs if p[0].startswith("MY_FIRST_NGINX")]
    assert first == [
        ("MY_FIRST_NGINX_SERVICE_HOST", "192.168.235.209"),
        ("MY_FIRST_NGINX_SERVICE_PORT", "80"),
        ("MY_FIRST_NGINX_PORT", "tcp://192.168.235.209:80"),
        ("MY_FIRST_NGINX_PORT_80_TCP", "tcp://192.168.235.209:80"),
        ("MY_FIRST_NGINX_PORT_80_TCP_PROTO", "tcp"),
        ("MY_FIRST_NGINX_PORT_80_TCP_PORT", "80"),
        ("MY_FIRST_NGINX_PORT_80_TCP_ADDR", "192.168.235.209"),
    ]
    assert [k for k, _ in pairs].index("MY_FIRST_NGINX_SERVICE_HOST") < [k for k, _ in pairs].index(
        "MY_SECOND_NGINX_SERVICE_HOST"
    )


def _svc(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_named_ports_and_udp() -> None:
    svc = _svc(
        "kube-dns",
        clusterIP="10.96.0.10",
        ports=[
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    )
    assert envvars.from_services(k8s.load(svc).services) == [
        ("KUBE_DNS_SERVICE_HOST", "10.96.0.10"),
        ("KUBE_DNS_SERVICE_PORT", "53"),
        ("KUBE_DNS_SERVICE_PORT_DNS", "53"),
        ("KUBE_DNS_SERVICE_PORT_DNS_TCP", "53"),
        ("KUBE_DNS_PORT", "udp://10.96.0.10:53"),
        ("KUBE_DNS_PORT_53_UDP", "udp://10.96.0.10:53"),
        ("KUBE_DNS_PORT_53_UDP_PROTO", "udp"),
        ("KUBE_DNS_PORT_53_UDP_PORT", "53"),
        ("KUBE_DNS_PORT_53_UDP_ADDR", "10.96.0.10"),
        ("KUBE_DNS_PORT_53_TCP", "tcp://10.96.0.10:53"),
        ("KUBE_DNS_PORT_53_TCP_PROTO", "tcp"),
        ("KUBE_DNS_PORT_53_TCP_PORT", "53"),
        ("KUBE_DNS_PORT_53_TCP_ADDR", "10.96.0.10"),
    ]


def test_namespace_selection_headless_and_master_services() -> None:
    objs = [
        _svc("kubernetes", clusterIP="10.96.0.1", ports=[{"name": "https", "port": 443}]),
        _svc("web", "shop", clusterIP="10.96.0.20", ports=[{"port": 80}]),
        _svc("headless", "shop", clusterIP="None", ports=[{"port": 80}]),
        _svc("other", "elsewhere", clusterIP="10.96.0.30", ports=[{"port": 80}]),
        _svc("v6", "shop", clusterIP="fd00::10", ports=[{"port": 80}]),
    ]
    names = {k for k, _ in envvars.service_env(objs, "shop")}
    assert "KUBERNETES_SERVICE_HOST" in names and "WEB_SERVICE_HOST" in names
    assert not any(n.startswith(("HEADLESS", "OTHER")) for n in names)
    assert ("V6_PORT", "tcp://[fd00::10]:80") in envvars.service_env(objs, "shop")
    assert {k for k, _ in envvars.service_env(objs, "shop", enable_service_links=False)} == {
        k for k, _ in envvars.service_env(objs[:1], "x")
    }


@given(st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True), st.integers(1, 65535))
def test_names_are_upper_snake(name: str, port: int) -> None:
    pairs = envvars.from_services(k8s.load(_svc(name, clusterIP="10.0.0.1", ports=[{"port": port}])).services)
    prefix = name.upper().replace("-", "_")
    assert pairs[0] == (f"{prefix}_SERVICE_HOST", "10.0.0.1")
    assert len(pairs) == 7 and all(k.startswith(prefix + "_") for k, _ in pairs)
    assert all("-" not in k and k == k.upper() for k, _ in pairs)


def test_cli_env() -> None:
    result = CliRunner().invoke(main, ["env", str(examples.WALKTHROUGH), "--namespace", "default"])
    assert result.exit_code == 0, result.output
    assert "MY_FIRST_NGINX_SERVICE_HOST=192.168.235.209\n" in result.output
    assert "MY_FIRST_NGINX_PORT_80_TCP_ADDR=192.168.235.209\n" in result.output
