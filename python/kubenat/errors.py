"""kubenat's exceptions. Every one says what went wrong and where.

The Rust core raises these too (``kubenat._core`` imports them), and sets the structured
fields as attributes: ``ParseError.line``, ``PacketError.offset``, ``DecapError.kind`` ...
"""

from __future__ import annotations

from typing import Any


class KubenatError(Exception):
    """Base class of every error kubenat raises on bad input."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        for name, value in fields.items():
            setattr(self, name, value)


class PacketError(KubenatError, ValueError):
    """Packet bytes that cannot be read. Attributes: ``layer``, ``field``, ``offset``, ``reason``."""


class ParseError(KubenatError, ValueError):
    """iptables-save text that cannot be read. Attributes: ``line``, ``column``, ``text``, ``reason``."""


class DecapError(KubenatError, ValueError):
    """A frame the overlay's receive path would drop. Attributes: ``kind``, ``offset``, ``reason``."""


class EvalError(KubenatError):
    """Evaluation could not proceed. Attribute: ``reason``."""


class LimitError(KubenatError, ValueError):
    """An input exceeded a resource bound. Attributes: ``what``, ``limit``, ``actual``."""


class InvalidArgument(KubenatError, ValueError):
    """An argument to an API is invalid. Attributes: ``what``, ``reason``."""


class ManifestError(KubenatError, ValueError):
    """A Kubernetes manifest that cannot be used. Attributes: ``object``, ``path``, ``reason``."""


class ConfigError(KubenatError, ValueError):
    """A configuration file (kube-proxy, flannel) that cannot be used. Attributes: ``source``, ``field``."""


class KernelError(KubenatError):
    """The kernel oracle could not set up or run a scenario."""


class InternalError(KubenatError):
    """A bug in kubenat: a Rust panic caught at the boundary. Please report it."""


__all__ = [
    "ConfigError",
    "DecapError",
    "EvalError",
    "InternalError",
    "InvalidArgument",
    "KernelError",
    "KubenatError",
    "LimitError",
    "ManifestError",
    "PacketError",
    "ParseError",
]
