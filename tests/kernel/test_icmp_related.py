"""ICMP errors about NATed connections: the kernel against ``Netfilter.process``, byte for byte.

Each case establishes a connection through the testbed's node (DNAT to the sink, MASQUERADE
towards the sink, or none), then one side sends an ICMP error quoting a packet of that
connection as it received it. The node's FORWARD chain accepts only RELATED, NEW and
ESTABLISHED packets (policy DROP), so the error crosses the node only when conntrack relates it
to the connection; a PREROUTING rule would DNAT every ICMP destination-unreachable elsewhere
if the nat table were walked for it. What the kernel emits on the far link is compared, byte
for byte and field by field, with the bytes ``Netfilter.process`` writes for the same packets
on a model of the same node, and the conntrack state kubenat reports must be the one the
FORWARD rules let through (or, for a drop, the one that explains it).

The packets are sent and captured with AF_PACKET sockets on the peers' ends of the veth links
(the testbed's own injector always starts a fresh connection). A drop is observed without
waiting on a clock: a marker packet sent after it on the same path arrives, the error did not.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import kubenat
from kubenat.kernel import Testbed, _netns, build_packet

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6, PACKET_OUTGOING = 0x0003, 0x0800, 0x86DD, 4
WAIT = 20.0
"""Seconds to wait for a packet that must arrive (only a frozen machine takes that long)."""

RULES = {
    4: """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p icmp -m icmp --icmp-type 3 -j DNAT --to-destination 10.253.2.66
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.253.2.2:8080
-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 80 -j DNAT --to-destination 10.253.2.2:8080
-A PREROUTING -d 10.96.0.10/32 -p sctp -m sctp --dport 80 -j DNAT --to-destination 10.253.2.2:8080
-A PREROUTING -d 10.96.0.10/32 -p icmp -j DNAT --to-destination 10.253.2.2
-A OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.253.2.2:8080
-A POSTROUTING -d 10.99.0.0/16 -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT
COMMIT
""",
    6: """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j DNAT --to-destination fd00:253:2::66
