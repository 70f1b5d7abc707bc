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
