"""kube-proxy's configuration: a KubeProxyConfiguration file or the equivalent options.

Only what changes the rules is modelled: node name and IPs, the local-traffic detector,
masquerading, localhost NodePorts, nodePortAddresses, IP family, and the kube-proxy version
whose rule text to reproduce ("1.28" for 1.27-1.28, "current" for 1.29 and later, which adds
the nfacct counters).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubenat.errors import ConfigError
from kubenat.k8s._fields import parse_cidr_sloppy, parse_ip_sloppy

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"
DETECT_LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "None")
VERSION_FORMS = ("1.28", "current")
MODES = ("iptables", "userspace")
#: nfacct counters the current kube-proxy creates and references from its rules.
NFACCT_COUNTERS = ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")


def _config_error(source: str, fieldname: str, reason: str) -> ConfigError:
    where = f"{source}: {fieldname}: " if fieldname else f"{source}: "
    return ConfigError(f"{where}{reason}", source=source, field=fieldname, reason=reason)


def version_form(version: str, source: str = "options") -> str:
    """Map a kube-proxy version ("1.28", "v1.31.2", "current") to the rule-text form it writes."""
    text = str(version).strip()
    if text in ("current", "latest", ""):
        return "current"
    m = re.fullmatch(r"v?1\.(\d+)(?:\.\d+)?(?:[-+].*)?", text)
    if m is None:
        raise _config_error(
            source, "version", f"{text!r} is not a kube-proxy version (e.g. 1.28, v1.31.2, current)"
        )
    minor = int(m.group(1))
    if minor < 27:
        raise _config_error(
            source,
            "version",
            f"kube-proxy 1.{minor} wrote different rules; supported: 1.27-1.28 (the 1.28 form) "
            "and 1.29 or later (the current form)",
        )
    return "1.28" if minor <= 28 else "current"


@dataclass(frozen=True)
class ProxyConfig:
    """The inputs of kube-proxy's rule builder. Build one with options, :meth:`from_file` or :meth:`load`.

    ``interface_addresses`` are every address of the node (``"192.168.0.2/24"`` or bare IPs);
    they decide which IPs ``node_port_addresses`` selects. When empty, the node IPs plus
    loopback are used. ``masquerade_mark`` overrides the mark text (kube-proxy formats
    ``1 << masquerade_bit`` as ``%#08x``, i.e. ``0x00004000``; its unit tests use ``0x4000``).
    """

    node_name: str = ""
    node_ips: tuple[str, ...] = ()
    interface_addresses: tuple[str, ...] = ()
    cluster_cidrs: tuple[str, ...] = ()
    detect_local_mode: str = "ClusterCIDR"
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    node_pod_cidrs: tuple[str, ...] = ()
    node_labels: tuple[tuple[str, str], ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    masquerade_mark: str | None = None
    localhost_node_ports: bool = True
    node_port_addresses: tuple[str, ...] = ()
    ip_family: str = "IPv4"
    version: str = "current"
    nfacct: bool = True
    random_fully: bool = True
    conntrack_tcp_be_liberal: bool = False
    mode: str = "iptables"
    bind_address: str = "0.0.0.0"
    port_range: str = ""
    source: str = field(default="options", compare=False)

    def __post_init__(self) -> None:
        src = self.source
        if self.ip_family not in ("IPv4", "IPv6"):
            raise _config_error(src, "ipFamily", f"{self.ip_family!r} is not IPv4 or IPv6")
        object.__setattr__(self, "version", version_form(self.version, src))
        if self.mode not in MODES:
            raise _config_error(src, "mode", f"{self.mode!r} is not one of {', '.join(MODES)}")
        if self.detect_local_mode not in DETECT_LOCAL_MODES:
            raise _config_error(
                src,
                "detectLocalMode",
                f"{self.detect_local_mode!r} is not one of {', '.join(DETECT_LOCAL_MODES)}",
            )
        if not 0 <= self.masquerade_bit <= 31:
            raise _config_error(
                src, "iptables.masqueradeBit", f"{self.masquerade_bit} is not between 0 and 31"
            )
        for name in ("node_ips",):
            canon = []
            for ip in getattr(self, name):
                parsed = parse_ip_sloppy(str(ip))
                if parsed is None:
                    raise _config_error(src, "nodeIPs", f"{ip!r} is not an IP address")
                canon.append(str(parsed))
            object.__setattr__(self, name, tuple(canon))
        for name, label in (
            ("cluster_cidrs", "clusterCIDR"),
            ("node_pod_cidrs", "podCIDR"),
            ("node_port_addresses", "nodePortAddresses"),
        ):
            canon = []
            for text in getattr(self, name):
                if name == "node_port_addresses" and text == "primary":
                    canon.append(text)
                    continue
                cidr = parse_cidr_sloppy(str(text))
                if cidr is None:
                    raise _config_error(src, label, f"{text!r} is not a CIDR")
                canon.append(str(cidr))
            object.__setattr__(self, name, tuple(canon))
        for text in self.interface_addresses:
            if parse_ip_sloppy(str(text).split("/")[0]) is None:
                raise _config_error(src, "interfaceAddresses", f"{text!r} is not an address")
        if self.detect_local_mode == "BridgeInterface" and not self.bridge_interface:
            raise _config_error(
                src, "detectLocal.bridgeInterface", "required when detectLocalMode is BridgeInterface"
            )
        if self.detect_local_mode == "InterfaceNamePrefix" and not self.interface_name_prefix:
            raise _config_error(
                src, "detectLocal.interfaceNamePrefix", "required when detectLocalMode is InterfaceNamePrefix"
            )

    # --- construction -----------------------------------------------------------------

    def replace(self, **changes: Any) -> ProxyConfig:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<config>", **overrides: Any) -> ProxyConfig:
        """Read a KubeProxyConfiguration mapping; keyword overrides win over the file."""
        if not isinstance(data, Mapping):
            raise _config_error(source, "", "expected a KubeProxyConfiguration mapping")
        api = data.get("apiVersion")
        if api != API_VERSION:
            raise _config_error(source, "apiVersion", f"{api!r} is not {API_VERSION!r}")
        if data.get("kind") != KIND:
            raise _config_error(source, "kind", f"{data.get('kind')!r} is not {KIND!r}")
        opts: dict[str, Any] = {"source": source}

        def section(name: str) -> Mapping[str, Any]:
            value = data.get(name) or {}
            if not isinstance(value, Mapping):
                raise _config_error(source, name, "expected a mapping")
            return value

        def typed(where: str, value: Any, kind: type) -> Any:
            if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
                noun = {int: "an integer", bool: "a boolean", str: "a string"}.get(kind, kind.__name__)
                raise _config_error(source, where, f"{value!r} is not {noun}")
            return value

        if data.get("hostnameOverride"):
            opts["node_name"] = typed("hostnameOverride", data["hostnameOverride"], str)
        bind = data.get("bindAddress")
        if bind:
            ip = parse_ip_sloppy(typed("bindAddress", bind, str))
            if ip is None:
                raise _config_error(source, "bindAddress", f"{bind!r} is not an IP address")
            opts["bind_address"] = str(ip)
            if not ip.is_unspecified:
                opts["node_ips"] = (str(ip),)
        if data.get("clusterCIDR"):
            text = typed("clusterCIDR", data["clusterCIDR"], str)
            opts["cluster_cidrs"] = tuple(p.strip() for p in text.split(",") if p.strip())
        mode = data.get("mode") or "iptables"
        if mode not in MODES:
            raise _config_error(source, "mode", f"{mode!r} is not supported (supported: {', '.join(MODES)})")
        opts["mode"] = mode
        ipt = section("iptables")
        linux = section("linux")
        for key, name, kind in (
            ("masqueradeAll", "masquerade_all", bool),
            ("masqueradeBit", "masquerade_bit", int),
            ("localhostNodePorts", "localhost_node_ports", bool),
        ):
            if ipt.get(key) is not None:
                opts[name] = typed(f"iptables.{key}", ipt[key], kind)
        if linux.get("masqueradeAll") is not None:
            opts["masquerade_all"] = typed("linux.masqueradeAll", linux["masqueradeAll"], bool)
        npa = data.get("nodePortAddresses")
        if npa:
            if not isinstance(npa, list):
                raise _config_error(source, "nodePortAddresses", "expected a list")
            opts["node_port_addresses"] = tuple(typed("nodePortAddresses", v, str) for v in npa)
        dlm = data.get("detectLocalMode")
        if dlm:
            opts["detect_local_mode"] = typed("detectLocalMode", dlm, str)
        detect = section("detectLocal")
        if detect.get("bridgeInterface"):
            opts["bridge_interface"] = typed("detectLocal.bridgeInterface", detect["bridgeInterface"], str)
        if detect.get("interfaceNamePrefix"):
            opts["interface_name_prefix"] = typed(
                "detectLocal.interfaceNamePrefix", detect["interfaceNamePrefix"], str
            )
        if data.get("portRange"):
            opts["port_range"] = typed("portRange", data["portRange"], str)
        opts.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**opts)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> ProxyConfig:
        """Read a KubeProxyConfiguration YAML/JSON file (``yaml.safe_load``)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise _config_error(str(p), "", f"cannot read: {exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _config_error(str(p), "", f"YAML error: {exc}") from exc
        return cls.from_mapping(data, source=str(p), **overrides)

    # --- derived values ---------------------------------------------------------------

    @property
    def is_ipv6(self) -> bool:
        return self.ip_family == "IPv6"

    @property
    def mark(self) -> str:
        """The masquerade mark as kube-proxy writes it."""
        if self.masquerade_mark is not None:
            return self.masquerade_mark
        return "0x%08x" % (1 << self.masquerade_bit)

    def family_ok(self, ip: str) -> bool:
        """Whether an address or CIDR belongs to this proxier's IP family."""
        return (":" in ip) == self.is_ipv6

    @property
    def node_ip(self) -> str | None:
        """The primary node IP of this family (kube-proxy's ``nodeIP``)."""
        for ip in self.node_ips:
            if self.family_ok(ip):
                return ip
        return None

    @property
    def effective_localhost_node_ports(self) -> bool:
        """localhostNodePorts as kube-proxy applies it: IPv4 only, and only if nodePortAddresses
        allow 127.0.0.1."""
        if self.is_ipv6 or not self.localhost_node_ports:
            return False
        cidrs = self.family_node_port_cidrs()
        if cidrs is None:
            return True
        loopback = ipaddress.ip_address("127.0.0.1")
        return any(c.network_address.is_loopback or loopback in c for c in cidrs)

    def family_node_port_cidrs(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
        """nodePortAddresses of this family as networks; None means "all addresses".

        As ``NewNodePortAddresses``: no CIDR of this family, or a zero CIDR, matches everything.
        """
        cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for text in self.node_port_addresses:
            if text == "primary":
                cidrs.extend(
                    ipaddress.ip_network(f"{ip}/{128 if ':' in ip else 32}")
                    for ip in self.node_ips
                    if self.family_ok(ip)
                )
            elif self.family_ok(text):
                cidrs.append(ipaddress.ip_network(text))
        if not cidrs or any(c.prefixlen == 0 for c in cidrs):
            return None
        return cidrs

    def local_addresses(self) -> tuple[str, ...]:
        """Every IP the node owns, without prefix lengths (interfaces, else node IPs plus loopback)."""
        if self.interface_addresses:
            out = [str(parse_ip_sloppy(a.split("/")[0])) for a in self.interface_addresses]
        else:
            out = [*self.node_ips, "127.0.0.1", "::1"]
        return tuple(dict.fromkeys(out))

    def node_port_ips(self) -> list[str]:
        """The node IPs nodePortAddresses selects (sorted), as GetNodeIPs finds them."""
        cidrs = self.family_node_port_cidrs() or []
        found = []
        for text in self.local_addresses():
            ip = ipaddress.ip_address(text)
            if any(ip in c for c in cidrs if c.version == ip.version):
                found.append(ip)
        return [str(ip) for ip in sorted(set(found), key=lambda a: (a.version, int(a)))]

    def local_detector(self) -> tuple[list[str], list[str]] | None:
        """(ifLocal, ifNotLocal) argument lists of the local-traffic detector, or None (no-op detector)."""
        mode = self.detect_local_mode
        if mode == "ClusterCIDR":
            cidrs = [c for c in self.cluster_cidrs if self.family_ok(c)]
            if not cidrs:
                return None
            return ["-s", cidrs[0]], ["!", "-s", cidrs[0]]
        if mode == "NodeCIDR":
            cidrs = [c for c in self.node_pod_cidrs if self.family_ok(c)]
            if not cidrs:
                return None
            return ["-s", cidrs[0]], ["!", "-s", cidrs[0]]
        if mode == "BridgeInterface":
            return ["-i", self.bridge_interface], ["!", "-i", self.bridge_interface]
        if mode == "InterfaceNamePrefix":
            pattern = self.interface_name_prefix + "+"
            return ["-i", pattern], ["!", "-i", pattern]
        return None

    def with_cluster(self, cluster: Any) -> ProxyConfig:
        """Fill node IPs, pod CIDRs and labels from this node's Node object, where not given."""
        node = cluster.node(self.node_name) if self.node_name else None
        if node is None:
            return self
        changes: dict[str, Any] = {}
        if not self.node_ips:
            changes["node_ips"] = node.ips()
        if not self.node_pod_cidrs:
            changes["node_pod_cidrs"] = node.pod_cidrs
        if not self.node_labels:
            changes["node_labels"] = node.labels
        return self.replace(**changes) if changes else self
