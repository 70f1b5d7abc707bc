"""``kubenat.proxy.build``: manifests + kube-proxy configuration -> the rules a node runs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from kubenat.errors import InvalidArgument
from kubenat.k8s import Cluster, load
from kubenat.proxy.chains import canonical_order
from kubenat.proxy.config import ProxyConfig

MODES = ("iptables", "userspace")


def make_config(config: Any = None, **options: Any) -> ProxyConfig:
    """A :class:`ProxyConfig` from a config object, a KubeProxyConfiguration file or mapping, and options."""
    options = {k: v for k, v in options.items() if v is not None}
    if config is None:
        return ProxyConfig(**options)
    if isinstance(config, ProxyConfig):
        return config.replace(**options) if options else config
    if isinstance(config, (str, os.PathLike)):
        return ProxyConfig.from_file(config, **options)
    if isinstance(config, Mapping):
        return ProxyConfig.from_mapping(config, **options)
    raise InvalidArgument(
        f"config: expected a ProxyConfig, a file path or a mapping, got {type(config).__name__}",
        what="config",
        reason="wrong type",
    )


def build_text(
    objects: Any,
    mode: str = "iptables",
    config: Any = None,
    *,
    restore_payload: bool = False,
    order: str = "canonical",
    proxy_ports: Mapping[str, int] | None = None,
    seed: int = 0,
    previous_chains: Iterable[str] = (),
    **options: Any,
) -> str:
    """The rules kube-proxy writes for these objects, as iptables-save text.

    ``objects`` is anything :func:`kubenat.k8s.load` accepts. ``config`` is a
    :class:`ProxyConfig`, a KubeProxyConfiguration file path or mapping; keyword ``options``
    (``node_name=``, ``node_ips=``, ``cluster_cidrs=``, ``version=``, ...) override it.

    iptables mode: with ``restore_payload=True`` exactly the filter+nat text kube-proxy hands to
    ``iptables-restore`` (in its canonical test order); by default a complete ruleset (built-in
    chains, the jump rules kube-proxy ensures, the canary chains) that loads into an empty kernel.
    userspace mode: the 1.1-era proxier's nat rules; ``proxy_ports`` maps ``ns/name:port`` (or
    ``name``) to the local proxy port, other ports are allocated deterministically from ``seed``.
    ``order="write"`` keeps the restore payload in the order kube-proxy writes it (top-level
    chains first, rules as generated, services by namespace/name where kube-proxy's map order is
    random) instead of kube-proxy's canonical test order.
    ``previous_chains`` (iptables mode) names the nat chains left by the previous sync: stale
    service chains are flushed and deleted with ``-X`` as kube-proxy does.
    """
    if mode not in MODES:
        raise InvalidArgument(
            f"mode: {mode!r} is not one of {', '.join(MODES)}", what="mode", reason="unknown mode"
        )
    cluster = objects if isinstance(objects, Cluster) else load(objects)
    cfg = make_config(config, **options)
    if mode == "userspace":
        from kubenat.proxy.userspace import build_text as userspace_text

        return userspace_text(cluster, cfg, proxy_ports=proxy_ports or {}, seed=seed)
    from kubenat.proxy import full, iptables

    tables = iptables.restore_tables(cluster, cfg, previous_chains)
    if order not in ("canonical", "write"):
        raise InvalidArgument(f"order: {order!r} is not canonical or write", what="order", reason="unknown")
    if restore_payload:
        return "".join(t.text() for t in (canonical_order(tables) if order == "canonical" else tables))
    return full.complete_text(tables)


def build(objects: Any, mode: str = "iptables", config: Any = None, **kwargs: Any) -> Any:
    """Like :func:`build_text`, parsed into a ``kubenat.Ruleset`` when the parser is available."""
    text = build_text(objects, mode, config, **kwargs)
    import kubenat

    ruleset = getattr(kubenat, "Ruleset", None)
    if ruleset is None:
        return text
    return ruleset.parse(text)
