"""The whole cluster, end to end: a packet leaves a container — where does it go, and what arrives?

``Cluster(manifests, mode="iptables"|"userspace", backend="vxlan"|"udp"|"host-gw")`` builds every
node (kube-proxy rules, hostPort rules, flannel overlay, conntrack); ``cluster.send(source,
destination, protocol, port)`` returns the :class:`Journey`, hop by hop with real bytes, and the
reply path back through conntrack.
"""

from __future__ import annotations

from kubenat.cluster.journey import Hop, Journey, write_pcap
from kubenat.cluster.model import Cluster
from kubenat.cluster.nodes import SimNode

__all__ = ["Cluster", "Hop", "Journey", "SimNode", "write_pcap"]
