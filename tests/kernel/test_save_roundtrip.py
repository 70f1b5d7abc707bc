"""kubenat's save() and listing() against the kernel's iptables-save and iptables -L.

Rules are loaded with iptables-restore into a throwaway ``kn-`` network namespace; what the
kernel prints back (header comments and counters aside) must equal kubenat's rendering of the
same input, and rulesets the kernel refuses must be refused by kubenat's parser too.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from kubenat import ParseError, Ruleset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strategies_rules import NFACCT_NAMES, restore_text

CASES_DIR = Path("/work/shared/reference/kubeproxy-cases")
LOCAL_CASES = Path(__file__).resolve().parents[1] / "data" / "kubeproxy-cases"
if LOCAL_CASES.exists():
    CASES_DIR = LOCAL_CASES

KUBE_NFACCT = ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")
TABLES = ("raw", "mangle", "filter", "nat")
_names = itertools.count()


@dataclass
class Restored:
    """What the kernel accepted or refused, and printed back."""

    ok: bool
    stderr: str
    save: str
    listings: dict[tuple[str, bool], str]


def _run(ns: str, args: list[str], text: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns, *args]
    return subprocess.run(argv, input=text, capture_output=True, text=True, check=False, timeout=60)


@contextmanager
def netns() -> Iterator[str]:
    """A fresh ``kn-`` namespace, always deleted."""
    name = f"kn-parser-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def restore(text: str, v6: bool) -> Restored:
    """Loads ``text`` with (ip6)iptables-restore and reads back -save and -L for every table."""
    tool = "ip6tables" if v6 else "iptables"
    with netns() as ns:
        for name in (*NFACCT_NAMES, *KUBE_NFACCT):
            _run(ns, ["nfacct", "add", name])
        done = _run(ns, [f"{tool}-restore"], text)
        if done.returncode != 0:
            return Restored(False, done.stderr, "", {})
        saved = _run(ns, [f"{tool}-save"]).stdout
        body = "".join(line + "\n" for line in saved.splitlines() if not line.startswith("#"))
        listings = {}
        for table in TABLES:
            if f"*{table}\n" in body:
                for numeric in (False, True):
                    args = [tool, "-t", table, "-L", *(["-n"] if numeric else [])]
                    listings[(table, numeric)] = _run(ns, args).stdout
        return Restored(True, "", body, listings)


def _diff(kernel: str, mine: str) -> str:
    lines = difflib.unified_diff(kernel.splitlines(), mine.splitlines(), "kernel", "kubenat", lineterm="")
    return "\n".join(lines)


def assert_same_as_kernel(text: str) -> None:
    rs = Ruleset.parse(text)
    kernel = restore(text, rs.family == "ipv6")
    assert kernel.ok, f"the kernel refused a ruleset kubenat accepted:\n{kernel.stderr}\n{text}"
    assert rs.save() == kernel.save, _diff(kernel.save, rs.save())
    for (table, numeric), listing in kernel.listings.items():
        mine = rs.listing(table, numeric)
        assert mine == listing, f"-t {table} -L{' -n' if numeric else ''}\n{_diff(listing, mine)}"


def kubeproxy_dumps() -> list[tuple[str, str]]:
    dumps = []
    for path in sorted(CASES_DIR.glob("*.json")):
        case = json.loads(path.read_text())
        texts = [case.get("iptables_save")] + [s.get("iptables_save") for s in case.get("subcases") or []]
        dumps += [(f"{path.stem}[{i}]", t) for i, t in enumerate(texts) if t]
    return dumps


DUMPS = kubeproxy_dumps()


@pytest.mark.parametrize(("name", "text"), DUMPS, ids=[n for n, _ in DUMPS])
def test_kubeproxy_dump_renders_like_the_kernel(name: str, text: str) -> None:
    assert_same_as_kernel(text)


FORMS = """*nat
:KN-A - [0:0]
:KN-B - [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -m comment --comment "a \\"quoted\\" thing" -j DNAT \
--to-destination 10.1.1.1-10.1.1.5:80-90 --random --persistent
-A PREROUTING -p tcp -j REDIRECT --to-ports 43321
-A POSTROUTING -p udp --sport 53:60 ! --dport 1000 -j SNAT --to-source 10.2.2.2 --random-fully
-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1000-2000 --random
-A KN-A -m statistic --mode random --probability 0.3333333333 -j KN-B
-A KN-A -m statistic --mode nth --every 3 --packet 1 -g KN-B
-A KN-A -m recent --name foo --rcheck --seconds 10800 --reap -j KN-B
-A KN-A -m recent ! --update --hitcount 3 --rttl --rdest --mask 255.255.0.0 -j KN-B
-A KN-A -m mark --mark 0x10 -j MARK --set-mark 5
-A KN-A -j MARK --and-mark 0xff
-A KN-A -m connmark --mark 0x1/0x3 -j CONNMARK --save-mark
-A KN-A -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xf0
-A KN-A -m addrtype --src-type LOCAL,UNICAST ! --dst-type BROADCAST -j KN-B
-A KN-A -p tcp -m multiport --dports 80,443,8000:8080 -j KN-B
-A KN-A -p udp -m multiport ! --sports domain -j KN-B
-A KN-A -p icmp --icmp-type 3/4 -j KN-B
-A KN-A -p tcp ! --syn -j LOG --log-prefix "hi there " --log-level 3 --log-uid
-A KN-A -j NFLOG --nflog-group 5 --nflog-prefix pfx --nflog-threshold 3 --nflog-size 100
-A KN-A -m conntrack --ctstate NEW,SNAT --ctproto tcp --ctorigdst 10.0.0.0/8 ! --ctorigsrcport 1000:2000 \
--ctstatus ASSURED --ctdir REPLY -j KN-B
-A KN-A -m state --state ESTABLISHED,RELATED -m nfacct --nfacct-name kn-acct1 -j KN-B
-A KN-A -m physdev --physdev-in veth+ ! --physdev-is-bridged -s 10.1.2.3/8 -d 127.0.0.1 -j RETURN
-A KN-A -p sctp --dport 9 -i eth+ ! -o lo -f
COMMIT
*filter
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -j REJECT
-A INPUT -m state ! --state INVALID,UNTRACKED -j DROP
COMMIT
*raw
-A PREROUTING -j NOTRACK
-A PREROUTING -j CT --notrack
-A OUTPUT -j CT --zone 5
COMMIT
"""


def test_every_construct_renders_like_the_kernel() -> None:
    assert_same_as_kernel(FORMS)


def test_ipv6_renders_like_the_kernel() -> None:
    text = """*nat
:KN-X - [0:0]
-A PREROUTING -d fd00::1 -p tcp --dport 80 -j DNAT --to-destination [fd00::2]:8080
-A PREROUTING -p tcp -j DNAT --to-destination [fd00::2-fd00::3]:80-90
-A POSTROUTING -s fd00::/64 -j SNAT --to-source fd00::9
-A KN-X -m recent --rcheck --seconds 5 --reap --name foo -j ACCEPT
-A KN-X -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT
-A KN-X -p icmpv6 ! --icmpv6-type 1/3 -j ACCEPT
COMMIT
*filter
-A INPUT -j REJECT
-A INPUT -j REJECT --reject-with adm-prohibited
COMMIT
"""
    assert_same_as_kernel(text)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(restore_text())
def test_random_rulesets_render_like_the_kernel(text: str) -> None:
    assert_same_as_kernel(text)


def _dump(table: str, *lines: str) -> str:
    return "\n".join([f"*{table}", *lines, "COMMIT"]) + "\n"


SHARED_OPTION_TWICE = "-A INPUT -m connmark --mark 1 -m mark --mark 2 -m connmark --mark 3"

REFUSED = {
    "loop": _dump("nat", ":A - [0:0]", ":B - [0:0]", "-A A -j B", "-A B -j A", "-A PREROUTING -j A"),
    "dnat-in-filter": _dump("filter", "-A INPUT -j DNAT --to-destination 10.0.0.1"),
    "drop-in-nat": _dump("nat", "-A PREROUTING -j DROP"),
    "reject-in-nat": _dump("nat", "-A PREROUTING -j REJECT"),
    "reject-in-mangle": _dump("mangle", "-A INPUT -j REJECT"),
    "notrack-in-filter": _dump("filter", "-A INPUT -j NOTRACK"),
    "dnat-in-postrouting": _dump("nat", "-A POSTROUTING -j DNAT --to-destination 10.0.0.1"),
    "masquerade-from-prerouting": _dump("nat", ":X - [0:0]", "-A X -j MASQUERADE", "-A PREROUTING -j X"),
    "missing-chain": _dump("nat", "-A PREROUTING -j KUBE-MISSING"),
    "port-range": _dump("filter", "-A INPUT -p tcp --dport 90:80 -j ACCEPT"),
    "nat-range": _dump("nat", "-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:90-80"),
    "nat-port-no-proto": _dump("nat", "-A PREROUTING -j DNAT --to-destination 10.0.0.1:80"),
    "tcp-without-p": _dump("filter", "-A INPUT -m tcp --dport 80 -j ACCEPT"),
    "nth-packet": _dump("filter", "-A INPUT -m statistic --mode nth --every 2 --packet 2"),
    "probability": _dump("filter", "-A INPUT -m statistic --mode random --probability 1.5"),
    "recent-two-commands": _dump("filter", "-A INPUT -m recent --set --rcheck"),
    "recent-hitcount": _dump("filter", "-A INPUT -m recent --rcheck --hitcount 65536"),
    "unknown-module": _dump("filter", "-A INPUT -m conntrack --ctstate NEW -m bogus"),
    "unknown-option": _dump("filter", "-A INPUT -p tcp --bogus 1"),
    "chain-name-too-long": _dump("filter", ":A23456789012345678901234567890 - [0:0]"),
    "negated-everything": _dump("filter", "-A INPUT ! -s 0.0.0.0/0 -j ACCEPT"),
    "shared-option-twice": _dump("filter", SHARED_OPTION_TWICE),
    "delete-referenced-chain": _dump("nat", ":A - [0:0]", "-A PREROUTING -j A", "-X A"),
    "addrtype-limit-in": _dump("nat", "-A OUTPUT -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT"),
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_refused_like_the_kernel(text: str) -> None:
    with pytest.raises(ParseError) as info:
        Ruleset.parse(text)
    err = info.value
    assert 1 <= err.line <= len(text.splitlines())
    assert err.text == text.splitlines()[err.line - 1]
    kernel = restore(text, False)
    assert not kernel.ok, f"the kernel accepted what kubenat refused ({err}):\n{kernel.save}"


def test_ipv6_addrtype_refusal_matches_the_kernel() -> None:
    text = "*raw\n-A PREROUTING -m addrtype --dst-type BROADCAST -j ACCEPT\nCOMMIT\n"
    with pytest.raises(ParseError):
        Ruleset.parse(text, family="ipv6")
    assert not restore(text, True).ok
    ok = "*raw\n-A PREROUTING -m addrtype --dst-type MULTICAST -j ACCEPT\nCOMMIT\n"
    Ruleset.parse(ok, family="ipv6")
    assert restore(ok, True).ok
