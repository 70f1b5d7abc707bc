"""Just enough packet reading and writing for the kernel oracle, in pure Python.

The oracle must not depend on the code it judges, so it builds its probes and reads what the
kernel emitted with this small independent implementation (IPv4/IPv6 with TCP, UDP, SCTP,
ICMP/ICMPv6). Checksums are computed in full, never incrementally.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from kubenat.errors import PacketError

TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
PROTO_NAMES = {TCP: "tcp", UDP: "udp", SCTP: "sctp", ICMP: "icmp", ICMPV6: "icmpv6"}
PROTO_NUMBERS = {name: number for number, name in PROTO_NAMES.items()}
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


def checksum(data: bytes) -> int:
    """The RFC 1071 Internet checksum of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli), the SCTP checksum."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _pseudo_header(version: int, src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if version == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def _l4_with_checksum(version: int, src: bytes, dst: bytes, proto: int, l4: bytearray) -> bytes:
    """Fill in the checksum of the transport segment ``l4`` (its checksum field is zero)."""
    if proto == SCTP:
        struct.pack_into("<I", l4, 8, crc32c(bytes(l4)))
        return bytes(l4)
    offset = {TCP: 16, UDP: 6, ICMP: 2, ICMPV6: 2}.get(proto)
    if offset is None:
        return bytes(l4)
    pseudo = b"" if proto == ICMP else _pseudo_header(version, src, dst, proto, len(l4))
    value = checksum(pseudo + bytes(l4))
    if proto == UDP and value == 0:
        value = 0xFFFF
    struct.pack_into("!H", l4, offset, value)
    return bytes(l4)


def build(
    proto: str | int,
    src: str,
    dst: str,
    sport: int = 0,
    dport: int = 0,
    *,
    flags: str = "S",
    seq: int = 1000,
    icmp_type: int | None = None,
    icmp_code: int = 0,
    ident: int = 0,
    ttl: int = 64,
    payload: bytes = b"",
) -> bytes:
    """Build an IP packet (v4 or v6 by the address family) with a correct checksum everywhere.

    For ICMP echo, ``sport`` is the echo identifier and ``dport`` the sequence number.
    """
    number = PROTO_NUMBERS[proto] if isinstance(proto, str) else proto
    src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if src_ip.version != dst_ip.version:
        raise PacketError(f"source {src} and destination {dst} are of different families", layer="ip")
    version = src_ip.version
    if version == 6 and number == ICMP:
        number = ICMPV6
    s, d = src_ip.packed, dst_ip.packed
    if number == TCP:
        bits = sum(1 << "FSRPAUEC".index(c) for c in flags.upper())
        l4 = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, bits, 64240, 0, 0) + payload)
    elif number == UDP:
        l4 = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
    elif number == SCTP:
        # An INIT chunk, as a connecting client sends it: verification tag 0 in the common header.
        init = struct.pack("!BBHIIHHI", 1, 0, 20, seq or 1, 65535, 10, 10, seq or 1)
        l4 = bytearray(struct.pack("!HHII", sport, dport, 0, 0) + init + payload)
    elif number in (ICMP, ICMPV6):
        kind = icmp_type if icmp_type is not None else (8 if number == ICMP else 128)
        l4 = bytearray(struct.pack("!BBHHH", kind, icmp_code, 0, sport, dport) + payload)
    else:
        l4 = bytearray(payload)
    segment = _l4_with_checksum(version, s, d, number, l4)
    if version == 4:
        fields = (0x45, 0, 20 + len(segment), ident, 0, ttl, number, 0, s, d)
        header = bytearray(struct.pack("!BBHHHBBH4s4s", *fields))
        struct.pack_into("!H", header, 10, checksum(bytes(header)))
        return bytes(header) + segment
    first = (6 << 28) | (ident & 0xFFFFF)
    return struct.pack("!IHBB16s16s", first, len(segment), number, ttl, s, d) + segment


@dataclass(frozen=True)
class Parsed:
    """The fields of an IP packet the oracle compares."""

    version: int
    src: str
    dst: str
    proto: int
    ident: int
    """IPv4 identification, or the IPv6 flow label: the probe's tag."""
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int = 0
    seq: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None
    l4: bytes = b""
    raw: bytes = b""
    inner: Parsed | None = field(default=None, repr=False)
    """For an ICMP error: the packet it quotes (possibly truncated)."""

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    @property
    def is_icmp_error(self) -> bool:
        if self.proto == ICMP:
            return self.icmp_type in (3, 4, 5, 11, 12)
        return self.proto == ICMPV6 and self.icmp_type is not None and self.icmp_type < 128

    @property
    def is_rst(self) -> bool:
        return self.proto == TCP and bool(self.tcp_flags & 0x04)

    def invariant(self) -> tuple[object, ...]:
        """What NAT never changes: the tag, the protocol and the transport fields beyond ports."""
        if self.proto == TCP:
            rest: bytes = self.l4[4:16]
            tail = self.l4[20:]
        elif self.proto == UDP:
            rest, tail = self.l4[4:6], self.l4[8:]
        elif self.proto == SCTP:
            rest, tail = b"", self.l4[12:]
        elif self.proto in (ICMP, ICMPV6):
            # The echo identifier may be rewritten by NAT; type, code, sequence and data may not.
            rest, tail = self.l4[:2] + self.l4[6:8], self.l4[8:]
        else:
            rest, tail = b"", self.l4
        return (self.ident, self.proto, rest, tail)


