"""KubeProxyConfiguration files and options, and the `kubenat rules` command in iptables mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import kubenat
from kubenat import examples
from kubenat.cli import main
from kubenat.proxy import ProxyConfig, build_text

CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
hostnameOverride: node-a
bindAddress: 0.0.0.0
clusterCIDR: 10.244.0.0/16,fd00:244::/56
mode: iptables
iptables:
  masqueradeAll: true
  masqueradeBit: 13
  localhostNodePorts: false
nodePortAddresses: [192.168.0.0/24]
detectLocalMode: BridgeInterface
detectLocal:
  bridgeInterface: cni0
someFutureField: ignored
"""


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "kube-proxy.yaml"
    path.write_text(CONFIG)
    cfg = ProxyConfig.from_file(path, node_ips=("192.168.0.7",))
    assert cfg.node_name == "node-a" and cfg.node_ips == ("192.168.0.7",)
    assert cfg.cluster_cidrs == ("10.244.0.0/16", "fd00:244::/56")
    assert cfg.masquerade_all and cfg.masquerade_bit == 13 and cfg.mark == "0x00002000"
    assert not cfg.effective_localhost_node_ports
    assert cfg.node_port_ips() == ["192.168.0.7"]
    assert cfg.local_detector() == (["-i", "cni0"], ["!", "-i", "cni0"])
    assert cfg.replace(ip_family="IPv6").local_detector() == (["-i", "cni0"], ["!", "-i", "cni0"])
    assert cfg.replace(detect_local_mode="ClusterCIDR", ip_family="IPv6").local_detector() == (
        ["-s", "fd00:244::/56"],
        ["!", "-s", "fd00:244::/56"],
    )


def test_specific_bind_address_is_the_node_ip() -> None:
    cfg = ProxyConfig.from_mapping(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "bindAddress": "10.1.2.3",
        }
    )
    assert cfg.node_ips == ("10.1.2.3",) and cfg.bind_address == "10.1.2.3"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"apiVersion": "v1", "kind": "KubeProxyConfiguration"}, "<config>: apiVersion: 'v1' is not"),
        ({"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "X"}, "<config>: kind: 'X' is not"),
        (
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "ipvs",
            },
            "<config>: mode: 'ipvs' is not supported",
        ),
        (
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "iptables": {"masqueradeBit": "x"},
            },
            "<config>: iptables.masqueradeBit: 'x' is not an integer",
        ),
        (
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "clusterCIDR": "10.0.0.0/99",
            },
            "<config>: clusterCIDR: '10.0.0.0/99' is not a CIDR",
        ),
        (
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "detectLocalMode": "BridgeInterface",
            },
            "<config>: detectLocal.bridgeInterface: required when detectLocalMode is BridgeInterface",
        ),
        ("just text", "<config>: expected a KubeProxyConfiguration mapping"),
    ],
)
def test_config_errors(data: object, message: str) -> None:
    with pytest.raises(kubenat.ConfigError) as info:
        ProxyConfig.from_mapping(data)
    assert str(info.value).startswith(message)
    assert info.value.source == "<config>"


@pytest.mark.parametrize(
    ("version", "form"), [("1.27", "1.28"), ("v1.28.3", "1.28"), ("1.29", "current"), ("v1.33.0", "current")]
)
def test_version_forms(version: str, form: str) -> None:
    assert ProxyConfig(version=version).version == form


def test_options_validated() -> None:
    for bad in ({"node_ips": ("x",)}, {"ip_family": "IPv5"}, {"masquerade_bit": 32}, {"mode": "ipvs"}):
        with pytest.raises(kubenat.ConfigError):
            ProxyConfig(**bad)  # type: ignore[arg-type]


def test_cli_iptables_matches_api(tmp_path: Path) -> None:
    objects = json.loads(
        (Path(__file__).parent / "data/kubeproxy-cases/v128_TestLoadBalancer.json").read_text()
    )["objects"]
    manifest = tmp_path / "objects.json"
    manifest.write_text(json.dumps({"kind": "List", "items": objects}))
    args = ["rules", str(manifest), "--node-name", "test-hostname", "--node-ip", "192.168.0.2"]
    args += ["--cluster-cidr", "10.0.0.0/8", "--kube-proxy-version", "1.28"]
    options = {
        "node_name": "test-hostname",
        "node_ips": ("192.168.0.2",),
        "cluster_cidrs": ("10.0.0.0/8",),
        "version": "1.28",
    }
    runner = CliRunner()
    full = runner.invoke(main, args)
    assert full.exit_code == 0, full.output
    assert full.output == build_text(objects, **options)
    payload = runner.invoke(main, [*args, "--restore-payload"])
    assert payload.output == build_text(objects, restore_payload=True, **options)
    assert "-A KUBE-FW-XPGD46QRK7WJZT7O" in payload.output


def test_cli_reads_stdin_and_reports_manifest_errors() -> None:
    runner = CliRunner()
    bad = json.dumps({"kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 70000}]}})
    result = runner.invoke(main, ["rules", "-"], input=bad)
    assert result.exit_code == 1
    assert "Service default/web: spec.ports[0].port: 70000 is not a port" in result.output
    result = runner.invoke(main, ["rules"])
    assert result.exit_code == 2 and "--example" in result.output


def test_cli_walkthrough_uses_its_proxy_config() -> None:
    result = CliRunner().invoke(main, ["rules", "--example", "walkthrough", "--restore-payload"])
    assert result.exit_code == 0, result.output
    assert "! -s 192.168.0.0/16 -j KUBE-MARK-MASQ" in result.output
    assert {"walkthrough-proxy.yaml", "walkthrough.yaml"} <= set(examples.names())


@pytest.mark.parametrize(
    ("addresses", "match_all", "localhost"),
    [
        ((), True, True),
        (("2001:db8::/64",), True, True),  # nothing of this family: everything
        (("0.0.0.0/0", "192.168.0.0/24"), True, True),
        (("192.168.0.0/24",), False, False),
        (("127.0.0.0/8",), False, True),
        (("127.1.0.0/16",), False, True),
    ],
)
def test_node_port_addresses(addresses: tuple[str, ...], match_all: bool, localhost: bool) -> None:
    cfg = ProxyConfig(node_ips=("192.168.0.2",), node_port_addresses=addresses)
    assert (cfg.family_node_port_cidrs() is None) == match_all
    assert cfg.effective_localhost_node_ports == localhost
