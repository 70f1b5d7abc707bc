"""kubenat's VXLAN encap/decap against the Linux vxlan driver, set up as flannel sets up flannel.1.

Two throwaway namespaces (``kn-...-a``, ``kn-...-b``) joined by a veth (TX checksum offload off,
so captured checksums are final). Each has ``flannel.1`` (``vxlan id 1 dstport 8472 nolearning
local <node IP> dev <veth>``), its lease address /32, and the neighbour, FDB and route entries
that ``Overlay`` says flannel programs, applied with ``ip``/``bridge``.

* transmit: an inner packet sent in A leaves A's veth exactly as ``Overlay.encap`` builds it,
  except the outer IP ID (taken from the capture) and the UDP source port (checked in range,
  stable per flow);
* receive: frames built by kubenat and injected into B's veth are delivered to a socket in B,
  and each mutated frame is delivered exactly when ``Overlay.decap`` accepts it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from flannel_netns import (
    A_IP,
    A_NIC,
    A_VTEP,
    B_IP,
    B_NIC,
    B_POD,
    B_VTEP,
    PACKET_OUTGOING,
    csum,
    inner_udp,
    packet_socket,
    send_inner,
    udp_checksum,
    with_udp_checksum,
)

import kubenat
from kubenat.flannel import Lease, NetConf, Overlay
from kubenat.kernel import _netns


@dataclass
class Pair:
    a: str
    b: str
    overlay_a: Overlay
    overlay_b: Overlay


def _program(
    ns: str, nic: str, mac: str, ip: str, vtep: str, overlay: Overlay, udpcsum: bool, gbp: bool = False
) -> None:
    run = _netns.run
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", nic, "address", mac])
    run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", nic])
    run(["ip", "-n", ns, "link", "set", nic, "up"])
    run(["ethtool", "-K", nic, "tx", "off"], netns=ns)
    _netns.sysctl(ns, {"net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/default/rp_filter": "0"})
    csum = "udpcsum" if udpcsum else "noudpcsum"
    run(
        [
            *("ip", "-n", ns, "link", "add", "flannel.1", "address", vtep, "type", "vxlan", "id", "1"),
            *("local", ip, "dev", nic, "nolearning", "dstport", "8472", csum),
            *(("gbp",) if gbp else ()),
        ]
    )
    lease = overlay.lease
    assert lease.subnet is not None
    run(["ip", "-n", ns, "addr", "add", f"{lease.subnet.network_address}/32", "dev", "flannel.1"])
    run(["ip", "-n", ns, "link", "set", "flannel.1", "up"])
    pod = f"{lease.subnet.network_address + 5}/32"
    run(["ip", "-n", ns, "addr", "add", pod, "dev", "lo"])
    for n in overlay.neighbours():
        run(["ip", "-n", ns, "neigh", "replace", *str(n).split()])
    for f in overlay.fdb():
        run(["bridge", "fdb", "append", *str(f).split()], netns=ns)
    for r in overlay.routes():
        run(["ip", "-n", ns, "route", "replace", *str(r).split()])


def _leases() -> tuple[Lease, Lease]:
    a = Lease(ipaddress.IPv4Network("10.244.1.0/24"), ipaddress.IPv4Address(A_IP), "vxlan", A_VTEP, 1)
    b = Lease(ipaddress.IPv4Network("10.244.2.0/24"), ipaddress.IPv4Address(B_IP), "vxlan", B_VTEP, 1)
    return a, b


@contextmanager
def _make_pair(udpcsum: bool, gbp: bool = False) -> Iterator[Pair]:
    tag = os.urandom(3).hex()
    a, b = f"kn-fl{tag}-a", f"kn-fl{tag}-b"
    backend = {"Type": "vxlan", "GBP": gbp}
    conf = NetConf.parse(json.dumps({"Network": "10.244.0.0/16", "Backend": backend}))
    la, lb = _leases()
    oa = Overlay(conf, la, [lb], underlay_mac=A_NIC, peer_macs={B_IP: B_NIC}, udp_checksum=udpcsum)
    ob = Overlay(conf, lb, [la], underlay_mac=B_NIC, peer_macs={A_IP: A_NIC}, udp_checksum=udpcsum)
    _netns.add([a, b])
    try:
        _netns.run(
            ["ip", "-n", a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b]
        )
        _program(a, "veth-a", A_NIC, A_IP, A_VTEP, oa, udpcsum, gbp)
        _program(b, "veth-b", B_NIC, B_IP, B_VTEP, ob, udpcsum, gbp)
        yield Pair(a, b, oa, ob)
    finally:
        errors = _netns.delete([a, b])
        assert not errors, errors


@pytest.fixture(scope="module", params=[True, False], ids=["udpcsum", "noudpcsum"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with _make_pair(request.param) as p:
        yield p


@pytest.fixture(scope="module")
def gbp_pair() -> Iterator[Pair]:
    with _make_pair(True, gbp=True) as p:
        yield p


def _vxlan_frames(sock: socket.socket, want: int, timeout: float = 30.0) -> list[bytes]:
    """Incoming Ethernet/IPv4/UDP-8472 frames on a packet socket (returns as soon as ``want``
    arrived; the timeout is only a failsafe, long enough for a loaded machine)."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data, addr = sock.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING or len(data) < 42:
            continue
        if data[12:14] == b"\x08\x00" and data[23] == 17 and data[36:38] == b"\x21\x18":
            out.append(data)
    return out


