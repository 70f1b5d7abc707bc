"""scapy interop for :class:`kubenat.Packet` (the optional ``scapy`` extra).

scapy is imported only when one of these functions runs, so ``kubenat.Packet`` works without it.
``Packet.from_scapy`` and ``Packet.to_scapy`` call the functions here.
"""

from __future__ import annotations

from typing import Any

from kubenat._core import Packet


def _scapy() -> Any:
    try:
        import scapy.all as scapy_all
    except ImportError as e:
        raise ImportError("scapy interop needs scapy: pip install 'kubenat[scapy]'") from e
    return scapy_all


def from_scapy(p: Any) -> Packet:
    """Converts a scapy packet to a :class:`kubenat.Packet`.

    An ``Ether`` at the top keeps the Ethernet header; otherwise the first ``IP`` or ``IPv6``
    layer is taken (so ``CookedLinux()/IP()/...`` works too). Lengths and checksums left unset
    in scapy are computed by scapy when it serializes.

    Raises:
        PacketError: the bytes scapy produced cannot be dissected.
        ValueError: the scapy packet has no IP layer.
    """
    s = _scapy()
    if isinstance(p, s.Ether):
        return Packet.from_bytes(bytes(p), link="ethernet")
    for layer in (s.IP, s.IPv6):
        if isinstance(p, layer):
            return Packet.from_bytes(bytes(p), link="ip")
    for layer in (s.IP, s.IPv6):
        if p.haslayer(layer):
            return Packet.from_bytes(bytes(p[layer]), link="ip")
    raise ValueError(f"scapy packet {p.summary()!r} has no IP or IPv6 layer")


def to_scapy(pkt: Packet) -> Any:
    """Converts a :class:`kubenat.Packet` to a scapy packet (``Ether`` or ``IP``/``IPv6`` on top)."""
    s = _scapy()
    data = bytes(pkt)
    if pkt.link == "ethernet":
        return s.Ether(data)
    return s.IP(data) if pkt.family == 4 else s.IPv6(data)


__all__ = ["from_scapy", "to_scapy"]


# --- flannel ---
# scapy's own defaults are wrong for flannel: `UDP()/VXLAN()` uses port 4789, and
# `VXLAN()/Ether()` builds flags 0x0C with NextProtocol 3 (VXLAN-GPE), which Linux drops.

#: The Linux vxlan driver's default port, which flannel's VXLAN backend uses.
FLANNEL_VXLAN_PORT = 8472
#: flannel's UDP backend port.
FLANNEL_UDP_PORT = 8285


def bind_flannel_layers(port: int = FLANNEL_UDP_PORT) -> None:
    """Teaches scapy the UDP backend: a datagram to or from ``port`` carries a bare IPv4 packet.

    (UDP 8472 already dissects as VXLAN in scapy.)
    """
    from scapy.layers.inet import IP, UDP
    from scapy.packet import bind_bottom_up, bind_layers

    bind_layers(UDP, IP, dport=port)
    bind_bottom_up(UDP, IP, sport=port)


def flannel_vxlan(
    inner: Any,
    *,
    outer_src: str,
    outer_dst: str,
    vtep_src: str,
    vtep_dst: str,
    src_mac: str | None = None,
    dst_mac: str | None = None,
    vni: int = 1,
    sport: int = 32768,
    dport: int = FLANNEL_VXLAN_PORT,
    udp_checksum: bool = True,
    ip_id: int = 0,
) -> Any:
    """A flannel VXLAN frame as scapy layers: [Ether /] IP(TTL 64, no DF) / UDP(dport 8472) /
    VXLAN(flags 0x08, vni) / Ether(vtep_src → vtep_dst) / inner.

    ``inner`` is an IP packet (bytes or scapy). The outer TOS carries the inner ECN bits as the
    kernel sets them (CE sent as ECT(0)); ``udp_checksum=False`` gives checksum 0 (noudpcsum).
    """
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    raw = bytes(inner)
    v6 = bool(raw) and raw[0] >> 4 == 6
    inner_pkt = IPv6(raw) if v6 else IP(raw)
    ds = ((raw[0] & 0x0F) << 4 | raw[1] >> 4) if v6 else (raw[1] if len(raw) > 1 else 0)
    tos = 2 if ds & 3 == 3 else ds & 3
    udp = UDP(sport=sport, dport=dport) if udp_checksum else UDP(sport=sport, dport=dport, chksum=0)
    if ":" in outer_dst:
        outer: Any = IPv6(src=outer_src, dst=outer_dst, hlim=64, tc=tos, fl=0)
    else:
        outer = IP(src=outer_src, dst=outer_dst, ttl=64, tos=tos, flags=0, id=ip_id)
    pkt = outer / udp / VXLAN(flags=0x08, vni=vni) / Ether(src=vtep_src, dst=vtep_dst) / inner_pkt
    if src_mac is not None and dst_mac is not None:
        return Ether(src=src_mac, dst=dst_mac) / pkt
    return pkt


def flannel_udp(
    inner: Any,
    *,
    outer_src: str,
    outer_dst: str,
    port: int = FLANNEL_UDP_PORT,
    src_mac: str | None = None,
    dst_mac: str | None = None,
    ip_id: int = 0,
) -> Any:
    """A flannel UDP-backend datagram as scapy layers: [Ether /] IP(DF, ID ``ip_id``, TTL 64) /
    UDP(port → port) / the bare inner IPv4 packet (pass it as the proxy sends it, TTL already
    decremented). The kernel picks the IP ID (not predictable, not 0 on current kernels)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    bind_flannel_layers(port)
    pkt = (
        IP(src=outer_src, dst=outer_dst, ttl=64, flags="DF", id=ip_id)
        / UDP(sport=port, dport=port)
        / IP(bytes(inner))
    )
    if src_mac is not None and dst_mac is not None:
        return Ether(src=src_mac, dst=dst_mac) / pkt
    return pkt


__all__ += ["FLANNEL_UDP_PORT", "FLANNEL_VXLAN_PORT", "bind_flannel_layers", "flannel_udp", "flannel_vxlan"]
