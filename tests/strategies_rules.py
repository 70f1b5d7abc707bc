"""Hypothesis strategies for random, valid iptables-restore input.

The rulesets are ones the kernel accepts: targets only in tables and hooks that allow them,
jumps only to later user chains (so no loop), port options only with a matching ``-p``. They
use the spellings kube-proxy and people write (``--or-mark``, ``-p 6``, service names, 10-decimal
probabilities, ``-m comment`` before ``-p``) so that parsing has to normalise them.
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass

from hypothesis import strategies as st

#: nfacct objects the kernel tests create before loading a generated ruleset.
NFACCT_NAMES = ("kn-acct1", "kn-acct2")

BUILTINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
IN_HOOKS = {"PREROUTING", "INPUT", "FORWARD"}
OUT_HOOKS = {"FORWARD", "OUTPUT", "POSTROUTING"}

PORT_PROTOS = ("tcp", "udp", "sctp")
COMMENT_CHARS = string.ascii_letters + string.digits + " _-/:.,;'\"\\!#()[]{}=+*"


@dataclass(frozen=True)
class Ctx:
    """Where a rule goes: family, table, chain and which hooks can reach it."""

    v6: bool
    table: str
    chain: str
    hooks: frozenset[str]


def _addr(v6: bool) -> st.SearchStrategy[str]:
    """A host or a network, host bits cleared."""
    if v6:
        pair = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
        raw = pair.map(lambda t: f"fd00:{t[0]:x}::{t[1]:x}")
        bits = 128
    else:
        quad = st.tuples(st.integers(1, 223), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
        raw = quad.map(lambda h: ".".join(map(str, h)))
        bits = 32

    def network(t: tuple[str, int]) -> str:
        net = ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False)
        return str(net.network_address) if t[1] == bits and t[1] % 2 else str(net)

    return st.tuples(raw, st.integers(1, bits)).map(network)


def _plain_addr(v6: bool) -> st.SearchStrategy[str]:
    if v6:
        return st.integers(1, 0xFFFF).map(lambda n: f"fd00::{n:x}")
    return st.tuples(st.integers(1, 223), st.integers(0, 255), st.integers(1, 254)).map(
        lambda t: f"10.{t[1]}.{t[0]}.{t[2]}"
    )


def _bang(draw: st.DrawFn) -> str:
    return "! " if draw(st.booleans()) else ""


def _port(draw: st.DrawFn, proto: str) -> str:
    names = {"tcp": ["http", "https", "ssh", "domain"], "udp": ["domain", "ntp"], "sctp": []}[proto]
    if names and draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(names))
    return str(draw(st.integers(1, 65535)))


def _port_range(draw: st.DrawFn) -> str:
    a = draw(st.integers(1, 65000))
    if draw(st.booleans()):
        return str(a)
    return f"{a}:{draw(st.integers(a, 65534))}"


def _mark(draw: st.DrawFn) -> str:
    value = draw(st.integers(0, 0xFFFFFFFF))
    if draw(st.booleans()):
        return f"0x{value:x}/0x{draw(st.integers(0, 0xFFFFFFFF)):x}"
    return f"0x{value:x}" if draw(st.booleans()) else str(value)


def _comment(draw: st.DrawFn) -> str:
    text = draw(st.text(COMMENT_CHARS, min_size=1, max_size=40))
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'-m comment --comment "{escaped}"'


@st.composite
def _matches(draw: st.DrawFn, ctx: Ctx) -> tuple[list[str], str | None]:
    """Match words of a rule and its protocol (None when no -p)."""
    parts: list[str] = []
    proto: str | None = None
    if draw(st.booleans()):
        parts.append(f"{_bang(draw)}-s {draw(_addr(ctx.v6))}")
    if draw(st.booleans()):
        parts.append(f"{_bang(draw)}-d {draw(_addr(ctx.v6))}")
    if ctx.hooks and ctx.hooks <= IN_HOOKS and draw(st.integers(0, 3)) == 0:
        parts.append(f"{_bang(draw)}-i {draw(st.sampled_from(['eth0', 'veth+', 'cni0', 'lo']))}")
    if ctx.hooks and ctx.hooks <= OUT_HOOKS and draw(st.integers(0, 3)) == 0:
        parts.append(f"{_bang(draw)}-o {draw(st.sampled_from(['eth1', 'flannel.1', 'br+']))}")
    choice = draw(st.sampled_from(["none", "tcp", "udp", "sctp", "icmp", "other"]))
    # -p and the options that depend on it stay together and in order (an implicit -m tcp needs
    # the -p before it); kube-proxy's own spelling puts an explicit -m tcp before -p.
    group: list[str] = []
    if choice in PORT_PROTOS:
        proto = choice
        spelled = draw(st.sampled_from([choice, {"tcp": "6", "udp": "17", "sctp": "132"}[choice]]))
        explicit = draw(st.booleans())
        opts = []
        if draw(st.booleans()):
            opts.append(
                f"{_bang(draw)}--dport {_port(draw, choice) if draw(st.booleans()) else _port_range(draw)}"
            )
        if draw(st.booleans()):
            opts.append(f"{_bang(draw)}--sport {_port_range(draw)}")
        if choice == "tcp" and draw(st.integers(0, 5)) == 0:
            opts.append(f"{_bang(draw)}--syn")
        elif choice == "tcp" and draw(st.integers(0, 3)) == 0:
            flags = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"]
            mask = draw(st.lists(st.sampled_from(flags), min_size=1, unique=True))
            comp = draw(st.lists(st.sampled_from(mask), unique=True))
            opts.append(f"{_bang(draw)}--tcp-flags {','.join(mask)} {','.join(comp) or 'NONE'}")
        if explicit:
            group += [f"-m {choice}", f"-p {spelled}", *opts]
        else:
            group += [f"-p {spelled}", *opts]
        if choice != "sctp" and draw(st.integers(0, 4)) == 0:
            side = draw(st.sampled_from(["--dports", "--sports", "--ports"]))
            ports = draw(st.lists(st.integers(1, 65535).map(str), min_size=1, max_size=5))
            group.append(f"-m multiport {_bang(draw)}{side} {','.join(ports)}")
    elif choice == "icmp":
        proto = "icmp"
        if ctx.v6:
            kind = draw(st.sampled_from(["echo-request", "128", "1/3", "destination-unreachable"]))
            group += ["-p ipv6-icmp", f"-m icmp6 {_bang(draw)}--icmpv6-type {kind}"]
        else:
            kind = draw(st.sampled_from(["echo-request", "8", "3/4", "any", "destination-unreachable", "11"]))
            group += ["-p icmp", f"-m icmp {_bang(draw)}--icmp-type {kind}"]
    elif choice == "other":
        group.append(f"{_bang(draw)}-p {draw(st.sampled_from(['gre', '47', 'esp', 'udplite']))}")
    if group:
        parts.append(" ".join(group))
    marks = 0
    for _ in range(draw(st.integers(0, 3))):
        module = draw(_module(ctx))
        # mark and connmark share `--mark`; a second of them would take the first one's option.
        if module.startswith(("-m mark ", "-m connmark ")):
            marks += 1
            if marks > 1:
                continue
        parts.append(module)
    draw(st.randoms()).shuffle(parts)
    return parts, proto


@st.composite
def _module(draw: st.DrawFn, ctx: Ctx) -> str:
    kind = draw(
        st.sampled_from(
            [
                "comment",
                "mark",
                "connmark",
                "addrtype",
                "statistic",
                "recent",
                "conntrack",
                "state",
                "nfacct",
                "physdev",
            ]
        )
    )
    if kind == "physdev":
        words = []
        if draw(st.booleans()):
            words.append(f"{_bang(draw)}--physdev-in {draw(st.sampled_from(['veth+', 'eth0']))}")
        if draw(st.booleans()):
            words.append(f"{_bang(draw)}--physdev-is-bridged")
        if draw(st.booleans()) or not words:
            words.append(f"{_bang(draw)}--physdev-is-in")
        draw(st.randoms()).shuffle(words)
        return "-m physdev " + " ".join(words)
    if kind == "comment":
        return _comment(draw)
    if kind in ("mark", "connmark"):
        return f"-m {kind} {_bang(draw)}--mark {_mark(draw)}"
    if kind == "addrtype":
        types = ["UNICAST", "LOCAL", "MULTICAST", "UNREACHABLE", "ANYCAST"]
        if not ctx.v6:
            types += ["BROADCAST", "BLACKHOLE", "PROHIBIT"]
        words = []
        for flag in ("--src-type", "--dst-type"):
            if draw(st.booleans()) or not words:
                chosen = draw(st.lists(st.sampled_from(types), min_size=1, max_size=3, unique=True))
                words.append(f"{_bang(draw)}{flag} {','.join(chosen)}")
        if ctx.hooks and ctx.hooks <= {"PREROUTING", "INPUT", "FORWARD"} and draw(st.integers(0, 3)) == 0:
            words.append("--limit-iface-in")
        elif ctx.hooks and ctx.hooks <= {"FORWARD", "OUTPUT", "POSTROUTING"} and draw(st.integers(0, 3)) == 0:
            words.append("--limit-iface-out")
        return "-m addrtype " + " ".join(words)
    if kind == "statistic":
        if draw(st.booleans()):
            p = draw(st.integers(0, 10**10)) / 10**10
            return f"-m statistic --mode random {_bang(draw)}--probability {p:.10f}"
        every = draw(st.integers(1, 50))
        return (
            f"-m statistic --mode nth {_bang(draw)}--every {every} --packet {draw(st.integers(0, every - 1))}"
        )
    if kind == "recent":
        name = draw(st.sampled_from(["KUBE-SEP-ABC", "foo", "DEFAULT"]))
        cmd = draw(st.sampled_from(["--set", "--rcheck", "--update", "--remove"]))
        words = [f"{_bang(draw)}{cmd}", f"--name {name}"]
        if cmd in ("--rcheck", "--update"):
            if draw(st.booleans()):
                words.append(f"--seconds {draw(st.integers(1, 100000))}")
                if draw(st.booleans()):
                    words.append("--reap")
            if draw(st.booleans()):
                words.append(f"--hitcount {draw(st.integers(1, 20))}")
            if draw(st.booleans()):
                words.append("--rttl")
        words.append(draw(st.sampled_from(["", "--rsource", "--rdest"])))
        return "-m recent " + " ".join(w for w in words if w)
    if kind == "conntrack":
        states = ["INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT"]
        chosen = draw(st.lists(st.sampled_from(states), min_size=1, unique=True))
        words = [f"{_bang(draw)}--ctstate {','.join(chosen)}"]
        if draw(st.booleans()):
            words.append(f"{_bang(draw)}--ctproto {draw(st.sampled_from(['tcp', 'udp', '6', '17']))}")
        if draw(st.booleans()):
            words.append(f"{_bang(draw)}--ctorigdst {draw(_addr(ctx.v6))}")
        if draw(st.booleans()):
            words.append(f"{_bang(draw)}--ctorigdstport {_port_range(draw)}")
        if draw(st.booleans()):
            status = ["EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"]
            chosen = draw(st.lists(st.sampled_from(status), min_size=1, unique=True))
            words.append(f"{_bang(draw)}--ctstatus {','.join(chosen)}")
        if draw(st.booleans()):
            words.append(f"--ctdir {draw(st.sampled_from(['ORIGINAL', 'REPLY']))}")
        for flag in ("--ctorigsrc", "--ctreplsrc", "--ctrepldst"):
            if draw(st.integers(0, 3)) == 0:
                # Host bits are kept by conntrack (and printed back), so write some.
                host = draw(_plain_addr(ctx.v6))
                words.append(f"{_bang(draw)}{flag} {host}/{draw(st.integers(0, 128 if ctx.v6 else 32))}")
        for flag in ("--ctorigsrcport", "--ctreplsrcport", "--ctrepldstport"):
            if draw(st.integers(0, 3)) == 0:
                words.append(f"{_bang(draw)}{flag} {_port_range(draw)}")
        draw(st.randoms()).shuffle(words)
        return "-m conntrack " + " ".join(words)
    if kind == "state":
        states = ["INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED"]
        chosen = draw(st.lists(st.sampled_from(states), min_size=1, unique=True))
        return f"-m state {_bang(draw)}--state {','.join(chosen)}"
    return f"-m nfacct --nfacct-name {draw(st.sampled_from(NFACCT_NAMES))}"


@st.composite
def _target(draw: st.DrawFn, ctx: Ctx, proto: str | None, later: list[str]) -> str:
    options = ["none", "accept", "return", "mark", "log", "nflog"]
    if later:
        options += ["jump", "jump", "goto"]
    if ctx.table == "filter":
        options += ["drop", "reject"]
    if ctx.table == "mangle":
        options += ["connmark", "drop"]
    if ctx.table == "raw":
        options += ["notrack"]
    if ctx.table == "nat" and ctx.hooks:
        if ctx.hooks <= {"PREROUTING", "OUTPUT"}:
            options += ["dnat", "dnat", "redirect"]
        if ctx.hooks <= {"POSTROUTING", "INPUT"}:
            options += ["snat"]
        if ctx.hooks <= {"POSTROUTING"}:
            options += ["masquerade", "masquerade"]
    kind = draw(st.sampled_from(options))
    ports_ok = proto in PORT_PROTOS
    if kind == "none":
        return ""
    if kind in ("accept", "return", "drop"):
        return f"-j {kind.upper()}"
    if kind == "jump":
        return f"-j {draw(st.sampled_from(later))}"
    if kind == "goto":
        return f"-g {draw(st.sampled_from(later))}"
    if kind == "mark":
        op = draw(st.sampled_from(["--set-xmark", "--set-mark", "--or-mark", "--and-mark", "--xor-mark"]))
        value = (
            _mark(draw) if op in ("--set-xmark", "--set-mark") else f"0x{draw(st.integers(0, 2**32 - 1)):x}"
        )
        return f"-j MARK {op} {value}"
    if kind == "connmark":
        op = draw(st.sampled_from(["--set-xmark", "--or-mark", "--save-mark", "--restore-mark"]))
        if op in ("--save-mark", "--restore-mark"):
            extra = draw(st.sampled_from(["", "--mask 0xff", "--nfmask 0xf --ctmask 0xf0"]))
            return f"-j CONNMARK {op} {extra}".rstrip()
        return f"-j CONNMARK {op} {_mark(draw) if op == '--set-xmark' else '0x4'}"
    if kind == "log":
        words = ["-j LOG"]
        if draw(st.booleans()):
            words.append(
                f'--log-prefix "{draw(st.text(string.ascii_letters + " :", min_size=1, max_size=20))}"'
            )
        if draw(st.booleans()):
            words.append(
                f"--log-level {draw(st.sampled_from(['0', '3', '4', '7', 'info', 'debug', 'warning']))}"
            )
        flags = ["--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid"]
        flags.append("--log-macdecode")
        for flag in flags:
            if draw(st.integers(0, 3)) == 0:
                words.append(flag)
        return " ".join(words)
    if kind == "nflog":
        words = ["-j NFLOG"]
        if draw(st.booleans()):
            words.append(f"--nflog-group {draw(st.integers(0, 65535))}")
        if draw(st.booleans()):
            prefix = draw(st.sampled_from(["pfx", "kube", '"two words"']))
            words.append(f"--nflog-prefix {prefix}")
        if draw(st.booleans()):
            words.append(f"--nflog-threshold {draw(st.integers(1, 100))}")
        if draw(st.booleans()):
            words.append(f"--nflog-size {draw(st.integers(0, 65535))}")
        return " ".join(words)
    if kind == "reject":
        if ctx.v6:
            choices = ["icmp6-port-unreachable", "icmp6-adm-prohibited", "no-route", "addr-unreach"]
        else:
            choices = [
                "icmp-port-unreachable",
                "icmp-host-prohibited",
                "icmp-net-unreachable",
                "port-unreach",
            ]
        if proto == "tcp":
            choices.append("tcp-reset")
        return (
            f"-j REJECT --reject-with {draw(st.sampled_from(choices))}"
            if draw(st.booleans())
            else "-j REJECT"
        )
    if kind == "notrack":
        return draw(st.sampled_from(["-j NOTRACK", "-j CT --notrack", "-j CT --zone 5", "-j CT --zone 0"]))
    if kind in ("dnat", "snat"):
        a = draw(_plain_addr(ctx.v6))
        text = a
        if draw(st.booleans()):
            text = f"{a}-{draw(_plain_addr(ctx.v6))}"
        if ports_ok and draw(st.booleans()):
            p = draw(st.integers(1, 65000))
            ports = str(p) if draw(st.booleans()) else f"{p}-{draw(st.integers(p, 65535))}"
            text = f"[{text}]:{ports}" if ctx.v6 else f"{text}:{ports}"
        flag = "--to-destination" if kind == "dnat" else "--to-source"
        words = [f"-j {kind.upper()} {flag} {text}"]
        if draw(st.booleans()):
            words.append("--random")
        if kind == "snat" and draw(st.booleans()):
            words.append("--random-fully")
        if draw(st.booleans()):
            words.append("--persistent")
        return " ".join(words)
    words = ["-j MASQUERADE" if kind == "masquerade" else "-j REDIRECT"]
    if ports_ok and draw(st.booleans()):
        p = draw(st.integers(1, 65000))
        words.append(
            f"--to-ports {p}" if draw(st.booleans()) else f"--to-ports {p}-{draw(st.integers(p, 65535))}"
        )
    if draw(st.booleans()):
        words.append("--random")
    if kind == "masquerade" and draw(st.booleans()):
        words.append("--random-fully")
    return " ".join(words)


@st.composite
def restore_text(draw: st.DrawFn, v6: bool | None = None) -> str:
    """iptables-restore input the kernel accepts (nat and filter, sometimes raw and mangle)."""
    if v6 is None:
        v6 = draw(st.integers(0, 4)) == 0
    tables = ["nat", "filter"] + [t for t in ("raw", "mangle") if draw(st.integers(0, 3)) == 0]
    draw(st.randoms()).shuffle(tables)
    out: list[str] = []
    for table in tables:
        out.append(f"*{table}")
        n_user = draw(st.integers(0, 4))
        users = [f"KN-{table.upper()}-{i}{draw(st.sampled_from(['', 'X', 'abc']))}" for i in range(n_user)]
        for chain in users:
            out.append(f":{chain} - [0:0]")
        if draw(st.booleans()):
            out.append(f":{draw(st.sampled_from(BUILTINS[table]))} ACCEPT [0:0]")
        # User chains are only reached from built-ins that are given here, so hooks are known:
        # user chain i gets the hooks of the built-in chain that jumps to it.
        reach: dict[str, set[str]] = {c: set() for c in users}
        lines: list[str] = []
        for chain in (*BUILTINS[table], *users):
            hooks = frozenset({chain}) if chain in BUILTINS[table] else frozenset(reach[chain])
            later = users[users.index(chain) + 1 :] if chain in users else users
            # A jump from here passes its hooks on to the callee; fix each callee's hooks to
            # one built-in so that NAT targets in user chains stay valid.
            ctx = Ctx(v6, table, chain, hooks)
            for _ in range(draw(st.integers(0, 4))):
                parts, proto = draw(_matches(ctx))
                callees = [c for c in later if not reach[c] or reach[c] == set(hooks)] if hooks else []
                target = draw(_target(ctx, proto, callees))
                words = target.split()
                if len(words) >= 2 and words[0] in ("-j", "-g") and words[1] in reach:
                    reach[words[1]] |= set(hooks)
                command = f"-A {chain}"
                if draw(st.integers(0, 9)) == 0:
                    command = f"[{draw(st.integers(0, 10**6))}:{draw(st.integers(0, 10**9))}] {command}"
                elif draw(st.integers(0, 9)) == 0:
                    command = f"{command} -c {draw(st.integers(0, 10**6))} {draw(st.integers(0, 10**9))}"
                lines.append(" ".join([command, *parts, target]).strip())
        out.extend(lines)
        if draw(st.integers(0, 4)) == 0:
            # A chain declared and deleted again, as kube-proxy does with stale chains.
            out += [f":KN-STALE-{table.upper()} - [0:0]", f"-X KN-STALE-{table.upper()}"]
        out.append("COMMIT")
    return "\n".join(out) + "\n"