def _ping_neighbours(p: Pair) -> None:
    """One exchange so that both sides have resolved each other's underlay MAC."""
    sock = packet_socket(p.b, "veth-b")
    try:
        send_inner(p.a, inner_udp(1, 9, b"warm-up"))
        _vxlan_frames(sock, 1)
    finally:
        sock.close()


def _expected(p: Pair, inner: bytes, captured: bytes) -> bytes:
    """kubenat's frame with the kernel's IP ID and source port put in (the randomised fields)."""
    ip_id = struct.unpack("!H", captured[18:20])[0]
    frame = bytearray(p.overlay_a.encap(inner, ip_id=ip_id))
    frame[34:36] = captured[34:36]
    if frame[40:42] != b"\0\0":
        frame[40:42] = struct.pack("!H", udp_checksum(bytes(frame)))
    return bytes(frame)


CASES = [
    ("plain", dict(sport=4000, dport=53, payload=b"hello", tos=0)),
    ("ce-to-ect0", dict(sport=4001, dport=53, payload=b"x" * 40, tos=0x03)),
    ("dscp-dropped-ect0-kept", dict(sport=4002, dport=80, payload=b"", tos=0xA2)),
    ("dscp-only", dict(sport=4003, dport=80, payload=b"yy", tos=0xC0)),
    ("ect1", dict(sport=4004, dport=80, payload=b"z" * 300, tos=0x01)),
    ("ttl-kept", dict(sport=4005, dport=80, payload=b"t", ttl=7)),
]


@pytest.mark.parametrize(("name", "kw"), CASES, ids=[c[0] for c in CASES])
def test_kernel_transmit_equals_kubenat_encap(pair: Pair, name: str, kw: dict[str, object]) -> None:
    _ping_neighbours(pair)
    sock = packet_socket(pair.b, "veth-b")
    try:
        inner = inner_udp(**kw)  # type: ignore[arg-type]
        send_inner(pair.a, inner)
        frames = _vxlan_frames(sock, 1)
    finally:
        sock.close()
    assert frames, f"{name}: the kernel sent no VXLAN frame"
    got = frames[0]
    sport = struct.unpack("!H", got[34:36])[0]
    assert 32768 <= sport < 60999, f"{name}: source port {sport} outside the ephemeral range"
    want = _expected(pair, inner, got)
    assert got.hex() == want.hex(), f"{name}: kernel and kubenat differ"
    # the captured checksum is the real one (offload is off) or zero with noudpcsum
    if pair.overlay_a.udp_checksum:
        assert struct.unpack("!H", got[40:42])[0] == udp_checksum(got)
    else:
        assert got[40:42] == b"\0\0"


