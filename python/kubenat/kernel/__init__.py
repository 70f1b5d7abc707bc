"""The kernel oracle: real Linux netfilter in throwaway network namespaces, as a judge for kubenat.

Needs root and ``ip``, ``iptables-restore``/``ip6tables-restore``, ``conntrack``, ``nft``,
``ethtool`` (and ``nfacct`` for rules that use it). Everything happens inside namespaces named
``kn-<random>-...`` that the :class:`Testbed` creates and always deletes.
"""

from __future__ import annotations

from kubenat.kernel._netns import created_by_this_process, existing
from kubenat.kernel._wire import build as build_packet
from kubenat.kernel.conntrack import ConntrackEntry, ConntrackTuple
from kubenat.kernel.observe import KernelObservation, compare
from kubenat.kernel.testbed import Link, Testbed


def leftover_namespaces() -> list[str]:
    """``kn-`` namespaces created by this process that still exist (should always be empty)."""
    mine = created_by_this_process()
    return [name for name in existing() if name in mine]


__all__ = [
    "ConntrackEntry",
    "ConntrackTuple",
    "KernelObservation",
    "Link",
    "Testbed",
    "build_packet",
    "compare",
    "leftover_namespaces",
]
