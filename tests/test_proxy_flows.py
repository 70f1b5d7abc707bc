"""The cases' packet flows through kubenat's evaluator, on rules built from the cases' objects.

The ruleset is kubenat's complete one (built-in chains, kube-proxy's hook rules, canary
chains); ``Netfilter.outcomes`` follows every statistic branch with its exact probability.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import kubenat
from kubenat import examples
from kubenat.proxy import build
from proxy_cases import Case, config, load_cases

CASES = load_cases()
FLOWS = [(case, flow) for case in CASES for flow in case.flows]
# The upstream tracer reports "" (nothing matched) where the kernel discards a pod's packet to
# 127.0.0.1 as a martian (route_localnet=0 since localhost NodePorts are off): kernel wins.
MARTIAN = "pod to localhost doesn't work because localhost is not in nodePortAddresses"


def _previous(case: Case) -> list[str]:
    if case.previous is None:
        return []
    text = kubenat.proxy.build_text(case.previous.objects, config=config(case.harness), restore_payload=True)
    return re.findall(r"^:(\S+) ", text.split("*nat\n", 1)[1], flags=re.M)


def _expected(output: str) -> set[str]:
    tokens = [t for t in output.split(", ") if t]
    endpoints = {t for t in tokens if ":" in t}
    return endpoints or {t for t in tokens if ":" not in t} or {"ACCEPT"}


@pytest.mark.parametrize(("case", "flow"), FLOWS, ids=[f"{c.id}:{f['name']}" for c, f in FLOWS])
def test_flow_through_evaluator(case: Case, flow: dict[str, Any]) -> None:
    cfg = config(case.harness)
    ruleset = build(case.objects, config=cfg, previous_chains=_previous(case))
    assert isinstance(ruleset, kubenat.Ruleset)
    node = kubenat.Netfilter(
        ruleset,
        local_addresses=["127.0.0.1", case.harness["nodeIP"]],
        interfaces=case.harness.get("interfaces"),
        stateless=True,
        # kube-proxy sets net.ipv4.conf.all.route_localnet=1 when it serves NodePorts on localhost.
        route_localnet=cfg.effective_localhost_node_ports,
    )
    packet = kubenat.Flow(
        flow["sourceIP"], flow["destIP"], flow["destPort"], proto=(flow.get("protocol") or "tcp").lower()
    )
    outcomes = node.outcomes(packet)
    assert sum(o.exact for o in outcomes) == 1
    got = {
        o.result.dnat if o.result.dnat and o.result.verdict == "ACCEPT" else o.result.verdict
        for o in outcomes
    }
    want = {"DROP"} if flow["name"] == MARTIAN else _expected(flow["output"])
    assert got == want
    if any(o.result.dnat for o in outcomes):
        assert any(o.result.masquerade for o in outcomes) == flow["masq"]


def _walkthrough_node(mode: str) -> kubenat.Netfilter:
    ruleset = build(
        examples.walkthrough(),
        mode,
        examples.walkthrough_config(),
        proxy_ports=examples.WALKTHROUGH_PROXY_PORTS,
    )
    return kubenat.Netfilter(
        ruleset, local_addresses=["127.0.0.1", examples.WALKTHROUGH_NODE_IP], stateless=True
    )


def test_walkthrough_cluster_ip_spreads_evenly() -> None:
    outcomes = _walkthrough_node("iptables").outcomes(kubenat.Flow("192.168.20.3", "192.168.235.209", 80))
    assert {o.result.dnat: o.exact for o in outcomes} == {"192.168.20.2:80": 0.5, "192.168.55.5:80": 0.5}
    assert not any(o.result.masquerade for o in outcomes)


def test_walkthrough_node_port_from_outside_is_masqueraded() -> None:
    outcomes = _walkthrough_node("iptables").outcomes(
        kubenat.Flow("203.0.113.5", examples.WALKTHROUGH_NODE_IP, 31150)
    )
    assert {o.result.dnat for o in outcomes} == {"192.168.20.2:80", "192.168.55.5:80"}
    assert all(o.result.masquerade for o in outcomes)


def test_walkthrough_userspace_redirect_then_proxy() -> None:
    """Container traffic to the cluster IP is REDIRECTed to the proxy port; the proxy picks the pod."""
    from kubenat.proxy.userspace_proxy import UserspaceProxy

    result = _walkthrough_node("userspace").evaluate(kubenat.Flow("192.168.20.3", "192.168.235.209", 80))
    assert result.dport == 43321
    proxy = UserspaceProxy(
        examples.walkthrough(), examples.WALKTHROUGH_NODE_IP, proxy_ports=examples.WALKTHROUGH_PROXY_PORTS
    )
    assert proxy.connect(result.dport, "192.168.20.3").endpoint == "192.168.20.2:80"
