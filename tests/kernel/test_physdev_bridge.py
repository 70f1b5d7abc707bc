"""Packets through a Linux bridge in the node (``br_netfilter``) against kubenat's bridge model.

The node's sink links become ports of a bridge ``br0`` (hairpin mode on, as the CNI bridge
plugin sets it for pods). Frames are sent from the peers with the destination MAC a host
would use: another host on the bridge (bridged), or the bridge itself (routed, or DNAT to a
host on the bridge, which ``br_netfilter`` bridges). Every rule of the node only counts TCP
packets (the node's own IGMP/MLD reports are no probes); the kernel's rule counters must equal
the rules kubenat's trace says matched, and the bytes that come out equal ``Netfilter.process``
(a bridged packet keeps its TTL).
"""

from __future__ import annotations

import re
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator

import pytest

import kubenat
from kubenat.kernel import Testbed, _netns, build_packet

WAIT = 20.0
RULES = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m physdev --physdev-is-in
-A PREROUTING -p tcp -m physdev --physdev-is-out
-A PREROUTING -p tcp -m physdev ! --physdev-is-bridged
-A POSTROUTING -p tcp -m physdev --physdev-is-bridged
-A POSTROUTING -p tcp -m physdev --physdev-out eth2
-A POSTROUTING -p tcp -m physdev ! --physdev-in eth1
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.253.9.3:8080
-A PREROUTING -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.253.9.2:8080
-A POSTROUTING -s 10.253.9.2/32 -d 10.253.9.2/32 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m physdev --physdev-is-in
-A FORWARD -p tcp -m physdev --physdev-is-out
-A FORWARD -p tcp -m physdev --physdev-is-bridged
-A FORWARD -p tcp -m physdev --physdev-in eth1
-A FORWARD -p tcp -m physdev --physdev-out eth2
-A FORWARD -p tcp -m physdev ! --physdev-out eth2
-A FORWARD -p tcp -m physdev --physdev-in eth+ ! --physdev-is-bridged
-A FORWARD -i br0 -o br0 -p tcp
-A FORWARD -o br0 -p tcp
COMMIT
"""
RULES6 = (
    RULES.replace("10.96.0.10/32", "fd00:96::a/128")
    .replace("10.96.0.11/32", "fd00:96::b/128")
    .replace("10.253.9.3:8080", "[fd00:253:9::3]:8080")
    .replace("10.253.9.2:8080", "[fd00:253:9::2]:8080")
    .replace("10.253.9.2/32", "fd00:253:9::2/128")
)
HOSTS = {"sink": "10.253.9.2", "sink1": "10.253.9.3"}
HOSTS6 = {"sink": "fd00:253:9::2", "sink1": "fd00:253:9::3"}
VIPS = {4: ("10.96.0.10", "10.96.0.11"), 6: ("fd00:96::a", "fd00:96::b")}
CLIENT = {4: "10.253.1.2", 6: "fd00:253:1::2"}
PORTS = {"sink": "eth1", "sink1": "eth2"}


def _mac(tb: Testbed, role: str, iface: str) -> bytes:
    found = re.search(r"link/ether ([0-9a-f:]{17})", tb.run(role, ["ip", "-o", "link", "show", "dev", iface]))
    assert found
    return bytes.fromhex(found.group(1).replace(":", ""))


class Bridged:
    """The testbed with ``br0`` over the sink links, sockets on every peer, and the model."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb
        node = ["ip", "link", "add", "br0", "type", "bridge"]
        tb.run("node", node)
        for role, port in PORTS.items():
            tb.run("node", ["ip", "link", "set", port, "master", "br0"])
            tb.run("node", ["ip", "link", "set", port, "type", "bridge_slave", "hairpin", "on"])
            tb.run(role, ["ip", "address", "add", f"{HOSTS[role]}/24", "dev", "eth0"])
            tb.run(role, ["ip", "address", "add", f"{HOSTS6[role]}/64", "dev", "eth0", "nodad"])
        tb.run("node", ["ip", "address", "add", "10.253.9.1/24", "dev", "br0"])
        tb.run("node", ["ip", "address", "add", "fd00:253:9::1/64", "dev", "br0", "nodad"])
        tb.run("node", ["ip", "link", "set", "br0", "up"])
        tb.run("node", ["ethtool", "-K", "br0", "tx", "off"])
        for family in ("iptables", "ip6tables"):
            tb.run("node", ["sysctl", "-q", "-w", f"net.bridge.bridge-nf-call-{family}=1"])
        self.macs = {role: _mac(tb, role, "eth0") for role in ("client", *PORTS)}
        self.macs["br0"] = _mac(tb, "node", "br0")
        self.macs["node-client"] = _mac(tb, "node", "eth0")
        for role, port in PORTS.items():
            mac = self.macs[role].hex(":")
            tb.run("node", ["bridge", "fdb", "replace", mac, "dev", port, "master", "static"])
            for host in (HOSTS[role], HOSTS6[role]):
                neigh = ["ip", "neigh", "replace", host, "lladdr", mac, "dev", "br0", "nud", "permanent"]
                tb.run("node", neigh)
        self.socks: dict[str, socket.socket] = {}
        for role in ("client", *PORTS):

            def opened() -> socket.socket:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
                sock.bind(("eth0", 0x0003))
                sock.setblocking(False)
                return sock

            self.socks[role] = _netns.call_in(tb.names[role], opened)
        tb.load(RULES, reset=True)
        tb.load(RULES6, family=6, reset=True)
        self.nf = {
            family: kubenat.Netfilter(
                kubenat.Ruleset.parse(rules),
                interfaces={
                    "eth0": ["10.253.1.1/24", "fd00:253:1::1/64"],
                    "br0": ["10.253.9.1/24", "fd00:253:9::1/64"],
                },
                routes=[
                    ("10.253.1.0/24", "eth0"),
                    ("10.253.9.0/24", "br0"),
                    ("fd00:253:1::/64", "eth0"),
                    ("fd00:253:9::/64", "br0"),
                ],
                bridges={"br0": {port: [HOSTS[role], HOSTS6[role]] for role, port in PORTS.items()}},
            )
            for family, rules in ((4, RULES), (6, RULES6))
        }

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()

    def counters(self, family: int) -> Counter[tuple[str, str, int]]:
        """Packet counters of every rule: (table, chain, rule number) → packets."""
        counts: Counter[tuple[str, str, int]] = Counter()
        table, numbers = "", Counter[str]()
        tool = "iptables-save" if family == 4 else "ip6tables-save"
        for line in self.tb.run("node", [tool, "-c"]).splitlines():
            if line.startswith("*"):
                table, numbers = line[1:], Counter()
            found = re.match(r"\[(\d+):\d+\] -A (\S+)", line)
            if found:
                numbers[found.group(2)] += 1
                counts[(table, found.group(2), numbers[found.group(2)])] = int(found.group(1))
        return counts

    def read(self, role: str) -> list[bytes]:
        seen = []
        while True:
            try:
                frame, addr = self.socks[role].recvfrom(65535)
            except BlockingIOError:
                return seen
            kind = struct.unpack_from("!H", frame, 12)[0]
            tcp = (kind == 0x0800 and frame[23] == 6) or (kind == 0x86DD and frame[20] == 6)
            if addr[2] != 4 and tcp:
                seen.append(frame[14:])

    def send(self, role: str, to_mac: bytes, ip: bytes, from_: str, arrives: str) -> None:
        """Send ``ip`` from ``role`` to ``to_mac``; compare counters and bytes with kubenat."""
        family = ip[0] >> 4
        nf = self.nf[family]
        (outcome,) = nf.outcomes(kubenat.Packet.from_bytes(ip), from_=from_)
        matched = Counter(
            (s.table, s.chain, s.rule) for s in outcome.result.trace if s.kind == "rule" and s.matched
        )
        ours = nf.process(ip, link="ip", from_=from_)
        assert ours is not None
        for peer in self.socks:
            self.read(peer)
        before = self.counters(family)
        self.socks[role].send(to_mac + self.macs[role] + (b"\x08\x00" if family == 4 else b"\x86\xdd") + ip)
        deadline = time.monotonic() + WAIT
        seen: list[bytes] = []
        while not seen and time.monotonic() < deadline:
            select.select([self.socks[arrives]], [], [], 0.05)
            seen = self.read(arrives)
        assert seen == [ours], (seen, ours)
        counted = self.counters(family) - before
        assert counted == matched, f"kernel {sorted(counted.items())}, kubenat {sorted(matched.items())}"


