"""Every packet flow of the transcribed kube-proxy cases, through the Rust evaluator.

Each case's restore input is completed with the built-in chains and the jump rules kube-proxy
installs with ``EnsureRule(Prepend, ...)`` (kubeproxy.md §2.1, built here independently of the
proxy package), then every flow is traced with ``Netfilter.outcomes`` from the hook the kernel
would use. A subcase without a dump ("after OnEndpointSliceDelete") gets its rules from the
proxy builder. The expected endpoint set, REJECT/DROP verdicts and masquerade flags must match;
where the upstream tracer's simplifications differ from the kernel, the kernel wins and the
case is listed in ``KERNEL_DIFFERS`` with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import kubenat

CASES = Path(__file__).parent / "data" / "kubeproxy-cases"
NEW = "-m conntrack --ctstate NEW"

# (table, chain, target, extra args, comment) in iptablesJumpChains order, then the kubelet's.
JUMPS = [
    ("filter", "INPUT", "KUBE-EXTERNAL-SERVICES", NEW, "kubernetes externally-visible service portals"),
    ("filter", "FORWARD", "KUBE-EXTERNAL-SERVICES", NEW, "kubernetes externally-visible service portals"),
    ("filter", "INPUT", "KUBE-NODEPORTS", "", "kubernetes health check service ports"),
    ("filter", "FORWARD", "KUBE-SERVICES", NEW, "kubernetes service portals"),
    ("filter", "OUTPUT", "KUBE-SERVICES", NEW, "kubernetes service portals"),
    ("filter", "FORWARD", "KUBE-FORWARD", "", "kubernetes forwarding rules"),
    ("filter", "INPUT", "KUBE-PROXY-FIREWALL", NEW, "kubernetes load balancer firewall"),
    ("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", NEW, "kubernetes load balancer firewall"),
    ("filter", "FORWARD", "KUBE-PROXY-FIREWALL", NEW, "kubernetes load balancer firewall"),
    ("nat", "OUTPUT", "KUBE-SERVICES", "", "kubernetes service portals"),
    ("nat", "PREROUTING", "KUBE-SERVICES", "", "kubernetes service portals"),
    ("nat", "POSTROUTING", "KUBE-POSTROUTING", "", "kubernetes postrouting rules"),
    ("filter", "INPUT", "KUBE-FIREWALL", "", ""),
    ("filter", "OUTPUT", "KUBE-FIREWALL", "", ""),
]
BUILTIN = {"filter": ["INPUT", "FORWARD", "OUTPUT"], "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]}

# Flows where the kernel (and so kubenat) legitimately differs from the upstream tracer.
# (case id, flow name) -> (expected endpoint/verdict set, masquerade, why)
_LOCALHOST_WHY = (
    "upstream reports no match (''): the packet is not DNATed, as it says. The kernel also drops it: "
    "a pod's packet to 127.0.0.1 arrives off lo and, with localhostNodePorts=false, kube-proxy leaves "
    "route_localnet=0, so routing discards it as a martian destination."
)
KERNEL_DIFFERS: dict[tuple[str, str], tuple[set[str], bool, str]] = {
    (case, "pod to localhost doesn't work because localhost is not in nodePortAddresses"): (
        {"DROP"},
        False,
        _LOCALHOST_WHY,
    )
    for case in ("v128_TestOnlyLocalNodePorts", "v128_TestOnlyLocalNodePortsNoClusterCIDR")
}


def complete(restore: str) -> str:
    """The restore input plus built-in chains and the prepended jump rules."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in restore.splitlines():
        if line.startswith("*"):
            current = line[1:]
            tables[current] = []
        elif line == "COMMIT" or not line.strip():
            continue
        else:
            assert current is not None
            tables[current].append(line)
    out = []
    for name in ("filter", "nat"):
        lines = tables.get(name, [])
        declared = {line[1:].split()[0] for line in lines if line.startswith(":")}
        rules: dict[str, list[str]] = {c: [] for c in BUILTIN[name]}
        for table, chain, target, extra, comment in JUMPS:
            if table != name or target not in declared:
                continue
            words = ["-A", chain] + ([extra] if extra else [])
            if comment:
                words += ["-m", "comment", "--comment", f'"{comment}"']
            rules[chain].insert(0, " ".join([*words, "-j", target]))
        out.append(f"*{name}")
        out += [f":{c} ACCEPT [0:0]" for c in BUILTIN[name]]
        out += [line for line in lines if line.startswith(":")]
        for c in BUILTIN[name]:
            out += rules[c]
        out += [line for line in lines if not line.startswith(":")]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _built(sub_objects: list[Any], harness: dict[str, Any], previous: list[Any] | None) -> str:
    """Rules for a subcase without a dump, from the proxy builder (complete ruleset)."""
    from kubenat.proxy import build_text
    from proxy_cases import config

    prev: list[str] = []
    if previous is not None:
        text = build_text(previous, config=config(harness), restore_payload=True)
        prev = [m.group(1) for m in re.finditer(r"^:(KUBE-\S+)", text, re.M)]
    return build_text(sub_objects, config=config(harness), previous_chains=prev)


