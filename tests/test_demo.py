"""``kubenat demo``: every scenario ends where the builder, evaluator and flannel say it must."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import kubenat
from kubenat.cli import main
from kubenat.demo import SCENARIOS, run
from kubenat.pcap import Reader

EXPECTED_DELIVERY = {
    "container ↔ container": {"pod default/nginxpod container centos :8800"},
    "pod ↔ pod across nodes": {"pod default/my-first-nginx-d3e4f container my-first-nginx :80"},
    "pod → service (ClusterIP)": {
        "pod default/my-first-nginx-a1b2c container my-first-nginx :80",
        "pod default/my-first-nginx-d3e4f container my-first-nginx :80",
    },
    "external → hostPort": {"pod default/nginxpod container centos :8800"},
}


@pytest.mark.parametrize("mode", ["iptables", "userspace"])
def test_every_model_is_shown_and_delivered(mode: str) -> None:
    report = run(mode)
    models = {s.model for s in report.scenarios}
    assert models == {"container-to-container", "pod-to-pod", "pod-to-service", "external-to-internal"}
    for scenario in report.scenarios:
        journey = scenario.journey
        assert journey.delivered, f"{scenario.title} not delivered in {mode} mode"
        assert journey.model == scenario.model
        if scenario.title in EXPECTED_DELIVERY:
            assert journey.delivered_to in EXPECTED_DELIVERY[scenario.title]
    # pod → pod across nodes really went through flannel: its frame decapsulates on node 2.
    pod_to_pod = next(s.journey for s in report.scenarios if s.model == "pod-to-pod")
    (frame,) = [h for h in pod_to_pod.hops if h.kind == "encap"]
    inner = report.cluster.node("kube-node-2").overlay.decap(frame.data, link="ethernet")
    assert kubenat.Packet.from_bytes(inner).dst == "192.168.55.5"


def test_environment_variables_are_kubelets() -> None:
    env = dict(run().environment)
    assert env["MY_FIRST_NGINX_SERVICE_HOST"] == "192.168.235.209"
    assert env["MY_FIRST_NGINX_SERVICE_PORT"] == "80"
    assert env["MY_FIRST_NGINX_PORT"] == "tcp://192.168.235.209:80"
    assert env["MY_FIRST_NGINX_PORT_80_TCP_ADDR"] == "192.168.235.209"


def test_userspace_listing_has_the_walkthrough_lines() -> None:
    listing = run("userspace").listing
    lines = [line.rstrip() for line in listing.splitlines()]
    assert (
        "REDIRECT   tcp  --  anywhere             192.168.235.209      "
        "/* default/my-first-nginx: */ tcp dpt:http redir ports 43321"
    ) in lines
    assert (
        "DNAT       tcp  --  anywhere             anywhere             "
        "/* default/my-second-nginx: */ tcp dpt:31150 to:10.96.219.141:50563"
    ) in lines


def test_cli_json_and_pcap(tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    result = CliRunner().invoke(main, ["demo", "--json", "--pcap", str(pcap)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [s["title"] for s in data["scenarios"]] == [s[0] for s in SCENARIOS]
    assert all(s["delivered_to"] for s in data["scenarios"])
    assert "KUBE-SERVICES" in data["nat_listing"]
    with pcap.open("rb") as f:
        frames = list(Reader(f))
    assert len(frames) == data["pcap"]["frames"] > 10
    for record in frames:
        assert kubenat.Packet.from_bytes(record.data, link="ethernet").checksums_valid()


@pytest.mark.parametrize("mode", ["iptables", "userspace"])
def test_cli_terminal_output(mode: str) -> None:
    result = CliRunner().invoke(main, ["demo", "--mode", mode])
    assert result.exit_code == 0, result.output
    for title, *_ in SCENARIOS:
        assert title in result.output
    assert "flannel frame on the wire" in result.output
    assert "MY_FIRST_NGINX_SERVICE_HOST=192.168.235.209" in result.output
