"""Every supported match and target is checked against the kernel somewhere in this suite.

The variants are read from kubenat's rule model (``rust/core/src/iptables/ast.rs``), so a new
match or target fails this test until a generator or an explicit kernel test uses it, or it is
listed in ``NOT_KERNEL_CHECKED`` with the reason. Usage is collected from rules the generators
draw (the differential suite's strategies) and from the rule lines of the explicit tests here.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from rulegen import general_rulesets, kube_rulesets

ROOT = Path(__file__).resolve().parents[2]

NOT_KERNEL_CHECKED = {
    "Physdev": "needs a bridge in the node namespace (br_netfilter); no bridge testbed yet",
}
"""Variants no kernel test exercises yet, and why."""

SYNTAX_ONLY = {"test_save_roundtrip.py", "test_refusals.py", "test_coverage.py"}
"""Tests whose rules the kernel only parses (no packet is compared): they do not count."""

SPELLINGS = {
    "Source": r" -s \S",
    "Destination": r" -d \S",
    "InInterface": r" -i \S",
    "OutInterface": r" -o \S",
    "Protocol": r" -p \S",
    "Fragment": r" -f( |$)",
    "Tcp": r"-m tcp ",
    "Udp": r"-m udp ",
    "Sctp": r"-m sctp ",
    "Multiport": r"-m multiport ",
    "Comment": r"-m comment ",
    "Mark": r"-m mark ",
    "Connmark": r"-m connmark ",
    "AddrType": r"-m addrtype ",
    "Statistic": r"-m statistic ",
    "Recent": r"-m recent ",
    "Conntrack": r"-m conntrack ",
    "State": r"-m state ",
    "Icmp": r"-m icmp ",
    "Icmp6": r"-m icmp6 ",
    "Nfacct": r"-m nfacct ",
    "Physdev": r"-m physdev ",
    "None": r"^-A \S+(?!.*\s-[jg]\s)",
    "Accept": r"-j ACCEPT\b",
    "Drop": r"-j DROP\b",
    "Return": r"-j RETURN\b",
    "Reject": r"-j REJECT\b",
    "Jump": r"-j (?!(ACCEPT|DROP|RETURN|REJECT|DNAT|SNAT|MASQUERADE|REDIRECT|MARK|CONNMARK|LOG|NFLOG"
    r"|NOTRACK|CT)\b)\S",
    "Goto": r" -g \S",
    "Dnat": r"-j DNAT\b",
    "Snat": r"-j SNAT\b",
    "Masquerade": r"-j MASQUERADE\b",
    "Redirect": r"-j REDIRECT\b",
    "TargetMark": r"-j MARK\b",
    "TargetConnmark": r"-j CONNMARK\b",
    "Log": r"-j LOG\b",
    "Nflog": r"-j NFLOG\b",
    "Notrack": r"-j NOTRACK\b",
    "Ct": r"-j CT\b",
}
"""How each variant is spelled in a rule (targets sharing a match's name are prefixed ``Target``)."""


def _variants(enum: str) -> set[str]:
    text = (ROOT / "rust/core/src/iptables/ast.rs").read_text()
    body = text[text.index(f"pub enum {enum} {{") :]
    body = body[: body.index("\n}\n")]
    return set(re.findall(r"^    ([A-Z][A-Za-z0-9]*)\b", body, flags=re.M))


def _used(lines: list[str]) -> set[str]:
    found = set()
    for line in lines:
        if not line.startswith("-A "):
            continue
        found |= {name for name, pattern in SPELLINGS.items() if re.search(pattern, line)}
    return found


def _explicit_rule_lines() -> list[str]:
    lines = []
    for path in Path(__file__).parent.glob("*.py"):
        if path.name in SYNTAX_ONLY:
            continue
        for match in re.finditer(r"-A [A-Z][\w-]* .*", path.read_text()):
            lines.append(match.group(0))
    return lines


def test_every_match_and_target_is_kernel_checked() -> None:
    seen: set[str] = set(_used(_explicit_rule_lines()))

    @settings(max_examples=300, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(general_rulesets())
    def general(text: str) -> None:
        seen.update(_used(text.splitlines()))

    @settings(max_examples=10, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(kube_rulesets())
    def kube(case: tuple[str, object]) -> None:
        seen.update(_used(case[0].splitlines()))

    general()
    kube()
    matches = _variants("Match")
    targets = {f"Target{t}" if t in matches else t for t in _variants("Target")}
    assert set(NOT_KERNEL_CHECKED) <= matches | targets, "documented variants must exist"
    unknown = (matches | targets) - set(SPELLINGS)
    assert not unknown, f"no spelling known for {sorted(unknown)}: add it to SPELLINGS"
    missing = (matches | targets) - seen - set(NOT_KERNEL_CHECKED)
    assert not missing, f"never checked against the kernel: {sorted(missing)}"
