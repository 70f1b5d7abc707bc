"""Random iptables rulesets the kernel accepts (the generator behind :func:`kubenat.strategies.rulesets`).

Every rule is drawn from the supported matches and targets, placed only where its table and hook
allow it (DNAT in PREROUTING/OUTPUT, SNAT in POSTROUTING/INPUT, REJECT in filter, NOTRACK in raw,
``-i`` only on input hooks, ``-o`` only on output hooks), with user chains jumped to from one
built-in chain each and never in a loop. Each kind of match appears at most once per rule (the
kernel refuses a repeated ``-s/-d/-i/-o``). The addresses, interfaces and ports rules mention
are keyword arguments, so the rules can be aimed at a particular node (e.g. a kernel testbed).

:data:`MATCH_KINDS` and :data:`TARGET_KINDS` name what the generator can produce (the kernel
suite checks that every supported match and target is among them or tested elsewhere).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hypothesis import strategies as st

HOOKS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
_IN_HOOKS = {"PREROUTING", "INPUT", "FORWARD"}
_OUT_HOOKS = {"FORWARD", "OUTPUT", "POSTROUTING"}

MATCH_KINDS = frozenset(
    "Source Destination InInterface OutInterface Protocol Fragment Tcp Udp Sctp Multiport Comment "
    "Mark Connmark AddrType Statistic Conntrack State Icmp Icmp6".split()
)
"""The ``Match`` variants (of kubenat's rule model) these rulesets use."""

TARGET_KINDS = frozenset(
    "None Accept Drop Return Reject Jump Goto Dnat Snat Masquerade Redirect Mark Connmark Log Nflog Notrack "
    "Ct".split()
)
"""The ``Target`` variants these rulesets use."""

V4_NETS = ("10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.96.0.10/32", "10.244.3.0/24", "203.0.113.0/24")
V6_NETS = ("fd00:1::/64", "fd00:1::3/128", "fd00:96::10/128", "fd00:244:3::/64", "2001:db8::/32")


@dataclass(frozen=True)
class _Space:
    family: int
    nets: tuple[str, ...]
    ports: tuple[int, ...]
    endpoints: tuple[str, ...]
    snat_sources: tuple[str, ...]
    in_interfaces: tuple[str, ...]
    out_interfaces: tuple[str, ...]

    @property
    def icmp(self) -> str:
        return "icmp" if self.family == 4 else "ipv6-icmp"


def _kinds(space: _Space, hook: str, proto: str | None) -> list[str]:
    kinds = ["src", "dst", "mark", "comment", "addrtype", "ctstate", "statistic", "state", "connmark"]
    if space.family == 4:
        kinds.append("fragment")
    if proto in ("tcp", "udp", "sctp"):
        kinds += ["dport", "sport", "range", "multiport"]
    if proto == "tcp":
        kinds += ["syn", "flags"]
    if proto == "icmp":
        kinds += ["icmp"]
    if hook in _IN_HOOKS:
        kinds.append("in")
    if hook in _OUT_HOOKS:
        kinds.append("out")
    return kinds


_GROUPS = {"dport": "l4", "sport": "l4", "range": "l4", "syn": "l4", "flags": "l4"}
"""Kinds that share one module instance appear only once together."""

_ICMP_TYPES = {
    4: ["echo-request", "8/0", "echo-reply", "destination-unreachable", "port-unreachable", "3", "any"],
    6: ["echo-request", "128/0", "echo-reply", "destination-unreachable", "port-unreachable", "1"],
}


@st.composite
def _match(draw: st.DrawFn, space: _Space, kind: str, proto: str | None) -> str:
    neg = "! " if draw(st.integers(0, 4)) == 0 else ""
    if kind in ("src", "dst"):
        return f"{neg}-{kind[0]} {draw(st.sampled_from(space.nets))}"
    if kind == "fragment":
        return f"{neg}-f"
    if kind == "mark":
        return f"-m mark {neg}--mark {draw(st.sampled_from(['0x1', '0x4000/0x4000', '0x2/0x3']))}"
    if kind == "comment":
        return f'-m comment --comment "{draw(st.sampled_from(["a", "kube svc", "x-y"]))}"'
    if kind == "addrtype":
        side = draw(st.sampled_from(["--dst-type", "--src-type"]))
        # ip6tables refuses BROADCAST (IPv6 has none).
        names = ["LOCAL", "UNICAST", "MULTICAST"] + (["BROADCAST"] if space.family == 4 else [])
        kind_name = draw(st.sampled_from(names))
        return f"-m addrtype {neg}{side} {kind_name}"
    if kind == "ctstate":
        states = draw(st.sampled_from(["NEW", "ESTABLISHED", "DNAT", "NEW,RELATED", "SNAT", "INVALID"]))
        return f"-m conntrack {neg}--ctstate {states}"
    if kind == "statistic":
        probability = draw(st.sampled_from(["0.5", "0.25", "0.33333333349"]))
        return f"-m statistic --mode random --probability {probability}"
    if kind == "dport":
        return f"-m {proto} {neg}--dport {draw(st.sampled_from(space.ports))}"
    if kind == "sport":
        return f"-m {proto} {neg}--sport {draw(st.sampled_from([1000, 40000, 50000]))}"
    if kind == "range":
        return f"-m {proto} {neg}--dport {draw(st.sampled_from(['1:100', '440:8080', '30000:32767']))}"
    if kind == "multiport":
        return f"-m multiport {neg}--dports {draw(st.sampled_from(['80,443', '53,8080', '1:100,30080']))}"
    if kind == "flags":
        flags = draw(st.sampled_from(["SYN,ACK SYN", "SYN,RST,ACK,FIN SYN", "ALL NONE", "SYN SYN"]))
        return f"-m tcp {neg}--tcp-flags {flags}"
    if kind == "state":
        return f"-m state {neg}--state {draw(st.sampled_from(['NEW', 'ESTABLISHED', 'INVALID']))}"
    if kind == "connmark":
        return f"-m connmark {neg}--mark {draw(st.sampled_from(['0x1', '0x0/0x1', '0x2/0x3']))}"
    if kind == "syn":
        return f"-m tcp {neg}--syn"
    if kind == "icmp":
        module, option = ("icmp", "--icmp-type") if space.family == 4 else ("icmp6", "--icmpv6-type")
        return f"-m {module} {neg}{option} {draw(st.sampled_from(_ICMP_TYPES[space.family]))}"
    if kind == "in":
        return f"{neg}-i {draw(st.sampled_from(space.in_interfaces))}"
    return f"{neg}-o {draw(st.sampled_from(space.out_interfaces))}"


def _endpoint(space: _Space, addr: str, port: str) -> str:
    if not port:
        return addr
    return f"[{addr}]{port}" if space.family == 6 else f"{addr}{port}"


def _maybe_range(draw: st.DrawFn, addr: str) -> str:
    """Sometimes an address range (the kernel then picks an address by a hash of the tuple)."""
    if draw(st.integers(0, 3)):
        return addr
    return f"{addr}-{ipaddress.ip_address(addr) + draw(st.sampled_from([1, 2]))}"


@st.composite
def _target(
    draw: st.DrawFn, space: _Space, table: str, hook: str, proto: str | None, chains: list[str], user: bool
) -> str:
    ported = proto in ("tcp", "udp", "sctp")
    options = ["MARK", "CONNMARK", "LOG", "NFLOG", "NONE"]
    if table == "raw":
        options.append("NOTRACK")
    if user:
        options.append("RETURN")
    if chains:
        options += ["jump", "goto"]
    if table == "filter":
        options += ["ACCEPT", "DROP", "REJECT", "REJECT"]
    elif table == "nat":
        options += ["ACCEPT"]
        # NAT targets weighted up: they are what kubenat is most about.
        if hook in ("PREROUTING", "OUTPUT"):
            options += ["DNAT", "DNAT", "DNAT", "REDIRECT"]
        else:
            options += ["SNAT", "MASQUERADE", "MASQUERADE"] if hook == "POSTROUTING" else ["SNAT"]
    else:
        options += ["ACCEPT", "DROP"]
    kind = draw(st.sampled_from(options))
    if kind == "MARK":
        how = draw(
            st.sampled_from(
                [
                    "--set-xmark 0x4000/0x4000",
                    "--set-mark 0x1",
                    "--or-mark 0x2",
                    "--xor-mark 0x1",
                    "--and-mark 0x2",
                ]
            )
        )
        return f"-j MARK {how}"
    if kind in ("jump", "goto"):
        return f"{'-j' if kind == 'jump' else '-g'} {draw(st.sampled_from(chains))}"
    if kind == "REJECT":
        if space.family == 4:
            choices = ["icmp-port-unreachable", "icmp-host-prohibited", "icmp-net-unreachable"]
            choices += ["icmp-host-unreachable", "icmp-proto-unreachable", "icmp-net-prohibited"]
            choices += ["icmp-admin-prohibited"]
        else:
            choices = ["icmp6-port-unreachable", "icmp6-adm-prohibited", "icmp6-no-route"]
            choices += ["icmp6-addr-unreachable"]
        if proto == "tcp":
            choices.append("tcp-reset")
        return f"-j REJECT --reject-with {draw(st.sampled_from(choices))}"
    if kind == "DNAT":
        addr = _maybe_range(draw, draw(st.sampled_from(space.endpoints)))
        port = f":{draw(st.sampled_from([80, 8080, '8000-8002']))}" if ported and draw(st.booleans()) else ""
        flags = draw(st.sampled_from(["", "", "", " --persistent", " --random"]))
        return f"-j DNAT --to-destination {_endpoint(space, addr, port)}{flags}"
    if kind == "REDIRECT":
        flag = draw(st.sampled_from(["", "", " --random"]))
        if not ported:
            return f"-j REDIRECT{flag}"  # no --to-ports without a port protocol
        return f"-j REDIRECT --to-ports {draw(st.sampled_from(['8080', '15001', '8000-8002']))}{flag}"
    if kind == "SNAT":
        addr = _maybe_range(draw, draw(st.sampled_from(space.snat_sources)))
        port = (
            f":{draw(st.sampled_from(['2000-2010', '40000-40100']))}"
            if ported and draw(st.booleans())
            else ""
        )
        flags = draw(st.sampled_from(["", "", "", " --persistent", " --random", " --random-fully"]))
        return f"-j SNAT --to-source {_endpoint(space, addr, port)}{flags}"
    if kind == "MASQUERADE":
        ports = (
            f" --to-ports {draw(st.sampled_from(['2000-2010', '40000']))}"
            if ported and draw(st.booleans())
            else ""
        )
        return "-j MASQUERADE" + ports + draw(st.sampled_from(["", "", " --random", " --random-fully"]))
    if kind == "CONNMARK":
        how = draw(
            st.sampled_from(["--set-xmark 0x1/0x1", "--save-mark", "--restore-mark", "--set-mark 0x2"])
        )
        return f"-j CONNMARK {how}"
    if kind == "LOG":
        return '-j LOG --log-prefix "kn "'
    if kind == "NFLOG":
        return "-j NFLOG --nflog-group 5"
    if kind == "NONE":
        return ""  # a rule without a target: it only counts
    if kind == "NOTRACK":
        return draw(st.sampled_from(["-j CT --notrack", "-j NOTRACK"]))
    return f"-j {kind}"


_PROTOCOLS = {
    # (how the rule says it, which l4 matches may follow)
    4: [
        (None, None),
        ("tcp", "tcp"),
        ("udp", "udp"),
        ("icmp", "icmp"),
        ("sctp", "sctp"),
        ("6", "tcp"),
        ("17", "udp"),
        ("1", "icmp"),
        ("! tcp", None),
        ("! udp", None),
    ],
    6: [
        (None, None),
        ("tcp", "tcp"),
        ("udp", "udp"),
        ("ipv6-icmp", "icmp"),
        ("sctp", "sctp"),
        ("6", "tcp"),
        ("! tcp", None),
    ],
}


@st.composite
def _rule(draw: st.DrawFn, space: _Space, table: str, hook: str, chains: list[str], user: bool) -> str:
    spelled, proto = draw(st.sampled_from(_PROTOCOLS[space.family]))
    parts = []
    if spelled is not None:
        parts.append(f"! -p {spelled[2:]}" if spelled.startswith("! ") else f"-p {spelled}")
    kinds = draw(
        st.lists(
            st.sampled_from(_kinds(space, hook, proto)), max_size=3, unique_by=lambda k: _GROUPS.get(k, k)
        )
    )
    parts += [draw(_match(space, kind, proto)) for kind in kinds]
    parts.append(draw(_target(space, table, hook, proto, chains, user)))
    return " ".join(part for part in parts if part)


@st.composite
def rulesets(
    draw: st.DrawFn,
    *,
    tables: tuple[str, ...] = tuple(HOOKS),
    family: int = 4,
    nets: tuple[str, ...] | None = None,
    ports: tuple[int, ...] = (53, 80, 443, 8080, 30080),
    endpoints: tuple[str, ...] | None = None,
    snat_sources: tuple[str, ...] | None = None,
    in_interfaces: tuple[str, ...] = ("eth0", "eth1", "eth+", "lo"),
    out_interfaces: tuple[str, ...] = ("eth1", "eth2", "eth+", "lo"),
) -> str:
    """iptables-save text (ip6tables-save with ``family=6``) of a random ruleset the kernel accepts.

    ``nets``: CIDRs for ``-s``/``-d``; ``endpoints``: DNAT destinations; ``snat_sources``: SNAT
    source addresses; ``in_interfaces``/``out_interfaces``: names for ``-i``/``-o`` (``+``
    wildcards allowed); ``ports``: destination ports matched.
    """
    v4 = family == 4
    space = _Space(
        family,
        nets or (V4_NETS if v4 else V6_NETS),
        ports,
        endpoints or (("10.244.3.7", "10.244.3.8", "10.1.9.9") if v4 else ("fd00:244:3::7", "fd00:1::9")),
        snat_sources or (("10.253.2.1", "10.9.9.9") if v4 else ("fd00:253:2::1", "fd00:9::9")),
        in_interfaces,
        out_interfaces,
    )
    sections = []
    chosen = draw(st.lists(st.sampled_from(sorted(tables)), min_size=1, max_size=len(tables), unique=True))
    if "nat" in tables and "nat" not in chosen and draw(st.integers(0, 2)):
        chosen.append("nat")
    for table in sorted(chosen, key=list(HOOKS).index):
        lines = [f"*{table}"]
        policies = {hook: "ACCEPT" for hook in HOOKS[table]}
        if table == "filter":
            policies.update(
                {hook: draw(st.sampled_from(["ACCEPT", "ACCEPT", "DROP"])) for hook in HOOKS[table]}
            )
        lines += [f":{hook} {policy} [0:0]" for hook, policy in policies.items()]
        rules: list[str] = []
        for hook in HOOKS[table]:
            # Each user chain serves one hook (so its targets suit it), and may only jump to
            # chains declared after it (no loops).
            names = [f"{hook[:3]}{i}" for i in range(draw(st.integers(0, 2)))]
            lines += [f":{name} - [0:0]" for name in names]
            for i, name in enumerate(names):
                rules += [
                    f"-A {name} {draw(_rule(space, table, hook, names[i + 1 :], True))}"
                    for _ in range(draw(st.integers(0, 3)))
                ]
            rules += [
                f"-A {hook} {draw(_rule(space, table, hook, names, False))}"
                for _ in range(draw(st.integers(0, 4)))
            ]
        sections.append("\n".join([*lines, *rules, "COMMIT"]))
    return "\n".join(sections) + "\n"
