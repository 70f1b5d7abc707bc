"""ICMP errors about NATed connections through ``Netfilter``: RELATED or INVALID, and the bytes.

scapy builds the connection's first packet and the ICMP error a peer sends about it; kubenat
rewrites the error; scapy builds, independently, the error the other peer must receive (the
quoted packet as that peer sent it) and every field and checksum is compared. The quoted
transport checksum follows the kernel: updated when the quote holds the header NAT updates it
in (TCP: 20 bytes, UDP: 8), recomputed over the quote for SCTP (12 bytes), else left alone.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kubenat

scapy = pytest.importorskip("scapy.all")
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6TimeExceeded, IPv6, in6_chksum  # noqa: E402
from scapy.layers.sctp import SCTP, SCTPChunkInit, crc32c  # noqa: E402
from scapy.packet import Raw  # noqa: E402

RULES = {
    4: """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.1.5:8080
-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 80 -j DNAT --to-destination 10.244.1.5:8080
-A PREROUTING -d 10.96.0.10/32 -p sctp -m sctp --dport 80 -j DNAT --to-destination 10.244.1.5:8080
-A POSTROUTING -s 10.244.0.0/16 -o eth0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -j ACCEPT
COMMIT
""",
    6: """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d fd00:96::a/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244:1::5]:8080
