"""A node's complete ruleset: kube-proxy's rules with the hostPort rules, hooks in arrival order."""

from __future__ import annotations

from click.testing import CliRunner

from kubenat import examples, proxy
from kubenat.cli import main
from kubenat.proxy.compose import overlay

WALK = examples.walkthrough()


def _hooks(text: str, table: str, chain: str) -> list[str]:
    body = text.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]
    return [line.rsplit(" -j ", 1)[1] for line in body.splitlines() if line.startswith(f"-A {chain} ")]


def test_userspace_with_docker_1_1_node() -> None:
    text = proxy.node_text(
        WALK,
        "userspace",
        examples.walkthrough_config(),
        hostports="docker",
        proxy_ports=examples.WALKTHROUGH_PROXY_PORTS,
    )
    assert _hooks(text, "nat", "PREROUTING") == [
        "KUBE-PORTALS-CONTAINER",
        "DOCKER",
        "KUBE-NODEPORT-CONTAINER",
    ]
    assert _hooks(text, "nat", "OUTPUT") == ["KUBE-PORTALS-HOST", "DOCKER", "KUBE-NODEPORT-HOST"]
    assert "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.20.3:80" in text
    assert "-j REDIRECT --to-ports 43321" in text


def test_iptables_with_cni() -> None:
    text = proxy.node_text(WALK, "iptables", examples.walkthrough_config(), hostports="cni")
    assert _hooks(text, "nat", "PREROUTING") == ["KUBE-SERVICES", "CNI-HOSTPORT-DNAT"]
    assert _hooks(text, "nat", "POSTROUTING") == ["CNI-HOSTPORT-MASQ", "KUBE-POSTROUTING"]
    assert ":KUBE-PROXY-CANARY - [0:0]" in text and ":CNI-HOSTPORT-SETMARK - [0:0]" in text
    assert proxy.node_text(WALK, "iptables", examples.walkthrough_config()) == proxy.build_text(
        WALK, config=examples.walkthrough_config()
    )


def test_overlay_keeps_user_chains_and_dedups() -> None:
    base = "*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n-A PREROUTING -j A\n-A A -j RETURN\nCOMMIT\n"
    extra = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:B - [0:0]\n"
        "-A PREROUTING -j B\n-A PREROUTING -j A\n-A B -j RETURN\nCOMMIT\n"
    )
    merged = overlay(base, extra, lambda _t, _c, _r: True)
    assert merged.splitlines() == [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":A - [0:0]",
        ":B - [0:0]",
        "-A PREROUTING -j B",
        "-A PREROUTING -j A",
        "-A A -j RETURN",
        "-A B -j RETURN",
        "COMMIT",
    ]


def test_cli_with_hostports() -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["rules", "--example", "walkthrough", "--mode", "userspace", "--with-hostports", "docker"]
    )
    assert result.exit_code == 0, result.output
    assert ":DOCKER - [0:0]" in result.output and "KUBE-PORTALS-CONTAINER" in result.output
    bad = runner.invoke(
        main, ["rules", "--example", "walkthrough", "--with-hostports", "cni", "--restore-payload"]
    )
    assert bad.exit_code == 2
