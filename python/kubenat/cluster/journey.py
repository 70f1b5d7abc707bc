"""A packet's journey: the hops it makes, each with the bytes that exist at that point."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubenat._core import Packet


@dataclass(frozen=True)
class Hop:
    """One step of a journey.

    ``kind`` is one of ``namespace`` (inside a pod's shared network namespace), ``veth``
    (pod ↔ node bridge), ``netfilter`` (a node's hooks; ``rules`` lists the rules that fired),
    ``proxy`` (kube-proxy's userspace process choosing an endpoint), ``encap`` / ``decap``
    (flannel), ``wire`` (between nodes on the underlay), ``deliver`` (a socket accepts it) or
    ``drop``. ``data`` is the packet at that point: an IP packet (``link == "ip"``) or, for the
    overlay, the Ethernet frame on the wire (``link == "ethernet"``).
    """

    kind: str
    where: str
    summary: str
    data: bytes
    link: str = "ip"
    rules: tuple[str, ...] = ()
    nat: tuple[str, ...] = ()
    #: At the first node's rules: every possible result with its exact probability.
    choices: tuple[str, ...] = ()

    @property
    def packet(self) -> Packet:
        """The hop's bytes dissected."""
        return Packet.from_bytes(self.data, link=self.link)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "summary": self.summary,
            "link": self.link,
            "bytes": self.data.hex(),
            "rules": list(self.rules),
            "nat": list(self.nat),
            "choices": list(self.choices),
        }


@dataclass(frozen=True)
class Journey:
    """Where one packet went, hop by hop, and how the reply came back.

    ``model`` names the Kubernetes network model exercised: ``container-to-container``,
    ``pod-to-pod``, ``pod-to-service`` or ``external-to-internal`` (``node-to-...`` for traffic
    a node itself starts). ``delivered_to`` says which socket got it (``pod default/web
    container nginx :80``), or is None when it was dropped or rejected.
    """

    model: str
    source: str
    destination: str
    protocol: str
    port: int
    hops: tuple[Hop, ...]
    reply: tuple[Hop, ...] = ()
    delivered_to: str | None = None
    endpoint: str | None = None
    verdict: str = "ACCEPT"
    notes: tuple[str, ...] = field(default=())

    @property
    def delivered(self) -> bool:
        return self.delivered_to is not None

    @property
    def first(self) -> Packet:
        """The packet as the source sent it."""
        return self.hops[0].packet

    @property
    def arrived(self) -> Packet | None:
        """The packet as the destination socket received it (None when it never arrived)."""
        if not self.delivered:
            return None
        return next(h.packet for h in reversed(self.hops) if h.link == "ip")

    def encapsulated(self) -> list[Hop]:
        """The overlay frames on the wire (flannel encapsulation), in order."""
        return [h for h in self.hops + self.reply if h.kind == "encap"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "source": self.source,
            "destination": self.destination,
            "protocol": self.protocol,
            "port": self.port,
            "verdict": self.verdict,
            "delivered_to": self.delivered_to,
            "endpoint": self.endpoint,
            "hops": [h.to_dict() for h in self.hops],
            "reply": [h.to_dict() for h in self.reply],
            "notes": list(self.notes),
        }

    def write_pcap(self, path: str | Path) -> int:
        """Writes every hop's bytes (request then reply) as Ethernet frames to a pcap file;
        bare IP packets get a placeholder Ethernet header. Returns the number of frames."""
        return write_pcap(path, [self])


def write_pcap(path: str | Path, journeys: list[Journey], *, overlay_only: bool = False) -> int:
    """Writes the hops of several journeys to one pcap file (one frame per hop); with
    ``overlay_only``, just the flannel frames on the underlay wire."""
    from kubenat.pcap import Writer

    count = 0
    with open(path, "wb") as f:
        writer = Writer(f)
        for journey in journeys:
            hops = journey.encapsulated() if overlay_only else journey.hops + journey.reply
            for hop in hops:
                frame = hop.data if hop.link == "ethernet" else hop.packet.with_ethernet().to_bytes()
                writer.write(frame, ts_ns=count * 1000)
                count += 1
    return count
