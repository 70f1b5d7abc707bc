"""A small pure-Python netfilter evaluator: obviously correct, slow, independent of the Rust core.

It reads canonical ``iptables-save`` text with :mod:`shlex` and evaluates the *first packet of a
connection* (conntrack state NEW, no state kept) through the kernel's hooks, enumerating every
``statistic --mode random`` branch with exact :class:`fractions.Fraction` probabilities. It
serves as the oracle of the differential tests and as the benchmark baseline.

Supported subset: tables raw/mangle/nat/filter; ``-s -d -i -o -p`` (with ``!``); ``-m tcp/udp
--sport/--dport`` (ports and ranges, ``!``); ``-m multiport --dports/--sports/--ports``;
``-m comment``; ``-m mark --mark``; ``-m addrtype --src-type/--dst-type``; ``-m statistic --mode
random --probability``; ``-m conntrack --ctstate`` / ``-m state --state``; targets ACCEPT, DROP,
REJECT, RETURN, jumps, ``-g``, MARK, LOG, DNAT, SNAT, MASQUERADE, REDIRECT. Anything else raises
:class:`NotImplementedError`.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import shlex
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["RefOutcome", "ReferenceNode", "parse_save"]

_TWO31 = 1 << 31
_PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132, "all": 0}
_HOOK_TABLES = {
    "PREROUTING": ["raw", "mangle", "nat"],
    "INPUT": ["mangle", "filter", "nat"],
    "FORWARD": ["mangle", "filter"],
    "OUTPUT": ["raw", "mangle", "nat", "filter"],
    "POSTROUTING": ["mangle", "nat"],
}


@dataclass
class Rule:
    """One ``-A`` line split into words."""

    chain: str
    words: list[str]
    line: int


@dataclass
class Table:
    """One table: chain policies (None for user chains) and rules by chain."""

    name: str
    policies: dict[str, str | None] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)


def parse_save(text: str) -> dict[str, Table]:
    """Reads ``iptables-save`` text: ``*table``, ``:CHAIN POLICY [p:b]``, ``-A``, ``COMMIT``."""
    tables: dict[str, Table] = {}
    current: Table | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = Table(line[1:])
            tables[current.name] = current
        elif line == "COMMIT":
            current = None
        elif line.startswith(":"):
            assert current is not None, f"line {n}: chain outside a table"
            name, policy = line[1:].split()[:2]
            current.policies[name] = None if policy == "-" else policy
            current.rules.setdefault(name, [])
        elif line.startswith("-A "):
            assert current is not None, f"line {n}: rule outside a table"
            words = shlex.split(line)
            current.rules[words[1]].append(Rule(words[1], words[2:], n))
        else:
            raise NotImplementedError(f"line {n}: {line!r}")
    return tables


@dataclass(frozen=True)
class Pkt:
    """The packet as rules see it at one point of its walk."""

    src: str
    dst: str
    proto: int
    sport: int
    dport: int
    mark: int = 0
    in_iface: str | None = None
    out_iface: str | None = None
    dnat_done: bool = False
    snat_done: bool = False
    nat: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefOutcome:
    """One branch: probability and what happened."""

    probability: Fraction
    verdict: str
    src: str
    sport: int
    dst: str
    dport: int
    mark: int
    nat: tuple[str, ...]
    out_interface: str | None
    local_delivery: bool


@functools.lru_cache(maxsize=4096)
def _ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(s)


@functools.lru_cache(maxsize=4096)
def _net(s: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(s, strict=False)


def _ports(spec: str) -> tuple[int, int]:
    lo, _, hi = spec.partition(":")
    return int(lo or 0), int(hi or 65535) if hi or ":" in spec else int(lo)


def _split_mask(spec: str) -> tuple[int, int]:
    value, _, mask = spec.partition("/")
    return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF


class ReferenceNode:
    """A node: rules, local addresses, interfaces (name → ["ip/prefix", ...]) and routes."""

    def __init__(
        self,
        text: str,
        local_addresses: list[str] = (),  # type: ignore[assignment]
        interfaces: dict[str, list[str]] | None = None,
        routes: list[tuple[str, str]] = (),  # type: ignore[assignment]
        route_localnet: bool = False,
    ) -> None:
        self.route_localnet = route_localnet
        self.tables = parse_save(text)
        self.local = {_ip(a) for a in local_addresses}
        ifaces = dict(interfaces or {})
        if all(name == "lo" for name in ifaces):
            ifaces["eth0"] = [f"{a}/{a.max_prefixlen}" for a in self.local if not a.is_loopback]
        if "lo" not in ifaces:
            ifaces = {"lo": ["127.0.0.1/8", "::1/128"], **ifaces}
        self.ifaces = {n: [ipaddress.ip_interface(a) for a in addrs] for n, addrs in ifaces.items()}
        self.routes = [(_net(d), i) for d, i in routes]

    # --- the node ---------------------------------------------------------------------------
    def is_local(self, a: str) -> bool:
        ip = _ip(a)
        return (
            ip.is_loopback or ip in self.local or any(ip == x.ip for xs in self.ifaces.values() for x in xs)
        )

    def addr_type(self, a: str) -> str:
        ip = _ip(a)
        if ip.version == 4 and (int(ip) >> 24 == 0 or int(ip) == 0xFFFFFFFF):
            return "BROADCAST"
        if ip.is_multicast:
            return "MULTICAST"
        if self.is_local(a):
            return "LOCAL"
        for xs in self.ifaces.values():
            for x in xs:
                if ip.version == 4 and x.network.prefixlen < 31 and ip == x.network.broadcast_address:
                    return "BROADCAST"
        return "UNICAST"

    def delivers_locally(self, a: str) -> bool:
        return self.is_local(a) or self.addr_type(a) in ("BROADCAST", "MULTICAST")

    def martian_arriving(self, src: str, dst: str) -> bool:
        """Routing drops packets from outside with one of our own addresses as source, or to a
        loopback destination (IPv4: unless route_localnet)."""
        d, s = _ip(dst), _ip(src)
        if d.is_loopback and (d.version == 6 or not self.route_localnet):
            return True
        if s.is_loopback and (s.version == 6 or not self.route_localnet):
            return True
        return s in self.local or any(s == x.ip for xs in self.ifaces.values() for x in xs)

    def martian_leaving(self, src: str) -> bool:
        """A loopback source never leaves by another interface (IPv4: unless route_localnet)."""
        s = _ip(src)
        return s.is_loopback and (s.version == 6 or not self.route_localnet)

    def route(self, a: str) -> str | None:
        ip = _ip(a)
        best: tuple[int, str] | None = None
        candidates = list(self.routes) + [
            (x.network, n) for n, xs in self.ifaces.items() for x in xs if not x.ip.is_loopback
        ]
        for net, name in candidates:
            if ip.version == net.version and ip in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, name)
        if best:
            return best[1]
        if not self.routes:
            return next((n for n in self.ifaces if n != "lo"), None)
        return None

    def masquerade_source(self, out: str, dst: str) -> str | None:
        ip = _ip(dst)
        ok = [x for x in self.ifaces.get(out, []) if x.version == ip.version and not x.ip.is_loopback]
        for x in ok:
            if ip in x.network:
                return str(x.ip)
        if ok:
            return str(ok[0].ip)
        for xs in self.ifaces.values():
            for x in xs:
                if x.version == ip.version and not x.ip.is_loopback:
                    return str(x.ip)
        return None

    # --- matches ----------------------------------------------------------------------------
    def _rule_branches(self, rule: Rule, p: Pkt) -> list[tuple[Fraction, bool]]:
        """Whether the rule matches; a statistic match splits into two weighted branches."""
        w = rule.words
        header: list[bool] = []
        modules: list[list[tuple[Fraction, bool]]] = []
        i = 0
        neg = False
        module = ""
        while i < len(w):
            word = w[i]
            if word == "!":
                neg = True
                i += 1
                continue
            if word in ("-j", "-g"):
                break
            arg = w[i + 1] if i + 1 < len(w) else ""
            if word == "-m":
                module = arg
            elif word == "-s":
                header.append(neg != (_ip(p.src) in _net(arg)))
            elif word == "-d":
                header.append(neg != (_ip(p.dst) in _net(arg)))
            elif word in ("-i", "-o"):
                name = (p.in_iface if word == "-i" else p.out_iface) or ""
                hit = name.startswith(arg[:-1]) if arg.endswith("+") else name == arg
                header.append(neg != hit)
            elif word == "-p":
                want = _PROTOS[arg] if arg in _PROTOS else int(arg)
                header.append(neg != (want == 0 or want == p.proto))
            elif word in ("--sport", "--dport"):
                lo, hi = _ports(arg)
                port = p.sport if word == "--sport" else p.dport
                ok = p.proto == _PROTOS[module] and (neg != (lo <= port <= hi))
                modules.append([(Fraction(1), ok)])
            elif word in ("--dports", "--sports", "--ports"):
                ranges = [_ports(x) for x in arg.split(",")]

                def inside(port: int, ranges: list[tuple[int, int]] = ranges) -> bool:
                    return any(lo <= port <= hi for lo, hi in ranges)

                hit = {
                    "--dports": inside(p.dport),
                    "--sports": inside(p.sport),
                    "--ports": inside(p.sport) or inside(p.dport),
                }[word]
                modules.append([(Fraction(1), p.proto in (6, 17, 132) and neg != hit)])
            elif word == "--comment":
                pass
            elif word == "--mark":
                value, mask = _split_mask(arg)
                modules.append([(Fraction(1), neg != ((p.mark & mask) == value))])
            elif word in ("--src-type", "--dst-type"):
                addr = p.src if word == "--src-type" else p.dst
                modules.append([(Fraction(1), neg != (self.addr_type(addr) in arg.split(",")))])
            elif word == "--mode":
                if arg != "random":
                    raise NotImplementedError(f"statistic mode {arg}")
            elif word == "--probability":
                q = Fraction(math.floor(float(arg) * _TWO31 + 0.5), _TWO31)  # lround
                hit_p = 1 - q if neg else q
                modules.append([(hit_p, True), (1 - hit_p, False)])
            elif word in ("--ctstate", "--state"):
                states = set(arg.split(","))
                have = {"NEW"}
                if word == "--ctstate":
                    have |= {"DNAT"} if p.dnat_done else set()
                    have |= {"SNAT"} if p.snat_done else set()
                modules.append([(Fraction(1), neg != bool(states & have))])
            else:
                raise NotImplementedError(f"line {rule.line}: {word}")
            neg = False
            i += 2
        if not all(header):
            return [(Fraction(1), False)]
        # Modules in order; the kernel stops at the first that fails (statistic draws only if reached).
        branches: list[tuple[Fraction, bool]] = [(Fraction(1), True)]
        for alts in modules:
            nxt: list[tuple[Fraction, bool]] = []
            for q, alive in branches:
                if not alive:
                    nxt.append((q, False))
                    continue
                for r, ok in alts:
                    if r:
                        nxt.append((q * r, ok))
            branches = nxt
        return branches

    @staticmethod
    def _target(rule: Rule) -> tuple[str, list[str]]:
        w = rule.words
        for i, word in enumerate(w):
            if word in ("-j", "-g"):
                kind = "goto" if word == "-g" else "jump"
                return (w[i + 1] if kind == "jump" else "GOTO:" + w[i + 1]), w[i + 2 :]
        return "", []

    # --- chains -----------------------------------------------------------------------------
    def _run_chain(self, table: Table, chain: str, p: Pkt, hook: str) -> list[tuple[Fraction, Pkt, object]]:
        """All ends of walking ``chain``: (probability, packet, end) with end None (fell off or
        RETURN), "ACCEPT"/"DROP"/"REJECT", or ("NAT", kind, addr, port)."""
        return self._go(table, table.rules.get(chain, []), 0, p, Fraction(1), hook)

    def _go(self, table: Table, rules: list[Rule], i: int, p: Pkt, prob: Fraction, hook: str) -> list:
        out: list = []
        while i < len(rules):
            rule = rules[i]
            branches = self._rule_branches(rule, p)
            if len(branches) == 1 and not branches[0][1]:
                i += 1
                continue
            for q, ok in branches:
                if not ok:
                    out += self._go(table, rules, i + 1, p, prob * q, hook)
                else:
                    out += self._fire(table, rules, i, p, prob * q, hook)
            return out
        return [(prob, p, None)]

    def _fire(self, table: Table, rules: list[Rule], i: int, p: Pkt, prob: Fraction, hook: str) -> list:
        rule = rules[i]
        target, args = self._target(rule)
        opts = dict(zip(args[::2], args[1::2], strict=False))
        if target in ("ACCEPT", "DROP", "REJECT"):
            return [(prob, p, target)]
        if target == "RETURN":
            return [(prob, p, None)]
        if target in ("", "LOG"):
            return self._go(table, rules, i + 1, p, prob, hook)
        if target == "MARK":
            if "--set-xmark" in opts:
                v, m = _split_mask(opts["--set-xmark"])
            elif "--set-mark" in opts:
                v, m = _split_mask(opts["--set-mark"])
            elif "--or-mark" in opts:
                v = m = int(opts["--or-mark"], 0)
            elif "--xor-mark" in opts:
                v, m = int(opts["--xor-mark"], 0), 0
            elif "--and-mark" in opts:
                v, m = 0, ~int(opts["--and-mark"], 0) & 0xFFFFFFFF
            else:
                raise NotImplementedError(f"line {rule.line}: MARK {args}")
            p = dataclasses.replace(p, mark=(p.mark & ~m & 0xFFFFFFFF) ^ v)
            return self._go(table, rules, i + 1, p, prob, hook)
        if target in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
            return [(prob, p, self._nat(target, opts, p, hook))]
        if target.startswith("GOTO:"):
            return self._go(table, table.rules[target[5:]], 0, p, prob, hook)
        if target in table.rules:
            out = []
            for q, p2, end in self._go(table, table.rules[target], 0, p, prob, hook):
                if end is None:
                    out += self._go(table, rules, i + 1, p2, q, hook)
                else:
                    out.append((q, p2, end))
            return out
        raise NotImplementedError(f"line {rule.line}: target {target}")

    def _nat(self, target: str, opts: dict[str, str], p: Pkt, hook: str) -> tuple | str:
        def addr_port(spec: str, addr: str, port: int) -> tuple[str, int]:
            if spec.startswith("["):
                host, _, rest = spec[1:].partition("]")
                return host, int(rest[1:]) if rest.startswith(":") else port
            host, _, prt = spec.partition(":")
            return host or addr, int(prt.split("-")[0]) if prt else port

        has_ports = p.proto in (6, 17, 132)
        if target == "DNAT":
            a, prt = addr_port(opts["--to-destination"], p.dst, p.dport)
            return ("NAT", "DNAT", a, prt if has_ports else p.dport)
        if target == "SNAT":
            a, prt = addr_port(opts["--to-source"], p.src, p.sport)
            return ("NAT", "SNAT", a, prt if has_ports else p.sport)
        if target == "REDIRECT":
            prt = int(opts["--to-ports"].split("-")[0]) if "--to-ports" in opts and has_ports else p.dport
            if hook == "OUTPUT":
                a = "::1" if ":" in p.dst else "127.0.0.1"
            else:
                xs = [x for x in self.ifaces.get(p.in_iface or "", []) if x.version == _ip(p.dst).version]
                if not xs:
                    return "DROP"
                a = str(xs[0].ip)
            return ("NAT", "REDIRECT", a, prt)
        src = self.masquerade_source(p.out_iface or "", p.dst)
        if src is None:
            return "DROP"
        prt = int(opts["--to-ports"].split("-")[0]) if "--to-ports" in opts and has_ports else p.sport
        return ("NAT", "MASQUERADE", src, prt)

    # --- hooks ------------------------------------------------------------------------------
    def _hook(self, hook: str, p: Pkt, with_nat: bool = True) -> list[tuple[Fraction, Pkt, str | None]]:
        """Runs a hook's tables; end is None (continue) or a final verdict."""
        states: list[tuple[Fraction, Pkt, str | None]] = [(Fraction(1), p, None)]
        for tname in _HOOK_TABLES[hook]:
            if tname == "nat" and not with_nat:
                continue
            table = self.tables.get(tname)
            if table is None or hook not in table.rules or table.policies.get(hook) is None:
                continue
            nxt: list[tuple[Fraction, Pkt, str | None]] = []
            for q, pk, end in states:
                if end is not None:
                    nxt.append((q, pk, end))
                    continue
                for r, p2, e in self._run_chain(table, hook, pk, hook):
                    if e is None:
                        e = table.policies[hook]
                    if e == "ACCEPT":
                        nxt.append((q * r, p2, None))
                    elif isinstance(e, tuple):
                        _, kind, a, prt = e
                        # conntrack flags DNAT/SNAT only when the tuple really changes
                        if hook in ("PREROUTING", "OUTPUT"):
                            moved = (a, prt) != (p2.dst, p2.dport)
                            p2 = dataclasses.replace(
                                p2, dst=a, dport=prt, dnat_done=p2.dnat_done or moved, nat=(*p2.nat, kind)
                            )
                        else:
                            moved = (a, prt) != (p2.src, p2.sport)
                            p2 = dataclasses.replace(
                                p2, src=a, sport=prt, snat_done=p2.snat_done or moved, nat=(*p2.nat, kind)
                            )
                        nxt.append((q * r, p2, None))
                    else:
                        nxt.append((q * r, p2, str(e)))
            states = nxt
        return states

    def outcomes(
        self, src: str, dst: str, proto: str = "tcp", sport: int = 40000, dport: int = 80, from_: str = "auto"
    ) -> list[RefOutcome]:
        """Every branch of a connection's first packet."""
        local = from_ == "local" or (from_ == "auto" and self.is_local(src))
        in_iface = (
            None
            if local
            else (from_ if from_ not in ("auto", "local") else next(n for n in self.ifaces if n != "lo"))
        )
        p = Pkt(src, dst, _PROTOS[proto], sport, dport, in_iface=in_iface)
        results: list[RefOutcome] = []

        def done(q: Fraction, pk: Pkt, verdict: str, out: str | None, local_delivery: bool) -> None:
            results.append(
                RefOutcome(
                    q, verdict, pk.src, pk.sport, pk.dst, pk.dport, pk.mark, pk.nat, out, local_delivery
                )
            )

        if local:
            first = "lo" if self.delivers_locally(dst) else self.route(dst)
            if first is None or (first != "lo" and self.martian_leaving(src)):
                done(Fraction(1), p, "DROP", None, False)
                return results
            for q, pk, end in self._hook("OUTPUT", dataclasses.replace(p, out_iface=first)):
                if end:
                    done(q, pk, end, None, False)
                    continue
                to_self = self.delivers_locally(pk.dst)
                out = "lo" if to_self else self.route(pk.dst)
                if out is None or (out != "lo" and self.martian_leaving(pk.src)):
                    done(q, pk, "DROP", None, False)
                    continue
                for r, pk2, end2 in self._hook("POSTROUTING", dataclasses.replace(pk, out_iface=out)):
                    if end2 or not to_self:
                        done(q * r, pk2, end2 or "ACCEPT", out, False)
                        continue
                    back = dataclasses.replace(pk2, in_iface="lo", out_iface=None)
                    for s, pk3, end3 in self._hook("PREROUTING", back, with_nat=False):
                        if end3:
                            done(q * r * s, pk3, end3, out, False)
                            continue
                        for t, pk4, end4 in self._hook("INPUT", pk3, with_nat=False):
                            done(q * r * s * t, pk4, end4 or "ACCEPT", out, end4 is None)
            return results
        for q, pk, end in self._hook("PREROUTING", p):
            if end:
                done(q, pk, end, None, False)
                continue
            if in_iface != "lo" and self.martian_arriving(pk.src, pk.dst):
                done(q, pk, "DROP", None, False)
                continue
            if self.delivers_locally(pk.dst):
                for r, pk2, end2 in self._hook("INPUT", pk):
                    done(q * r, pk2, end2 or "ACCEPT", None, end2 is None)
                continue
            out = self.route(pk.dst)
            if out is None:
                done(q, pk, "DROP", None, False)
                continue
            pk = dataclasses.replace(pk, out_iface=out)
            for r, pk2, end2 in self._hook("FORWARD", pk):
                if end2:
                    done(q * r, pk2, end2, out, False)
                    continue
                for s, pk3, end3 in self._hook("POSTROUTING", pk2):
                    done(q * r * s, pk3, end3 or "ACCEPT", out, False)
        return results