def load() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(case id, complete rules, harness+tracer, flow) for every flow of every case."""
    items = []
    for path in sorted(CASES.glob("*.json")):
        data = json.loads(path.read_text())
        ctx = {"harness": data["harness"], "tracer": data["tracer"]}
        if data.get("iptables_save"):
            text = complete(data["iptables_save"])
            items += [(data["name"], text, ctx, f) for f in data.get("flows") or []]
        previous = None
        for sub in data.get("subcases") or []:
            harness = {**data["harness"], **(sub.get("proxier_config") or {})}
            sub_ctx = {"harness": harness, "tracer": data["tracer"]}
            if sub.get("iptables_save"):
                text = complete(sub["iptables_save"])
            else:
                text = _built(sub["objects"], harness, previous if "/ after " in sub["name"] else None)
            items += [(f"{data['name']}/{sub['name']}", text, sub_ctx, f) for f in sub["flows"]]
            previous = sub["objects"]
    return items


ITEMS = load()


def node(ctx: dict[str, Any], text: str) -> kubenat.Netfilter:
    interfaces = ctx["harness"].get("interfaces")
    return kubenat.Netfilter(
        kubenat.Ruleset.parse(text),
        local_addresses=list(ctx["tracer"]["local_addresses"]),
        interfaces=interfaces,
        stateless=True,
        # kube-proxy sets net.ipv4.conf.all.route_localnet=1 for localhost NodePorts.
        route_localnet=bool(ctx["harness"].get("localhostNodePorts", True)),
    )


def expected_set(output: str) -> set[str]:
    tokens = [t for t in output.split(", ") if t]
    endpoints = {t for t in tokens if ":" in t}
    verdicts = {t for t in tokens if ":" not in t}
    if endpoints:
        assert verdicts <= {"ACCEPT"}, output
        return endpoints
    return verdicts or {"ACCEPT"}


def test_cases_are_all_there() -> None:
    assert len(ITEMS) >= 40
    assert len({c for c, *_ in ITEMS}) >= 20


@pytest.mark.parametrize(
    ("case", "text", "ctx", "flow"), ITEMS, ids=[f"{c}:{f['name']}" for c, _, _, f in ITEMS]
)
def test_flow(case: str, text: str, ctx: dict[str, Any], flow: dict[str, Any]) -> None:
    nf = node(ctx, text)
    proto = (flow.get("protocol") or "tcp").lower()
    packet = kubenat.Flow(flow["sourceIP"], flow["destIP"], flow["destPort"], proto=proto)
    outs = nf.outcomes(packet)
    assert abs(sum(o.probability for o in outs) - 1) < 1e-9
    assert sum(o.exact for o in outs) == 1
    got = {
        o.result.dnat if o.result.dnat and o.result.verdict == "ACCEPT" else o.result.verdict for o in outs
    }
    want, masq = expected_set(flow["output"]), flow["masq"]
    if (case, flow["name"]) in KERNEL_DIFFERS:
        want, masq, _why = KERNEL_DIFFERS[(case, flow["name"])]
    assert got == want, "\n".join(str(s) for s in outs[0].result.trace)
    accepted = [o for o in outs if o.result.verdict == "ACCEPT"]
    if accepted and any(o.result.dnat for o in accepted):
        # kube-proxy marks with KUBE-MARK-MASQ; the kernel then masquerades in POSTROUTING.
        assert any(o.result.masquerade for o in accepted) == masq
    elif masq:
        pytest.fail(f"expected masquerade, got {outs}")
    # Endpoints of a service are equally likely (up to the 31-bit quantisation).
    if len(outs) > 1 and all(o.result.dnat for o in outs):
        for o in outs:
            assert abs(o.probability - 1 / len(outs)) < 1e-8


def test_documented_differences_exist() -> None:
    flows = {(c, f["name"]) for c, _, _, f in ITEMS}
    assert set(KERNEL_DIFFERS) <= flows
