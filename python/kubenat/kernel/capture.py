"""Batched capture: AF_PACKET sockets on the far ends of the node's links, raw IP sockets in the node.

* A packet the node emits on a link is captured by an AF_PACKET socket on the peer's end of that
  veth (in the client or a sink namespace), before that namespace's own stack sees it.
* An ICMP error or TCP RST the node sends is copied by an nftables ``log group`` rule before the
  node's own OUTPUT rules run, and read from nfnetlink_log: a REJECT is seen even when the rules
  then drop its answer.
* A packet the node delivers to its own stack is seen by raw IP sockets opened in the node, one
  per transport protocol: Linux hands every locally delivered packet to the raw sockets of its
  protocol after the INPUT hook, listener or not.

Every socket is opened by a thread that entered the namespace (``_netns.call_in``); the sockets
themselves are used from the caller's thread.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from kubenat.kernel import _netns, _wire

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
_RCVBUF = 32 * 1024 * 1024
_SO_RCVBUFFORCE = 33
_IPV6_RECVPKTINFO, _IPV6_PKTINFO, _IPV6_FLOWINFO = 49, 50, 11
_NETLINK_NETFILTER = 12
_NFULNL_MSG_PACKET, _NFULNL_MSG_CONFIG = (4 << 8) | 0, (4 << 8) | 1
_NFULA_CFG_CMD, _NFULA_CFG_MODE, _NFULA_CFG_TIMEOUT, _NFULA_CFG_QTHRESH, _NFULA_PAYLOAD = 1, 2, 3, 4, 9
_NFULNL_CFG_CMD_BIND, _NFULNL_COPY_PACKET = 1, 2
LOCAL_PROTOCOLS = (_wire.TCP, _wire.UDP, _wire.SCTP, _wire.ICMP)


@dataclass(frozen=True)
class Captured:
    """One IP packet seen leaving the node (``where`` is the peer role) or delivered locally (``"local"``)."""

    where: str
    data: bytes
    """The IP packet, from its IP header (for local IPv6 deliveries a header rebuilt from ancillary data)."""


def _bigger_buffer(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)


class Capture:
    """Capture sockets for one testbed; ``drain()`` collects everything seen since the last call."""

    def __init__(self) -> None:
        self._link: list[tuple[str, socket.socket]] = []
        self._local: list[tuple[int, socket.socket]] = []
        self._nflog: list[socket.socket] = []

    def add_link(self, role: str, netns: str, ifname: str) -> None:
        """Capture what arrives on ``ifname`` in ``netns`` (the far end of one of the node's links)."""

        def open_socket() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            _bigger_buffer(sock)
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
            return sock

        self._link.append((role, _netns.call_in(netns, open_socket)))

    def add_local(self, netns: str, ipv6: bool) -> None:
        """Watch local delivery in the node: one raw socket per transport protocol and family."""

        def open_sockets() -> list[tuple[int, socket.socket]]:
            sockets = []
            for proto in LOCAL_PROTOCOLS:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
                _bigger_buffer(sock)
                sock.setblocking(False)
                sockets.append((4, sock))
            if ipv6:
                for proto in (_wire.TCP, _wire.UDP, _wire.SCTP, _wire.ICMPV6):
                    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, proto)
                    _bigger_buffer(sock)
                    sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVPKTINFO, 1)
                    sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_FLOWINFO, 1)
                    sock.setblocking(False)
                    sockets.append((6 * 1000 + proto, sock))
            return sockets

        self._local.extend(_netns.call_in(netns, open_sockets))

    def add_nflog(self, netns: str, group: int) -> None:
        """Receive the packets an nftables ``log group N`` rule in ``netns`` copies (as ``"nflog"``)."""

        def open_socket() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
            _bigger_buffer(sock)
            sock.bind((0, 0))
            for attrs in (
                _nla(_NFULA_CFG_CMD, struct.pack("B", _NFULNL_CFG_CMD_BIND) + b"\0\0\0"),
                _nla(_NFULA_CFG_MODE, struct.pack("!IBB", 0xFFFF, _NFULNL_COPY_PACKET, 0) + b"\0\0"),
                # Deliver every packet at once instead of batching them for up to a second.
                _nla(_NFULA_CFG_QTHRESH, struct.pack("!I", 1))
                + _nla(_NFULA_CFG_TIMEOUT, struct.pack("!I", 1)),
            ):
                body = struct.pack("!BBH", socket.AF_UNSPEC, 0, group) + attrs
                header = struct.pack("=IHHII", 16 + len(body), _NFULNL_MSG_CONFIG, 0x1 | 0x4, 1, 0)
                sock.send(header + body)
                answer = sock.recv(65535)
                kind = struct.unpack_from("=H", answer, 4)[0]
                error = struct.unpack_from("=i", answer, 16)[0] if kind == 2 else 0
                if error:
                    raise OSError(-error, f"nfnetlink_log configuration: {os.strerror(-error)}")
            sock.setblocking(False)
            return sock

        self._nflog.append(_netns.call_in(netns, open_socket))

    def close(self) -> None:
        for _, sock in self._link:
            sock.close()
        for _, sock in self._local:
            sock.close()
        for sock in self._nflog:
            sock.close()
        self._nflog.clear()
        self._link.clear()
        self._local.clear()

    def _read_all(self) -> list[Captured]:
        seen: list[Captured] = []
        for role, sock in self._link:
            while True:
                try:
                    frame, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING or len(frame) < 14:
                    continue
                ethertype = struct.unpack_from("!H", frame, 12)[0]
                if ethertype in (_wire.ETH_P_IP, _wire.ETH_P_IPV6):
                    seen.append(Captured(role, frame[14:]))
        for kind, sock in self._local:
            while True:
                try:
                    if kind == 4:
                        seen.append(Captured("local", sock.recv(65535)))
                        continue
                    data, ancillary, _, addr = sock.recvmsg(65535, 256)
                except BlockingIOError:
                    break
                seen.append(Captured("local", _rebuild_ipv6(kind - 6000, data, ancillary, addr[0])))
        for sock in self._nflog:
            while True:
                try:
                    message = sock.recv(1 << 20)
                except BlockingIOError:
                    break
                seen.extend(Captured("nflog", payload) for payload in _nflog_payloads(message))
        return seen

    def _sockets(self) -> list[socket.socket]:
        return [sock for _, sock in self._link] + [sock for _, sock in self._local] + self._nflog

    def drain(self, *, quiet: float = 0.0, limit: float = 0.0) -> list[Captured]:
        """Everything captured so far; with ``quiet``, keep reading until nothing arrives for
        ``quiet`` seconds (but at most ``limit`` seconds in total)."""
        seen = self._read_all()
        if quiet <= 0:
            return seen
        deadline = time.monotonic() + max(limit, quiet)
        sockets = self._sockets()
        while True:
            wait = min(quiet, deadline - time.monotonic())
            if wait <= 0:
                break
            ready, _, _ = select.select(sockets, [], [], wait)
            if not ready:
                break
            seen.extend(self._read_all())
        return seen