@pytest.fixture(scope="module")
def bridged() -> Iterator[Bridged]:
    with Testbed(sinks=2) as tb:
        bed = Bridged(tb)
        try:
            yield bed
        finally:
            bed.close()


def _syn(src: str, dst: str, sport: int, dport: int = 80) -> bytes:
    return build_packet("tcp", src, dst, sport, dport, ident=sport)


def _hosts(family: int) -> dict[str, str]:
    return HOSTS if family == 4 else HOSTS6


@pytest.mark.parametrize("family", [4, 6])
def test_bridged_between_two_ports(bridged: Bridged, family: int) -> None:
    hosts = _hosts(family)
    packet = _syn(hosts["sink"], hosts["sink1"], 41000)
    bridged.send("sink", bridged.macs["sink1"], packet, "eth1", "sink1")
    (outcome,) = bridged.nf[family].outcomes(kubenat.Packet.from_bytes(packet), from_="eth1")
    assert (outcome.result.physdev_in, outcome.result.physdev_out) == ("eth1", "eth2")


@pytest.mark.parametrize("family", [4, 6])
def test_routed_from_a_port(bridged: Bridged, family: int) -> None:
    packet = _syn(_hosts(family)["sink"], CLIENT[family], 41001)
    bridged.send("sink", bridged.macs["br0"], packet, "eth1", "client")


@pytest.mark.parametrize("family", [4, 6])
def test_routed_onto_the_bridge(bridged: Bridged, family: int) -> None:
    packet = _syn(CLIENT[family], _hosts(family)["sink1"], 41002)
    bridged.send("client", bridged.macs["node-client"], packet, "eth0", "sink1")


@pytest.mark.parametrize("family", [4, 6])
def test_dnat_to_a_host_on_the_bridge_is_bridged(bridged: Bridged, family: int) -> None:
    packet = _syn(_hosts(family)["sink"], VIPS[family][0], 41003)
    bridged.send("sink", bridged.macs["br0"], packet, "eth1", "sink1")


@pytest.mark.parametrize("family", [4, 6])
def test_hairpin_dnat_back_out_of_its_port_is_masqueraded(bridged: Bridged, family: int) -> None:
    packet = _syn(_hosts(family)["sink"], VIPS[family][1], 41004)
    bridged.send("sink", bridged.macs["br0"], packet, "eth1", "sink")
