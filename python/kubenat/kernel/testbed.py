"""The Testbed: a client, a node and sinks in throwaway network namespaces, joined by veth pairs.

```
 client (eth0) ──── (eth0) node (eth1) ──── (eth0) sink
                           node (eth2) ──── (eth0) sink1   (when sinks=2) ...
```
The node forwards (``ip_forward``, IPv6 forwarding, ``route_localnet``), its default route goes
to the first sink, and ``routes`` send other prefixes to the client or other sinks. Checksum
offload is off on every veth so captured checksums are final. The client and sinks drop every
IP packet they receive (after capture), so their own stacks never answer and confuse a probe's
fate. A small nftables table in the node copies the packet mark into the connection after the
last hook, so the final mark can be read from conntrack.

Nothing is done in the caller's namespace: links are created from inside the node namespace
with their peer directly in the other namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from kubenat.errors import InvalidArgument, KernelError
from kubenat.kernel import _netns, _wire
from kubenat.kernel.capture import Capture, backlog_pending
from kubenat.kernel.conntrack import ConntrackEntry
from kubenat.kernel.conntrack import parse as parse_conntrack
from kubenat.kernel.inject import Injector, to_ip_bytes
from kubenat.kernel.observe import KernelObservation
from kubenat.kernel.probes import classify_round, round_key
from kubenat.kernel.stats import DEFAULT_ALPHA, Judgement, judge

_OBSERVE = """
table inet kn_observe {
    chain post {
        type filter hook postrouting priority 1000; policy accept;
        ct direction original ct mark set meta mark;
    }
    chain in {
        type filter hook input priority 1000; policy accept;
        ct direction original ct mark set meta mark;
    }
    chain quiet {
        type filter hook output priority -500; policy accept;
        meta l4proto tcp tcp flags & rst == rst ct state invalid drop;
    }
}
"""
NFLOG_GROUP = 7
_RESPONSES = """
table inet kn_responses {
    chain out {
        type filter hook output priority -400; policy accept;
        icmp type destination-unreachable log group 7;
        icmpv6 type destination-unreachable log group 7;
        tcp flags & rst == rst log group 7;
    }
}
"""
"""Every ICMP error and RST the node sends is copied to nfnetlink_log before the node's own
OUTPUT rules can drop it: a REJECT is seen even when the rules then drop its answer."""
_QUIET = """
table inet kn_quiet {
    chain pre {
        type filter hook prerouting priority -500; policy drop;
    }
}
"""
_EMPTY_TABLES = {
    table: f"*{table}\n" + "".join(f":{chain} ACCEPT [0:0]\n" for chain in chains) + "COMMIT\n"
    for table, chains in {
        "raw": ("PREROUTING", "OUTPUT"),
        "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
        "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
        "filter": ("INPUT", "FORWARD", "OUTPUT"),
    }.items()
}
ROUND_LIMIT = 4000
"""Probes per round (each needs a distinct tag; the capture buffers hold far more)."""


@dataclass(frozen=True)
class Link:
    """One veth pair between the node and a peer namespace."""

    role: str
    """``"client"``, ``"sink"``, ``"sink1"``, ..."""
    netns: str
    node_if: str
    peer_if: str
    node_v4: str
    peer_v4: str
    node_v6: str
    peer_v6: str


class Testbed:
    """Throwaway namespaces to run real netfilter on; a context manager that always cleans up.

    >>> with Testbed() as tb:                                  # doctest: +SKIP
    ...     tb.load(ruleset)
    ...     obs = tb.inject(kubenat.kernel.build_packet("tcp", "10.0.0.5", "10.96.0.10", 40000, 80))
    ...     obs.verdict, obs.dst, obs.dport
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self,
        sinks: int = 1,
        *,
        routes: Mapping[str, str] | None = None,
        node_interfaces: Sequence[str] | None = None,
        addresses: Mapping[str, Sequence[str]] | None = None,
        settle: float = 0.02,
        tag: str | None = None,
        route_localnet: bool = True,
    ) -> None:
        """``sinks``: how many sink namespaces (1 to 8). ``routes``: prefix → ``"client"`` or a sink
        role (``"sink"``, ``"sink1"``...), added to the node's routing table. ``node_interfaces``:
        the node's interface names, client link first (default ``eth0``, ``eth1``, ...).
        ``addresses``: extra addresses (CIDR) per node interface (``"lo"`` allowed); they add no
        route for their subnet. ``settle``:
        how long the capture waits for silence after a batch. ``route_localnet``: let 127.0.0.0/8
        be routed off ``lo`` (on by default, as kube-proxy sets it for localhost NodePorts)."""
        if not 1 <= sinks <= 8:
            raise InvalidArgument(f"sinks must be between 1 and 8, not {sinks}", what="sinks")
        self.tag = tag or secrets.token_hex(4)
        if not re.fullmatch(r"[a-z0-9]{1,16}", self.tag):
            raise InvalidArgument(f"tag {self.tag!r} must be 1-16 lowercase letters or digits", what="tag")
        roles = ["client", "sink", *(f"sink{i}" for i in range(1, sinks))]
        names = list(node_interfaces or [f"eth{i}" for i in range(len(roles))])
        if len(names) != len(roles) or len(set(names)) != len(names):
            raise InvalidArgument(f"need {len(roles)} distinct node interface names", what="node_interfaces")
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,15}", name) or name == "lo":
                raise InvalidArgument(f"bad interface name {name!r}", what="node_interfaces")
        self.names = {"node": f"kn-{self.tag}-node", **{role: f"kn-{self.tag}-{role}" for role in roles}}
        self.links = [
            Link(
                role,
                self.names[role],
                names[i],
                "eth0",
                f"10.253.{i + 1}.1",
                f"10.253.{i + 1}.2",
                f"fd00:253:{i + 1}::1",
                f"fd00:253:{i + 1}::2",
            )
            for i, role in enumerate(roles)
        ]
        self._routes = dict(routes or {})
        for prefix, role in self._routes.items():
            ipaddress.ip_network(prefix, strict=False)
            if role not in roles:
                raise InvalidArgument(f"route {prefix}: unknown role {role!r} (have {roles})", what="routes")
        self._addresses = {k: list(v) for k, v in (addresses or {}).items()}
        for iface in self._addresses:
            if iface != "lo" and iface not in names:
                raise InvalidArgument(f"addresses: node has no interface {iface!r}", what="addresses")
        self.settle = settle
        self.route_localnet = route_localnet
        self._capture: Capture | None = None
        self._injector: Injector | None = None
        self._entered = False
        self._owned: list[str] = []
        self._old_sigterm: Any = None

    # --- properties for building the matching kubenat model -------------------------------------

    @property
    def node(self) -> str:
        """The node namespace's name."""
        return self.names["node"]

    @property
    def interfaces(self) -> dict[str, list[str]]:
        """The node's interfaces and their addresses (CIDR), loopback included."""
        result = {"lo": ["127.0.0.1/8", "::1/128", *self._addresses.get("lo", [])]}
        for link in self.links:
            extra = self._addresses.get(link.node_if, [])
            result[link.node_if] = [f"{link.node_v4}/24", f"{link.node_v6}/64", *extra]
        return result

    @property
    def local_addresses(self) -> list[str]:
        """Every address of the node (without prefix length)."""
        return [a.split("/")[0] for addrs in self.interfaces.values() for a in addrs]

    @property
    def routes(self) -> list[tuple[str, str]]:
        """The node's routes as (prefix, interface), most specific first; defaults last."""
        link = {lnk.role: lnk for lnk in self.links}
        table = [(f"10.253.{i + 1}.0/24", lnk.node_if) for i, lnk in enumerate(self.links)]
        table += [(f"fd00:253:{i + 1}::/64", lnk.node_if) for i, lnk in enumerate(self.links)]
        for prefix, role in self._routes.items():
            table.append((str(ipaddress.ip_network(prefix, strict=False)), link[role].node_if))
        table.sort(key=lambda route: -ipaddress.ip_network(route[0]).prefixlen)
        sink = link["sink"].node_if
        return [*table, ("0.0.0.0/0", sink), ("::/0", sink)]

    def link(self, role: str) -> Link:
        """The link to the peer with this role."""
        for lnk in self.links:
            if lnk.role == role:
                return lnk
        raise InvalidArgument(f"no link {role!r}", what="role")

    # --- life cycle ------------------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        if self._entered:
            raise KernelError("a Testbed can be entered only once")
        self._entered = True
        self._install_sigterm()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close sockets and delete every namespace of this testbed (idempotent)."""
        for thing in (self._capture, self._injector):
            if thing is not None:
                with contextlib.suppress(OSError):
                    thing.close()
        self._capture = self._injector = None
        errors = _netns.delete(self._owned)
        self._owned = []
        self._restore_sigterm()
        if errors:
            raise KernelError("could not delete network namespaces: " + "; ".join(errors))

    def _install_sigterm(self) -> None:
        # SIGTERM normally kills without unwinding; turn it into SystemExit so cleanup runs.
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

            def on_term(signum: int, frame: FrameType | None) -> None:
                raise SystemExit(128 + signum)

            self._old_sigterm = signal.SIG_DFL
            signal.signal(signal.SIGTERM, on_term)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def _build(self) -> None:
        node = self.node
        names = [node, *(lnk.netns for lnk in self.links)]
        _netns.check_free(names)
        self._owned = names
        _netns.add(names)
        quiet_dad = {"net/ipv6/conf/default/accept_dad": "0", "net/ipv6/conf/all/accept_dad": "0"}
        for name in self.names.values():
            _netns.sysctl(name, quiet_dad)
        _netns.sysctl(
            node,
            {
                "net/ipv4/ip_forward": "1",
                "net/ipv6/conf/all/forwarding": "1",
                "net/ipv4/conf/all/route_localnet": "1" if self.route_localnet else "0",
                "net/ipv4/conf/default/route_localnet": "1" if self.route_localnet else "0",
                "net/ipv4/conf/all/rp_filter": "0",
                "net/ipv4/conf/default/rp_filter": "0",
                "net/ipv4/conf/all/send_redirects": "0",
                "net/ipv4/conf/default/send_redirects": "0",
                "net/ipv4/icmp_ratelimit": "0",
                "net/ipv4/icmp_msgs_per_sec": "1000000",
                "net/ipv4/icmp_msgs_burst": "1000000",
                "net/ipv6/icmp/ratelimit": "0",
            },
        )
        _netns.run(["ip", "-n", node, "link", "set", "lo", "up"])
        batch = []
        for lnk in self.links:
            veth = ["type", "veth", "peer", "name", lnk.peer_if, "netns", lnk.netns]
            _netns.run(["ip", "-n", node, "link", "add", lnk.node_if, *veth])
            batch += [
                f"address add {lnk.node_v4}/24 dev {lnk.node_if}",
                f"address add {lnk.node_v6}/64 dev {lnk.node_if} nodad",
                f"link set {lnk.node_if} up",
            ]
            peer = [
                "link set lo up",
                f"address add {lnk.peer_v4}/24 dev {lnk.peer_if}",
                f"address add {lnk.peer_v6}/64 dev {lnk.peer_if} nodad",
                f"link set {lnk.peer_if} up",
            ]
            _netns.run(["ip", "-n", lnk.netns, "-batch", "-"], input="\n".join(peer).encode())
            for ns, iface in ((node, lnk.node_if), (lnk.netns, lnk.peer_if)):
                _netns.run(["ethtool", "-K", iface, "tx", "off"], netns=ns)
            _netns.run(["nft", "-f", "-"], netns=lnk.netns, input=_QUIET.encode())
        for iface, addrs in self._addresses.items():
            for addr in addrs:
                # No prefix route: where traffic goes is decided by `routes` alone (default: the sink).
                flags = " noprefixroute" + (" nodad" if ":" in addr else "")
                batch.append(f"address add {addr} dev {iface}{flags}")
        _netns.run(["ip", "-n", node, "-batch", "-"], input="\n".join(batch).encode())
        macs = {lnk.role: self._mac(lnk.netns, lnk.peer_if) for lnk in self.links}
        routes = []
        for lnk in self.links:
            for addr in (lnk.peer_v4, lnk.peer_v6):
                routes.append(f"neigh replace {addr} lladdr {macs[lnk.role]} dev {lnk.node_if} nud permanent")
        sink = self.link("sink")
        routes += [f"route add default via {sink.peer_v4}", f"route add default via {sink.peer_v6}"]
        for prefix, role in self._routes.items():
            via = self.link(role)
            gateway = via.peer_v6 if ":" in prefix else via.peer_v4
            routes.append(f"route add {prefix} via {gateway} dev {via.node_if}")
        _netns.run(["ip", "-n", node, "-batch", "-"], input="\n".join(routes).encode())
        _netns.run(["nft", "-f", "-"], netns=node, input=_OBSERVE.encode())
        _netns.run(["nft", "-f", "-"], netns=node, input=_RESPONSES.encode())
        client = self.link("client")
        self._injector = Injector(
            client.netns,
            client.peer_if,
            node,
            bytes.fromhex(macs["client"].replace(":", "")),
            bytes.fromhex(self._mac(node, client.node_if).replace(":", "")),
        )
        self._capture = Capture()
        for lnk in self.links:
            self._capture.add_link(lnk.role, lnk.netns, lnk.peer_if)
        self._capture.add_local(node, ipv6=True)
        self._capture.add_nflog(node, NFLOG_GROUP)

    @staticmethod
    def _mac(netns: str, iface: str) -> str:
        out = _netns.run(["ip", "-n", netns, "-o", "link", "show", "dev", iface]).stdout.decode()
        found = re.search(r"link/ether ([0-9a-f:]{17})", out)
        if not found:
            raise KernelError(f"no MAC address on {iface} in {netns}: {out.strip()}")
        return found.group(1)

    # --- rules and state ------------------------------------------------------------------------

    def run(self, role: str, args: Sequence[str], *, input: bytes | None = None) -> str:
        """Run a tool inside one of the testbed's namespaces (``"node"``, ``"client"``, ``"sink"``...)."""
        if role not in self.names:
            raise InvalidArgument(f"no namespace {role!r} (have {sorted(self.names)})", what="role")
        return _netns.run(args, netns=self.names[role], input=input).stdout.decode()

    def load(self, ruleset: Any, *, family: int | None = None, reset: bool = False) -> None:
        """Load iptables-save text (a string, or anything with ``.save()``) into the node with
        iptables-restore (``family=6``: ip6tables-restore). nfacct objects the rules name are created first.
        Only the tables present in the text are replaced; with ``reset``, every other table is
        emptied first (built-in chains with ACCEPT policies, no user chains)."""
        text = ruleset.save() if hasattr(ruleset, "save") else str(ruleset)
        if family is None:
            declared = "" if isinstance(ruleset, str) else str(getattr(ruleset, "family", "")).lower()
            family = 6 if declared in ("ipv6", "inet6", "6") else 4
        for name in sorted(set(re.findall(r"--nfacct-name\s+(\S+)", text))):
            name = name.strip("\"'")
            done = _netns.run(["nfacct", "add", name], netns=self.node, check=False)
            exists = _netns.run(["nfacct", "get", name], netns=self.node, check=False).returncode == 0
            if done.returncode != 0 and not exists:
                raise KernelError(f"nfacct add {name} failed: {done.stderr.decode(errors='replace').strip()}")
        tool = "ip6tables-restore" if family == 6 else "iptables-restore"
        if not text.endswith("\n"):
            text += "\n"
        if reset:
            present = set(re.findall(r"^\*(\w+)", text, flags=re.M))
            empty = [_EMPTY_TABLES[t] for t in _EMPTY_TABLES if t not in present]
            text = "".join(empty) + text
        try:
            _netns.run([tool], netns=self.node, input=text.encode())
        except KernelError as exc:
            stderr = getattr(exc, "stderr", str(exc))
            raise KernelError(f"the kernel refused the ruleset: {stderr}", stderr=stderr) from None

    def save(self, *, family: int = 4, table: str | None = None) -> str:
        """The node's rules as ``iptables-save`` (``ip6tables-save``) prints them."""
        args = ["ip6tables-save" if family == 6 else "iptables-save"]
        return self.run("node", args + (["-t", table] if table else []))

    def listing(self, table: str = "filter", *, numeric: bool = False, family: int = 4) -> str:
        """The node's ``iptables -t TABLE -L [-n]`` output."""
        args = ["ip6tables" if family == 6 else "iptables", "-t", table, "-L"] + (["-n"] if numeric else [])
        return self.run("node", args)

    def conntrack(self, families: Iterable[int] = (4, 6)) -> list[ConntrackEntry]:
        """The node's conntrack table (IPv4 and IPv6 by default)."""
        entries = []
        for family in (f"ipv{f}" for f in sorted(set(families))):
            out = _netns.run(["conntrack", "-L", "-f", family], netns=self.node).stdout.decode()
            entries += parse_conntrack(out)
        return entries

    def clear_recent(self) -> None:
        """Empty every ``-m recent`` list in the node (they outlive conntrack flushes)."""

        def clear() -> None:
            directory = "/proc/thread-self/net/xt_recent"  # /proc/net is the main thread's
            if os.path.isdir(directory):
                for name in os.listdir(directory):
                    with open(os.path.join(directory, name), "w") as handle:
                        handle.write("/\n")

        _netns.call_in(self.node, clear)

    def flush_conntrack(self) -> None:
        """Forget every connection in the node."""
        _netns.run(["conntrack", "-F"], netns=self.node, check=False)

    # --- probes ---------------------------------------------------------------------------------

    def inject(self, packet: Any, *, path: str = "in") -> KernelObservation:
        """Inject one packet and observe what the kernel did; see ``inject_batch``."""
        return self.inject_batch([packet], path=path)[0]

    def inject_batch(self, packets: Iterable[Any], *, path: str = "in") -> list[KernelObservation]:
        """Inject packets and observe the kernel's verdict on each, in order.

        ``path="in"``: the packets arrive on the node's client interface (any source address);
        ``path="out"``: the node itself sends them (OUTPUT path). Each packet is a fresh
        connection: conntrack is flushed before each round, and packets sharing a source
        (protocol, address, port) go to separate rounds. The packet's IPv4 identification / IPv6
        flow label is replaced by a tag that identifies it in captures.
        """
        if path not in ("in", "out"):
            raise InvalidArgument(f"path must be 'in' or 'out', not {path!r}", what="path")
        if self._injector is None or self._capture is None:
            raise KernelError("the testbed is not running (use it in a with block)")
        ips = [to_ip_bytes(p) for p in packets]
        probes = [_wire.parse(ip) for ip in ips]
        results: list[KernelObservation | None] = [None] * len(ips)
        pending = list(range(len(ips)))
        while pending:
            chosen: list[int] = []
            later: list[int] = []
            keys: set[tuple[object, ...]] = set()
            for index in pending:
                key = round_key(probes[index])
                if key in keys or len(chosen) >= ROUND_LIMIT:
                    later.append(index)
                else:
                    keys.add(key)
                    chosen.append(index)
            for index, observation in zip(chosen, self._round([ips[i] for i in chosen], path), strict=True):
                results[index] = observation
            pending = later
        return [r for r in results if r is not None]

    def _round(self, ips: list[bytes], path: str) -> list[KernelObservation]:
        assert self._injector is not None and self._capture is not None
        self.flush_conntrack()
        self._capture.drain()
        tagged = [_wire.retag(ip, index + 1) for index, ip in enumerate(ips)]
        errors = self._injector.send(tagged, path)
        # The round ends when the capture has been quiet for ``settle`` seconds and no CPU holds
        # unprocessed packets (then no probe can still be on its way); the 60 s limit is only a
        # failsafe against a machine whose backlog never empties.
        captured = self._capture.drain(quiet=self.settle, limit=60.0)
        deadline = time.monotonic() + 60.0
        while backlog_pending() and time.monotonic() < deadline:
            captured += self._capture.drain(quiet=self.settle, limit=60.0)
        entries = self.conntrack({ip[0] >> 4 for ip in ips})
        return classify_round(tagged, errors, captured, entries, self)

    def distribution(
        self,
        packet: Any,
        n: int,
        *,
        path: str = "in",
        first_port: int = 20000,
        key: Callable[[KernelObservation], Hashable] = KernelObservation.outcome,
    ) -> Counter[Hashable]:
        """Send ``n`` copies of ``packet`` with fresh source ports (``first_port``, ``first_port+1``...)
        and count the outcomes (by default ``(verdict, dst, dport, masquerade, local_delivery)``)."""
        if not 1 <= n <= 65536 - first_port or not 1 <= first_port:
            raise InvalidArgument(f"n={n} copies do not fit in ports {first_port}..65535", what="n")
        base = to_ip_bytes(packet)
        copies = [_wire.with_source_port(base, first_port + i) for i in range(n)]
        return Counter(key(obs) for obs in self.inject_batch(copies, path=path))

    def judge_distribution(
        self,
        packet: Any,
        expected: Mapping[Hashable, float],
        n: int = 2000,
        *,
        path: str = "in",
        alpha: float = DEFAULT_ALPHA,
        key: Callable[[KernelObservation], Hashable] = KernelObservation.outcome,
    ) -> Judgement:
        """Compare the kernel's outcome frequencies over ``n`` fresh connections with ``expected``
        (outcome key → probability) by the test in :mod:`kubenat.kernel.stats`."""
        return judge(self.distribution(packet, n, path=path, key=key), expected, alpha)
