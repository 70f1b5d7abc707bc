"""Compare two rulesets rule by rule, after normalising both as the kernel does.

``iptables-save`` on a node and the text kube-proxy feeds to ``iptables-restore`` spell the same
rules differently (``--or-mark`` vs ``--set-xmark``, 10 vs 11 probability decimals, implicit
``-m tcp``, ``/32``); a plain ``diff`` drowns in that. :func:`diff` compares parsed rules, so
only real differences remain: chains only on one side, different policies, rules added, removed
or reordered within a chain.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from kubenat._core import Ruleset


@dataclass(frozen=True)
class ChainDiff:
    """Differences of one chain: ``lines`` in unified-diff form (``-`` only in the first ruleset,
    ``+`` only in the second)."""

    table: str
    chain: str
    status: str  # "only-first", "only-second", "changed"
    policy: tuple[str | None, str | None] = (None, None)
    lines: tuple[str, ...] = ()


def _rule_texts(rs: Ruleset, table: str, chain: str) -> list[str]:
    return [rule.text for rule in rs.rules(table, chain)]


def diff(first: Ruleset, second: Ruleset, *, tables: tuple[str, ...] | None = None) -> list[ChainDiff]:
    """Chains whose rules or policy differ between ``first`` and ``second``, table by table.
    Chain order within a table does not matter; rule order within a chain does."""
    out: list[ChainDiff] = []
    names = tables or tuple(dict.fromkeys([*first.tables, *second.tables]))
    for table in names:
        a = first.chains(table) if table in first.tables else []
        b = second.chains(table) if table in second.tables else []
        for chain in dict.fromkeys([*a, *b]):
            if chain not in b:
                out.append(
                    ChainDiff(
                        table,
                        chain,
                        "only-first",
                        lines=tuple(f"-{t}" for t in _rule_texts(first, table, chain)),
                    )
                )
                continue
            if chain not in a:
                out.append(
                    ChainDiff(
                        table,
                        chain,
                        "only-second",
                        lines=tuple(f"+{t}" for t in _rule_texts(second, table, chain)),
                    )
                )
                continue
            pa, pb = first.policy(table, chain), second.policy(table, chain)
            ra, rb = _rule_texts(first, table, chain), _rule_texts(second, table, chain)
            if pa == pb and ra == rb:
                continue
            lines = [
                ln
                for ln in difflib.unified_diff(ra, rb, lineterm="", n=1)
                if not ln.startswith(("---", "+++"))
            ]
            out.append(ChainDiff(table, chain, "changed", (pa, pb), tuple(lines)))
    return out


def render(diffs: list[ChainDiff], first_name: str = "first", second_name: str = "second") -> str:
    """A readable report; empty when the rulesets are the same."""
    parts: list[str] = []
    for d in diffs:
        if d.status == "only-first":
            parts.append(f"*{d.table} {d.chain}: only in {first_name}")
        elif d.status == "only-second":
            parts.append(f"*{d.table} {d.chain}: only in {second_name}")
        else:
            head = f"*{d.table} {d.chain}:"
            if d.policy[0] != d.policy[1]:
                head += f" policy {d.policy[0]} → {d.policy[1]}"
            parts.append(head)
        parts += [f"  {line}" for line in d.lines]
    return "\n".join(parts) + ("\n" if parts else "")
