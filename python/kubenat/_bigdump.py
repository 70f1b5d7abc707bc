"""Large kube-proxy-shaped iptables-save dumps, for resource-bound tests and measurements.

The text has the shape kube-proxy's iptables mode writes (filter and nat tables, a
``KUBE-SVC-*`` chain per service port, ``KUBE-SEP-*`` chains per endpoint with ``statistic``
branches, masquerade marking, node ports), about 14 lines per service with two endpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

HEAD_FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
"""


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()


def service_ip(i: int) -> str:
    """The cluster IP of service ``i`` (10.96.0.0/12 holds a million)."""
    return f"10.{96 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def endpoint_ip(i: int, e: int) -> str:
    """The address of endpoint ``e`` of service ``i`` (10.128.0.0/9)."""
    n = i * 16 + e if e < 16 else (i << 14) + e
    return f"10.{128 + ((n >> 16) & 127)}.{(n >> 8) & 255}.{n & 255}"


def lines(services: int, endpoints: int | None = None, *, node_ports: bool = True) -> Iterator[str]:
    """The dump in pieces of whole lines. ``endpoints`` per service, by default 2 and 3 in turn
    (about 14 lines per service: 100k services make 1.4M lines)."""
    yield HEAD_FILTER
    yield "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    yield ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
    yield ":KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n"
    names = []
    for i in range(services):
        svc = f"ns{i % 97}/svc{i}:http"
        chain = "KUBE-SVC-" + _h(svc + "tcp")
        count = endpoints if endpoints is not None else 2 + i % 2
        seps = ["KUBE-SEP-" + _h(f"{svc}{endpoint_ip(i, e)}") for e in range(count)]
        names.append((i, svc, chain, seps))
        yield f":{chain} - [0:0]\n" + "".join(f":{s} - [0:0]\n" for s in seps)
    yield '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
    yield '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
    yield '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING\n'
    yield "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n"
    yield "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
    yield "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
    yield "-A KUBE-POSTROUTING -m comment --comment"
    yield ' "kubernetes service traffic requiring SNAT" -j MASQUERADE\n'
    for i, svc, chain, seps in names:
        ip = service_ip(i)
        yield (
            f'-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment "{svc} cluster IP" -m tcp --dport 80'
            f" -j {chain}\n"
        )
        if node_ports:
            yield (
                f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{svc}" -m tcp --dport {30000 + i % 2768}'
                f" -j {chain}\n"
            )
        yield (
            f'-A {chain} ! -s 10.0.0.0/8 -d {ip}/32 -p tcp -m comment --comment "{svc} cluster IP" -m tcp'
            " --dport 80 -j KUBE-MARK-MASQ\n"
        )
        for e, sep in enumerate(seps):
            left = len(seps) - e
            chance = "" if left == 1 else f" -m statistic --mode random --probability {1 / left:.11f}"
            ep = endpoint_ip(i, e)
            yield f'-A {chain} -m comment --comment "{svc} -> {ep}:8080"{chance} -j {sep}\n'
            yield f'-A {sep} -s {ep}/32 -m comment --comment "{svc}" -j KUBE-MARK-MASQ\n'
            yield f'-A {sep} -p tcp -m comment --comment "{svc}" -m tcp -j DNAT --to-destination {ep}:8080\n'
    yield '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" -m addrtype --dst-type LOCAL'
    yield " -j KUBE-NODEPORTS\nCOMMIT\n"


def text(services: int, endpoints: int | None = None, *, node_ports: bool = True) -> str:
    """The whole dump as one string."""
    return "".join(lines(services, endpoints, node_ports=node_ports))
