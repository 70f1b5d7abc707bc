"""Chain names, probabilities and the restore-input text layout, exactly as kube-proxy makes them."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
FW_PREFIX = "KUBE-FW-"
EXT_PREFIX = "KUBE-EXT-"
SEP_PREFIX = "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, FW_PREFIX, EXT_PREFIX)

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
KUBE_FIREWALL = "KUBE-FIREWALL"


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    """sha256 of ``spn + protocol``, base32 (RFC 4648), first 16 characters."""
    digest = hashlib.sha256((service_port_name + protocol).encode()).digest()
    # 16 base32 characters encode exactly the first 10 bytes.
    return base64.b32encode(digest[:10]).decode()


def svc_chain(spn: str, protocol: str) -> str:
    """KUBE-SVC-*: endpoints for Cluster traffic policy."""
    return SVC_PREFIX + port_proto_hash(spn, protocol)


def svl_chain(spn: str, protocol: str) -> str:
    """KUBE-SVL-*: endpoints for Local traffic policy."""
    return SVL_PREFIX + port_proto_hash(spn, protocol)


def fw_chain(spn: str, protocol: str) -> str:
    """KUBE-FW-*: loadBalancerSourceRanges filtering."""
    return FW_PREFIX + port_proto_hash(spn, protocol)


def ext_chain(spn: str, protocol: str) -> str:
    """KUBE-EXT-*: the entry for external destinations (NodePort, LB, externalIPs)."""
    return EXT_PREFIX + port_proto_hash(spn, protocol)


def sep_chain(spn: str, protocol: str, endpoint: str) -> str:
    """KUBE-SEP-*: one endpoint (``endpoint`` is ``ip:port`` or ``[ip6]:port``)."""
    digest = hashlib.sha256((spn + protocol + endpoint).encode()).digest()
    return SEP_PREFIX + base64.b32encode(digest[:10]).decode()


def service_port_name(namespace: str, name: str, port_name: str) -> str:
    """``ServicePortName.String()``: ``ns/name`` plus ``:port`` when the port is named."""
    base = f"{namespace}/{name}"
    return f"{base}:{port_name}" if port_name else base


def endpoint_string(ip: str, port: int) -> str:
    """``net.JoinHostPort(ip, port)``."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def probability(n: int) -> str:
    """``fmt.Sprintf("%0.10f", 1.0/float64(n))``."""
    return f"{1.0 / n:.10f}"


def quoted(text: str) -> str:
    """A comment argument as kube-proxy writes it: quoted when it has spaces."""
    return f'"{text}"'


@dataclass
class TableBuffer:
    """One table of restore input: chain lines and rule lines, in the order kube-proxy writes them."""

    name: str
    chains: list[str] = field(default_factory=list)
    rules: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    _declared: set[str] = field(default_factory=set, repr=False)

    def chain(self, name: str) -> None:
        if not self._declared:
            self._declared.update(self.chains)
        if name not in self._declared:
            self._declared.add(name)
            self.chains.append(name)

    def rule(self, chain: str, *args: str) -> None:
        self.rules.append((chain, " ".join(["-A", chain, *[a for a in args if a != ""]])))

    def text(self) -> str:
        """The table exactly as kube-proxy's buffers concatenate it."""
        lines = [f"*{self.name}"]
        lines += [f":{c} - [0:0]" for c in self.chains]
        lines += [text for _, text in self.rules]
        lines += [f"-X {c}" for c in self.deleted]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"


def _comment_value(rule: str) -> str:
    """The ``--comment`` argument of a rule as kube-proxy's test parser reads it (quotes stripped)."""
    marker = " --comment "
    at = rule.find(marker)
    if at < 0:
        return ""
    rest = rule[at + len(marker) :]
    if rest.startswith('"'):
        return rest[1 : rest.index('"', 1)]
    return rest.split(" ", 1)[0]


def _service_key(rule: str) -> str:
    """The service a KUBE-SERVICES / KUBE-NODEPORTS rule belongs to: its comment up to a space or ':'."""
    value = _comment_value(rule)
    for stop in (" ", ":"):
        value = value.split(stop, 1)[0]
    return value


def _chain_order(name: str) -> tuple[int, str]:
    if name == KUBE_NODEPORTS:
        return (0, "")
    if name == KUBE_SERVICES:
        return (1, "")
    if name.startswith("KUBE-"):
        return (2, name)
    return (3, name)


def canonical_order(tables: list[TableBuffer]) -> list[TableBuffer]:
    """kube-proxy's test canonicalisation (``sortIPTablesRules``).

    Tables by name; chains KUBE-NODEPORTS, KUBE-SERVICES, other KUBE-* alphabetically, then the
    rest; rules grouped by chain in that order; KUBE-NODEPORTS and KUBE-SERVICES rules stably
    sorted by service, with nat KUBE-SERVICES's "must be the last rule" jump kept last.
    """
    out = []
    for table in sorted(tables, key=lambda t: t.name):
        chains = sorted(table.chains, key=_chain_order)
        by_chain: dict[str, list[str]] = {c: [] for c in chains}
        for chain, text in table.rules:
            by_chain.setdefault(chain, []).append(text)
        for chain in (KUBE_NODEPORTS, KUBE_SERVICES):
            rules = by_chain.get(chain, [])
            if table.name == "nat" and chain == KUBE_SERVICES:
                last = [r for r in rules if _comment_value(r).startswith("kubernetes service nodeports")]
                rest = [r for r in rules if r not in last]
                by_chain[chain] = sorted(rest, key=_service_key) + last
            else:
                by_chain[chain] = sorted(rules, key=_service_key)
        ordered = TableBuffer(table.name, chains=list(chains), deleted=list(table.deleted))
        for chain in chains:
            ordered.rules.extend((chain, text) for text in by_chain.get(chain, []))
        out.append(ordered)
    return out
