"""Probe packets for a ruleset: read from a simple text format, or drawn at random so they hit its rules.

Text format, one probe per line (``#`` starts a comment)::

    tcp 10.0.0.5:40000 10.96.0.10:80          # arrives on the node's client interface
    udp [fd00::5]:5353 [fd00::10]:53 out      # sent by the node itself (OUTPUT path)
    icmp 10.0.0.5 10.96.0.10
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kubenat.errors import InvalidArgument
from kubenat.kernel import _wire

PROTOCOLS = ("tcp", "udp", "sctp", "icmp")


@dataclass(frozen=True)
class Probe:
    """A packet to judge; ``path``: it arrives from outside (``"in"``) or the node sends it (``"out"``)."""

    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    path: str = "in"

    def packet(self) -> bytes:
        """The IP packet (a TCP SYN, a UDP datagram, an SCTP INIT or an ICMP echo request)."""
        return _wire.build(self.proto, self.src, self.dst, self.sport, self.dport)

    def __str__(self) -> str:
        def ep(addr: str, port: int) -> str:
            shown = f"[{addr}]" if ":" in addr else addr
            return shown if self.proto == "icmp" else f"{shown}:{port}"

        suffix = " out" if self.path == "out" else ""
        return f"{self.proto} {ep(self.src, self.sport)} {ep(self.dst, self.dport)}{suffix}"


def _endpoint(text: str, where: str) -> tuple[str, int | None]:
    found = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d+))?|([0-9.]+)(?::(\d+))?|([0-9a-fA-F:]+)", text)
    if not found:
        raise InvalidArgument(
            f"{where}: {text!r} is not ADDRESS[:PORT] (IPv6 as [ADDRESS]:PORT)", what="packets"
        )
    addr = found.group(1) or found.group(3) or found.group(5)
    port = found.group(2) or found.group(4)
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise InvalidArgument(f"{where}: {addr!r} is not an IP address", what="packets") from None
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidArgument(f"{where}: port {port} out of range", what="packets")
    return addr, int(port) if port is not None else None


def parse_probes(text: str, source: str = "packets") -> list[Probe]:
    """Read probes in the text format above; errors name the line."""
    probes = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        words = line.split()
        if len(words) not in (3, 4) or words[0].lower() not in PROTOCOLS:
            raise InvalidArgument(
                f"{where}: expected 'PROTO SRC[:PORT] DST[:PORT] [in|out]' with PROTO one of "
                f"{', '.join(PROTOCOLS)}, got {raw.strip()!r}",
                what="packets",
            )
        path = words[3].lower() if len(words) == 4 else "in"
        if path not in ("in", "out"):
            raise InvalidArgument(
                f"{where}: the direction must be 'in' or 'out', not {words[3]!r}", what="packets"
            )
        src, sport = _endpoint(words[1], where)
        dst, dport = _endpoint(words[2], where)
        if ipaddress.ip_address(src).version != ipaddress.ip_address(dst).version:
            raise InvalidArgument(
                f"{where}: source and destination are of different IP families", what="packets"
            )
        proto = words[0].lower()
        probes.append(
            Probe(
                proto,
                src,
                dst,
                sport or 40000 + number % 20000,
                dport or (1 if proto == "icmp" else 80),
                path,
            )
        )
    return probes


_ADDRESS = re.compile(r"(?:-[sd]|--to-destination|--to-source|--to)\s+!?\s*([0-9a-fA-F:.\[\]]+)")
_PORT = re.compile(
    r"--(?:dport|sport|dports|sports|to-ports|destination-port|source-port)\s+!?\s*([0-9:,\-]+)"
)


def _hosts(text: str, family: int) -> list[str]:
    hosts = []
    for word in _ADDRESS.findall(text):
        word = word.strip("[]")
        if family == 4:
            word = word.split(":")[0]
        word = word.split("-")[0]
        try:
            net = ipaddress.ip_network(word, strict=False)
        except ValueError:
            continue
        if net.version != family:
            continue
        hosts.append(str(net.network_address))
        if net.num_addresses > 2:
            hosts.append(str(net.network_address + 1))
            hosts.append(str(net.broadcast_address - 1))
    return sorted(set(hosts))


def _ports(text: str) -> list[int]:
    ports = set()
    for word in _PORT.findall(text):
        for part in re.split(r"[,:\-]", word):
            if part.isdigit() and 0 < int(part) < 65536:
                ports.add(int(part))
                ports.add(min(65535, int(part) + 1))
    return sorted(ports)


def random_probes(
    rules: str, n: int, *, seed: int = 0, family: int = 4, local: Sequence[str] = (), first_port: int = 20000
) -> list[Probe]:
    """``n`` probes likely to hit the rules: addresses and ports the rules mention (and neighbours),
    protocols the rules name; some sent by the node itself (``local`` are its addresses)."""
    rng = random.Random(seed)
    fallback = ["10.0.0.5", "10.96.0.10", "192.168.1.1"] if family == 4 else ["fd00::5", "fd00::10"]
    hosts = _hosts(rules, family) or fallback
    ports = _ports(rules) or [80, 443, 53]
    protos = [p for p in PROTOCOLS if re.search(rf"-p\s+{p}\b", rules)] or ["tcp", "udp"]
    outside = "10.0.0.5" if family == 4 else "fd00::5"
    probes = []
    for i in range(n):
        proto = rng.choice(protos)
        path = "out" if local and rng.random() < 0.2 else "in"
        src = rng.choice([*local]) if path == "out" else rng.choice([*hosts, outside])
        dst = rng.choice(hosts)
        probes.append(Probe(proto, src, dst, first_port + i % (65536 - first_port), rng.choice(ports), path))
    return probes