def test_kernel_source_port_is_stable_per_flow(pair: Pair) -> None:
    _ping_neighbours(pair)
    sock = packet_socket(pair.b, "veth-b")
    try:
        flows = [inner_udp(5000 + i % 4, 53, bytes([i])) for i in range(12)]
        for f in flows:
            send_inner(pair.a, f)
        frames = _vxlan_frames(sock, len(flows))
    finally:
        sock.close()
    assert len(frames) == len(flows)
    by_flow: dict[int, set[int]] = {}
    for f in frames:
        inner_sport = struct.unpack("!H", f[84:86])[0]
        by_flow.setdefault(inner_sport, set()).add(struct.unpack("!H", f[34:36])[0])
    assert all(len(ports) == 1 for ports in by_flow.values()), by_flow
    # kubenat's own ports are per-flow too (its hash differs from the kernel's random-seeded one)
    ours = {struct.unpack("!H", pair.overlay_a.encap(f)[34:36])[0] for f in flows[:4]}
    again = {struct.unpack("!H", pair.overlay_a.encap(f, ip_id=9)[34:36])[0] for f in flows[:4]}
    assert ours == again


def _delivered(p: Pair, frames: list[bytes], port: int, want: int | None = None) -> list[bytes]:
    """Injects each frame into B's veth from A's side; returns the payloads B's socket got.

    Waits (up to 30 s, a failsafe) until ``want`` payloads (default: one per frame) arrived.
    With ``want=0`` it listens 0.4 s for anything: a late arrival could then only be missed
    (never a false failure)."""
    want = len(frames) if want is None else want

    def bind() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((B_POD, port))
        s.setblocking(False)
        return s

    rx = _netns.call_in(p.b, bind)
    tx = packet_socket(p.a, "veth-a")
    try:
        for f in frames:
            tx.send(f)
        got: list[bytes] = []
        deadline = time.monotonic() + (30.0 if want else 0.4)
        while (not want or len(got) < want) and time.monotonic() < deadline:
            ready, _, _ = select.select([rx], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                got.append(rx.recv(65535))
        return got
    finally:
        tx.close()
        rx.close()


def test_kernel_accepts_kubenat_frames(pair: Pair) -> None:
    payloads = [f"frame-{i}".encode() for i in range(5)]
    frames = [pair.overlay_a.encap(inner_udp(6000 + i, 7001, pl), ip_id=i) for i, pl in enumerate(payloads)]
    for f, pl in zip(frames, payloads, strict=True):
        assert pair.overlay_b.decap(f) == inner_udp(6000 + payloads.index(pl), 7001, pl)
    assert sorted(_delivered(pair, frames, 7001)) == sorted(payloads)


def _mutate(at: int, value: int) -> Callable[[bytes], bytes]:
    def f(frame: bytes) -> bytes:
        b = bytearray(frame)
        b[at] = value
        return with_udp_checksum(bytes(b), zero=frame[40:42] == b"\0\0")

    return f


def _bad_udp_checksum(frame: bytes) -> bytes:
    b = bytearray(with_udp_checksum(frame))
    b[40] ^= 0x40
    return bytes(b)


def _truncate_inner(frame: bytes) -> bytes:
    cut = frame[:-4]
    b = bytearray(cut)
    b[16:18] = struct.pack("!H", len(cut) - 14)
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", csum(bytes(b[14:34])))
    b[38:40] = struct.pack("!H", len(cut) - 34)
    return with_udp_checksum(bytes(b))


MUTATIONS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("unchanged", lambda f: f),
    ("zero-udp-checksum", lambda f: with_udp_checksum(f, zero=True)),
    ("bad-udp-checksum", _bad_udp_checksum),
    ("flags-0x00", _mutate(42, 0x00)),
    ("flags-0x0c-scapy-gpe", _mutate(42, 0x0C)),
    ("gbp-flag", _mutate(42, 0x88)),
    ("reserved-byte1", _mutate(43, 0x01)),
    ("reserved-byte3", _mutate(45, 0x01)),
    ("reserved-byte7", _mutate(49, 0x01)),
    ("vni-2", _mutate(48, 0x02)),
    ("inner-dst-mac-other", _mutate(55, 0x77)),
    ("inner-dst-mac-broadcast", lambda f: with_udp_checksum(f[:50] + b"\xff" * 6 + f[56:])),
    (
        "inner-src-mac-own",
        lambda f: with_udp_checksum(f[:56] + bytes.fromhex(B_VTEP.replace(":", "")) + f[62:]),
    ),
    ("inner-src-mac-multicast", _mutate(56, 0x03)),
    ("inner-ip-bad-checksum", _mutate(74, 0x00)),
    ("inner-ip-truncated", _truncate_inner),
    ("dport-4789", lambda f: with_udp_checksum(f[:36] + b"\x12\xb5" + f[38:])),
    ("outer-ce-inner-not-ect", lambda f: _outer_tos(f, 0x03)),
]


