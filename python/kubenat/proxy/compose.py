"""One node's complete NAT picture: kube-proxy's rules together with the hostPort rules.

Who hooks into the built-in chains first decides the order there. Docker (1.1-era nodes)
starts before kube-proxy; kube-proxy then *prepends* its portal / KUBE-SERVICES jumps and
*appends* the userspace NodePort jumps. The CNI portmap plugin runs at pod creation, after
kube-proxy: it appends its CNI-HOSTPORT-DNAT jumps and prepends CNI-HOSTPORT-MASQ in
POSTROUTING. :func:`node_text` applies exactly those placements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubenat import hostport
from kubenat.k8s import Cluster, load
from kubenat.proxy.build import build_text, make_config
from kubenat.proxy.userspace import NODEPORT_CONTAINER, NODEPORT_HOST

TABLE_ORDER = ("raw", "mangle", "filter", "nat")


@dataclass
class _Table:
    chains: dict[str, str] = field(default_factory=dict)  # name -> policy ("-" for user chains)
    rules: dict[str, list[str]] = field(default_factory=dict)


def _parse(text: str) -> dict[str, _Table]:
    tables: dict[str, _Table] = {}
    table = _Table()
    for line in text.splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:], _Table())
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            table.chains.setdefault(name, policy)
            table.rules.setdefault(name, [])
        elif line.startswith("-A "):
            table.rules.setdefault(line.split()[1], []).append(line)
    return tables


def _render(tables: dict[str, _Table]) -> str:
    lines: list[str] = []
    for name in sorted(tables, key=lambda t: (TABLE_ORDER.index(t) if t in TABLE_ORDER else 99, t)):
        table = tables[name]
        lines.append(f"*{name}")
        builtin = [c for c, p in table.chains.items() if p != "-"]
        user = [c for c, p in table.chains.items() if p == "-"]
        lines += [f":{c} {table.chains[c]} [0:0]" for c in builtin + user]
        for chain in builtin + user:
            lines += table.rules.get(chain, [])
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def overlay(base: str, extra: str, prepend: Callable[[str, str, str], bool]) -> str:
    """``extra``'s rules added to ``base``: rules of built-in chains for which
    ``prepend(table, chain, rule)`` holds go in front (keeping their order), the rest after."""
    tables = _parse(base)
    for name, table in _parse(extra).items():
        into = tables.setdefault(name, _Table())
        for chain, policy in table.chains.items():
            into.chains.setdefault(chain, policy)
            existing = into.rules.setdefault(chain, [])
            rules = table.rules.get(chain, [])
            if policy == "-":
                existing.extend(r for r in rules if r not in existing)
                continue
            front = [r for r in rules if prepend(name, chain, r) and r not in existing]
            back = [r for r in rules if not prepend(name, chain, r) and r not in existing]
            into.rules[chain] = front + existing + back
    return _render(tables)


def node_text(
    objects: Any,
    mode: str = "iptables",
    config: Any = None,
    *,
    hostports: str | None = None,
    proxy_ports: dict[str, int] | None = None,
    seed: int = 0,
    **options: Any,
) -> str:
    """kube-proxy's complete ruleset plus the hostPort rules of the pods on this node.

    ``hostports`` is ``"docker"`` (Docker publishing the pause container's ports, started
    before kube-proxy), ``"cni"`` (the portmap plugin, run after kube-proxy) or None.
    """
    cluster = objects if isinstance(objects, Cluster) else load(objects)
    cfg = make_config(config, **options).with_cluster(cluster)
    proxy_text = build_text(cluster, mode, cfg, proxy_ports=proxy_ports, seed=seed)
    if hostports is None:
        return proxy_text
    host_text = hostport.build_text(cluster, hostports, node_name=cfg.node_name or None)
    if hostports == "docker":
        # kube-proxy arrives second: everything it hooks is prepended, except the userspace
        # NodePort jumps, which it appends ("must be the last rule in the chain").
        return overlay(
            host_text, proxy_text, lambda _t, _c, rule: not rule.endswith((NODEPORT_CONTAINER, NODEPORT_HOST))
        )
    # portmap arrives second: it appends its DNAT hooks and prepends its MASQ hook.
    return overlay(proxy_text, host_text, lambda _t, chain, _r: chain == "POSTROUTING")