-A PREROUTING -d fd00:96::a/128 -p udp -m udp --dport 80 -j DNAT --to-destination [fd00:244:1::5]:8080
-A PREROUTING -d fd00:96::a/128 -p sctp -m sctp --dport 80 -j DNAT --to-destination [fd00:244:1::5]:8080
-A POSTROUTING -s fd00:244::/32 -o eth0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m state --state NEW -j ACCEPT
COMMIT
""",
}
ADDR = {
    4: {"vip": "10.96.0.10", "pod": "10.244.1.5", "node": "192.168.0.2", "router": "192.168.0.1"},
    6: {"vip": "fd00:96::a", "pod": "fd00:244:1::5", "node": "fd00::2", "router": "fd00::1"},
}
IFACES = {"eth0": ["192.168.0.2/24", "fd00::2/64"], "cni0": ["10.244.1.1/24", "fd00:244:1::1/64"]}
ROUTES = [("0.0.0.0/0", "eth0"), ("::/0", "eth0")]


def netfilter(family: int) -> kubenat.Netfilter:
    return kubenat.Netfilter(kubenat.Ruleset.parse(RULES[family]), interfaces=IFACES, routes=ROUTES)


def packet(family: int, proto: str, src: str, dst: str, sport: int, dport: int, ttl: int = 64) -> bytes:
    ip = IP(src=src, dst=dst, ttl=ttl) if family == 4 else IPv6(src=src, dst=dst, hlim=ttl)
    l4 = {
        "tcp": TCP(sport=sport, dport=dport, flags="S", seq=1234) / Raw(b"hello, world"),
        "udp": UDP(sport=sport, dport=dport) / Raw(b"hello, world"),
        "sctp": SCTP(sport=sport, dport=dport) / SCTPChunkInit(init_tag=7, n_out_streams=1, n_in_streams=1),
    }[proto]
    return bytes(ip / l4)


def icmp_error(family: int, src: str, dst: str, quote: bytes, ttl: int = 64, exceeded: bool = False) -> bytes:
    if family == 4:
        kind = ICMP(type=11, code=0) if exceeded else ICMP(type=3, code=3)
        return bytes(IP(src=src, dst=dst, ttl=ttl) / kind / Raw(quote))
    kind6 = ICMPv6TimeExceeded(code=0) if exceeded else ICMPv6DestUnreach(code=4)
    return bytes(IPv6(src=src, dst=dst, hlim=ttl) / kind6 / Raw(quote))


def expected_quote(want: bytes, sent: bytes, cut: int, proto: str, family: int) -> bytes:
    """``want`` (the quoted packet as its sender sent it) cut at ``cut``, with the transport
    checksum the kernel leaves: stale from ``sent`` when NAT does not update it."""
    l4 = 20 if family == 4 else 40
    out = bytearray(want[:cut])
    have = cut - l4
    field = {"tcp": (16, 18, 20), "udp": (6, 8, 8), "sctp": (8, 12, 12)}[proto]
    start, end, needed = field
    if have < needed:
        out[l4 + start : min(l4 + end, cut)] = sent[l4 + start : min(l4 + end, cut)]
    elif proto == "sctp" and cut < len(want):
        # The kernel recomputes the CRC over what the quote holds.
        out[l4 + 8 : l4 + 12] = b"\0\0\0\0"
        out[l4 + 8 : l4 + 12] = crc32c(bytes(out[l4:])).to_bytes(4, "big")
    return bytes(out)


def assert_same_fields(got: bytes, want: bytes) -> None:
    """Every field scapy dissects (outer IP, ICMP, quoted IP and transport) is equal."""
    cls = IP if got[0] >> 4 == 4 else IPv6

    def fields(data: bytes) -> list[tuple[str, str, object]]:
        layer = cls(data)
        out = []
        while layer is not None and layer.name != "NoPayload":
            out += [(layer.name, f.name, layer.getfieldval(f.name)) for f in layer.fields_desc]
            layer = layer.payload if layer.payload else None
        return out

    diffs = [(a, b) for a, b in zip(fields(got), fields(want), strict=False) if a != b]
    assert not diffs, diffs
    assert got == want


def assert_checksums_valid(data: bytes) -> None:
    """The outer IPv4 header, ICMP/ICMPv6 and quoted IPv4 header checksums verify (scapy's sums)."""
    if data[0] >> 4 == 4:
        ihl = (data[0] & 15) * 4
        inner = data[ihl + 8 :]
        assert scapy.checksum(data[:ihl]) == 0, "IPv4 header checksum"
        assert scapy.checksum(data[ihl:]) == 0, "ICMP checksum"
        assert scapy.checksum(inner[: (inner[0] & 15) * 4]) == 0, "quoted IPv4 header checksum"
    else:
        assert in6_chksum(58, IPv6(data).payload, data[40:]) == 0, "ICMPv6 checksum"


@given(
    family=st.sampled_from([4, 6]),
    proto=st.sampled_from(["tcp", "udp", "sctp"]),
    client_host=st.integers(3, 250),
    sport=st.integers(1024, 65535),
    cut_extra=st.integers(0, 60),
)
def test_error_from_a_dnat_endpoint_reaches_the_client_as_from_the_service(
    family: int, proto: str, client_host: int, sport: int, cut_extra: int
) -> None:
    a = ADDR[family]
    client = f"192.168.0.{client_host}" if family == 4 else f"fd00::{client_host:x}"
    nf = netfilter(family)
    first = packet(family, proto, client, a["vip"], sport, 80)
    forwarded = nf.process(first, link="ip")
    assert forwarded is not None
    as_seen = packet(family, proto, client, a["pod"], sport, 8080, ttl=63)
    assert forwarded == as_seen
    cut = min(len(as_seen), (20 if family == 4 else 40) + 8 + cut_extra)
    error = icmp_error(family, a["pod"], client, as_seen[:cut])
    (outcome,) = nf.outcomes(kubenat.Packet.from_bytes(error), from_="cni0")
    assert outcome.result.ct_state == "RELATED"
    assert (outcome.result.src, outcome.result.dst) == (a["vip"], client)
    out = nf.process(error, link="ip", from_="cni0")
    assert out is not None
    original = packet(family, proto, client, a["vip"], sport, 80, ttl=63)
    quote = expected_quote(original, as_seen, cut, proto, family)
    want = icmp_error(family, a["vip"], client, quote, ttl=63)
    assert_same_fields(out, want)
    assert_checksums_valid(out)


@given(family=st.sampled_from([4, 6]), sport=st.integers(1024, 65535), proto=st.sampled_from(["tcp", "udp"]))
def test_error_about_a_masqueraded_packet_reaches_the_pod(family: int, sport: int, proto: str) -> None:
    a = ADDR[family]
    remote = "8.8.8.8" if family == 4 else "2001:db8::8"
    client = "10.244.1.7" if family == 4 else "fd00:244:1::7"
    nf = netfilter(family)
    sent = nf.process(packet(family, proto, client, remote, sport, 53), link="ip", from_="cni0")
    assert sent == packet(family, proto, a["node"], remote, sport, 53, ttl=63)
    error = icmp_error(family, a["router"], a["node"], sent, exceeded=True)
    flow = kubenat.Flow.from_packet(kubenat.Packet.from_bytes(error))
    assert flow.quoted == (proto, a["node"], remote, sport, 53)
    (outcome,) = nf.outcomes(kubenat.Packet.from_bytes(error), from_="eth0")
    assert outcome.result.ct_state == "RELATED"
    assert outcome.result.flow.quoted == (proto, client, remote, sport, 53)
    out = nf.process(error, link="ip", from_="eth0")
    inner = packet(family, proto, client, remote, sport, 53, ttl=63)
    want = icmp_error(family, a["router"], client, inner, ttl=63, exceeded=True)
    assert out is not None
    assert_same_fields(out, want)
    assert_checksums_valid(out)


def test_errors_without_a_connection_are_invalid_and_dropped() -> None:
    nf = netfilter(4)
    quote = packet(4, "tcp", "192.168.0.9", "10.244.1.5", 40000, 8080, ttl=63)
    error = icmp_error(4, "10.244.1.5", "192.168.0.9", quote)
    result = nf.evaluate(kubenat.Packet.from_bytes(error), from_="cni0")
    assert (result.ct_state, result.verdict) == ("INVALID", "DROP")
    assert nf.process(error, link="ip", from_="cni0") is None
    assert kubenat.Flow.from_packet(kubenat.Packet.from_bytes(error)).quoted == (
        "tcp",
        "192.168.0.9",
        "10.244.1.5",
        40000,
        8080,
    )
    # Only ICMP errors quote a packet.
    assert kubenat.Flow.from_packet(kubenat.Packet.from_bytes(quote)).quoted is None