def _outer_tos(frame: bytes, tos: int) -> bytes:
    b = bytearray(frame)
    b[15] = tos
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", csum(bytes(b[14:34])))
    return bytes(b)


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_kubenat_rejects_what_the_kernel_drops(
    pair: Pair, name: str, mutate: Callable[[bytes], bytes]
) -> None:
    port = 7100 + [m[0] for m in MUTATIONS].index(name)
    payload = f"mutation-{name}".encode()
    frame = mutate(pair.overlay_a.encap(inner_udp(6100, port, payload), ip_id=77))
    try:
        pair.overlay_b.decap(frame)
        kubenat_accepts = True
        reason = ""
    except kubenat.DecapError as e:
        kubenat_accepts = False
        reason = f"{e.kind} at {e.offset}"
    delivered = _delivered(pair, [frame], port, want=1 if kubenat_accepts else 0)
    kernel_accepts = payload in delivered
    assert kubenat_accepts == kernel_accepts, (
        f"{name}: kernel {'delivered' if kernel_accepts else 'dropped'} it, "
        f"kubenat {'accepted' if kubenat_accepts else 'rejected'} it {reason}"
    )


@pytest.mark.parametrize("mark", [0, 0x1234, 0x00481234, 0x00400000])
def test_gbp_policy_from_the_mark(gbp_pair: Pair, mark: int) -> None:
    """On a ``gbp`` device the VXLAN header carries the packet mark's group policy (G flag only
    for a non-zero mark); kubenat's ``encap(mark=...)`` builds the same header."""
    _ping_neighbours(gbp_pair)
    inner = inner_udp(4100 + mark % 7, 53, b"gbp")

    def send() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            s.sendto(inner, (B_POD, 0))
        finally:
            s.close()

    sock = packet_socket(gbp_pair.b, "veth-b")
    try:
        _netns.call_in(gbp_pair.a, send)
        frames = _vxlan_frames(sock, 1)
    finally:
        sock.close()
    assert frames
    got = frames[0]
    ip_id = struct.unpack("!H", got[18:20])[0]
    want = bytearray(gbp_pair.overlay_a.encap(inner, ip_id=ip_id, mark=mark))
    want[34:36] = got[34:36]
    want[40:42] = struct.pack("!H", udp_checksum(bytes(want)))
    assert got[42:50].hex() == bytes(want[42:50]).hex()
    assert got.hex() == bytes(want).hex()
    # and the receiving gbp device accepts kubenat's frame
    assert gbp_pair.overlay_b.decap(bytes(want)) == inner
    port = 7300 + mark % 97
    frame = gbp_pair.overlay_a.encap(inner_udp(6200, port, b"gbp-rx"), ip_id=1, mark=mark)
    assert _delivered(gbp_pair, [frame], port) == [b"gbp-rx"]
