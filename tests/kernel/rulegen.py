"""Hypothesis strategies for the differential suite: rulesets the kernel accepts, and packets that hit them.

Two shapes (matches: -s -d -p -i -o, tcp/udp/sctp ports and ranges, multiport, --syn, --tcp-flags,
icmp types, mark, connmark, comment, addrtype, conntrack, state, statistic; targets: ACCEPT, DROP,
REJECT, RETURN, jump, goto, MARK, CONNMARK, LOG, NFLOG, NOTRACK/CT, DNAT, SNAT, MASQUERADE,
REDIRECT; the kube-proxy shape adds recent, nfacct and MASQUERADE --random-fully):
* ``general_rulesets``: random rules from the supported set of matches and targets, in the raw,
  mangle, nat and filter tables, with user chains jumped to (``-j``/``-g``) from one built-in
  chain each, so that every target is used only where the kernel allows it.
* ``kube_rulesets``: kube-proxy's rules for random Services/EndpointSlices, built by
  ``kubenat.proxy.build_text`` (ClusterIP, NodePort, LoadBalancer, external IPs, session affinity,
  traffic policies, no-endpoint REJECTs).

The testbed's node has ``eth0`` (10.253.1.1, towards the client), ``eth1`` (10.253.2.1, the
default route) and ``eth2`` (10.253.3.1, for 10.244.3.0/24), plus 192.168.7.2 on eth0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

NODE_IP = "192.168.7.2"
LOCAL = (NODE_IP, "10.253.1.1", "10.253.2.1", "127.0.0.1")
HOSTS = ("10.1.2.3", "10.1.2.4", "10.1.9.9", "10.96.0.10", "10.96.0.11", "10.244.3.7", "203.0.113.5", NODE_IP)
NETS = (
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.96.0.10/32",
    "10.244.3.0/24",
    "203.0.113.0/24",
    "192.168.7.2/32",
)
PORTS = (53, 80, 443, 8080, 30080)
ENDPOINTS = ("10.244.3.7", "10.244.3.8", "10.1.9.9", "203.0.113.9")

HOOKS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
_IN_OK = {"PREROUTING", "INPUT", "FORWARD"}
_OUT_OK = {"FORWARD", "OUTPUT", "POSTROUTING"}


@dataclass(frozen=True)
class Probe:
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    path: str

    def __str__(self) -> str:
        return f"{self.proto} {self.src}:{self.sport} -> {self.dst}:{self.dport} ({self.path})"


_GROUPS = {"dport": "l4", "sport": "l4", "range": "l4", "syn": "l4", "flags": "l4"}
"""Kinds that use the same module instance may appear only once together."""


def _kinds(hook: str, proto: str | None) -> list[str]:
    kinds = ["src", "dst", "mark", "comment", "addrtype", "ctstate", "statistic", "state", "connmark"]
    if proto in ("tcp", "udp", "sctp"):
        kinds += ["dport", "sport", "range", "multiport"]
    if proto == "tcp":
        kinds += ["syn", "flags"]
    if proto == "icmp":
        kinds += ["icmp"]
    if hook in _IN_OK:
        kinds.append("in")
    if hook in _OUT_OK:
        kinds.append("out")
    return kinds


@st.composite
def _match(draw: st.DrawFn, kind: str, proto: str | None) -> str:
    neg = "! " if draw(st.integers(0, 4)) == 0 else ""
    if kind == "src":
        return f"{neg}-s {draw(st.sampled_from(NETS))}"
    if kind == "dst":
        return f"{neg}-d {draw(st.sampled_from(NETS))}"
    if kind == "mark":
        return f"-m mark {neg}--mark {draw(st.sampled_from(['0x1', '0x4000/0x4000', '0x2/0x3']))}"
    if kind == "comment":
        return f'-m comment --comment "{draw(st.sampled_from(["a", "kube svc", "x-y"]))}"'
    if kind == "addrtype":
        side = draw(st.sampled_from(["--dst-type", "--src-type"]))
        return f"-m addrtype {neg}{side} {draw(st.sampled_from(['LOCAL', 'UNICAST']))}"
    if kind == "ctstate":
        states = draw(st.sampled_from(["NEW", "ESTABLISHED", "DNAT", "NEW,RELATED"]))
        return f"-m conntrack {neg}--ctstate {states}"
    if kind == "statistic":
        probability = draw(st.sampled_from(["0.5", "0.25", "0.33333333349"]))
        return f"-m statistic --mode random --probability {probability}"
    if kind == "dport":
        return f"-m {proto} {neg}--dport {draw(st.sampled_from(PORTS))}"
    if kind == "sport":
        return f"-m {proto} {neg}--sport {draw(st.sampled_from([1000, 40000, 50000]))}"
    if kind == "range":
        return f"-m {proto} {neg}--dport {draw(st.sampled_from(['1:100', '440:8080', '30000:32767']))}"
    if kind == "multiport":
        return f"-m multiport {neg}--dports {draw(st.sampled_from(['80,443', '53,8080', '1:100,30080']))}"
    if kind == "flags":
        flags = draw(st.sampled_from(["SYN,ACK SYN", "SYN,RST,ACK,FIN SYN", "ALL NONE", "SYN SYN"]))
        return f"-m tcp {neg}--tcp-flags {flags}"
    if kind == "state":
        return f"-m state {neg}--state {draw(st.sampled_from(['NEW', 'ESTABLISHED', 'INVALID']))}"
    if kind == "connmark":
        return f"-m connmark {neg}--mark {draw(st.sampled_from(['0x1', '0x0/0x1', '0x2/0x3']))}"
    if kind == "syn":
        return f"-m tcp {neg}--syn"
    if kind == "icmp":
        return f"-m icmp {neg}--icmp-type {draw(st.sampled_from(['echo-request', '8/0', 'echo-reply']))}"
    if kind == "in":
        return f"{neg}-i {draw(st.sampled_from(['eth0', 'eth1', 'eth+', 'lo']))}"
    return f"{neg}-o {draw(st.sampled_from(['eth1', 'eth2', 'eth+', 'lo']))}"


@st.composite
def _target(draw: st.DrawFn, table: str, hook: str, proto: str | None, chains: list[str], user: bool) -> str:
    ported = proto in ("tcp", "udp", "sctp")
    options = ["MARK", "CONNMARK", "LOG", "NFLOG"]
    if table == "raw":
        options.append("NOTRACK")
    if user:
        options.append("RETURN")
    if chains:
        options += ["jump", "goto"]
    if table == "filter":
        options += ["ACCEPT", "DROP", "REJECT", "REJECT"]
    elif table == "nat":
        options += ["ACCEPT"]
        # NAT targets weighted up: they are what kubenat is most about.
        if hook in ("PREROUTING", "OUTPUT"):
            options += ["DNAT", "DNAT", "DNAT", "REDIRECT"] if ported else ["DNAT", "DNAT", "DNAT"]
        else:
            options += ["SNAT", "MASQUERADE", "MASQUERADE"] if hook == "POSTROUTING" else ["SNAT"]
    else:
        options += ["ACCEPT", "DROP"]
    kind = draw(st.sampled_from(options))
    if kind == "MARK":
        how = draw(
            st.sampled_from(
                ["--set-xmark 0x4000/0x4000", "--set-mark 0x1", "--or-mark 0x2", "--xor-mark 0x1"]
            )
        )
        return f"-j MARK {how}"
    if kind in ("jump", "goto"):
        return f"{'-j' if kind == 'jump' else '-g'} {draw(st.sampled_from(chains))}"
    if kind == "REJECT":
        choices = ["icmp-port-unreachable", "icmp-host-prohibited", "icmp-net-unreachable"]
        if proto == "tcp":
            choices.append("tcp-reset")
        return f"-j REJECT --reject-with {draw(st.sampled_from(choices))}"
    if kind == "DNAT":
        addr = draw(st.sampled_from(ENDPOINTS))
        port = f":{draw(st.sampled_from([80, 8080, '8000-8002']))}" if ported and draw(st.booleans()) else ""
        return f"-j DNAT --to-destination {addr}{port}"
    if kind == "REDIRECT":
        return f"-j REDIRECT --to-ports {draw(st.sampled_from([8080, 15001]))}"
    if kind == "SNAT":
        return f"-j SNAT --to-source {draw(st.sampled_from(['10.253.2.1', '192.168.7.2', '10.9.9.9']))}"
    if kind == "MASQUERADE":
        return "-j MASQUERADE"
    if kind == "CONNMARK":
        how = draw(
            st.sampled_from(["--set-xmark 0x1/0x1", "--save-mark", "--restore-mark", "--set-mark 0x2"])
        )
        return f"-j CONNMARK {how}"
    if kind == "LOG":
        return '-j LOG --log-prefix "kn "'
    if kind == "NFLOG":
        return "-j NFLOG --nflog-group 5"
    if kind == "NOTRACK":
        return draw(st.sampled_from(["-j CT --notrack", "-j NOTRACK"]))
    return f"-j {kind}"


@st.composite
def _rule(draw: st.DrawFn, table: str, hook: str, chains: list[str], user: bool) -> str:
    proto = draw(st.sampled_from([None, "tcp", "udp", "icmp", "sctp"]))
    parts = [f"-p {proto}"] if proto else []
    kinds = draw(
        st.lists(st.sampled_from(_kinds(hook, proto)), max_size=3, unique_by=lambda k: _GROUPS.get(k, k))
    )
    parts += [draw(_match(kind, proto)) for kind in kinds]
    parts.append(draw(_target(table, hook, proto, chains, user)))
    return " ".join(parts)


@st.composite
def general_rulesets(draw: st.DrawFn) -> str:
    """iptables-save text of a random ruleset the kernel accepts."""
    sections = []
    tables = draw(st.lists(st.sampled_from(sorted(HOOKS)), min_size=1, max_size=4, unique=True))
    if "nat" not in tables and draw(st.integers(0, 2)):
        tables.append("nat")
    for table in sorted(tables, key=list(HOOKS).index):
        lines = [f"*{table}"]
        policies = {hook: "ACCEPT" for hook in HOOKS[table]}
        if table == "filter":
            for hook in HOOKS[table]:
                policies[hook] = draw(st.sampled_from(["ACCEPT", "ACCEPT", "DROP"]))
        lines += [f":{hook} {policy} [0:0]" for hook, policy in policies.items()]
        rules: list[str] = []
        for hook in HOOKS[table]:
            # User chains belong to one hook (so their targets suit it); a chain may jump only to
            # chains made after it (no loops).
            count = draw(st.integers(0, 2))
            names = [f"{hook[:3]}{i}" for i in range(count)]
            lines += [f":{name} - [0:0]" for name in names]
            for i, name in enumerate(names):
                for _ in range(draw(st.integers(0, 3))):
                    rules.append(f"-A {name} {draw(_rule(table, hook, names[i + 1 :], True))}")
            for _ in range(draw(st.integers(0, 4))):
                rules.append(f"-A {hook} {draw(_rule(table, hook, names, False))}")
        sections.append("\n".join([*lines, *rules, "COMMIT"]))
    return "\n".join(sections) + "\n"


@st.composite
def probes(draw: st.DrawFn, first_port: int = 40000) -> list[Probe]:
    """A handful of packets likely to hit the generated rules; distinct source ports."""
    result = []
    for i in range(draw(st.integers(6, 16))):
        proto = draw(st.sampled_from(["tcp", "udp", "icmp", "sctp"]))
        path = draw(st.sampled_from(["in", "in", "in", "out"]))
        src = draw(st.sampled_from(LOCAL[:3] if path == "out" else ("10.1.2.3", "10.1.9.9", "203.0.113.5")))
        dst = draw(st.sampled_from(HOSTS))
        sport = first_port + i if draw(st.integers(0, 5)) else 1000 + i
        dport = 0 if proto == "icmp" else draw(st.sampled_from(PORTS))
        result.append(Probe(proto, src, dst, sport, dport, path))
    return result


TESTBED_OPTIONS: dict[str, Any] = {
    "sinks": 2,
    "routes": {"10.244.3.0/24": "sink1"},
    "addresses": {"eth0": [f"{NODE_IP}/24"]},
}


CLUSTER_CIDR = "10.244.0.0/16"
_PROTOCOL_LISTS = st.lists(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=1, max_size=2, unique=True)


@st.composite
def kube_rulesets(draw: st.DrawFn) -> tuple[str, list[Probe]]:
    """kube-proxy's rules for 1-3 random Services (via ``kubenat.proxy``), and probes aimed at
    them: cluster IPs, NodePorts, load-balancer and external IPs, from pods, from outside and
    from the node itself. Every probe has its own source address (so ClientIP affinity of one
    probe never steers another)."""
    from kubenat.proxy import build_text

    objects: list[dict[str, Any]] = []
    targets: list[tuple[str, str, int, bool]] = []  # (proto, address, port, node-port?)
    for index in range(draw(st.integers(1, 3))):
        name = f"svc{index}"
        protocols = draw(
            st.lists(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=1, max_size=2, unique=True)
        )
        kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
        cluster_ip = f"10.96.{index}.10"
        ports = []
        for i, proto in enumerate(protocols):
            port: dict[str, Any] = {"name": f"p{i}", "port": 80 + i, "protocol": proto}
            if kind != "ClusterIP":
                port["nodePort"] = 30000 + 10 * index + i
            ports.append(port)
        spec: dict[str, Any] = {
            "type": kind,
            "clusterIP": cluster_ip,
            "ports": ports,
            "sessionAffinity": draw(st.sampled_from(["None", "None", "ClientIP"])),
            "internalTrafficPolicy": draw(st.sampled_from(["Cluster", "Cluster", "Local"])),
        }
        external = [f"198.51.100.{index * 4 + 1}"] if draw(st.booleans()) else []
        if external:
            spec["externalIPs"] = external
        if kind != "ClusterIP":
            spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
        service: dict[str, Any] = {
            "kind": "Service",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": spec,
        }
        lb = []
        if kind == "LoadBalancer":
            lb = [f"198.51.100.{index * 4 + 2}"]
            service["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb]}}
            if draw(st.booleans()):
                spec["loadBalancerSourceRanges"] = ["203.0.113.0/28"]
        endpoints = [
            {
                "addresses": [f"10.244.{draw(st.sampled_from([3, 5]))}.{10 * index + j + 1}"],
                "nodeName": draw(st.sampled_from(["n1", "n2"])),
                "conditions": {"ready": draw(st.sampled_from([True, True, True, False])), "serving": True},
            }
            for j in range(draw(st.sampled_from([0, 1, 2, 2, 3, 3])))
        ]
        objects += [
            service,
            {
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-a",
                    "namespace": "ns",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [
                    {"name": p["name"], "port": 8080 + i, "protocol": p["protocol"]}
                    for i, p in enumerate(ports)
                ],
            },
        ]
        for p in ports:
            proto = p["protocol"].lower()
            targets += [(proto, cluster_ip, p["port"], False)]
            targets += [(proto, addr, p["port"], False) for addr in external + lb]
            if "nodePort" in p:
                targets.append((proto, NODE_IP, p["nodePort"], True))
    version = draw(st.sampled_from(["1.28", "current"]))
    text = build_text(
        objects,
        node_name="n1",
        node_ips=(NODE_IP,),
        cluster_cidrs=(CLUSTER_CIDR,),
        interface_addresses=(f"{NODE_IP}/24", "10.253.1.1/24", "10.253.2.1/24", "10.253.3.1/24"),
        version=version,
    )
    batch = []
    for i in range(draw(st.integers(6, 16))):
        proto, dst, dport, node_port = draw(st.sampled_from(targets))
        source = draw(
            st.sampled_from(
                ["pod", "outside", "node", "localhost"] if node_port else ["pod", "outside", "node"]
            )
        )
        path = "out" if source in ("node", "localhost") else "in"
        src = {
            "pod": f"10.244.1.{i + 1}",
            "outside": f"203.0.113.{i + 1}",
            "node": NODE_IP,
            "localhost": "127.0.0.1",
        }[source]
        if source == "localhost":
            dst = "127.0.0.1"
        batch.append(Probe(proto, src, dst, 40000 + i, dport, path))
    return text, batch
