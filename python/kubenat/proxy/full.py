"""A complete ruleset around kube-proxy's restore input: what a node holds after a full sync.

kube-proxy only restores its own chains; the hooks into the built-in chains are added one by
one with ``EnsureRule(Prepend, ...)`` (so they end up in reverse list order), and the canary
chains are created by its monitor. This module adds both, plus the built-in chains
themselves, so the text loads into an empty kernel with ``iptables-restore`` and can be
traced from the hooks.
"""

from __future__ import annotations

from kubenat.proxy import chains as c
from kubenat.proxy.chains import TableBuffer, quoted

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
}

_NEW = ("-m", "conntrack", "--ctstate", "NEW")

#: ``iptablesJumpChains`` then ``iptablesKubeletJumpChains``: (table, src, dst, comment, extra args).
JUMP_CHAINS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("filter", "INPUT", c.KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", _NEW),
    ("filter", "FORWARD", c.KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", _NEW),
    ("filter", "INPUT", c.KUBE_NODEPORTS, "kubernetes health check service ports", ()),
    ("filter", "FORWARD", c.KUBE_SERVICES, "kubernetes service portals", _NEW),
    ("filter", "OUTPUT", c.KUBE_SERVICES, "kubernetes service portals", _NEW),
    ("filter", "FORWARD", c.KUBE_FORWARD, "kubernetes forwarding rules", ()),
    ("filter", "INPUT", c.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    ("filter", "OUTPUT", c.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    ("filter", "FORWARD", c.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    ("nat", "OUTPUT", c.KUBE_SERVICES, "kubernetes service portals", ()),
    ("nat", "PREROUTING", c.KUBE_SERVICES, "kubernetes service portals", ()),
    ("nat", "POSTROUTING", c.KUBE_POSTROUTING, "kubernetes postrouting rules", ()),
    ("filter", "INPUT", c.KUBE_FIREWALL, "", ()),
    ("filter", "OUTPUT", c.KUBE_FIREWALL, "", ()),
)


def jump_rules() -> dict[tuple[str, str], list[str]]:
    """Rules of the built-in chains after the prepends, per (table, chain), first rule first."""
    out: dict[tuple[str, str], list[str]] = {}
    for table, src, dst, comment, extra in JUMP_CHAINS:
        args = [*extra]
        if comment:
            args += ["-m", "comment", "--comment", quoted(comment)]
        args += ["-j", dst]
        out.setdefault((table, src), []).insert(0, " ".join(["-A", src, *args]))
    return out


def complete_text(tables: list[TableBuffer]) -> str:
    """Restore input turned into a full ruleset: built-in chains with policies, the jump rules,
    the canary chains, and every chain the jumps need (KUBE-FIREWALL may be empty)."""
    by_name = {t.name: t for t in tables}
    for name in ("filter", "nat", "mangle"):
        by_name.setdefault(name, TableBuffer(name))
    jumps = jump_rules()
    for table_name, _src, dst, _comment, _extra in JUMP_CHAINS:
        by_name[table_name].chain(dst)
    for name in ("filter", "nat", "mangle"):
        by_name[name].chain(c.KUBE_PROXY_CANARY)
    lines: list[str] = []
    for table in c.canonical_order(list(by_name.values())):
        builtins = BUILTIN_CHAINS[table.name]
        lines.append(f"*{table.name}")
        lines += [f":{chain} ACCEPT [0:0]" for chain in builtins]
        lines += [f":{chain} - [0:0]" for chain in table.chains if chain not in builtins]
        for chain in builtins:
            lines += jumps.get((table.name, chain), [])
        lines += [text for _, text in table.rules]
        lines += [f"-X {chain}" for chain in table.deleted]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
