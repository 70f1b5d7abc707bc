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


def evaluator_available() -> bool:
    """Whether this build of kubenat has the evaluator (``kubenat.Netfilter`` and ``kubenat.Ruleset``)."""
    import kubenat

    return hasattr(kubenat, "Netfilter") and hasattr(kubenat, "Ruleset")


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


class Model:
    """``kubenat.Netfilter`` for the node of ``testbed`` with the given rules."""

    def __init__(self, rules: Any, testbed: Testbed) -> None:
        import kubenat

        if not evaluator_available():
            raise KernelError("this build of kubenat has no evaluator (kubenat.Netfilter)")
        ruleset = rules if hasattr(rules, "save") else kubenat.Ruleset.parse(str(rules))
        self.testbed = testbed
        self.netfilter = kubenat.Netfilter(  # type: ignore[attr-defined]
            ruleset,
            local_addresses=testbed.local_addresses,
            interfaces=testbed.interfaces,
            routes=testbed.routes,
            # The testbed's node sets net.ipv4.conf.*.route_localnet=1 (as kube-proxy does).
            route_localnet=True,
        )

    def origin(self, path: str) -> str:
        """Where a probe comes from, as kubenat names it."""
        return "local" if path == "out" else self.testbed.link("client").node_if

    def outcomes(self, packet: bytes, path: str) -> Verdicts:
        """Every result kubenat gives for this packet as a fresh connection, with its probability."""
        import kubenat

        pkt = kubenat.Packet.from_bytes(packet)
        found = self.netfilter.outcomes(pkt, origin=self.origin(path))
        pairs = []
        for item in found:
            probability = getattr(item, "probability", None)
            result = getattr(item, "result", item)
            if probability is None and isinstance(item, tuple):
                probability, result = item
            pairs.append((float(probability if probability is not None else 1.0), result))
        return Verdicts(pairs)
