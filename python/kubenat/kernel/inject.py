"""Batched injection: frames into the node's client link, or packets sent by the node itself.

* ``path="in"``: an AF_PACKET socket in the client namespace writes Ethernet frames addressed
  to the node's MAC, so the packet arrives on the node's interface exactly as given (any source
  address), and goes through PREROUTING → INPUT/FORWARD → POSTROUTING.
* ``path="out"``: a raw ``IPPROTO_RAW`` socket (header included) in the node sends the packet,
  so it is locally generated: OUTPUT → POSTROUTING.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from kubenat.errors import InvalidArgument
from kubenat.kernel import _netns, _wire

_CHUNK = 128
"""Frames written before yielding, so the receive backlog never overflows (that would look like DROP)."""


def to_ip_bytes(packet: Any) -> bytes:
    """The IP packet in ``packet``: bytes (an IP packet or an Ethernet frame), a scapy packet,
    or anything with ``__bytes__`` (such as ``kubenat.Packet``)."""
    if isinstance(packet, (bytes, bytearray, memoryview)):
        data = bytes(packet)
    elif hasattr(packet, "__bytes__"):
        data = bytes(packet)
    else:
        raise InvalidArgument(
            f"cannot inject {type(packet).__name__}: give bytes, a scapy packet or a kubenat.Packet",
            what="packet",
        )
    if data and data[0] >> 4 in (4, 6):
        return data
    if len(data) >= 14 and struct.unpack_from("!H", data, 12)[0] in (_wire.ETH_P_IP, _wire.ETH_P_IPV6):
        return data[14:]
    raise InvalidArgument("packet is neither an IP packet nor an Ethernet frame carrying one", what="packet")


class Injector:
    """The two injection sockets of a testbed."""

    def __init__(
        self, client_ns: str, client_if: str, node_ns: str, client_mac: bytes, node_mac: bytes
    ) -> None:
        self._macs = node_mac + client_mac

        def open_link() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sock.bind((client_if, 0))
            return sock

        def open_raw() -> tuple[socket.socket, socket.socket]:
            v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
            return v4, v6

        self._link = _netns.call_in(client_ns, open_link)
        self._raw4, self._raw6 = _netns.call_in(node_ns, open_raw)

    def close(self) -> None:
        for sock in (self._link, self._raw4, self._raw6):
            sock.close()

    def send(self, packets: Sequence[bytes], path: str) -> list[int | None]:
        """Send IP packets along ``path`` (``"in"`` or ``"out"``), in small chunks.

        Returns the errno of each send (None when sent): a locally generated packet that
        netfilter drops fails with EPERM, one without a route with ENETUNREACH.
        """
        errors: list[int | None] = []
        for index, packet in enumerate(packets):
            errors.append(self._send_one(packet, path))
            if index and index % _CHUNK == 0:
                time.sleep(0.002)
        return errors

    def _send_one(self, packet: bytes, path: str) -> int | None:
        try:
            if path == "in":
                ethertype = _wire.ETH_P_IP if packet[0] >> 4 == 4 else _wire.ETH_P_IPV6
                self._link.send(self._macs + struct.pack("!H", ethertype) + packet)
            elif packet[0] >> 4 == 4:
                self._raw4.sendto(packet, (_wire.parse(packet).dst, 0))
            else:
                self._raw6.sendto(packet, (_wire.parse(packet).dst, 0))
        except OSError as exc:
            if path == "in":
                raise
            return exc.errno
        return None
