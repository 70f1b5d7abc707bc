"""Classic libpcap files: read (both byte orders, micro- and nanosecond timestamps) and write.

>>> from kubenat import pcap
>>> for ts, frame in pcap.read("capture.pcap"): ...           # doctest: +SKIP
>>> pcap.write("out.pcap", frames, linktype=pcap.LINKTYPE_ETHERNET)  # doctest: +SKIP

Only the classic format (not pcapng). Record lengths are checked against the snap length and
a hard cap before anything is allocated; a file cut short is an error naming the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kubenat.errors import LimitError, PacketError

#: Ethernet frames.
LINKTYPE_ETHERNET = 1
#: Raw IP packets (IPv4 or IPv6, from the version nibble).
LINKTYPE_RAW = 101
#: Raw IPv4 / raw IPv6 (some tools write these instead of 101).
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
#: DLT_RAW as some platforms number it in files.
_RAW_ALIASES = (12, 14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6)

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
_PCAPNG = 0x0A0D0D0A
#: No record is larger than this, whatever the header's snap length says (256 KiB; tcpdump's
#: default snap length is 262144).
MAX_RECORD = 1 << 18
_GLOBAL = 24
_RECORD = 16


def is_raw_ip(linktype: int) -> bool:
    """Whether records of this link type start with the IP header."""
    return linktype in _RAW_ALIASES


def link_name(linktype: int) -> str:
    """``"ethernet"`` or ``"ip"`` (the ``link=`` argument of kubenat's encap/decap)."""
    if linktype == LINKTYPE_ETHERNET:
        return "ethernet"
    if is_raw_ip(linktype):
        return "ip"
    raise PacketError(
        f"pcap link type {linktype} is neither Ethernet (1) nor raw IP (101)",
        layer="pcap",
        field="linktype",
        offset=20,
        reason="unsupported link type",
    )


@dataclass(frozen=True)
class Record:
    """One packet record."""

    #: Seconds since the epoch (float; exact nanoseconds in ``ts_ns``).
    ts: float
    data: bytes
    #: Length on the wire (``data`` is shorter when the capture was snapped).
    orig_len: int
    #: Timestamp in nanoseconds.
    ts_ns: int


def _error(field: str, offset: int, reason: str) -> PacketError:
    return PacketError(
        f"pcap.{field} at byte {offset}: {reason}", layer="pcap", field=field, offset=offset, reason=reason
    )


class Reader:
    """Reads a classic pcap stream. Iterating yields :class:`Record`; ``linktype``,
    ``snaplen``, ``nanosecond`` and ``byteorder`` describe the file."""

    def __init__(self, stream: BinaryIO) -> None:
        self._f = stream
        head = stream.read(_GLOBAL)
        if len(head) < 4:
            raise _error("magic", 0, f"file of {len(head)} bytes has no pcap header")
        (magic_le,) = struct.unpack("<I", head[:4])
        (magic_be,) = struct.unpack(">I", head[:4])
        if magic_le == _PCAPNG:
            raise _error("magic", 0, "this is pcapng; convert it with `editcap -F pcap` or `tshark -F pcap`")
        if magic_le in (MAGIC_US, MAGIC_NS):
            self.byteorder = "<"
            magic = magic_le
        elif magic_be in (MAGIC_US, MAGIC_NS):
            self.byteorder = ">"
            magic = magic_be
        else:
            raise _error("magic", 0, f"0x{magic_be:08x} is not a pcap magic number")
        if len(head) < _GLOBAL:
            raise _error("header", len(head), f"global header cut short at {len(head)} of 24 bytes")
        self.nanosecond = magic == MAGIC_NS
        major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(self.byteorder + "HHiIII", head[4:])
        self.version = (major, minor)
        self.snaplen = snaplen
        # The upper bits of the link type field carry FCS information in newer files.
        self.linktype = linktype & 0x0FFFFFFF
        self._offset = _GLOBAL
        self._rec = struct.Struct(self.byteorder + "IIII")

    def __iter__(self) -> Iterator[Record]:
        scale = 1 if self.nanosecond else 1000
        cap = min(max(self.snaplen, 65535), MAX_RECORD) if self.snaplen else MAX_RECORD
        while True:
            at = self._offset
            head = self._f.read(_RECORD)
            if not head:
                return
            if len(head) < _RECORD:
                raise _error("record", at, f"record header cut short at {len(head)} of 16 bytes")
            sec, frac, incl, orig = self._rec.unpack(head)
            if incl > cap:
                raise LimitError(
                    f"pcap record at byte {at}: captured length {incl} exceeds the limit of {cap}",
                    what="pcap record length",
                    limit=cap,
                    actual=incl,
                )
            data = self._f.read(incl)
            if len(data) < incl:
                raise _error("data", at + _RECORD, f"record data cut short at {len(data)} of {incl} bytes")
            self._offset = at + _RECORD + incl
            ns = sec * 1_000_000_000 + frac * scale
            yield Record(ts=ns / 1e9, data=data, orig_len=orig, ts_ns=ns)


class Writer:
    """Writes a classic pcap stream (little-endian; microsecond timestamps unless ``nanosecond``)."""

    def __init__(
        self,
        stream: BinaryIO,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 262144,
        nanosecond: bool = False,
    ) -> None:
        self._f = stream
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        magic = MAGIC_NS if nanosecond else MAGIC_US
        stream.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, data: bytes, ts: float | None = None, *, ts_ns: int | None = None) -> None:
        """Appends one record (``ts`` seconds, or exact ``ts_ns``; 0 when neither is given)."""
        if ts_ns is None:
            ts_ns = round((ts or 0.0) * 1e9)
        sec, ns = divmod(ts_ns, 1_000_000_000)
        frac = ns if self.nanosecond else ns // 1000
        incl = min(len(data), self.snaplen)
        self._f.write(struct.pack("<IIII", sec, frac, incl, len(data)))
        self._f.write(data[:incl])


def read(path: str | Path) -> Iterator[tuple[float, bytes]]:
    """``(timestamp, bytes)`` for every record of a pcap file (dpkt's shape)."""
    with open(path, "rb") as f:
        for rec in Reader(f):
            yield rec.ts, rec.data


def read_records(path: str | Path) -> tuple[int, list[Record]]:
    """The link type and all records of a pcap file."""
    with open(path, "rb") as f:
        r = Reader(f)
        return r.linktype, list(r)


def write(
    path: str | Path,
    packets: Iterable[bytes | tuple[float, bytes] | Record],
    linktype: int = LINKTYPE_ETHERNET,
    *,
    nanosecond: bool = False,
) -> int:
    """Writes packets (bytes, ``(ts, bytes)`` pairs or records) to a pcap file; returns the count."""
    n = 0
    with open(path, "wb") as f:
        w = Writer(f, linktype, nanosecond=nanosecond)
        for p in packets:
            if isinstance(p, Record):
                w.write(p.data, ts_ns=p.ts_ns)
            elif isinstance(p, tuple):
                w.write(p[1], p[0])
            else:
                w.write(bytes(p))
            n += 1
    return n


__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_RAW",
    "MAX_RECORD",
    "Reader",
    "Record",
    "Writer",
    "is_raw_ip",
    "link_name",
    "read",
    "read_records",
    "write",
]
