"""kubenat.Packet: constructors, dissection, errors, pickling, and scapy as the byte oracle."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import scapy.all as scapy

import kubenat
from kubenat import Packet, PacketError

IP, IPv6, TCP, UDP, ICMP, Ether = scapy.IP, scapy.IPv6, scapy.TCP, scapy.UDP, scapy.ICMP, scapy.Ether


def test_tcp_constructor_and_repr() -> None:
    p = Packet.tcp(src="10.0.0.1", dst="10.96.0.10", sport=1234, dport=80)
    assert repr(p) == "Packet(tcp 10.0.0.1:1234 -> 10.96.0.10:80 [S])"
    assert (p.family, p.protocol, p.proto, p.sport, p.dport) == (4, 6, "tcp", 1234, 80)
    assert (p.ttl, p.flags, p.tcp_flags) == (64, "S", 0x02)
    assert p.link == "ip"
    assert p.length == len(p) == 40
    assert p.checksums_valid()


def test_family_follows_addresses() -> None:
    p = Packet.udp(src="fd00::1", dst="fd00::2", sport=5353, dport=53, payload=b"q")
    assert p.family == 6
    assert repr(p) == "Packet(udp [fd00::1]:5353 -> [fd00::2]:53)"
    e = Packet.icmp(src="fd00::1", dst="fd00::2", id=7, seq=1)
    assert (e.protocol, e.icmp_type, e.icmp_id, e.icmp_seq) == (58, 128, 7, 1)
    assert Packet.icmp(src="10.0.0.1", dst="10.0.0.2").icmp_type == 8


def test_mixed_families_and_bad_arguments() -> None:
    with pytest.raises(kubenat.InvalidArgument):
        Packet.tcp(src="10.0.0.1", dst="fd00::1", sport=1, dport=2)
    with pytest.raises(kubenat.InvalidArgument):
        Packet.tcp(src="10.0.0.300", dst="10.0.0.1", sport=1, dport=2)
    with pytest.raises(kubenat.InvalidArgument):
        Packet.tcp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, flags="Z")
    with pytest.raises(kubenat.InvalidArgument):
        Packet.from_bytes(b"", link="token-ring")


def test_bytes_round_trip_equality_hash_pickle() -> None:
    p = Packet.sctp(src="10.0.0.1", dst="10.0.0.2", sport=5000, dport=38412, payload=b"\x01\x00\x00\x04")
    q = Packet.from_bytes(bytes(p))
    assert q == p and hash(q) == hash(p)
    assert p.to_bytes() == bytes(p)
    assert Packet.from_bytes(bytearray(bytes(p))) == Packet.from_bytes(memoryview(bytes(p))) == p
    with pytest.raises(TypeError):
        Packet.from_bytes("45000014")  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(p)) == p
    assert p != Packet.from_bytes(bytes(p.with_nat(sport=5001)))
    assert p != object()


@pytest.mark.parametrize(
    ("data", "field", "offset"),
    [
        (b"", "version", 0),
        (b"\x45\x00\x00", "total_length", 2),
        (bytes(IP(dst="10.0.0.1") / TCP())[:30], "total_length", 2),
        (b"\x44" + bytes(IP(dst="10.0.0.1"))[1:], "ihl", 0),
        (b"\x4f" + bytes(IP(dst="10.0.0.1"))[1:], "options", 20),
        (b"\x75" + bytes(IP(dst="10.0.0.1"))[1:], "version", 0),
        (bytes(IP(dst="10.0.0.1", len=19) / TCP()), "total_length", 2),
        (bytes(IPv6(dst="fd00::1") / UDP())[:44], "payload_length", 4),
    ],
)
def test_malformed_bytes_name_field_and_offset(data: bytes, field: str, offset: int) -> None:
    with pytest.raises(PacketError) as info:
        Packet.from_bytes(data, link="ip")
    assert (info.value.field, info.value.offset) == (field, offset)


def test_truncated_transport_offsets_are_absolute() -> None:
    raw = bytes(IP(dst="10.0.0.1") / TCP(dataofs=15))
    with pytest.raises(PacketError) as info:
        Packet.from_bytes(raw)
    assert (info.value.layer, info.value.field, info.value.offset) == ("tcp", "options", 40)
    eth = bytes(Ether(dst="02:00:00:00:00:02") / IP(dst="10.0.0.1", proto=17, len=25) / (b"\x00" * 5))
    with pytest.raises(PacketError) as info:
        Packet.from_bytes(eth, link="ethernet")
    assert (info.value.layer, info.value.offset) == ("udp", 14 + 20 + 4)


def test_scapy_interop_round_trip() -> None:
    s = (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(sport=1, dport=2, flags="SA")
    )
    p = Packet.from_scapy(s)
    assert p.link == "ethernet" and p.src_mac == "02:00:00:00:00:01" and p.flags == "SA"
    assert bytes(p.to_scapy()) == bytes(s)
    assert p.to_ip().link == "ip"
    assert Packet.from_scapy(IP(bytes(p.to_ip()))) == p.to_ip()


def test_nat_and_ttl_helpers_keep_checksums_valid() -> None:
    p = Packet.tcp(src="10.0.0.1", dst="10.96.0.10", sport=1234, dport=80, payload=b"GET /")
    n = p.with_nat(dst="10.244.1.5", dport=8080)
    assert (n.dst, n.dport, n.src, n.sport) == ("10.244.1.5", 8080, "10.0.0.1", 1234)
    assert n.checksums_valid() and n == n.with_checksums()
    d = n.decrement_ttl()
    assert d is not None and d.ttl == 63 and d.checksums_valid()
    assert Packet.tcp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, ttl=0).decrement_ttl() is None


def test_ethernet_framing_and_padding() -> None:
    p = Packet.udp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2)
    e = p.with_ethernet(src="aa:bb:cc:00:00:01", vlan=100)
    assert (e.link, e.src_mac, e.dst_mac, e.vlan) == (
        "ethernet",
        "aa:bb:cc:00:00:01",
        "02:00:00:00:00:02",
        100,
    )
    assert bytes(e.to_scapy()) == bytes(
        Ether(src="aa:bb:cc:00:00:01", dst="02:00:00:00:00:02") / scapy.Dot1Q(vlan=100) / IP(bytes(p))
    )
    padded = bytes(e) + b"\x00" * 18
    q = Packet.from_bytes(padded)
    assert q.link == "ethernet" and q.to_ip() == p and bytes(q) == padded
    with pytest.raises(kubenat.InvalidArgument):
        p.with_ethernet(src="nope")
    with pytest.raises(kubenat.InvalidArgument):
        p.with_ethernet(vlan=4096)


def test_unknown_ethertype_and_short_frames() -> None:
    frame = bytes(Ether(dst="02:00:00:00:00:02", type=0x0806) / (b"\x00" * 28))
    with pytest.raises(PacketError) as info:
        Packet.from_bytes(frame, link="ethernet")
    assert (info.value.layer, info.value.field, info.value.offset) == ("ethernet", "ethertype", 12)
    with pytest.raises(PacketError) as info:
        Packet.from_bytes(b"\x02" * 10, link="ethernet")
    assert (info.value.field, info.value.offset) == ("src", 6)


def test_packet_works_without_scapy() -> None:
    """scapy is an optional extra: kubenat.Packet must not need it until interop is asked for."""
    code = """
import sys
sys.modules["scapy"] = None  # make any import of scapy fail
import kubenat
p = kubenat.Packet.tcp(src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2)
assert kubenat.Packet.from_bytes(bytes(p)) == p
try:
    p.to_scapy()
except ImportError as e:
    assert "kubenat[scapy]" in str(e)
else:
    raise AssertionError("to_scapy worked without scapy")
"""
    python_dir = Path(kubenat.__file__).parent.parent
    env = {"PYTHONPATH": str(python_dir), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
