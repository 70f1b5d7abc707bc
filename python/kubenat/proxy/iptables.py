"""kube-proxy's iptables mode: the restore input ``syncProxyRules`` writes, rule for rule.

:func:`restore_tables` reproduces the filter and nat buffers kube-proxy hands to
``iptables-restore --noflush``; :mod:`kubenat.proxy.full` wraps them into a complete ruleset.
Services are visited in namespace/name order (kube-proxy's is random map order); the output is
then put in kube-proxy's canonical test order, so it is deterministic and diffable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from kubenat.k8s import Cluster
from kubenat.proxy import chains as c
from kubenat.proxy.chains import TableBuffer, quoted
from kubenat.proxy.config import NFACCT_COUNTERS, ProxyConfig
from kubenat.proxy.model import EndpointInfo, ServicePortInfo, categorize, service_port_infos

#: Above this many endpoints kube-proxy drops the per-endpoint comments ("large cluster mode").
LARGE_CLUSTER_ENDPOINTS = 1000
CT_INVALID_COUNTER, LOCALHOST_NODEPORT_COUNTER = NFACCT_COUNTERS


def nfacct_counters(config: ProxyConfig) -> tuple[str, ...]:
    """The nfacct objects the rules reference (they must exist before the rules load)."""
    return NFACCT_COUNTERS if config.version == "current" and config.nfacct else ()


def restore_tables(
    cluster: Cluster, config: ProxyConfig, previous_chains: Iterable[str] = ()
) -> list[TableBuffer]:
    """The filter and nat tables of kube-proxy's restore input, in kube-proxy's write order.

    ``previous_chains`` are the nat chains the node holds from the last sync; kube-proxy
    flushes and deletes (``-X``) those of its service chains that are no longer in use.
    """
    config = config.with_cluster(cluster)
    counters = set(nfacct_counters(config))
    filt = TableBuffer("filter")
    nat = TableBuffer("nat")
    for name in (
        c.KUBE_SERVICES,
        c.KUBE_EXTERNAL_SERVICES,
        c.KUBE_FORWARD,
        c.KUBE_NODEPORTS,
        c.KUBE_PROXY_FIREWALL,
    ):
        filt.chain(name)
    for name in (c.KUBE_SERVICES, c.KUBE_NODEPORTS, c.KUBE_POSTROUTING, c.KUBE_MARK_MASQ):
        nat.chain(name)
    mark = config.mark
    nat.rule(c.KUBE_POSTROUTING, "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
    nat.rule(c.KUBE_POSTROUTING, "-j", "MARK", "--xor-mark", mark)
    masq = [
        "-m",
        "comment",
        "--comment",
        quoted("kubernetes service traffic requiring SNAT"),
        "-j",
        "MASQUERADE",
    ]
    if config.random_fully:
        masq.append("--random-fully")
    nat.rule(c.KUBE_POSTROUTING, *masq)
    nat.rule(c.KUBE_MARK_MASQ, "-j", "MARK", "--or-mark", mark)

    localhost_node_ports = config.effective_localhost_node_ports
    if not config.is_ipv6 and localhost_node_ports:
        filt.chain(c.KUBE_FIREWALL)
        filt.rule(
            c.KUBE_FIREWALL,
            *("-m", "comment", "--comment", quoted("block incoming localnet connections")),
            *("-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8"),
            *("-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"),
        )

    ports = service_port_infos(cluster, config)
    large = sum(len(eps) for _, eps in ports) > LARGE_CLUSTER_ENDPOINTS
    writer = _ServiceWriter(config, filt, nat, large, localhost_node_ports, counters)
    for info, endpoints in ports:
        writer.write(info, endpoints)

    active = set(nat.chains)
    for chain in sorted(set(previous_chains) - active):
        if chain.startswith(c.SERVICE_CHAIN_PREFIXES):
            nat.chain(chain)
            nat.deleted.append(chain)
    _nodeports_jump(config, nat, localhost_node_ports)
    if not config.conntrack_tcp_be_liberal:
        rule = ["-m", "conntrack", "--ctstate", "INVALID"]
        if CT_INVALID_COUNTER in counters:
            rule += ["-m", "nfacct", "--nfacct-name", CT_INVALID_COUNTER]
        filt.rule(c.KUBE_FORWARD, *rule, "-j", "DROP")
    filt.rule(
        c.KUBE_FORWARD,
        *("-m", "comment", "--comment", quoted("kubernetes forwarding rules")),
        *("-m", "mark", "--mark", f"{mark}/{mark}", "-j", "ACCEPT"),
    )
    filt.rule(
        c.KUBE_FORWARD,
        *("-m", "comment", "--comment", quoted("kubernetes forwarding conntrack rule")),
        *("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
    )
    return [filt, nat]


def _nodeports_jump(config: ProxyConfig, nat: TableBuffer, localhost_node_ports: bool) -> None:
    comment = (
        "-m",
        "comment",
        "--comment",
        quoted("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
    )
    if config.family_node_port_cidrs() is None:
        dest = ["-m", "addrtype", "--dst-type", "LOCAL"]
        if config.is_ipv6:
            dest += ["!", "-d", "::1/128"]
        elif not localhost_node_ports:
            dest += ["!", "-d", "127.0.0.0/8"]
        nat.rule(c.KUBE_SERVICES, *comment, *dest, "-j", c.KUBE_NODEPORTS)
        return
    for ip in config.node_port_ips():
        if ipaddress.ip_address(ip).is_loopback and (config.is_ipv6 or not localhost_node_ports):
            continue
        nat.rule(c.KUBE_SERVICES, *comment, "-d", ip, "-j", c.KUBE_NODEPORTS)


class _ServiceWriter:
    """Writes the rules of one service port (the body of syncProxyRules' service loop)."""

    def __init__(
        self,
        config: ProxyConfig,
        filt: TableBuffer,
        nat: TableBuffer,
        large: bool,
        localhost_node_ports: bool,
        counters: set[str],
    ) -> None:
        self.config = config
        self.filt = filt
        self.nat = nat
        self.large = large
        self.localhost_node_ports = localhost_node_ports
        self.counters = counters
        self.detector = config.local_detector()

    def comment(self, text: str) -> list[str]:
        """An endpoint-related comment, dropped in large-cluster mode."""
        return [] if self.large else ["-m", "comment", "--comment", text]

    def write(self, info: ServicePortInfo, endpoints: list[EndpointInfo]) -> None:
        cat = categorize(info, endpoints, self.config)
        spn, proto = info.name_string, info.protocol
        p = ["-m", proto, "-p", proto]
        port = str(info.port.port)
        filt, nat = self.filt, self.nat

        uses_cluster_chain = bool(cat.cluster) and info.uses_cluster_endpoints
        uses_local_chain = bool(cat.local) and info.uses_local_endpoints
        has_endpoints = cat.has_any
        internal_chain, has_internal = info.svc_chain, has_endpoints
        if info.internal_policy_local:
            internal_chain = info.svl_chain
            has_internal = has_internal and bool(cat.local)
        external_policy_chain, has_external = info.svc_chain, has_endpoints
        if info.external_policy_local:
            external_policy_chain = info.svl_chain
            has_external = has_external and bool(cat.local)
        ext = info.ext_chain
        uses_ext = has_endpoints and info.externally_accessible
        uses_fw = has_endpoints and bool(info.load_balancer_vips) and bool(info.load_balancer_source_ranges)
        lb_chain = info.fw_chain if uses_fw else ext

        int_target = int_comment = ext_target = ext_comment = ""
        if not has_endpoints:
            int_target = ext_target = "REJECT"
            int_comment = ext_comment = quoted(f"{spn} has no endpoints")
        else:
            if not has_internal:
                int_target, int_comment = "DROP", quoted(f"{spn} has no local endpoints")
            if not has_external:
                ext_target, ext_comment = "DROP", quoted(f"{spn} has no local endpoints")

        # Cluster IP.
        if has_internal:
            nat.rule(
                c.KUBE_SERVICES,
                *("-m", "comment", "--comment", quoted(f"{spn} cluster IP"), *p),
                *("-d", info.cluster_ip, "--dport", port, "-j", internal_chain),
            )
        else:
            filt.rule(
                c.KUBE_SERVICES,
                *("-m", "comment", "--comment", int_comment, *p),
                *("-d", info.cluster_ip, "--dport", port, "-j", int_target),
            )
        # External IPs.
        for ip in info.external_ips:
            if has_endpoints:
                nat.rule(
                    c.KUBE_SERVICES,
                    *("-m", "comment", "--comment", quoted(f"{spn} external IP"), *p),
                    *("-d", ip, "--dport", port, "-j", ext),
                )
            if not has_external:
                filt.rule(
                    c.KUBE_EXTERNAL_SERVICES,
                    *("-m", "comment", "--comment", ext_comment, *p),
                    *("-d", ip, "--dport", port, "-j", ext_target),
                )
        # Load-balancer ingress IPs.
        for ip in info.load_balancer_vips:
            if has_endpoints:
                nat.rule(
                    c.KUBE_SERVICES,
                    *("-m", "comment", "--comment", quoted(f"{spn} loadbalancer IP"), *p),
                    *("-d", ip, "--dport", port, "-j", lb_chain),
                )
            if uses_fw:
                filt.rule(
                    c.KUBE_PROXY_FIREWALL,
                    *(
                        "-m",
                        "comment",
                        "--comment",
                        quoted(f"{spn} traffic not accepted by {info.fw_chain}"),
                        *p,
                    ),
                    *("-d", ip, "--dport", port, "-j", "DROP"),
                )
        if not has_external:
            for ip in info.load_balancer_vips:
                filt.rule(
                    c.KUBE_EXTERNAL_SERVICES,
                    *("-m", "comment", "--comment", ext_comment, *p),
                    *("-d", ip, "--dport", port, "-j", ext_target),
                )
        # NodePort.
        if info.node_port:
            node_port = str(info.node_port)
            if has_endpoints:
                if (
                    self.localhost_node_ports
                    and not self.config.is_ipv6
                    and LOCALHOST_NODEPORT_COUNTER in self.counters
                ):
                    nat.rule(
                        c.KUBE_NODEPORTS,
                        *("-m", "comment", "--comment", spn, *p, "-d", "127.0.0.0/8", "--dport", node_port),
                        *("-m", "nfacct", "--nfacct-name", LOCALHOST_NODEPORT_COUNTER, "-j", ext),
                    )
                nat.rule(
                    c.KUBE_NODEPORTS, "-m", "comment", "--comment", spn, *p, "--dport", node_port, "-j", ext
                )
            if not has_external:
                filt.rule(
                    c.KUBE_EXTERNAL_SERVICES,
                    *("-m", "comment", "--comment", ext_comment, "-m", "addrtype", "--dst-type", "LOCAL"),
                    *(*p, "--dport", node_port, "-j", ext_target),
                )
        # Health check node port.
        if info.health_check_node_port:
            filt.rule(
                c.KUBE_NODEPORTS,
                *("-m", "comment", "--comment", quoted(f"{spn} health check node port")),
                *("-m", "tcp", "-p", "tcp", "--dport", str(info.health_check_node_port), "-j", "ACCEPT"),
            )

        # Internal traffic handling.
        if has_internal:
            args = ["-m", "comment", "--comment", quoted(f"{spn} cluster IP"), *p, "-d", info.cluster_ip]
            args += ["--dport", port]
            if self.config.masquerade_all:
                nat.rule(internal_chain, *args, "-j", c.KUBE_MARK_MASQ)
            elif self.detector is not None:
                nat.rule(internal_chain, *args, *self.detector[1], "-j", c.KUBE_MARK_MASQ)
        # External traffic handling.
        if uses_ext:
            nat.chain(ext)
            if not info.external_policy_local:
                nat.rule(
                    ext,
                    *(
                        "-m",
                        "comment",
                        "--comment",
                        quoted(f"masquerade traffic for {spn} external destinations"),
                    ),
                    *("-j", c.KUBE_MARK_MASQ),
                )
            else:
                if self.detector is not None:
                    nat.rule(
                        ext,
                        *(
                            "-m",
                            "comment",
                            "--comment",
                            quoted(f"pod traffic for {spn} external destinations"),
                        ),
                        *self.detector[0],
                        *("-j", info.svc_chain),
                    )
                nat.rule(
                    ext,
                    *(
                        "-m",
                        "comment",
                        "--comment",
                        quoted(f"masquerade LOCAL traffic for {spn} external destinations"),
                    ),
                    *("-m", "addrtype", "--src-type", "LOCAL", "-j", c.KUBE_MARK_MASQ),
                )
                nat.rule(
                    ext,
                    *(
                        "-m",
                        "comment",
                        "--comment",
                        quoted(f"route LOCAL traffic for {spn} external destinations"),
                    ),
                    *("-m", "addrtype", "--src-type", "LOCAL", "-j", info.svc_chain),
                )
            if has_external:
                nat.rule(ext, "-j", external_policy_chain)
        # Firewall chain.
        if uses_fw:
            fw = info.fw_chain
            nat.chain(fw)
            fw_comment = ["-m", "comment", "--comment", quoted(f"{spn} loadbalancer IP")]
            allow_from_node = False
            node_ip = self.config.node_ip
            for cidr in info.load_balancer_source_ranges:
                nat.rule(fw, *fw_comment, "-s", cidr, "-j", ext)
                if node_ip is not None and ipaddress.ip_address(node_ip) in ipaddress.ip_network(cidr):
                    allow_from_node = True
            if allow_from_node:
                for ip in info.load_balancer_vips:
                    nat.rule(fw, *fw_comment, "-s", ip, "-j", ext)
            nat.rule(
                fw,
                "-m",
                "comment",
                "--comment",
                quoted(f"other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"),
            )
        if uses_cluster_chain:
            nat.chain(info.svc_chain)
            self.endpoint_rules(info, info.svc_chain, cat.cluster)
        if uses_local_chain:
            nat.chain(info.svl_chain)
            self.endpoint_rules(info, info.svl_chain, cat.local)
        # Endpoint chains.
        for ep in cat.all_reachable:
            sep = info.sep_chain(ep)
            nat.chain(sep)
            base = self.comment(spn)
            nat.rule(sep, *base, "-s", ep.ip, "-j", c.KUBE_MARK_MASQ)
            args = list(base)
            if info.session_affinity_client_ip:
                args += ["-m", "recent", "--name", sep, "--set"]
            nat.rule(sep, *args, *p, "-j", "DNAT", "--to-destination", ep.string)

    def endpoint_rules(self, info: ServicePortInfo, chain: str, endpoints: list[EndpointInfo]) -> None:
        """``writeServiceToEndpointRules``: affinity checks, then the statistic cascade."""
        if info.session_affinity_client_ip:
            for ep in endpoints:
                sep = info.sep_chain(ep)
                self.nat.rule(
                    chain,
                    *self.comment(quoted(f"{info.name_string} -> {ep.string}")),
                    *(
                        "-m",
                        "recent",
                        "--name",
                        sep,
                        "--rcheck",
                        "--seconds",
                        str(info.sticky_seconds),
                        "--reap",
                    ),
                    *("-j", sep),
                )
        n = len(endpoints)
        for i, ep in enumerate(endpoints):
            args = self.comment(quoted(f"{info.name_string} -> {ep.string}"))
            if i < n - 1:
                args += ["-m", "statistic", "--mode", "random", "--probability", c.probability(n - i)]
            self.nat.rule(chain, *args, "-j", info.sep_chain(ep))
