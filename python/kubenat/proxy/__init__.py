"""kube-proxy's rules, rebuilt from manifests: iptables mode (current) and userspace mode (1.1-1.2)."""

from __future__ import annotations

from kubenat.proxy.build import build, build_text
from kubenat.proxy.compose import node_text
from kubenat.proxy.config import NFACCT_COUNTERS, ProxyConfig

__all__ = ["NFACCT_COUNTERS", "ProxyConfig", "build", "build_text", "node_text"]
