"""The node's conntrack table, read with ``conntrack -L`` (default text output).

A line looks like
``tcp      6 119 SYN_SENT src=10.0.1.2 dst=10.96.0.10 sport=40000 dport=80 [UNREPLIED]
src=10.244.2.7 dst=10.0.2.1 sport=8080 dport=40000 mark=16384 use=1``: the first
``src/dst/sport/dport`` group is the original direction, the second the reply direction.
(The XML output leaves out ICMP identifiers, so the text form is the one parsed.)
"""

from __future__ import annotations

from dataclasses import dataclass

from kubenat.errors import KernelError


@dataclass(frozen=True, order=True)
class ConntrackTuple:
    """One direction of a connection. For ICMP, ``sport`` is the echo identifier and ``dport`` None."""

    proto: str
    src: str
    dst: str
    sport: int | None
    dport: int | None

    def __str__(self) -> str:
        ports = f" {self.sport}->{self.dport}" if self.dport is not None else f" id={self.sport}"
        return f"{self.proto} {self.src}->{self.dst}{ports}"

    def reversed(self) -> ConntrackTuple:
        """The tuple a packet in the other direction would have (ICMP ids stay in place)."""
        if self.dport is None:
            return ConntrackTuple(self.proto, self.dst, self.src, self.sport, None)
        return ConntrackTuple(self.proto, self.dst, self.src, self.dport, self.sport)


@dataclass(frozen=True)
class ConntrackEntry:
    """A conntrack entry: both tuples, state, mark and status flags."""

    original: ConntrackTuple
    reply: ConntrackTuple
    state: str | None
    mark: int
    flags: frozenset[str]
    line: str

    @property
    def dnat(self) -> bool:
        """The destination was translated (the reply comes from somewhere else)."""
        untranslated = self.original.reversed()
        return (self.reply.src, self.reply.sport) != (untranslated.src, untranslated.sport)

    @property
    def snat(self) -> bool:
        """The source was translated (the reply goes somewhere else)."""
        untranslated = self.original.reversed()
        return (self.reply.dst, self.reply.dport) != (untranslated.dst, untranslated.dport)


def _tuple(proto: str, group: dict[str, str]) -> ConntrackTuple:
    if "sport" in group:
        return ConntrackTuple(proto, group["src"], group["dst"], int(group["sport"]), int(group["dport"]))
    ident = group.get("id")
    return ConntrackTuple(proto, group["src"], group["dst"], int(ident) if ident else None, None)


def parse_line(line: str) -> ConntrackEntry:
    """Read one line of ``conntrack -L`` output."""
    tokens = line.split()
    if len(tokens) < 3:
        raise KernelError(f"unexpected conntrack line: {line!r}")
    if tokens[0] in ("ipv4", "ipv6"):
        tokens = tokens[2:]
    proto = tokens[0]
    groups: list[dict[str, str]] = []
    state = None
    flags: set[str] = set()
    mark = 0
    for token in tokens[3:]:
        if token.startswith("[") and token.endswith("]"):
            flags.add(token[1:-1])
        elif "=" in token:
            key, _, value = token.partition("=")
            if key == "src":
                groups.append({})
            if key == "mark":
                mark = int(value)
            elif groups and key in ("src", "dst", "sport", "dport", "type", "code", "id"):
                groups[-1].setdefault(key, value)
        elif not groups and token.isupper():
            state = token
    if len(groups) < 2:
        raise KernelError(f"conntrack line without both tuples: {line!r}")
    original, reply = _tuple(proto, groups[0]), _tuple(proto, groups[1])
    return ConntrackEntry(original, reply, state, mark, frozenset(flags), line)


def parse(text: str) -> list[ConntrackEntry]:
    """Read ``conntrack -L`` output (the summary line on stderr is not part of it)."""
    lines = text.splitlines()
    return [parse_line(line) for line in lines if line.strip() and not line.startswith("conntrack")]
