"""The walkthrough demo as data: the four network models on the built-in example cluster.

``run(mode)`` builds the example cluster (``kubenat.examples.walkthrough``) and sends one real
packet per scenario. ``kubenat demo`` renders the result; tests check it against the builder,
the evaluator and the flannel code directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubenat import examples
from kubenat.cluster import Cluster, Journey

#: (title, network model, source, destination, protocol, port, explanation)
SCENARIOS: tuple[tuple[str, str, str, str, str, int, str], ...] = (
    (
        "container ↔ container",
        "container-to-container",
        "nginxpod",
        "localhost",
        "tcp",
        8800,
        "nginx and centos share the pause container's network namespace: localhost:8800 reaches "
        "the other container without touching the node's rules.",
    ),
    (
        "pod ↔ pod across nodes",
        "pod-to-pod",
        "nginxpod",
        "192.168.55.5",
        "tcp",
        80,
        "kube-node-1 routes 192.168.55.0/24 to flannel, which wraps the packet for kube-node-2.",
    ),
    (
        "pod → service (ClusterIP)",
        "pod-to-service",
        "nginxpod",
        "192.168.235.209",
        "tcp",
        80,
        "kube-proxy's rules on kube-node-1 pick an endpoint of my-first-nginx and rewrite the "
        "destination; conntrack rewrites the answer back.",
    ),
    (
        "external → NodePort",
        "external-to-internal",
        "external",
        "10.96.219.141",
        "tcp",
        31150,
        "A client outside the cluster reaches my-second-nginx on the node's port 31150.",
    ),
    (
        "external → LoadBalancer",
        "external-to-internal",
        "external",
        "192.168.156.93",
        "tcp",
        80,
        "The load balancer's address 192.168.156.93:80 arrives at kube-node-1.",
    ),
    (
        "external → hostPort",
        "external-to-internal",
        "external",
        "10.96.219.141",
        "tcp",
        8800,
        "nginxpod publishes port 8800 on its node: the hostPort rules send it to the pod.",
    ),
)


@dataclass(frozen=True)
class Scenario:
    title: str
    model: str
    explanation: str
    journey: Journey


@dataclass
class DemoReport:
    """Everything ``kubenat demo`` shows."""

    mode: str
    cluster: Cluster
    scenarios: list[Scenario] = field(default_factory=list)
    listing: str = ""
    listing_node: str = examples.WALKTHROUGH_NODE
    environment: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "nodes": [
                {"name": n.name, "ip": n.ip, "pod_cidr": str(n.pod_cidr), "flannel": n.overlay.backend}
                for n in self.cluster.nodes.values()
            ],
            "scenarios": [
                {"title": s.title, "explanation": s.explanation, **s.journey.to_dict()}
                for s in self.scenarios
            ],
            "listing_node": self.listing_node,
            "nat_listing": self.listing,
            "environment": [f"{k}={v}" for k, v in self.environment],
        }


def build_cluster(mode: str = "iptables", backend: str = "vxlan") -> Cluster:
    """The walkthrough cluster, with kube-proxy in ``mode`` and flannel's ``backend``.

    userspace mode runs on Docker-era nodes (hostPorts published by docker's DOCKER chain, the
    proxier's ports from the walkthrough); iptables mode with the CNI portmap plugin.
    """
    return Cluster(
        examples.walkthrough(),
        mode=mode,
        proxy_config=examples.walkthrough_config(),
        backend=backend,
        hostports="docker" if mode == "userspace" else "cni",
        proxy_ports=examples.WALKTHROUGH_PROXY_PORTS,
    )


def run(mode: str = "iptables", *, backend: str = "vxlan", seed: int = 0) -> DemoReport:
    """Run every scenario once on a fresh example cluster."""
    cluster = build_cluster(mode, backend)
    report = DemoReport(mode, cluster)
    for title, model, source, destination, proto, port, why in SCENARIOS:
        journey = cluster.send(source, destination, proto, port, seed=seed)
        report.scenarios.append(Scenario(title, model, why, journey))
    from kubenat._core import Ruleset

    node = cluster.node(report.listing_node)
    report.listing = Ruleset.parse(node.rules).listing(table="nat")
    report.environment = cluster.environment("default")
    return report
