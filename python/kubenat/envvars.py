"""The service environment variables kubelet injects into containers.

For every service of the pod's namespace (and the ``kubernetes`` service of ``default``)
with a cluster IP, kubelet's ``envvars.FromServices`` writes, in this order::

    MY_FIRST_NGINX_SERVICE_HOST=192.168.235.209
    MY_FIRST_NGINX_SERVICE_PORT=80                 (first port)
    MY_FIRST_NGINX_SERVICE_PORT_<NAME>=...         (each named port)
    MY_FIRST_NGINX_PORT=tcp://192.168.235.209:80   (first port, Docker links style)
    MY_FIRST_NGINX_PORT_80_TCP=tcp://192.168.235.209:80
    MY_FIRST_NGINX_PORT_80_TCP_PROTO=tcp
    MY_FIRST_NGINX_PORT_80_TCP_PORT=80
    MY_FIRST_NGINX_PORT_80_TCP_ADDR=192.168.235.209    (the last four for each port)

kubelet collects the services in a map, so the order *between* services is not defined;
kubenat sorts them by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubenat.k8s import Cluster, Service, load

#: Services of the ``default`` namespace every pod gets, even with enableServiceLinks false.
MASTER_SERVICES = ("kubernetes",)


def env_name(name: str) -> str:
    """``makeEnvVariableName``: upper case, dashes to underscores."""
    return name.replace("-", "_").upper()


def _join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def from_services(services: Iterable[Service]) -> list[tuple[str, str]]:
    """``envvars.FromServices``: the variables of these services, in kubelet's order."""
    out: list[tuple[str, str]] = []
    for svc in services:
        if svc.cluster_ip in ("", "None") or not svc.ports:
            continue
        prefix = env_name(svc.name)
        out.append((f"{prefix}_SERVICE_HOST", svc.cluster_ip))
        name = f"{prefix}_SERVICE_PORT"
        out.append((name, str(svc.ports[0].port)))
        for port in svc.ports:
            if port.name:
                out.append((f"{name}_{env_name(port.name)}", str(port.port)))
        for i, port in enumerate(svc.ports):
            protocol = port.protocol or "TCP"
            url = f"{protocol.lower()}://{_join_host_port(svc.cluster_ip, port.port)}"
            if i == 0:
                out.append((f"{prefix}_PORT", url))
            port_prefix = f"{prefix}_PORT_{port.port}_{protocol.upper()}"
            out += [
                (port_prefix, url),
                (f"{port_prefix}_PROTO", protocol.lower()),
                (f"{port_prefix}_PORT", str(port.port)),
                (f"{port_prefix}_ADDR", svc.cluster_ip),
            ]
    return out


def service_env(
    objects: Any, namespace: str = "default", *, enable_service_links: bool = True
) -> list[tuple[str, str]]:
    """The variables kubelet injects into a pod of ``namespace`` (``getServiceEnvVarMap``).

    Services of the namespace (when ``enable_service_links``) plus the master services of
    ``default``; a namespace service shadows a master service of the same name.
    """
    cluster = objects if isinstance(objects, Cluster) else load(objects)
    chosen: dict[str, Service] = {}
    for svc in cluster.services:
        if svc.cluster_ip in ("", "None"):
            continue
        if svc.namespace == "default" and svc.name in MASTER_SERVICES:
            chosen.setdefault(svc.name, svc)
        elif svc.namespace == namespace and enable_service_links:
            chosen[svc.name] = svc
    return from_services(chosen[name] for name in sorted(chosen))


def format_env(pairs: Iterable[tuple[str, str]]) -> str:
    """``NAME=value`` lines, as ``env`` prints them inside the container."""
    return "".join(f"{k}={v}\n" for k, v in pairs)