def parse(data: bytes, *, quoted: bool = False) -> Parsed:
    """Read an IP packet. ``quoted`` allows truncation (the packet inside an ICMP error)."""
    if not data:
        raise PacketError("empty packet", layer="ip", offset=0)
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            raise PacketError("IPv4 header truncated", layer="ipv4", offset=len(data))
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        end = len(data) if quoted else min(total, len(data))
        ident = struct.unpack_from("!H", data, 4)[0]
        proto = data[9]
        src, dst = str(ipaddress.IPv4Address(data[12:16])), str(ipaddress.IPv4Address(data[16:20]))
        l4 = data[ihl:end]
    elif version == 6:
        if len(data) < 40:
            raise PacketError("IPv6 header truncated", layer="ipv6", offset=len(data))
        ident = struct.unpack_from("!I", data, 0)[0] & 0xFFFFF
        proto = data[6]
        src, dst = str(ipaddress.IPv6Address(data[8:24])), str(ipaddress.IPv6Address(data[24:40]))
        l4 = data[40:] if quoted else data[40 : 40 + struct.unpack_from("!H", data, 4)[0]]
    else:
        raise PacketError(f"unknown IP version {version}", layer="ip", field="version", offset=0)
    fields: dict[str, object] = {}
    if proto in (TCP, UDP, SCTP) and len(l4) >= 4:
        fields["sport"], fields["dport"] = struct.unpack_from("!HH", l4, 0)
        if proto == TCP and len(l4) >= 14:
            fields["seq"] = struct.unpack_from("!I", l4, 4)[0]
            fields["tcp_flags"] = l4[13]
    elif proto in (ICMP, ICMPV6) and len(l4) >= 4:
        fields["icmp_type"], fields["icmp_code"] = l4[0], l4[1]
        is_error = l4[0] < 128 if proto == ICMPV6 else l4[0] in (3, 4, 5, 11, 12)
        if is_error and len(l4) > 8:
            try:
                fields["inner"] = parse(l4[8:], quoted=True)
            except PacketError:
                pass
        elif len(l4) >= 8:
            fields["sport"], fields["dport"] = struct.unpack_from("!HH", l4, 4)
    return Parsed(version, src, dst, proto, ident, l4=bytes(l4), raw=bytes(data), **fields)  # type: ignore[arg-type]


def retag(data: bytes, tag: int) -> bytes:
    """Set the probe tag (IPv4 identification / IPv6 flow label), fixing the header checksum."""
    packet = bytearray(data)
    if packet[0] >> 4 == 4:
        struct.pack_into("!H", packet, 4, tag & 0xFFFF)
        struct.pack_into("!H", packet, 10, 0)
        ihl = (packet[0] & 0x0F) * 4
        struct.pack_into("!H", packet, 10, checksum(bytes(packet[:ihl])))
    else:
        first = struct.unpack_from("!I", packet, 0)[0]
        struct.pack_into("!I", packet, 0, (first & 0xFFF00000) | (tag & 0xFFFFF))
    return bytes(packet)


def with_source_port(data: bytes, port: int) -> bytes:
    """The packet with another source port (ICMP echo: identifier), transport checksum redone."""
    packet = parse(data)
    if packet.proto not in (TCP, UDP, SCTP) and not (
        packet.proto in (ICMP, ICMPV6) and packet.sport is not None
    ):
        raise PacketError(f"a {packet.proto_name} packet has no port to vary", layer="ip", field="protocol")
    return with_fields(data, sport=port)


def with_fields(
    data: bytes,
    *,
    src: str | None = None,
    dst: str | None = None,
    sport: int | None = None,
    dport: int | None = None,
) -> bytes:
    """The packet with other addresses / ports (ICMP echo: ``sport`` is the identifier), every
    checksum redone. Fields the packet does not have are left alone."""
    packet = parse(data)
    start = len(data) - len(packet.l4)
    header = bytearray(data[:start])
    version = packet.version
    width, at = (4, 12) if version == 4 else (16, 8)
    if src is not None:
        header[at : at + width] = ipaddress.ip_address(src).packed
    if dst is not None:
        header[at + width : at + 2 * width] = ipaddress.ip_address(dst).packed
    if version == 4:
        ihl = (header[0] & 0x0F) * 4
        struct.pack_into("!H", header, 10, 0)
        struct.pack_into("!H", header, 10, checksum(bytes(header[:ihl])))
    l4 = bytearray(packet.l4)
    if packet.proto in (TCP, UDP, SCTP):
        if sport is not None:
            struct.pack_into("!H", l4, 0, sport)
        if dport is not None:
            struct.pack_into("!H", l4, 2, dport)
    elif packet.proto in (ICMP, ICMPV6) and packet.sport is not None and sport is not None:
        struct.pack_into("!H", l4, 4, sport)
    offset = {TCP: 16, UDP: 6, ICMP: 2, ICMPV6: 2, SCTP: 8}.get(packet.proto)
    if offset is None:
        return bytes(header) + bytes(l4)
    struct.pack_into("!I" if packet.proto == SCTP else "!H", l4, offset, 0)
    s_ip = bytes(header[at : at + width])
    d_ip = bytes(header[at + width : at + 2 * width])
    return bytes(header) + _l4_with_checksum(version, s_ip, d_ip, packet.proto, l4)