-A PREROUTING -d fd00:96::a/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:253:2::2]:8080
-A PREROUTING -d fd00:96::a/128 -p udp -m udp --dport 80 -j DNAT --to-destination [fd00:253:2::2]:8080
-A PREROUTING -d fd00:96::a/128 -p sctp -m sctp --dport 80 -j DNAT --to-destination [fd00:253:2::2]:8080
-A PREROUTING -d fd00:96::a/128 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DNAT --to-destination fd00:253:2::2
-A POSTROUTING -d fd00:99::/32 -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state RELATED -j ACCEPT
-A FORWARD -m state --state NEW,ESTABLISHED -j ACCEPT
COMMIT
""",
}
ADDR = {
    4: {"client": "10.253.1.2", "sink": "10.253.2.2", "node_sink": "10.253.2.1", "vip": "10.96.0.10",
        "other": "10.253.1.3", "remote": "10.99.0.1"},
    6: {"client": "fd00:253:1::2", "sink": "fd00:253:2::2", "node_sink": "fd00:253:2::1", "vip": "fd00:96::a",
        "other": "fd00:253:1::3", "remote": "fd00:99::1"},
}  # fmt: skip
UNREACH = {4: (3, 3), 6: (1, 4)}
TIME_EXCEEDED = {4: (11, 0), 6: (3, 0)}
ROLES = ("client", "sink")


def _mac(bed: Testbed, role: str, iface: str) -> bytes:
    out = bed.run(role, ["ip", "-o", "link", "show", "dev", iface])
    found = re.search(r"link/ether ([0-9a-f:]{17})", out)
    assert found, out
    return bytes.fromhex(found.group(1).replace(":", ""))


class Wire:
    """AF_PACKET sockets on the client's and the sink's end of their links to the node."""

    def __init__(self, bed: Testbed) -> None:
        self.socks: dict[str, socket.socket] = {}
        self.heads: dict[str, bytes] = {}
        for role in ROLES:
            link = bed.link(role)

            def opened(iface: str = link.peer_if) -> socket.socket:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.bind((iface, ETH_P_ALL))
                sock.setblocking(False)
                return sock

            self.socks[role] = _netns.call_in(link.netns, opened)
            self.heads[role] = _mac(bed, "node", link.node_if) + _mac(bed, role, link.peer_if)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()

    def send(self, role: str, ip: bytes) -> None:
        kind = ETH_P_IP if ip[0] >> 4 == 4 else ETH_P_IPV6
        self.socks[role].send(self.heads[role] + struct.pack("!H", kind) + ip)

    def drain(self) -> None:
        for role in ROLES:
            self._read(role)

    def _read(self, role: str) -> list[bytes]:
        seen = []
        while True:
            try:
                frame, addr = self.socks[role].recvfrom(65535)
            except BlockingIOError:
                return seen
            if addr[2] == PACKET_OUTGOING or len(frame) < 14:
                continue
            kind = struct.unpack_from("!H", frame, 12)[0]
            if kind in (ETH_P_IP, ETH_P_IPV6) and _ours(frame[14:]):
                seen.append(frame[14:])

    def wait(self, role: str, until: bytes | None = None) -> list[bytes]:
        """IP packets arriving at ``role``: the first one, or everything up to ``until`` (a marker)."""
        seen: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            seen += self._read(role)
            if (until is None and seen) or (until is not None and any(_same(p, until) for p in seen)):
                return seen
            select.select([self.socks[role]], [], [], 0.05)
        raise AssertionError(f"nothing arrived at the {role} within {WAIT} s: {[p.hex() for p in seen]}")


def _ours(ip: bytes) -> bool:
    """A packet of the kinds the tests send, not the links' own chatter (IGMP, neighbour
    discovery, MLD reports behind a hop-by-hop header)."""
    if ip[0] >> 4 == 4:
        return ip[9] in (1, 6, 17, 132)
    return ip[6] in (6, 17, 132) or (ip[6] == 58 and (ip[40] < 128 or ip[40] in (128, 129)))


def _same(got: bytes, sent: bytes) -> bool:
    """``got`` is ``sent`` after one forwarding hop (TTL / hop limit and IPv4 checksum aside)."""
    if got[0] >> 4 == 4:
        return got[12:20] == sent[12:20] and got[20:] == sent[20:]
    return got[8:] == sent[8:]


@dataclass
class Node:
    """The kernel node and its kubenat model, fed the same packets."""

    bed: Testbed
    wire: Wire
    family: int

    def __post_init__(self) -> None:
        self.bed.load(RULES[self.family], family=self.family, reset=True)
        self.bed.flush_conntrack()
        self.nf = kubenat.Netfilter(
            kubenat.Ruleset.parse(RULES[self.family]),
            local_addresses=self.bed.local_addresses,
            interfaces=self.bed.interfaces,
            routes=self.bed.routes,
            route_localnet=self.bed.route_localnet,
        )
        self.markers = 0

    def send(self, role: str, ip: bytes, state: str) -> bytes | None:
        """Send ``ip`` from ``role`` through the node; the bytes the kernel emitted on the other
        link (None when it dropped them) after checking kubenat's state and bytes against them."""
        iface = self.bed.link(role).node_if
        other = "sink" if role == "client" else "client"
        (outcome,) = self.nf.outcomes(kubenat.Packet.from_bytes(ip), from_=iface)
        assert outcome.result.ct_state == state, outcome.result.trace
        # The FORWARD rules each packet matched, by kubenat and by the kernel's rule counters.
        matched = [s.rule for s in outcome.result.trace if s.hook == "FORWARD" and s.rule and s.matched]
        ours = self.nf.process(ip, link="ip", from_=iface)
        self.wire.drain()
        before = self.forward_counters()
        marker = None
        with _one_cpu():
            # Both packets queue on this CPU's backlog, so the kernel handles them in order.
            self.wire.send(role, ip)
            if ours is None:
                # Prove the drop: a fresh UDP datagram on the same path arrives, the packet did not.
                self.markers += 1
                a = ADDR[self.family]
                src, dst = (a["client"], a["sink"]) if role == "client" else (a["sink"], a["client"])
                marker = build_packet("udp", src, dst, 7000 + self.markers, 9)
                self.wire.send(role, marker)
        if marker is not None:
            seen = self.wire.wait(other, until=marker)
            others = [p for p in seen if not _same(p, marker)]
            assert not others, f"kubenat drops it, the kernel sent {[p.hex() for p in others]}"
            counted = [n - m for n, m in zip(self.forward_counters(), before, strict=True)]
            self.nf.process(marker, link="ip", from_=iface)
            counted[RULE_NEW - 1] -= 1  # the marker is NEW
            assert [i + 1 for i, n in enumerate(counted) if n] == matched, (counted, matched)
            return None
        seen = self.wire.wait(other)
        assert len(seen) == 1, f"the kernel sent {[p.hex() for p in seen]}"
        theirs = seen[0]
        counted = [n - m for n, m in zip(self.forward_counters(), before, strict=True)]
        assert [i + 1 for i, n in enumerate(counted) if n] == matched, (counted, matched)
        assert theirs == ours, "\n".join(field_diffs(theirs, ours))
        return theirs

    def forward_counters(self) -> list[int]:
        """Packet counters of the node's FORWARD rules, in order."""
        tool = "iptables" if self.family == 4 else "ip6tables"
        out = self.bed.run("node", [tool, "-t", "filter", "-L", "FORWARD", "-v", "-x", "-n"])
        return [int(line.split()[0]) for line in out.splitlines()[2:] if line.strip()]


