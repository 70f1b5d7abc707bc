"""Built-in example manifests (package data), used by the walkthrough and ``kubenat demo``.

``walkthrough()`` is a two-node flannel cluster: pod ``nginxpod`` (containers on ports 80
and 8800, both published as hostPorts) on ``kube-node-1`` (10.96.219.141, pods
192.168.20.0/24), service ``my-first-nginx`` (ClusterIP 192.168.235.209:80, endpoints
192.168.20.2:80 and 192.168.55.5:80 on the two nodes) and ``my-second-nginx`` (LoadBalancer
192.168.156.93:80, NodePort 31150).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
WALKTHROUGH = HERE / "walkthrough.yaml"
WALKTHROUGH_PROXY = HERE / "walkthrough-proxy.yaml"
#: The node the walkthrough looks from, and its IP.
WALKTHROUGH_NODE = "kube-node-1"
WALKTHROUGH_NODE_IP = "10.96.219.141"
#: The userspace proxier's ports in the walkthrough (what ``netstat`` showed on the node).
WALKTHROUGH_PROXY_PORTS = {"default/my-first-nginx:": 43321, "default/my-second-nginx:": 50563}


def path(name: str) -> Path:
    """The path of a bundled example file (``walkthrough.yaml``, ``walkthrough-proxy.yaml``)."""
    candidate = HERE / name
    if not candidate.is_file():
        raise FileNotFoundError(f"no example {name!r}; have: {', '.join(sorted(names()))}")
    return candidate


def names() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def walkthrough() -> Any:
    """The walkthrough cluster as a :class:`kubenat.k8s.Cluster`."""
    from kubenat import k8s

    return k8s.load_file(WALKTHROUGH)


def walkthrough_config(**overrides: Any) -> Any:
    """kube-proxy's configuration on kube-node-1 (a :class:`kubenat.proxy.ProxyConfig`)."""
    from kubenat.proxy import ProxyConfig

    return ProxyConfig.from_file(WALKTHROUGH_PROXY, **overrides).with_cluster(walkthrough())
