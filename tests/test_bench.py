"""``kubenat bench`` at a tiny size: it runs, writes complete JSON and a PNG, and its engines
agree (timings are never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from kubenat.bench import workload
from kubenat.cli import main
from kubenat.proxy.build import build_text

ROW_KEYS = {
    "services",
    "rules",
    "parse_ms",
    "compile_ms",
    "bytes_per_service",
    "dispatch_bytes_per_service",
    "batch_mpps",
    "batch_threads_mpps",
    "threads",
    "single_call_ns",
    "lean_call_ns",
    "plain_mpps",
    "python_pps",
    "python_kind",
    "kernel_pps",
    "kernel_note",
    "consistent",
    "dnat_share",
    "notes",
}


def test_bench_smoke(tmp_path: Path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--sizes",
            "20,1k",
            "--packets",
            "3000",
            "--no-kernel",
            "--json",
            str(out),
            "--png",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [r["services"] for r in data["rows"]] == [20, 1000]
    for row in data["rows"]:
        assert set(row) == ROW_KEYS
        assert row["consistent"] is True
        assert row["rules"] == 14 * row["services"] + 23
        assert 0.85 < row["dnat_share"] < 0.99  # 15 of 16 packets hit a service
        assert row["batch_mpps"] > 0 and row["plain_mpps"] > 0 and row["python_pps"] > 0
        assert row["single_call_ns"] > 0 and row["lean_call_ns"] > 0
        assert row["python_kind"].startswith("kubenat.reference")
    assert set(data["summary"]) >= {"batch_mpps_10k", "single_call_ns", "vs_python"}
    assert png.stat().st_size > 1000
    assert "targets" in result.output


def test_bad_sizes_are_refused() -> None:
    result = CliRunner().invoke(main, ["bench", "--sizes", "ten"])
    assert result.exit_code != 0 and "comma-separated" in result.output


def test_synthetic_ruleset_has_kube_proxys_shape() -> None:
    objs: list[dict[str, object]] = []
    for i in range(3):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc{i}", "namespace": "default"},
                "spec": {
                    "clusterIP": f"172.16.0.{i + 1}",
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            }
        )
        objs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"svc{i}-x",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": f"svc{i}"},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": [f"10.64.{i + 1}.{j + 2}"], "conditions": {"ready": True}} for j in range(4)
                ],
            }
        )
    real = build_text(objs, node_name="n1", node_ips=["192.168.0.2"], cluster_cidrs=[workload.CLUSTER_CIDR])
    assert workload.shape(workload.ruleset_text(3, 4)) == workload.shape(real)
