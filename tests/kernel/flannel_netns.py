"""Helpers shared by the flannel kernel tests: checksums, packet sockets, raw sends."""

from __future__ import annotations

import socket
import struct

from kubenat.kernel import _netns

A_NIC, B_NIC = "02:00:00:00:00:01", "02:00:00:00:00:02"
A_VTEP, B_VTEP = "02:aa:00:00:00:01", "02:bb:00:00:00:01"
A_IP, B_IP = "192.168.50.1", "192.168.50.2"
A_POD, B_POD = "10.244.1.5", "10.244.2.5"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def csum(data: bytes) -> int:
    """The internet checksum of ``data``."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_checksum(frame: bytes, ip_at: int = 14) -> int:
    """The correct UDP checksum of an Ethernet/IPv4/UDP frame (0xFFFF for a computed 0)."""
    ihl = (frame[ip_at] & 0x0F) * 4
    udp = bytearray(frame[ip_at + ihl :])
    udp[6:8] = b"\0\0"
    pseudo = frame[ip_at + 12 : ip_at + 20] + struct.pack("!BBH", 0, 17, len(udp))
    c = csum(pseudo + bytes(udp))
    return c or 0xFFFF


def with_udp_checksum(frame: bytes, zero: bool = False) -> bytes:
    f = bytearray(frame)
    f[40:42] = struct.pack("!H", 0 if zero else udp_checksum(frame))
    return bytes(f)


def inner_udp(
    sport: int, dport: int, payload: bytes, tos: int = 0, ttl: int = 64, ident: int = 0x1234
) -> bytes:
    """A UDP packet A_POD → B_POD with valid checksums."""
    udp_len = 8 + len(payload)
    src, dst = socket.inet_aton(A_POD), socket.inet_aton(B_POD)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + udp_len, ident, 0x4000, ttl, 17, 0, src, dst))
    ip[10:12] = struct.pack("!H", csum(bytes(ip)))
    udp = bytearray(struct.pack("!HHHH", sport, dport, udp_len, 0) + payload)
    c = csum(src + dst + struct.pack("!BBH", 0, 17, udp_len) + bytes(udp)) or 0xFFFF
    udp[6:8] = struct.pack("!H", c)
    return bytes(ip) + bytes(udp)


def packet_socket(ns: str, ifname: str) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifname, ETH_P_ALL))
        s.setblocking(False)
        return s

    return _netns.call_in(ns, make)


def send_inner(ns: str, packet: bytes) -> None:
    """Sends an inner IP packet from ``ns`` with a raw socket (the kernel keeps our header)."""

    def send() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            s.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
        finally:
            s.close()

    _netns.call_in(ns, send)