def backlog_pending() -> bool:
    """Whether some CPU still holds received packets it has not processed yet (the backlog
    column of ``/proc/net/softnet_stat``; machine-wide, only read). On a loaded machine the
    kernel may defer packet processing to ``ksoftirqd``; a probe still waiting there has not
    met its fate yet, however long the capture has been quiet."""
    try:
        with open("/proc/net/softnet_stat", encoding="ascii") as stats:
            rows = [line.split() for line in stats]
    except OSError:
        return False
    # Columns: processed, dropped, time_squeeze, 0 x6, received_rps, flow_limit, backlog, ...
    return any(len(row) > 11 and int(row[11], 16) > 0 for row in rows)


def _nla(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _nflog_payloads(message: bytes) -> list[bytes]:
    """The packets (NFULA_PAYLOAD) in a buffer of nfnetlink_log messages."""
    found = []
    offset = 0
    while offset + 16 <= len(message):
        length, kind = struct.unpack_from("=IH", message, offset)
        if length < 16:
            break
        if kind == _NFULNL_MSG_PACKET:
            at = offset + 20  # netlink header + nfgenmsg
            while at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", message, at)
                if size < 4:
                    break
                if attr & 0x3FFF == _NFULA_PAYLOAD:
                    found.append(bytes(message[at + 4 : at + size]))
                at += (size + 3) & ~3
        offset += (length + 3) & ~3
    return found


def _rebuild_ipv6(proto: int, payload: bytes, ancillary: list[tuple[int, int, bytes]], src: str) -> bytes:
    """An IPv6 raw socket gives no header: rebuild the fields the oracle reads from ancillary data."""
    dst = b"\0" * 16
    flow = 0
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == _IPV6_PKTINFO:
            dst = data[:16]
        elif level == socket.IPPROTO_IPV6 and kind == _IPV6_FLOWINFO:
            flow = struct.unpack("!I", data[:4])[0]
    first = (6 << 28) | (flow & 0x0FFFFFFF)
    source = socket.inet_pton(socket.AF_INET6, src.split("%")[0])
    return struct.pack("!IHBB16s16s", first, len(payload), proto, 64, source, dst) + payload
