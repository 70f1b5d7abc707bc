"""The benchmark workload: synthetic kube-proxy rulesets, the node they run on, packet columns.

The ruleset is kube-proxy's iptables mode for ``S`` ClusterIP services x ``E`` endpoints, written
directly (``kubenat._core._synthetic_kube_proxy``) because building 100k services through
:func:`kubenat.proxy.build` takes minutes; :func:`shape` lets a test check that both give rules
of the same shape. 15 of 16 packets go to a random service, 1 of 16 to an address no service
has (so it falls through KUBE-SERVICES).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from kubenat import _core

SERVICE_BASE = 0xAC10_0000  # 172.16.0.0: service i is SERVICE_BASE + i + 1
MISS_DST = 0x0808_0808  # 8.8.8.8: no service
NODE: dict[str, Any] = {
    "local": ["192.168.0.2"],
    "interfaces": {"eth0": ["192.168.0.2/24"], "cni0": ["10.64.0.1/24"], "flannel.1": ["10.64.0.0/32"]},
    "routes": [("10.64.0.0/10", "flannel.1"), ("0.0.0.0/0", "eth0")],
}
CLUSTER_CIDR = "10.64.0.0/10"


def ruleset_text(services: int, endpoints: int = 4) -> str:
    """iptables-save text of the synthetic kube-proxy ruleset."""
    return _core._synthetic_kube_proxy(services, endpoints)


def packets(services: int, n: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    """(src, dst, proto, sport, dport) columns: TCP SYNs from pods (a quarter from the node's
    LAN, which kube-proxy masquerades), 15/16 to a uniformly chosen service."""
    rng = np.random.default_rng(seed)
    pod = 0x0A40_0000 | rng.integers(0, 0xFFFF, n)
    lan = 0xC0A8_0000 | rng.integers(3, 0xFF, n)
    src = np.where(rng.integers(0, 4, n) == 0, lan, pod).astype(np.uint32)
    dst = (SERVICE_BASE + 1 + rng.integers(0, services, n)).astype(np.uint32)
    dst[rng.integers(0, 16, n) == 0] = MISS_DST
    proto = np.full(n, 6, np.uint8)
    sport = rng.integers(1024, 65535, n).astype(np.uint16)
    dport = np.full(n, 80, np.uint16)
    return src, dst, proto, sport, dport


_NAMES = re.compile(r"KUBE-(SVC|SEP|SVL|EXT|FW)-[0-9A-Z]+")
_VALUES = re.compile(
    r'(--comment "[^"]*"|--comment \S+|\d+\.\d+\.\d+\.\d+(/\d+)?(:\d+)?|--dport \d+|--probability \S+)'
)


def shape(text: str) -> Counter[tuple[str, str]]:
    """The rules of the nat table with names, addresses, ports and probabilities erased, as
    (chain kind, rule) counts: two rulesets with the same shape differ only in those values."""
    out: Counter[tuple[str, str]] = Counter()
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        if table != "nat" or not line.startswith("-A "):
            continue
        chain, _, rule = line[3:].partition(" ")
        kind = _NAMES.sub(r"KUBE-\1-*", chain)
        rule = _VALUES.sub("V", _NAMES.sub(r"KUBE-\1-*", rule))
        words = sorted(rule.split())
        out[(kind, " ".join(words))] += 1
    return out