RULE_NEW = 2
"""The FORWARD rule that accepts NEW (and ESTABLISHED) packets; rule 1 accepts RELATED."""


@contextlib.contextmanager
def _one_cpu() -> Iterator[None]:
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def field_diffs(kernel: bytes, ours: bytes) -> list[str]:
    """Every header field (outer and quoted) that differs, as scapy dissects them."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    def fields(data: bytes) -> dict[str, object]:
        pkt = (IP if data[0] >> 4 == 4 else IPv6)(data)
        out: dict[str, object] = {}
        depth = 0
        while pkt is not None and pkt.name != "NoPayload":
            for f in pkt.fields_desc:
                out[f"{depth}:{pkt.name}.{f.name}"] = pkt.getfieldval(f.name)
            pkt = pkt.payload if pkt.payload else None
            depth += 1
        return out

    a, b = fields(kernel), fields(ours)
    diffs = [
        f"{k}: kernel {a.get(k)!r}, kubenat {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    return diffs or [f"kernel {kernel.hex()}", f"kubenat {ours.hex()}"]


@pytest.fixture(scope="module")
def bed() -> Iterator[tuple[Testbed, Wire]]:
    with Testbed() as tb:
        wire = Wire(tb)
        try:
            yield tb, wire
        finally:
            wire.close()


def _error(family: int, kind: tuple[int, int], src: str, dst: str, quote: bytes) -> bytes:
    return build_packet("icmp", src, dst, icmp_type=kind[0], icmp_code=kind[1], payload=quote)


def _ip_len(family: int) -> int:
    return 20 if family == 4 else 40


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("proto", ["tcp", "udp", "sctp", "icmp"])
def test_error_from_a_dnat_endpoint(bed: tuple[Testbed, Wire], family: int, proto: str) -> None:
    a = ADDR[family]
    # (SCTP: a bare INIT; conntrack finds trailing bytes that are no valid chunk INVALID.)
    body = b"" if proto == "sctp" else b"\x01" * 12
    first = build_packet(proto, a["client"], a["vip"], 40000, 80, payload=body)
    cuts = [None, _ip_len(family) + 8, _ip_len(family) + 20]
    for cut in cuts:
        node = Node(*bed, family)
        seen = node.send("client", first, "NEW")
        assert seen is not None
        error = _error(family, UNREACH[family], a["sink"], a["client"], seen[:cut])
        back = node.send("sink", error, "RELATED")
        assert back is not None
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6

        outer = (IP if family == 4 else IPv6)(back)
        assert (outer.src, outer.dst) == (a["vip"], a["client"])
        quoted = bytes(outer.payload)[8:]
        assert quoted[12:20] == first[12:20] if family == 4 else quoted[8:40] == first[8:40]


@pytest.mark.parametrize("family", [4, 6])
def test_error_about_a_masqueraded_datagram(bed: tuple[Testbed, Wire], family: int) -> None:
    a = ADDR[family]
    node = Node(*bed, family)
    seen = node.send(
        "client", build_packet("udp", a["client"], a["remote"], 5000, 53, payload=b"q" * 20), "NEW"
    )
    assert seen is not None
    error = _error(family, TIME_EXCEEDED[family], a["sink"], a["node_sink"], seen)
    back = node.send("sink", error, "RELATED")
    assert back is not None


@pytest.mark.parametrize("family", [4, 6])
def test_error_from_the_client_about_a_reply(bed: tuple[Testbed, Wire], family: int) -> None:
    a = ADDR[family]
    node = Node(*bed, family)
    node.send("client", build_packet("tcp", a["client"], a["vip"], 40001, 80), "NEW")
    reply = node.send(
        "sink", build_packet("tcp", a["sink"], a["client"], 8080, 40001, flags="SA"), "ESTABLISHED"
    )
    assert reply is not None
    back = node.send("client", _error(family, UNREACH[family], a["client"], a["vip"], reply), "RELATED")
    assert back is not None


@pytest.mark.parametrize("family", [4, 6])
def test_errors_conntrack_cannot_relate_are_invalid(bed: tuple[Testbed, Wire], family: int) -> None:
    a = ADDR[family]
    node = Node(*bed, family)
    quote = build_packet("tcp", a["client"], a["sink"], 40002, 8080, ttl=63)
    unreach = UNREACH[family]
    assert node.send("sink", _error(family, unreach, a["sink"], a["client"], quote), "INVALID") is None
    node.send("client", build_packet("tcp", a["client"], a["vip"], 40002, 80), "NEW")
    # To another host than the quoted packet's source.
    assert node.send("sink", _error(family, unreach, a["sink"], a["other"], quote), "INVALID") is None
    # A bad ICMP checksum.
    bad = bytearray(_error(family, unreach, a["sink"], a["client"], quote))
    bad[_ip_len(family) + 2] ^= 0x55
    assert node.send("sink", bytes(bad), "INVALID") is None
    # Quotes conntrack cannot read: ports cut off, a later fragment.
    short = quote[: _ip_len(family) + 2]
    assert node.send("sink", _error(family, unreach, a["sink"], a["client"], short), "INVALID") is None
    if family == 4:
        fragment = bytearray(quote)
        fragment[6:8] = b"\x00\x10"
        struct.pack_into("!H", fragment, 10, 0)
        struct.pack_into("!H", fragment, 10, _checksum(bytes(fragment[:20])))
        assert (
            node.send("sink", _error(family, unreach, a["sink"], a["client"], bytes(fragment)), "INVALID")
            is None
        )
    # Four quoted transport bytes relate it, but NAT needs eight to rewrite the ports: dropped.
    four = quote[: _ip_len(family) + 4]
    assert node.send("sink", _error(family, unreach, a["sink"], a["client"], four), "RELATED") is None
    # The whole quote is still related.
    assert node.send("sink", _error(family, unreach, a["sink"], a["client"], quote), "RELATED") is not None


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_redirect_about_a_translated_connection_is_dropped(bed: tuple[Testbed, Wire]) -> None:
    a = ADDR[4]
    node = Node(*bed, 4)
    seen = node.send("client", build_packet("udp", a["client"], a["vip"], 40003, 80), "NEW")
    assert seen is not None
    assert node.send("sink", _error(4, (5, 1), a["sink"], a["client"], seen), "RELATED") is None


def test_error_about_a_connection_the_node_opened(bed: tuple[Testbed, Wire]) -> None:
    """Delivered to the node itself: NAT rewrites the error in INPUT (the reverse of OUTPUT's DNAT)."""
    tb, wire = bed
    a = ADDR[4]
    node = Node(tb, wire, 4)

    def sockets() -> tuple[socket.socket, socket.socket]:
        sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        listener = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        listener.setblocking(False)
        return sender, listener

    sender, listener = _netns.call_in(tb.node, sockets)
    with sender, listener:
        # (A raw socket fills in an IPv4 identification of 0; give one.)
        syn = build_packet("tcp", a["node_sink"], a["vip"], 40010, 80, ident=77)
        ours = node.nf.process(syn, link="ip", from_="local")
        wire.drain()
        sender.sendto(syn, (a["vip"], 0))
        assert wire.wait("sink") == [ours]
        error = _error(4, UNREACH[4], a["sink"], a["node_sink"], ours)
        (outcome,) = node.nf.outcomes(kubenat.Packet.from_bytes(error), from_="eth1")
        assert (outcome.result.ct_state, outcome.result.local_delivery) == ("RELATED", True)
        ours = node.nf.process(error, link="ip", from_="eth1")
        assert ours is not None
        wire.send("sink", error)
        deadline = time.monotonic() + WAIT
        delivered = None
        while delivered is None and time.monotonic() < deadline:
            select.select([listener], [], [], 0.05)
            with contextlib.suppress(BlockingIOError):
                delivered = listener.recv(65535)
        assert delivered is not None, "the error was not delivered to the node"
        assert delivered == ours, "\n".join(field_diffs(delivered, ours))


def test_error_the_node_sends_about_a_forwarded_connection(bed: tuple[Testbed, Wire]) -> None:
    """Sent by the node: RELATED in OUTPUT, rewritten in POSTROUTING; NAT drops it for a bad checksum."""
    tb, wire = bed
    a = ADDR[4]
    node = Node(tb, wire, 4)
    seen = node.send("client", build_packet("tcp", a["client"], a["vip"], 40020, 80), "NEW")
    assert seen is not None
    sender = _netns.call_in(
        tb.node, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    )
    with sender:
        good = build_packet(
            "icmp", "10.253.1.1", a["client"], 0, 1400, icmp_type=3, icmp_code=4, payload=seen
        )
        good = _with_ident(good, 99)
        bad = bytearray(good)
        bad[23] ^= 1
        for error, state in ((bytes(bad), None), (good, "RELATED")):
            (outcome,) = node.nf.outcomes(kubenat.Packet.from_bytes(error), from_="local")
            assert outcome.result.ct_state == "RELATED"
            ours = node.nf.process(error, link="ip", from_="local")
            wire.drain()
            try:
                sender.sendto(error, (a["client"], 0))
                refused = None
            except PermissionError as exc:
                refused = exc
            if state is None:
                # netfilter dropped it in OUTPUT: the socket gets EPERM, nothing leaves.
                assert ours is None and refused is not None
                continue
            assert refused is None
            got = wire.wait("client")
            assert got == [ours], "\n".join(field_diffs(got[0], ours or b""))


def _with_ident(ip: bytes, ident: int) -> bytes:
    """An IPv4 packet with another identification (a raw socket replaces 0 with its own)."""
    data = bytearray(ip)
    struct.pack_into("!HH", data, 4, ident, 0)
    struct.pack_into("!H", data, 10, 0)
    struct.pack_into("!H", data, 10, _checksum(bytes(data[:20])))
    return bytes(data)
