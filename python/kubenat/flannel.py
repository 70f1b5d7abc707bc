"""flannel's configuration and leases, and the overlay of one node.

Reads what flannel reads and writes (``net-conf.json``, ``subnet.env``, etcd lease records,
Kubernetes Node annotations) with flannel's own defaults, and builds an :class:`Overlay`: the
MTU, routes, neighbour and FDB entries and iptables rules flannel programs on a node, plus
``encap``/``decap`` of real frames through the Rust core.

Errors are :class:`kubenat.ConfigError` naming the source and the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubenat.errors import ConfigError

IPv4Network = ipaddress.IPv4Network
IPv6Network = ipaddress.IPv6Network
IPv4Address = ipaddress.IPv4Address
IPv6Address = ipaddress.IPv6Address

#: Backends flannel knows; kubenat encapsulates ``udp``, ``vxlan`` and ``host-gw``.
BACKEND_TYPES = ("udp", "vxlan", "host-gw", "ipip", "wireguard", "alloc", "extension", "ipsec", "tencent-vpc")
#: Bytes each backend adds in front of the inner packet (flannel's ``encapOverhead``).
OVERHEAD = {"udp": 28, "vxlan": 50, "ipip": 20, "host-gw": 0}
#: The etcd prefix flannel uses by default (``--etcd-prefix``).
ETCD_PREFIX = "/coreos.com/network"
#: The Node annotation prefix (``--kube-annotation-prefix``).
ANNOTATION_PREFIX = "flannel.alpha.coreos.com"
#: The kernel vxlan driver's default port, which flannel uses when ``Port`` is 0.
VXLAN_PORT = 8472
#: flannel's UDP backend port.
UDP_PORT = 8285

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_LEASE_KEY = re.compile(r"(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$")


def _err(source: str, fld: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {fld}: {message}", source=source, field=fld)


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """Go's encoding/json matches keys case-insensitively; so does this."""
    if key in obj:
        return obj[key]
    low = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def _int(source: str, fld: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(source, fld, f"expected an integer, got {value!r}")
    return value


def _bool(source: str, fld: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _err(source, fld, f"expected true or false, got {value!r}")
    return value


def _mac(source: str, fld: str, value: Any) -> str:
    if not isinstance(value, str) or not _MAC.match(value):
        raise _err(source, fld, f"{value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return value.lower()


def _net4(source: str, fld: str, value: Any) -> IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=False)
    except (ValueError, TypeError):
        raise _err(source, fld, f"{value!r} is not an IPv4 CIDR") from None


def _net6(source: str, fld: str, value: Any) -> IPv6Network:
    try:
        return ipaddress.IPv6Network(value, strict=False)
    except (ValueError, TypeError):
        raise _err(source, fld, f"{value!r} is not an IPv6 CIDR") from None


def _ip4(source: str, fld: str, value: Any) -> IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except (ValueError, TypeError):
        raise _err(source, fld, f"{value!r} is not an IPv4 address") from None


def _ip6(source: str, fld: str, value: Any) -> IPv6Address:
    try:
        return ipaddress.IPv6Address(value)
    except (ValueError, TypeError):
        raise _err(source, fld, f"{value!r} is not an IPv6 address") from None


# ---------------------------------------------------------------- net-conf.json


@dataclass(frozen=True)
class BackendConfig:
    """The ``Backend`` object of net-conf.json, with flannel's defaults filled in."""

    type: str = "udp"
    #: VXLAN network identifier (vxlan; default 1).
    vni: int = 1
    #: ``Port`` as configured: 0 means the backend default (8472 for vxlan, 8285 for udp).
    port: int = 0
    gbp: bool = False
    direct_routing: bool = False
    learning: bool = False
    #: vxlan's ``MTU`` ("desired MTU for outgoing packets"); None = the external interface's.
    mtu: int | None = None

    @property
    def effective_port(self) -> int:
        """The UDP port on the wire."""
        if self.port:
            return self.port
        return VXLAN_PORT if self.type == "vxlan" else UDP_PORT


@dataclass(frozen=True)
class NetConf:
    """flannel's network configuration (``net-conf.json`` / the etcd ``config`` key)."""

    network: IPv4Network | None
    subnet_len: int
    subnet_min: IPv4Address | None
    subnet_max: IPv4Address | None
    backend: BackendConfig
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    enable_nftables: bool = False
    ipv6_network: IPv6Network | None = None
    ipv6_subnet_len: int = 64
    ipv6_subnet_min: IPv6Address | None = None
    ipv6_subnet_max: IPv6Address | None = None

    @classmethod
    def parse(cls, text: str | bytes | Mapping[str, Any], source: str = "net-conf.json") -> NetConf:
        """Parses net-conf.json text (or the already-decoded object) as flannel's ParseConfig does."""
        if isinstance(text, Mapping):
            obj: Any = text
        else:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(
                    f"{source}: line {e.lineno}, column {e.colno}: {e.msg}", source=source, field=""
                ) from None
        if not isinstance(obj, Mapping):
            raise _err(source, "(top level)", "expected a JSON object")
        enable_ipv4 = _bool(source, "EnableIPv4", _get(obj, "EnableIPv4"), True)
        enable_ipv6 = _bool(source, "EnableIPv6", _get(obj, "EnableIPv6"), False)
        enable_nft = _bool(source, "EnableNFTables", _get(obj, "EnableNFTables"), False)
        network = None
        subnet_len = 0
        smin = smax = None
        if enable_ipv4:
            raw = _get(obj, "Network")
            if raw in (None, ""):
                raise _err(source, "Network", "missing (required when EnableIPv4 is true)")
            network = _net4(source, "Network", raw)
            subnet_len, smin, smax = _subnets(
                source,
                "",
                network,
                _int(source, "SubnetLen", _get(obj, "SubnetLen"), 0),
                _get(obj, "SubnetMin"),
                _get(obj, "SubnetMax"),
            )
        v6net = None
        v6len = 64
        v6min = v6max = None
        if enable_ipv6:
            raw = _get(obj, "IPv6Network")
            if raw in (None, ""):
                raise _err(source, "IPv6Network", "missing (required when EnableIPv6 is true)")
            v6net = _net6(source, "IPv6Network", raw)
            v6len, v6min, v6max = _subnets(
                source,
                "IPv6",
                v6net,
                _int(source, "IPv6SubnetLen", _get(obj, "IPv6SubnetLen"), 0),
                _get(obj, "IPv6SubnetMin"),
                _get(obj, "IPv6SubnetMax"),
            )
        if not enable_ipv4 and not enable_ipv6:
            raise _err(source, "EnableIPv4", "neither IPv4 nor IPv6 is enabled")
        return cls(
            network=network,
            subnet_len=subnet_len,
            subnet_min=smin,
            subnet_max=smax,
            backend=_backend(source, _get(obj, "Backend"), any(str(k).lower() == "backend" for k in obj)),
            enable_ipv4=enable_ipv4,
            enable_ipv6=enable_ipv6,
            enable_nftables=enable_nft,
            ipv6_network=v6net,
            ipv6_subnet_len=v6len,
            ipv6_subnet_min=v6min,
            ipv6_subnet_max=v6max,
        )

    @classmethod
    def load(cls, path: str | Path) -> NetConf:
        """Reads a net-conf.json file."""
        p = Path(path)
        _check_size(p)
        return cls.parse(p.read_text(), source=str(p))

    def subnets(self) -> Iterable[IPv4Network]:
        """The subnets flannel may lease, from SubnetMin to SubnetMax."""
        if self.network is None or self.subnet_min is None or self.subnet_max is None:
            return
        size = 1 << (32 - self.subnet_len)
        at = int(self.subnet_min)
        while at <= int(self.subnet_max):
            yield ipaddress.IPv4Network((at, self.subnet_len))
            at += size


def _check_size(p: Path, limit: int = 1 << 20) -> None:
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ConfigError(f"{p}: {e.strerror}", source=str(p), field="") from None
    if size > limit:
        raise ConfigError(f"{p}: {size} bytes exceeds the limit of {limit}", source=str(p), field="")


def _subnets(
    source: str, pre: str, net: Any, length: int, raw_min: Any, raw_max: Any
) -> tuple[int, Any, Any]:
    """flannel's SubnetLen / SubnetMin / SubnetMax defaults and checks (pkg/subnet/config.go)."""
    width = net.max_prefixlen
    if length:
        if length > width - 2:
            raise _err(source, f"{pre}SubnetLen", f"must be less than /{width - 1}")
        if length < net.prefixlen + 2:
            raise _err(
                source,
                f"{pre}SubnetLen",
                f"/{length}: {pre}Network must be able to accommodate at least four subnets",
            )
    else:
        if net.prefixlen > width - 4:
            raise _err(
                source,
                f"{pre}Network",
                f"{net} is too small. Minimum useful network prefix is /{width - 4}",
            )
        big = 22 if width == 32 else 62
        dflt = 24 if width == 32 else 64
        length = dflt if net.prefixlen <= big else net.prefixlen + 2
    size = 1 << (width - length)
    parse = _ip4 if width == 32 else _ip6
    mask = ((1 << width) - 1) ^ (size - 1)
    if raw_min in (None, "", "0.0.0.0", "::"):
        smin = net.network_address + size
    else:
        smin = parse(source, f"{pre}SubnetMin", raw_min)
        if smin not in net:
            raise _err(source, f"{pre}SubnetMin", f"{smin} is not in the range of the {pre}Network {net}")
    if raw_max in (None, "", "0.0.0.0", "::"):
        smax = net.broadcast_address + 1 - size
    else:
        smax = parse(source, f"{pre}SubnetMax", raw_max)
        if smax not in net:
            raise _err(source, f"{pre}SubnetMax", f"{smax} is not in the range of the {pre}Network {net}")
    if int(smin) & mask != int(smin):
        raise _err(source, f"{pre}SubnetMin", f"{smin} is not on a {pre}SubnetLen boundary")
    if int(smax) & mask != int(smax):
        raise _err(source, f"{pre}SubnetMax", f"{smax} is not on a {pre}SubnetLen boundary")
    return length, smin, smax


def _backend(source: str, raw: Any, present: bool) -> BackendConfig:
    if not present:
        # parseBackendType: no Backend at all means "udp" (the docs say vxlan; the code says udp).
        return BackendConfig(type="udp")
    if raw is None:
        raise _err(source, "Backend.Type", 'Backend is null: flannel fails (unknown backend type "")')
    if not isinstance(raw, Mapping):
        raise _err(source, "Backend", f"expected an object, got {raw!r}")
    btype = _get(raw, "Type")
    if not isinstance(btype, str) or not btype:
        raise _err(
            source, "Backend.Type", f"missing or empty ({btype!r}): flannel fails with unknown backend type"
        )
    if btype not in BACKEND_TYPES:
        raise _err(
            source, "Backend.Type", f"unknown backend type {btype!r} (known: {', '.join(BACKEND_TYPES)})"
        )
    vni = _int(source, "Backend.VNI", _get(raw, "VNI"), 1)
    if not 0 <= vni < 1 << 24:
        raise _err(source, "Backend.VNI", f"{vni} does not fit 24 bits")
    port = _int(source, "Backend.Port", _get(raw, "Port"), 0)
    if not 0 <= port < 1 << 16:
        raise _err(source, "Backend.Port", f"{port} is not a UDP port")
    mtu = _get(raw, "MTU")
    if mtu is not None:
        mtu = _int(source, "Backend.MTU", mtu, 0)
        if mtu <= 0:
            mtu = None
    return BackendConfig(
        type=btype,
        vni=vni,
        port=port,
        gbp=_bool(source, "Backend.GBP", _get(raw, "GBP"), False),
        direct_routing=_bool(source, "Backend.DirectRouting", _get(raw, "DirectRouting"), False),
        learning=_bool(source, "Backend.Learning", _get(raw, "Learning"), False),
        mtu=mtu,
    )


# ---------------------------------------------------------------- leases


@dataclass(frozen=True)
class Lease:
    """A node's subnet lease (flannel's ``lease.Lease`` with its ``LeaseAttrs``)."""

    subnet: IPv4Network | None
    public_ip: IPv4Address | None
    backend_type: str = "vxlan"
    #: ``BackendData.VtepMAC`` (vxlan): the MAC of that node's flannel.<VNI>.
    vtep_mac: str | None = None
    #: ``BackendData.VNI`` as published (absent on old flannel).
    vni: int | None = None
    ipv6_subnet: IPv6Network | None = None
    public_ipv6: IPv6Address | None = None
    #: ``BackendV6Data.VtepMAC``: the MAC of that node's flannel-v6.<VNI>.
    vtep_mac_v6: str | None = None
    #: Not flannel data: the MAC the underlay uses to reach ``public_ip`` (its NIC or a gateway).
    underlay_mac: str | None = None

    def etcd_key(self, prefix: str = ETCD_PREFIX) -> str:
        """``/coreos.com/network/subnets/10.244.1.0-24`` (``&v6net-len`` appended for dual stack)."""
        parts = []
        if self.subnet is not None:
            parts.append(f"{self.subnet.network_address}-{self.subnet.prefixlen}")
        if self.ipv6_subnet is not None:
            parts.append(f"{self.ipv6_subnet.network_address}-{self.ipv6_subnet.prefixlen}")
        return f"{prefix}/subnets/{'&'.join(parts)}"

    def backend_data(self) -> dict[str, Any] | None:
        """The ``BackendData`` object flannel publishes (None for backends without data)."""
        if self.backend_type != "vxlan":
            return None
        data: dict[str, Any] = {}
        if self.vni is not None:
            data["VNI"] = self.vni
        data["VtepMAC"] = self.vtep_mac
        return data

    def etcd_value(self) -> str:
        """``json.Marshal(LeaseAttrs)``: PublicIP always, PublicIPv6 as null when unset."""
        attrs: dict[str, Any] = {
            "PublicIP": str(self.public_ip) if self.public_ip else "0.0.0.0",
            "PublicIPv6": str(self.public_ipv6) if self.public_ipv6 else None,
        }
        if self.backend_type:
            attrs["BackendType"] = self.backend_type
        data = self.backend_data()
        if data is not None:
            attrs["BackendData"] = data
        if self.vtep_mac_v6 is not None:
            v6: dict[str, Any] = {}
            if self.vni is not None:
                v6["VNI"] = self.vni
            v6["VtepMAC"] = self.vtep_mac_v6
            attrs["BackendV6Data"] = v6
        return json.dumps(attrs, separators=(",", ":"))

    def annotations(self, prefix: str = ANNOTATION_PREFIX) -> dict[str, str]:
        """The ``flannel.alpha.coreos.com/*`` annotations flannel puts on the Node."""
        data = self.backend_data()
        out = {
            f"{prefix}/backend-data": json.dumps(data, separators=(",", ":")) if data else "null",
            f"{prefix}/backend-type": self.backend_type,
            f"{prefix}/kube-subnet-manager": "true",
        }
        if self.public_ip is not None:
            out[f"{prefix}/public-ip"] = str(self.public_ip)
        if self.public_ipv6 is not None:
            out[f"{prefix}/public-ipv6"] = str(self.public_ipv6)
        if self.vtep_mac_v6 is not None:
            out[f"{prefix}/backend-v6-data"] = json.dumps(
                {"VNI": self.vni or 1, "VtepMAC": self.vtep_mac_v6}, separators=(",", ":")
            )
        return out


def _backend_data(source: str, fld: str, raw: Any) -> tuple[str | None, int | None]:
    if raw is None or raw == "null":
        return None, None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _err(source, fld, f"not JSON: {e.msg}") from None
        if raw is None:
            return None, None
    if not isinstance(raw, Mapping):
        raise _err(source, fld, f"expected an object, got {raw!r}")
    mac = _get(raw, "VtepMAC")
    vni = _get(raw, "VNI")
    return (
        None if mac is None else _mac(source, f"{fld}.VtepMAC", mac),
        None if vni is None else _int(source, f"{fld}.VNI", vni, 1),
    )


def parse_etcd_lease(key: str, value: str | bytes | Mapping[str, Any]) -> Lease:
    """A lease from its etcd key (``.../subnets/10.244.1.0-24``) and JSON value."""
    source = f"etcd {key}"
    m = _LEASE_KEY.search(key)
    if not m:
        raise _err(source, "key", "does not end in <subnet>-<prefix> (e.g. 10.244.1.0-24)")
    subnet = _net4(source, "key", f"{m.group(1)}/{m.group(2)}")
    v6 = _net6(source, "key", f"{m.group(3)}/{m.group(4)}") if m.group(3) else None
    if isinstance(value, Mapping):
        obj: Any = value
    else:
        try:
            obj = json.loads(value)
        except json.JSONDecodeError as e:
            raise _err(source, "value", f"not JSON: {e.msg}") from None
    if not isinstance(obj, Mapping):
        raise _err(source, "value", "expected a JSON object")
    pub = _get(obj, "PublicIP")
    if pub is None:
        raise _err(source, "PublicIP", "missing")
    pub6 = _get(obj, "PublicIPv6")
    btype = _get(obj, "BackendType") or ""
    if not isinstance(btype, str):
        raise _err(source, "BackendType", f"expected a string, got {btype!r}")
    mac, vni = _backend_data(source, "BackendData", _get(obj, "BackendData"))
    mac6, _ = _backend_data(source, "BackendV6Data", _get(obj, "BackendV6Data"))
    return Lease(
        subnet=subnet,
        public_ip=_ip4(source, "PublicIP", pub),
        backend_type=btype,
        vtep_mac=mac,
        vni=vni,
        ipv6_subnet=v6,
        public_ipv6=None if pub6 is None else _ip6(source, "PublicIPv6", pub6),
        vtep_mac_v6=mac6,
    )


def lease_from_node(node: Mapping[str, Any], prefix: str = ANNOTATION_PREFIX) -> Lease:
    """A lease from a Kubernetes Node object (``--kube-subnet-mgr``): ``spec.podCIDR(s)`` and
    the ``flannel.alpha.coreos.com/*`` annotations. ``public-ip-overwrite`` wins over
    ``public-ip``, as it does when flanneld on that node publishes its lease."""
    meta = node.get("metadata") or {}
    name = meta.get("name", "?") if isinstance(meta, Mapping) else "?"
    source = f"Node {name}"
    ann = meta.get("annotations") or {} if isinstance(meta, Mapping) else {}
    spec = node.get("spec") or {}
    if not isinstance(ann, Mapping) or not isinstance(spec, Mapping):
        raise _err(source, "metadata.annotations", "expected a mapping")
    cidrs = list(spec.get("podCIDRs") or [])
    if spec.get("podCIDR"):
        cidrs.insert(0, spec["podCIDR"])
    if not cidrs:
        raise _err(source, "spec.podCIDR", "pod cidr not assigned")
    v4 = v6 = None
    for c in cidrs:
        try:
            net = ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise _err(source, "spec.podCIDR", f"{c!r} is not a CIDR") from None
        if isinstance(net, IPv4Network) and v4 is None:
            v4 = net
        elif isinstance(net, IPv6Network) and v6 is None:
            v6 = net
    pub = ann.get(f"{prefix}/public-ip-overwrite") or ann.get(f"{prefix}/public-ip")
    if v4 is not None and pub is None:
        raise _err(source, f"metadata.annotations[{prefix}/public-ip]", "missing")
    pub6 = ann.get(f"{prefix}/public-ipv6-overwrite") or ann.get(f"{prefix}/public-ipv6")
    btype = ann.get(f"{prefix}/backend-type", "")
    mac, vni = _backend_data(
        source, f"metadata.annotations[{prefix}/backend-data]", ann.get(f"{prefix}/backend-data")
    )
    mac6, _ = _backend_data(
        source, f"metadata.annotations[{prefix}/backend-v6-data]", ann.get(f"{prefix}/backend-v6-data")
    )
    return Lease(
        subnet=v4,
        public_ip=None if pub is None else _ip4(source, f"metadata.annotations[{prefix}/public-ip]", pub),
        backend_type=btype,
        vtep_mac=mac,
        vni=vni,
        ipv6_subnet=v6,
        public_ipv6=None
        if pub6 is None
        else _ip6(source, f"metadata.annotations[{prefix}/public-ipv6]", pub6),
        vtep_mac_v6=mac6,
    )


# ---------------------------------------------------------------- subnet.env


@dataclass(frozen=True)
class SubnetEnv:
    """``/run/flannel/subnet.env``, which the flannel CNI plugin reads."""

    network: IPv4Network | None
    subnet: ipaddress.IPv4Interface | None
    mtu: int
    ipmasq: bool
    ipv6_network: IPv6Network | None = None
    ipv6_subnet: ipaddress.IPv6Interface | None = None

    def render(self) -> str:
        """The file as flannel's WriteSubnetFile writes it."""
        lines = []
        if self.network is not None and self.subnet is not None:
            lines += [f"FLANNEL_NETWORK={self.network}", f"FLANNEL_SUBNET={self.subnet}"]
        if self.ipv6_network is not None and self.ipv6_subnet is not None:
            lines += [f"FLANNEL_IPV6_NETWORK={self.ipv6_network}", f"FLANNEL_IPV6_SUBNET={self.ipv6_subnet}"]
        lines += [f"FLANNEL_MTU={self.mtu}", f"FLANNEL_IPMASQ={'true' if self.ipmasq else 'false'}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, source: str = "subnet.env") -> SubnetEnv:
        """Reads the file (``KEY=value`` lines; blank lines and ``#`` comments ignored)."""
        values: dict[str, str] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                raise _err(source, f"line {n}", f"expected KEY=value, got {line!r}")
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip()

        def iface(key: str, kind: Any) -> Any:
            if key not in values:
                return None
            try:
                return kind(values[key])
            except ValueError:
                raise _err(source, key, f"{values[key]!r} is not an address/prefix") from None

        if "FLANNEL_MTU" not in values:
            raise _err(source, "FLANNEL_MTU", "missing")
        try:
            mtu = int(values["FLANNEL_MTU"])
        except ValueError:
            raise _err(source, "FLANNEL_MTU", f"{values['FLANNEL_MTU']!r} is not an integer") from None
        masq = values.get("FLANNEL_IPMASQ", "false")
        if masq not in ("true", "false"):
            raise _err(source, "FLANNEL_IPMASQ", f"{masq!r} is neither true nor false")
        net = iface("FLANNEL_NETWORK", lambda s: ipaddress.IPv4Network(s, strict=False))
        sub = iface("FLANNEL_SUBNET", ipaddress.IPv4Interface)
        if (net is None) != (sub is None):
            raise _err(source, "FLANNEL_SUBNET" if sub is None else "FLANNEL_NETWORK", "missing")
        return cls(
            network=net,
            subnet=sub,
            mtu=mtu,
            ipmasq=masq == "true",
            ipv6_network=iface("FLANNEL_IPV6_NETWORK", lambda s: ipaddress.IPv6Network(s, strict=False)),
            ipv6_subnet=iface("FLANNEL_IPV6_SUBNET", ipaddress.IPv6Interface),
        )

    @classmethod
    def load(cls, path: str | Path) -> SubnetEnv:
        """Reads a subnet.env file."""
        p = Path(path)
        _check_size(p)
        return cls.parse(p.read_text(), source=str(p))


# ---------------------------------------------------------------- what a node programs


@dataclass(frozen=True)
class Route:
    """A route flannel installs (``ip route`` syntax via ``str()``)."""

    dst: IPv4Network | IPv6Network
    dev: str | None = None
    via: IPv4Address | IPv6Address | None = None
    onlink: bool = False

    def __str__(self) -> str:
        s = str(self.dst)
        if self.via is not None:
            s += f" via {self.via}"
        if self.dev is not None:
            s += f" dev {self.dev}"
        return s + (" onlink" if self.onlink else "")


@dataclass(frozen=True)
class Neighbour:
    """A permanent neighbour (ARP/NDP) entry: ``<ip> lladdr <mac> dev <dev> nud permanent``."""

    ip: IPv4Address | IPv6Address
    lladdr: str
    dev: str

    def __str__(self) -> str:
        return f"{self.ip} lladdr {self.lladdr} dev {self.dev} nud permanent"


@dataclass(frozen=True)
class FdbEntry:
    """A VXLAN FDB entry: ``<mac> dev <dev> dst <ip> self permanent``."""

    mac: str
    dev: str
    dst: IPv4Address | IPv6Address

    def __str__(self) -> str:
        return f"{self.mac} dev {self.dev} dst {self.dst} self permanent"


from kubenat.flannel_overlay import Overlay  # noqa: E402  (Overlay uses the types above)

__all__ = [
    "ANNOTATION_PREFIX",
    "BACKEND_TYPES",
    "ETCD_PREFIX",
    "OVERHEAD",
    "UDP_PORT",
    "VXLAN_PORT",
    "BackendConfig",
    "FdbEntry",
    "Lease",
    "Neighbour",
    "NetConf",
    "Overlay",
    "Route",
    "SubnetEnv",
    "lease_from_node",
    "parse_etcd_lease",
]
