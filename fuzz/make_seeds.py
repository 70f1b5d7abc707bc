"""Writes the seed corpora under fuzz/seeds/<target>/ (committed; rerun after changing a format).

Text seeds come from the kube-proxy cases (real iptables-restore dumps); packet seeds are
built with scapy. Run from the repository root: ``python3 fuzz/make_seeds.py [CASES_DIR]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkInit
from scapy.layers.vxlan import VXLAN

ROOT = Path(__file__).resolve().parent / "seeds"
CASES = Path("/work/shared/reference/kubeproxy-cases")
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def packets() -> list[bytes]:
    """A spread of real-looking packets: every protocol the dissector knows, IP and Ethernet."""
    v4, v6 = IP(src="10.244.1.5", dst="10.96.0.10", ttl=64), IPv6(src="fd00::1", dst="fd00::a")
    out = [
        v4 / TCP(sport=40000, dport=80, flags="S", options=[("MSS", 1460), ("WScale", 7)]),
        v4 / TCP(sport=40000, dport=443, flags="PA", seq=1, ack=2) / b"GET / HTTP/1.1\r\n\r\n",
        v4 / UDP(sport=5353, dport=53) / b"\x12\x34\x01\x00\x00\x01",
        IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x94\x04\x00\x00") / UDP(sport=1, dport=2, chksum=0),
        v4 / SCTP(sport=3868, dport=3868, tag=0) / SCTPChunkInit(),
        v4 / ICMP(type=8, id=7, seq=1) / b"ping",
        IP(src="10.0.0.1", dst="10.244.1.5")
        / ICMP(type=3, code=3)
        / IPerror(src="10.244.1.5", dst="10.0.0.1")
        / UDPerror(sport=53, dport=33000),
        IP(src="10.0.0.1", dst="10.244.1.5")
        / ICMP(type=3, code=4)
        / IPerror(src="10.244.1.5", dst="10.0.0.1")
        / TCPerror(sport=80, dport=33000),
        IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", id=9) / UDP(sport=1, dport=2) / (b"x" * 40),
        IP(src="10.0.0.1", dst="10.0.0.2", frag=3, id=9, proto=17) / (b"y" * 24),
        v6 / TCP(sport=40000, dport=80, flags="S"),
        v6 / UDP(sport=40000, dport=53) / b"q",
        v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / UDP(sport=1, dport=2),
        v6 / IPv6ExtHdrFragment(m=1, id=5) / UDP(sport=1, dport=2) / (b"z" * 16),
        v6 / ICMPv6EchoRequest(id=3, seq=4),
        IPv6(src="fd00::a", dst="fd00::1")
        / ICMPv6DestUnreach(code=4)
        / IPv6(src="fd00::1", dst="fd00::a")
        / UDP(sport=1, dport=2),
        v6 / SCTP(sport=1, dport=2),
    ]
    raw = [bytes(p) for p in out]
    eth = [
        bytes(Ether(src=MAC_A, dst=MAC_B) / out[0]),
        bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=10) / out[2]),
        bytes(Ether(src=MAC_A, dst=MAC_B) / out[10]),
        bytes(Ether(src=MAC_A, dst=MAC_B) / out[5]) + b"\x00" * 8,
    ]
    return raw + eth


def flannel_frames() -> list[bytes]:
    """Overlay frames as a node receives them: VXLAN (VNI 1, port 8472) and UDP (port 8285)."""
    inner4 = IP(src="10.244.1.5", dst="10.244.2.7") / TCP(sport=40000, dport=80, flags="S")
    inner6 = IPv6(src="fd00:10:244:1::5", dst="fd00:10:244:2::7") / UDP(sport=1, dport=2)
    outer = IP(src="192.168.0.3", dst="192.168.0.2", flags="DF")
    vx = VXLAN(vni=1, flags=0x08)
    frames = [
        outer / UDP(sport=49152, dport=8472) / vx / Ether(src=MAC_A, dst=MAC_B) / inner4,
        IPv6(src="fd00::3", dst="fd00::2")
        / UDP(sport=49152, dport=8472)
        / vx
        / Ether(src=MAC_A, dst=MAC_B)
        / inner6,
        outer / UDP(sport=8285, dport=8285) / inner4,
        outer / UDP(sport=8285, dport=8285) / inner6,
    ]
    out = [bytes(f) for f in frames]
    out += [bytes(Ether(src=MAC_B, dst=MAC_A) / f) for f in frames[:3]]
    return out


def dumps(cases: Path) -> list[bytes]:
    """Every iptables-restore text of the kube-proxy cases, plus a few hand-written ones."""
    texts: list[str] = []
    for f in sorted(cases.glob("*.json")):
        case = json.loads(f.read_text())
        if case.get("iptables_save"):
            texts.append(case["iptables_save"])
        texts += [s["iptables_save"] for s in case.get("subcases") or [] if s.get("iptables_save")]
    texts += [
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p udp --dport 53 -j NOTRACK\nCOMMIT\n",
        "*mangle\n:PREROUTING ACCEPT [1:2]\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --tcp-flags SYN,RST SYN"
        " -j TCPMSS --clamp-mss-to-pmtu\n-A PREROUTING -j MARK --set-xmark 0x4000/0x4000\nCOMMIT\n",
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n"
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p icmp --icmp-type 8 -j X\n"
        "-A X -m recent --name ping --rcheck --seconds 60 -j DROP\n"
        "-A X -m recent --name ping --set -j ACCEPT\n"
        "-A INPUT -s 10.0.0.0/8 -m multiport --dports 22,80:90 -j REJECT"
        " --reject-with icmp-port-unreachable\n"
        "COMMIT\n",
    ]
    return [t.encode() for t in dict.fromkeys(texts)]


def eval_seeds(cases: Path) -> list[bytes]:
    """A dump and one packet of a flow its case traces: control, seed, u16 length, packet, dump."""
    out: list[bytes] = []
    for f in sorted(cases.glob("*.json")):
        case = json.loads(f.read_text())
        subs = [case, *(case.get("subcases") or [])]
        for sub in subs:
            text, flows = sub.get("iptables_save"), sub.get("flows") or []
            if not text or not flows:
                continue
            for i, flow in enumerate(flows[:2]):
                proto = (flow.get("protocol") or "tcp").lower()
                ip = IPv6 if ":" in flow["sourceIP"] else IP
                l4 = {"udp": UDP, "sctp": SCTP}.get(proto, TCP)(sport=40000 + i, dport=int(flow["destPort"]))
                pkt = bytes(ip(src=flow["sourceIP"], dst=flow["destIP"]) / l4)
                control = (i & 1) | (2 if flow["sourceIP"] == "127.0.0.1" else 0)
                out.append(bytes([control, i]) + len(pkt).to_bytes(2, "big") + pkt + text.encode())
    return out


def write(target: str, seeds: list[bytes]) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    for s in seeds:
        (d / hashlib.sha1(s).hexdigest()[:16]).write_bytes(s)
    print(f"{target}: {len(seeds)} seeds")


def main() -> None:
    cases = Path(sys.argv[1]) if len(sys.argv) > 1 else CASES
    pkts = packets()
    # packet: control byte (link: 0 ip, 1 ethernet, 2 guess; rewrites in the high bits), port, bytes.
    write(
        "packet",
        [bytes([0xFC, 0x1F, 0x90]) + p for p in pkts[:-4]] + [bytes([0x7D, 0, 80]) + p for p in pkts[-4:]],
    )
    # decap: control byte (backend in bits 0-1: vxlan, udp, host-gw, vxlan+gbp; bit 2 ethernet), u16 id.
    frames = flannel_frames()
    backends = [0, 0, 1, 1, 4, 4, 5]
    write(
        "decap",
        [bytes([c, 0, 7]) + f for c, f in zip(backends, frames, strict=False)] + [bytes([2, 0, 1]) + pkts[0]],
    )
    write("parse", dumps(cases))
    write("eval", eval_seeds(cases))


if __name__ == "__main__":
    main()
