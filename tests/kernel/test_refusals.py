"""Rulesets the kernel refuses are refused by kubenat the same way, naming the same line.

Each case is loaded with ``iptables-restore`` (nf_tables backend) into a throwaway ``kn-``
namespace and parsed with :meth:`kubenat.Ruleset.parse`; both must refuse it (or both accept
it), and kubenat's ``ParseError.line`` must be the line iptables-restore reports. The one known
difference is a jump to a missing chain: nf_tables only notices it when the table is
committed, so iptables-restore names the ``COMMIT`` line, while kubenat names the rule.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import kubenat
from kubenat.kernel import _netns


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    refused: bool = True
    """Whether the kernel refuses the ruleset."""
    kernel_names_commit: bool = False
    """Whether iptables-restore names the COMMIT line rather than the rule."""
    family: str = "ipv4"


NAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"

CASES = [
    # Jump loops reachable from a built-in chain (the kernel: "Too many links").
    Case(
        "loop closed before it is reachable",
        NAT + ":A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\n-A PREROUTING -j A\nCOMMIT\n",
    ),
    Case(
        "loop closed after it is reachable",
        NAT + ":A - [0:0]\n:B - [0:0]\n-A OUTPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n",
    ),
    Case("chain jumping to itself", FILTER + ":A - [0:0]\n-A FORWARD -j A\n-A A -j A\nCOMMIT\n"),
    Case("goto loop", FILTER + ":A - [0:0]\n:B - [0:0]\n-A INPUT -g A\n-A A -g B\n-A B -g A\nCOMMIT\n"),
    Case(
        "loop through a long chain",
        FILTER
        + "".join(f":C{i} - [0:0]\n" for i in range(12))
        + "-A INPUT -j C0\n"
        + "".join(f"-A C{i} -j C{i + 1}\n" for i in range(11))
        + "-A C11 -j C0\nCOMMIT\n",
    ),
    Case(
        "loop not reachable from a built-in chain",
        NAT + ":A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n",
        refused=False,
    ),
    Case("ip6tables loop", FILTER + ":A - [0:0]\n-A INPUT -j A\n-A A -j A\nCOMMIT\n", family="ipv6"),
    # Jumps to chains that do not exist or cannot be jumped to.
    Case(
        "jump to a missing chain", NAT + "-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n", kernel_names_commit=True
    ),
    Case(
        "goto a missing chain",
        FILTER + ":A - [0:0]\n-A A -g NOPE\n-A INPUT -j A\nCOMMIT\n",
        kernel_names_commit=True,
    ),
    Case("jump to a built-in chain", FILTER + "-A INPUT -j OUTPUT\nCOMMIT\n"),
    # Targets in tables (and hooks) that do not allow them.
    Case("DNAT in filter", FILTER + "-A INPUT -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n"),
    Case("DROP in nat", NAT + "-A PREROUTING -j DROP\nCOMMIT\n"),
    Case("REJECT in nat", NAT + "-A OUTPUT -j REJECT\nCOMMIT\n"),
    Case("MASQUERADE in PREROUTING", NAT + "-A PREROUTING -j MASQUERADE\nCOMMIT\n"),
    Case(
        "DNAT reached from POSTROUTING",
        NAT + ":X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1\n-A POSTROUTING -j X\nCOMMIT\n",
    ),
    Case(
        "ip6tables DNAT in filter",
        FILTER + "-A INPUT -p tcp -j DNAT --to-destination [fd00::1]:80\nCOMMIT\n",
        family="ipv6",
    ),
    # ip6tables: address types IPv6 has no notion of (xt_addrtype's checkentry: EINVAL).
    Case(
        "ip6tables addrtype --src-type BROADCAST",
        FILTER + "-A INPUT -m addrtype --src-type BROADCAST -j ACCEPT\nCOMMIT\n",
        family="ipv6",
    ),
    Case(
        "ip6tables addrtype ! --dst-type LOCAL,BROADCAST",
        FILTER + "-A OUTPUT -m addrtype ! --dst-type LOCAL,BROADCAST -j ACCEPT\nCOMMIT\n",
        family="ipv6",
    ),
    Case(
        "ip6tables addrtype BLACKHOLE",
        FILTER + "-A INPUT -m addrtype --dst-type BLACKHOLE -j ACCEPT\nCOMMIT\n",
        family="ipv6",
    ),
    Case(
        "ip6tables addrtype THROW",
        FILTER + "-A INPUT -m addrtype --src-type THROW -j ACCEPT\nCOMMIT\n",
        family="ipv6",
    ),
    Case(
        "ip6tables addrtype LOCAL,UNICAST,MULTICAST,ANYCAST,UNREACHABLE,UNSPEC",
        FILTER
        + "-A INPUT -m addrtype --src-type LOCAL,UNICAST,MULTICAST,ANYCAST,UNREACHABLE,UNSPEC -j ACCEPT\n"
        "COMMIT\n",
        refused=False,
        family="ipv6",
    ),
    # Invalid ranges and values.
    Case("reversed port range", FILTER + "-A INPUT -p tcp --dport 90:80 -j ACCEPT\nCOMMIT\n"),
    Case(
        "reversed multiport range", FILTER + "-A INPUT -p tcp -m multiport --dports 5:1 -j ACCEPT\nCOMMIT\n"
    ),
    Case("port out of range", FILTER + "-A INPUT -p tcp --sport 65536 -j ACCEPT\nCOMMIT\n"),
    Case("prefix length out of range", FILTER + "-A INPUT -s 10.0.0.0/33 -j ACCEPT\nCOMMIT\n"),
    Case(
        "ip6tables prefix length out of range",
        FILTER + "-A INPUT -d fd00::/129 -j ACCEPT\nCOMMIT\n",
        family="ipv6",
    ),
    Case(
        "reversed DNAT port range",
        NAT + "-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:90-80\nCOMMIT\n",
    ),
    Case(
        "probability above 1",
        FILTER + "-A INPUT -m statistic --mode random --probability 1.5 -j ACCEPT\nCOMMIT\n",
    ),
    Case(
        "nth packet not below every",
        FILTER + "-A INPUT -m statistic --mode nth --every 2 --packet 2 -j ACCEPT\nCOMMIT\n",
    ),
    Case(
        "mark wider than 32 bits",
        "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x100000000\nCOMMIT\n",
    ),
    Case(
        "MASQUERADE ports without a protocol",
        NAT + "-A POSTROUTING -j MASQUERADE --to-ports 100-200\nCOMMIT\n",
    ),
    # The kernel takes a reversed NAT address range as it is; so does kubenat.
    Case(
        "reversed DNAT address range",
        NAT + "-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.9-10.0.0.1\nCOMMIT\n",
        refused=False,
    ),
]


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"kn-refuse-{os.getpid()}"
    _netns.add([name])
    try:
        yield name
    finally:
        errors = _netns.delete([name])
        assert not errors, errors


def kernel_restore(netns: str, case: Case) -> tuple[bool, int | None, str]:
    """(refused, reported line, message) from iptables-restore / ip6tables-restore."""
    tool = "ip6tables-restore" if case.family == "ipv6" else "iptables-restore"
    done = _netns.run([tool], netns=netns, input=case.text.encode(), check=False)
    stderr = done.stderr.decode(errors="replace")
    found = re.search(r"line:? (\d+)", stderr)
    return done.returncode != 0, int(found.group(1)) if found else None, stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_like_the_kernel(netns: str, case: Case) -> None:
    refused, kernel_line, stderr = kernel_restore(netns, case)
    assert refused == case.refused, f"the kernel {'refused' if refused else 'accepted'} it:\n{stderr}"
    if not case.refused:
        ruleset = kubenat.Ruleset.parse(case.text, family=case.family)
        assert ruleset.family == case.family
        return
    with pytest.raises(kubenat.ParseError) as info:
        kubenat.Ruleset.parse(case.text, family=case.family)
    err = info.value
    lines = case.text.split("\n")
    expected = lines.index("COMMIT") + 1 if case.kernel_names_commit else err.line
    assert kernel_line == expected, f"kubenat: {err}\nkernel: {stderr}"
    if "addrtype" in case.text and case.family == "ipv6":
        # The kernel's reason (its log line) is in kubenat's message.
        assert re.search(r"ipv6 .*(not supported|does not support)", str(err)), str(err)
    # kubenat quotes the rule it names, and points at a column inside it.
    assert err.text == lines[err.line - 1]
    assert 1 <= err.column <= len(err.text)


def nested(depth: int) -> str:
    """A filter table whose INPUT jumps through `depth` user chains in a row."""
    chains = "".join(f":C{i} - [0:0]\n" for i in range(depth))
    jumps = "".join(f"-A C{i} -j C{i + 1}\n" for i in range(depth - 1))
    return FILTER + chains + "-A INPUT -j C0\n" + jumps + "COMMIT\n"


def test_nesting_depth(netns: str) -> None:
    """nf_tables refuses a chain 16 jumps away from a built-in chain (its jump stack holds 16
    levels: "Too many links"), while iptables-legacy has no such bound. kubenat follows the
    legacy kernel here and evaluates any depth (see docs/robustness.md); this test pins both
    behaviours so that a change on either side is noticed."""
    refused, _, stderr = kernel_restore(netns, Case("15", nested(15)))
    assert not refused, stderr
    refused, line, stderr = kernel_restore(netns, Case("16", nested(16)))
    assert refused and "Too many links" in stderr
    assert nested(16).split("\n")[(line or 0) - 1] == "-A C14 -j C15"
    assert "C15" in kubenat.Ruleset.parse(nested(16)).chains("filter")
