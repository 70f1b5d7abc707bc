"""More of flannel against the kernel, in throwaway ``kn-`` namespaces.

* FLANNEL-POSTRTG / FLANNEL-FWD load with iptables-restore and save back unchanged;
* UDP backend: the datagram a kernel UDP socket bound to ``<public IP>:8285`` sends for the
  proxy's payload equals ``Overlay.encap`` byte for byte (DF set; the IP ID is the kernel's
  choice and taken from the capture), and kubenat's frames
  are received by such a socket;
* IPv6 overlay: ``flannel-v6.1`` over an IPv6 underlay emits what kubenat builds (except the
  source port) and accepts what kubenat builds.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from flannel_netns import A_IP, A_NIC, A_VTEP, B_IP, B_NIC, B_VTEP, PACKET_OUTGOING, inner_udp, packet_socket
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from kubenat import _core
from kubenat.flannel import Lease, NetConf, Overlay
from kubenat.kernel import _netns

run = _netns.run


@pytest.fixture
def two() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by veth-a / veth-b (IPv4 and IPv6 underlay, offload off)."""
    tag = os.urandom(3).hex()
    a, b = f"kn-fk{tag}-a", f"kn-fk{tag}-b"
    _netns.add([a, b])
    try:
        run(["ip", "-n", a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b])
        for ns, nic, mac, ip4, ip6 in (
            (a, "veth-a", A_NIC, A_IP, "fd99::1"),
            (b, "veth-b", B_NIC, B_IP, "fd99::2"),
        ):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", nic, "address", mac])
            run(["ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", nic])
            run(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", nic, "nodad"])
            run(["ip", "-n", ns, "link", "set", nic, "up"])
            run(["ethtool", "-K", nic, "tx", "off"], netns=ns)
        yield a, b
    finally:
        errors = _netns.delete([a, b])
        assert not errors, errors


def _frames(sock: socket.socket, want: int, match: bytes, at: int, timeout: float = 30.0) -> list[bytes]:
    """The first ``want`` matching incoming frames (the timeout is only a failsafe)."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data, addr = sock.recvfrom(65535)
        if addr[2] != PACKET_OUTGOING and data[at : at + len(match)] == match:
            out.append(data)
    return out


def test_flannel_rules_load_and_save_back(two: tuple[str, str]) -> None:
    a, _ = two
    conf = NetConf.parse('{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}')
    lease = Lease(ipaddress.IPv4Network("10.244.1.0/24"), ipaddress.IPv4Address(A_IP), "vxlan", A_VTEP, 1)
    text = Overlay(conf, lease).iptables_save()
    run(["iptables-restore"], netns=a, input=text.encode())
    saved = run(["iptables-save"], netns=a).stdout.decode()
    ours = [line for line in text.splitlines() if line.startswith("-A")]
    theirs = [line for line in saved.splitlines() if line.startswith("-A") and "flanneld" in line]
    assert theirs == ours


def _udp_overlays() -> tuple[Overlay, Overlay]:
    conf = NetConf.parse('{"Network": "10.244.0.0/16"}')
    la = Lease(ipaddress.IPv4Network("10.244.1.0/24"), ipaddress.IPv4Address(A_IP), "udp")
    lb = Lease(ipaddress.IPv4Network("10.244.2.0/24"), ipaddress.IPv4Address(B_IP), "udp")
    oa = Overlay(conf, la, [lb], underlay_mac=A_NIC, peer_macs={B_IP: B_NIC})
    ob = Overlay(conf, lb, [la], underlay_mac=B_NIC, peer_macs={A_IP: A_NIC})
    return oa, ob


def _udp_socket(ns: str, ip: str, port: int) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, port))
        s.setblocking(False)
        return s

    return _netns.call_in(ns, make)


def test_udp_backend_datagrams_match_a_kernel_socket(two: tuple[str, str]) -> None:
    a, b = two
    oa, ob = _udp_overlays()
    inners = [inner_udp(3000 + i, 53, bytes([i]) * (i * 50), tos=i, ttl=64 - i) for i in range(4)]
    tx = _udp_socket(a, A_IP, 8285)
    rx = _udp_socket(b, B_IP, 8285)
    cap = packet_socket(b, "veth-b")
    try:
        tx.sendto(b"\x45" + b"\0" * 19, (B_IP, 8285))  # resolves the neighbour first
        _frames(cap, 1, b"\x20\x5d", 36)
        for inner in inners:
            aged = _core.flannel_decrement_ttl(inner)
            assert aged is not None
            tx.sendto(aged, (B_IP, 8285))
        got = _frames(cap, len(inners), b"\x20\x5d", 36)
        # the receive side: kubenat's frames reach the socket, and decap gives what the proxy writes
        for inner in inners:
            frame = oa.encap(inner)
            cap_tx = packet_socket(a, "veth-a")
            cap_tx.send(frame)
            cap_tx.close()
        # Wait for all of them (one warm-up datagram, four from the kernel socket, four of
        # kubenat's); the deadline is only a failsafe.
        received = []
        deadline = time.monotonic() + 30.0
        while sum(len(p) > 20 for p in received) < 8 and time.monotonic() < deadline:
            ready, _, _ = select.select([rx], [], [], 0.5)
            if ready:
                received.append(rx.recv(65535))
    finally:
        tx.close()
        rx.close()
        cap.close()
    # the IP ID is the kernel's choice (not 0 on current kernels, even with DF): taken from the capture
    ids = [struct.unpack("!H", g[18:20])[0] for g in got]
    assert [g.hex() for g in got] == [oa.encap(i, ip_id=n).hex() for i, n in zip(inners, ids, strict=True)]
    # one warm-up datagram and the four from the kernel socket, then kubenat's four
    payloads = [p for p in received if len(p) > 20]
    assert len(payloads) == 8
    for inner, payload in zip(inners, payloads[4:], strict=True):
        assert payload == _core.flannel_decrement_ttl(inner)
        assert ob.decap(oa.encap(inner)) == _core.flannel_decrement_ttl(payload)


def _v6_overlays() -> tuple[Overlay, Overlay]:
    conf = NetConf.parse(
        '{"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56",'
        ' "Backend": {"Type": "vxlan"}}'
    )

    def lease(n: int, ip: str, vtep: str, vtep6: str, ip6: str) -> Lease:
        return Lease(
            ipaddress.IPv4Network(f"10.244.{n}.0/24"),
            ipaddress.IPv4Address(ip),
            "vxlan",
            vtep,
            1,
            ipaddress.IPv6Network(f"fd00:10:244:{n}::/64"),
            ipaddress.IPv6Address(ip6),
            vtep6,
        )

    la = lease(1, A_IP, A_VTEP, "02:a6:00:00:00:01", "fd99::1")
    lb = lease(2, B_IP, B_VTEP, "02:b6:00:00:00:01", "fd99::2")
    macs = {"fd99::2": B_NIC, "fd99::1": A_NIC, A_IP: A_NIC, B_IP: B_NIC}
    return (
        Overlay(conf, la, [lb], underlay_mac=A_NIC, peer_macs=macs),
        Overlay(conf, lb, [la], underlay_mac=B_NIC, peer_macs=macs),
    )


def _program_v6(ns: str, nic: str, overlay: Overlay) -> None:
    lease = overlay.lease
    assert lease.ipv6_subnet is not None and lease.public_ipv6 is not None and lease.vtep_mac_v6 is not None
    dev = overlay.device_v6
    assert dev == "flannel-v6.1"
    run(
        [
            *("ip", "-n", ns, "link", "add", dev, "address", lease.vtep_mac_v6, "type", "vxlan", "id", "1"),
            *("local", str(lease.public_ipv6), "dev", nic, "nolearning", "dstport", "8472"),
        ]
    )
    run(["ip", "-n", ns, "addr", "add", f"{lease.ipv6_subnet.network_address}/128", "dev", dev, "nodad"])
    run(["ip", "-n", ns, "addr", "add", f"{lease.ipv6_subnet.network_address + 5}/128", "dev", "lo", "nodad"])
    run(["ip", "-n", ns, "link", "set", dev, "up"])
    for n in overlay.neighbours():
        if n.dev == dev:
            run(["ip", "-n", ns, "neigh", "replace", *str(n).split()])
    for f in overlay.fdb():
        if f.dev == dev:
            run(["bridge", "fdb", "append", *str(f).split()], netns=ns)
    for r in overlay.routes():
        if r.dev == dev:
            run(["ip", "-n", ns, "route", "replace", *str(r).split()])


def test_ipv6_overlay_against_flannel_v6(two: tuple[str, str]) -> None:
    a, b = two
    oa, ob = _v6_overlays()
    _program_v6(a, "veth-a", oa)
    _program_v6(b, "veth-b", ob)
    mtu = run(["cat", "/sys/class/net/flannel-v6.1/mtu"], netns=a).stdout.decode().strip()
    assert int(mtu) == oa.mtu_v6
    src, dst = "fd00:10:244:1::5", "fd00:10:244:2::5"
    inners = [
        bytes(IPv6(src=src, dst=dst, hlim=64, tc=tc) / UDP(sport=4000 + tc, dport=9) / b"v6")
        for tc in (0, 3, 0xA1)
    ]

    def raw_send() -> None:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            for p in [inners[0], *inners]:
                s.sendto(p, (dst, 0))
                time.sleep(0.05)
        finally:
            s.close()

    cap = packet_socket(b, "veth-b")
    try:
        _netns.call_in(a, raw_send)
        got = _frames(cap, 4, b"\x21\x18", 56)
    finally:
        cap.close()
    got = [g for g in got if g[12:14] == b"\x86\xdd" and g[20] == 17]
    assert len(got) == 4, f"captured {len(got)} VXLAN-over-IPv6 frames"
    for inner, frame in zip(inners, got[1:], strict=True):
        want = bytearray(oa.encap(inner))
        sport = struct.unpack("!H", frame[54:56])[0]
        assert 32768 <= sport < 60999
        want[54:56] = frame[54:56]
        # fix kubenat's UDP checksum for the kernel's source port (the one field that differs)
        want[60:62] = b"\0\0"
        pseudo = bytes(want[22:54]) + struct.pack("!IxxxB", len(want) - 54, 17)
        data = pseudo + bytes(want[54:])
        total = sum(struct.unpack(f"!{len(data) // 2}H", data + b"\0" * (len(data) % 2)))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        want[60:62] = struct.pack("!H", (~total & 0xFFFF) or 0xFFFF)
        assert frame.hex() == bytes(want).hex()

    # receive: kubenat's frames are delivered to a socket on the remote pod address
    def bind() -> socket.socket:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((dst, 9))
        s.setblocking(False)
        return s

    rx = _netns.call_in(b, bind)
    tx = packet_socket(a, "veth-a")
    try:
        for inner in inners:
            frame = oa.encap(inner)
            assert ob.decap(frame) == inner
            tx.send(frame)
        received = []
        deadline = time.monotonic() + 30.0  # a failsafe: the loop ends when all arrived
        while len(received) < len(inners) and time.monotonic() < deadline:
            ready, _, _ = select.select([rx], [], [], 0.2)
            if ready:
                received.append(rx.recv(65535))
    finally:
        tx.close()
        rx.close()
    assert received == [b"v6"] * len(inners)


def test_host_gw_frames_are_the_routed_packet(two: tuple[str, str]) -> None:
    """host-gw: the routes Overlay lists, installed in A, put exactly ``Overlay.encap``'s frame on
    the wire (a new Ethernet header, the packet itself unchanged for a locally sent packet)."""
    a, b = two
    conf = NetConf.parse('{"Network": "10.244.0.0/16", "Backend": {"Type": "host-gw"}}')
    la = Lease(ipaddress.IPv4Network("10.244.1.0/24"), ipaddress.IPv4Address(A_IP), "host-gw")
    lb = Lease(ipaddress.IPv4Network("10.244.2.0/24"), ipaddress.IPv4Address(B_IP), "host-gw")
    oa = Overlay(conf, la, [lb], underlay_mac=A_NIC, peer_macs={B_IP: B_NIC})
    ob = Overlay(conf, lb, [la], underlay_mac=B_NIC, peer_macs={A_IP: A_NIC})
    for r in oa.routes():
        run(["ip", "-n", a, "route", "replace", *str(r).split()])
    assert [str(r) for r in oa.routes()] == ["10.244.2.0/24 via 192.168.50.2"]
    inners = [inner_udp(5000 + i, 53, bytes([i]) * i, tos=i) for i in range(3)]

    def send() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            for p in [inners[0], *inners]:
                s.sendto(p, ("10.244.2.5", 0))
                time.sleep(0.05)
        finally:
            s.close()

    cap = packet_socket(b, "veth-b")
    try:
        _netns.call_in(a, send)
        got = _frames(cap, 4, bytes([10, 244, 2, 5]), 30)
    finally:
        cap.close()
    assert [g.hex() for g in got[1:]] == [oa.encap(p).hex() for p in inners]
    assert [ob.decap(g) for g in got[1:]] == inners
