"""kube-proxy's own unit-test packet tracer (``iptablesTracer``), for checking the cases' flows.

It is deliberately the upstream analyser, not a netfilter model: nat PREROUTING, then the
filter chains KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL;
``--rcheck``/``--mark``/``--ctstate`` rules never match; every statistic branch is followed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

_WORD = re.compile(r'(?:^|\s)("[^"]*"|[^"]\S*)')
_PARAMS = {
    "-A": "chain",
    "--comment": "comment",
    "-p": "protocol",
    "-s": "source",
    "--src-type": "src_type",
    "-d": "dest",
    "--dst-type": "dst_type",
    "--dport": "dport",
    "-j": "jump",
    "--probability": "probability",
    "--to-destination": "to",
    "--rcheck": "rcheck",
    "--mark": "mark",
    "--ctstate": "ctstate",
}
_FLAGS = {"--rcheck"}


@dataclass
class Rule:
    values: dict[str, tuple[bool, str]] = field(default_factory=dict)

    def get(self, key: str) -> tuple[bool, str] | None:
        return self.values.get(key)


def parse_rule(line: str) -> Rule:
    words = [w.strip('"') for w in _WORD.findall(line)]
    rule = Rule()
    negate = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-m":
            i += 2
            continue
        if word == "!":
            negate = True
            i += 1
            continue
        key = _PARAMS.get(word)
        if key is not None:
            if word in _FLAGS:
                rule.values[key] = (negate, "")
                i += 1
            else:
                rule.values[key] = (negate, words[i + 1] if i + 1 < len(words) else "")
                i += 2
        else:
            i += 1
        negate = False
    return rule


def parse_dump(text: str) -> dict[str, dict[str, list[Rule]]]:
    tables: dict[str, dict[str, list[Rule]]] = {}
    table: dict[str, list[Rule]] = {}
    for line in text.splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {})
        elif line.startswith(":"):
            table.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            rule = parse_rule(line)
            table[rule.values["chain"][1]].append(rule)
    return tables


@dataclass
class Tracer:
    tables: dict[str, dict[str, list[Rule]]]
    local: set[str]
    source: str = ""
    protocol: str = "tcp"
    dest: str = ""
    dport: str = ""
    outputs: list[str] = field(default_factory=list)
    masq: bool = False

    def _addr(self, spec: tuple[bool, str], ip: str) -> bool:
        neg, value = spec
        hit = ipaddress.ip_address(ip) in ipaddress.ip_network(value, strict=False)
        return hit != neg

    def _matches(self, rule: Rule) -> bool:
        for key in ("rcheck", "mark", "ctstate"):
            if rule.get(key) is not None:
                return False
        checks = [
            ("source", lambda v: self._addr(v, self.source)),
            ("dest", lambda v: self._addr(v, self.dest)),
            ("protocol", lambda v: (v[1] == self.protocol) != v[0]),
            ("dport", lambda v: (v[1] == self.dport) != v[0]),
            ("src_type", lambda v: (("LOCAL" if self.source in self.local else "x") == v[1]) != v[0]),
            ("dst_type", lambda v: (("LOCAL" if self.dest in self.local else "x") == v[1]) != v[0]),
        ]
        return all(check(rule.get(key)) for key, check in checks if rule.get(key) is not None)  # type: ignore[arg-type]

    def run(self, table: str, chain: str) -> bool:
        rules = self.tables.get(table, {}).get(chain)
        if rules is None:
            return False
        for rule in rules:
            jump = rule.get("jump")
            if jump is None or not self._matches(rule):
                continue
            target = jump[1]
            if target == "KUBE-MARK-MASQ":
                self.masq = True
                continue
            if target in ("ACCEPT", "REJECT", "DROP"):
                self.outputs.append(target)
                return True
            if target == "DNAT":
                self.outputs.append(rule.values["to"][1])
                return True
            if self.run(table, target) and rule.get("probability") is None:
                return True
        return False


def trace(
    text: str, local: list[str], source: str, dest: str, dport: int, protocol: str = "tcp"
) -> tuple[str, bool]:
    """(outputs joined by ", ", masq) as ``tracePacket`` reports them."""
    tracer = Tracer(parse_dump(text), set(local), source, protocol.lower(), dest, str(dport))
    tracer.run("nat", "PREROUTING")
    if tracer.outputs:
        tracer.dest = tracer.outputs[0].split(":")[0]
    for chain in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"):
        tracer.run("filter", chain)
    return ", ".join(tracer.outputs), tracer.masq
