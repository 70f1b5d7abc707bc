"""kubenat: where does this packet go, and what bytes come out?

Kubernetes NAT (kube-proxy's iptables rules), netfilter evaluation and flannel overlays,
computed offline with a Rust core.
"""

from __future__ import annotations

from kubenat import _core, flannel
from kubenat._core import (  # parser
    Classifier,  # speed
    LeanClassifier,  # bench
    Packet,
    Rule,
    Ruleset,
)
from kubenat.errors import (
    ConfigError,
    DecapError,
    EvalError,
    InternalError,
    InvalidArgument,
    KernelError,
    KubenatError,
    LimitError,
    ManifestError,
    PacketError,
    ParseError,
)
from kubenat.flannel import Overlay

__version__: str = _core.__version__

# --- proxy ---
from kubenat import k8s, proxy

# --- evaluator ---
from kubenat._core import Connection, Flow, Netfilter, Outcome, Result, TraceStep

__all__ = [
    "Classifier",  # speed
    "ConfigError",
    "Connection",  # evaluator
    "DecapError",
    "EvalError",
    "Flow",  # evaluator
    "InternalError",
    "InvalidArgument",
    "KernelError",
    "KubenatError",
    "LeanClassifier",  # bench
    "LimitError",
    "ManifestError",
    "Netfilter",  # evaluator
    "Outcome",  # evaluator
    "Overlay",
    "Packet",
    "PacketError",
    "ParseError",
    "Result",  # evaluator
    "Rule",  # parser
    "Ruleset",  # parser
    "TraceStep",  # evaluator
    "__version__",
    "flannel",
    "k8s",
    "proxy",
]
