"""The transcribed kube-proxy unit-test cases, and their harness as a ProxyConfig."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubenat.proxy import ProxyConfig

CASES_DIR = Path(os.environ.get("KUBENAT_PROXY_CASES", Path(__file__).parent / "data" / "kubeproxy-cases"))


@dataclass(frozen=True)
class Case:
    """One case or subcase that carries objects."""

    id: str
    harness: dict[str, Any]
    objects: list[Any]
    expected: str | None
    flows: list[dict[str, Any]]
    previous: Case | None = None


def config(harness: dict[str, Any], **overrides: Any) -> ProxyConfig:
    """The kube-proxy test harness (fake proxier) as a ProxyConfig, in the 1.28 version form."""
    detector = harness["localDetector"]
    interfaces = [a for addresses in (harness.get("interfaces") or {}).values() for a in addresses]
    opts: dict[str, Any] = {
        "node_name": harness["nodeName"],
        "node_ips": (harness["nodeIP"],),
        "interface_addresses": tuple(interfaces),
        "cluster_cidrs": (detector["cidr"],) if "cidr" in detector else (),
        "detect_local_mode": detector["mode"] if detector["mode"] == "ClusterCIDR" else "None",
        "masquerade_all": harness["masqueradeAll"],
        "masquerade_bit": harness["masqueradeBit"],
        "masquerade_mark": harness["masqueradeMark"],
        "localhost_node_ports": harness["localhostNodePorts"],
        "node_port_addresses": tuple(harness["nodePortAddresses"] or ()),
        "ip_family": harness["ipFamily"],
        "random_fully": harness["hasRandomFully"],
        "version": "1.28",
    }
    opts.update(overrides)
    return ProxyConfig(**opts)


def load_cases() -> list[Case]:
    """Every case and subcase with objects, in file order; a subcase knows the one before it."""
    cases: list[Case] = []
    for path in sorted(CASES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        harness = data["harness"]
        if data.get("objects"):
            cases.append(Case(data["name"], harness, data["objects"], data["iptables_save"], data["flows"]))
        previous = None
        for sub in data.get("subcases") or []:
            sub_harness = {**harness, **(sub.get("proxier_config") or {})}
            case = Case(
                f"{data['name']}/{sub['name']}",
                sub_harness,
                sub["objects"],
                sub.get("iptables_save"),
                sub["flows"],
                previous if "/ after " in sub["name"] else None,
            )
            cases.append(case)
            previous = case
    return cases
