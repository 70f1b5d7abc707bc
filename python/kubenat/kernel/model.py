"""kubenat's side of a comparison: the node of a Testbed as a ``kubenat.Netfilter``.

The testbed's node (interfaces, addresses, routes) is described to kubenat exactly, so the two
answers are comparable: a probe that arrives from the client enters on the client interface, a
probe sent by the node itself is locally generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubenat.errors import KernelError
from kubenat.kernel.observe import KernelObservation, compare
from kubenat.kernel.testbed import Testbed


def _core_class(name: str) -> Any:
    import kubenat
    from kubenat import _core

    return getattr(kubenat, name, None) or getattr(_core, name, None)


def evaluator_available() -> bool:
    """Whether this build of kubenat has the evaluator (``Netfilter``) and the parser (``Ruleset``)."""
    return _core_class("Netfilter") is not None and _core_class("Ruleset") is not None


@dataclass(frozen=True)
class Verdicts:
    """kubenat's possible results for one probe (several when statistic rules branch)."""

    outcomes: list[tuple[float, Any]]
    """(probability, result) pairs."""

    def explain(self, observation: KernelObservation) -> list[str]:
        """Empty when the kernel's observation is one of kubenat's outcomes with a positive
        probability; otherwise the differences to the most likely outcome."""
        best: list[str] | None = None
        for probability, result in sorted(self.outcomes, key=lambda o: -o[0]):
            if probability <= 0:
                continue
            diffs = compare(observation, result)
            if not diffs:
                return []
            if best is None:
                best = diffs
        return best or ["kubenat gave no outcome with a positive probability"]

    @property
    def certain(self) -> Any | None:
        """The result when there is exactly one possible outcome."""
        live = [result for probability, result in self.outcomes if probability > 0]
        return live[0] if len(live) == 1 else None


class Model:
    """``kubenat.Netfilter`` for the node of ``testbed`` with the given rules."""

    def __init__(self, rules: Any, testbed: Testbed) -> None:
        if not evaluator_available():
            raise KernelError("this build of kubenat has no evaluator (kubenat.Netfilter)")
        ruleset = rules if hasattr(rules, "save") else _core_class("Ruleset").parse(str(rules))
        self.testbed = testbed
        self.netfilter = _core_class("Netfilter")(
            ruleset,
            local_addresses=testbed.local_addresses,
            interfaces=testbed.interfaces,
            routes=testbed.routes,
            route_localnet=testbed.route_localnet,
        )

    def origin(self, path: str) -> str:
        """Where a probe comes from, as kubenat names it."""
        return "local" if path == "out" else self.testbed.link("client").node_if

    def outcomes(self, packet: bytes, path: str) -> Verdicts:
        """Every result kubenat gives for this packet as a fresh connection, with its probability."""
        import kubenat

        found = self.netfilter.outcomes(kubenat.Packet.from_bytes(packet), from_=self.origin(path))
        return Verdicts([(float(item.probability), item.result) for item in found])

    def inject(self, packets: list[bytes], path: str) -> list[KernelObservation]:
        """``testbed.inject_batch`` with the packets whose source port (or ICMP identifier) NAT
        changes or the kernel picks sent each in a round of its own.

        Such a port may land on the port another connection of the same round has; the kernel
        then moves one of them or, with nowhere to move it (a single port), drops the packet.
        kubenat judges each packet as a fresh connection on its own, so such a clash would look
        like a disagreement (by chance, and only sometimes). Alone in a round (conntrack is
        flushed between rounds) nothing can clash. (A destination port the kernel picks cannot
        clash: connections from different sources differ anyway.)"""
        port_fields = {"sport", "icmp_id"}

        def moves_source_port(result: Any) -> bool:
            # Picked by the kernel, or rewritten to a fixed port (--to-ports 40000): either may
            # meet another connection's port; a kept port cannot (probes have distinct ones).
            return bool(port_fields & set(result.chosen)) or result.sport != result.original.sport

        apart = [
            any(moves_source_port(result) for _, result in self.outcomes(packet, path).outcomes)
            for packet in packets
        ]
        shared = [i for i, alone in enumerate(apart) if not alone]
        found: dict[int, KernelObservation] = dict(
            zip(shared, self.testbed.inject_batch([packets[i] for i in shared], path=path), strict=True)
        )
        for i, alone in enumerate(apart):
            if alone:
                found[i] = self.testbed.inject_batch([packets[i]], path=path)[0]
        return [found[i] for i in range(len(packets))]

    def process(self, packet: bytes, path: str, seed: int = 0) -> bytes | None:
        """The bytes kubenat says leave the node for this packet (None when none do)."""
        result: bytes | None = self.netfilter.process(packet, link="ip", from_=self.origin(path), seed=seed)
        return result
