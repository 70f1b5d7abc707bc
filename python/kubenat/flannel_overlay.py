"""The overlay of one flannel node: what flannel programs there, and its encap/decap.

Import it from :mod:`kubenat.flannel` (``kubenat.flannel.Overlay``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from kubenat import _core
from kubenat.errors import ConfigError, DecapError, KubenatError
from kubenat.flannel import (
    OVERHEAD,
    FdbEntry,
    Lease,
    Neighbour,
    NetConf,
    Route,
    SubnetEnv,
)


def _as_bytes(data: Any) -> bytes:
    """bytes from bytes-likes and from objects with ``__bytes__`` (e.g. scapy packets)."""
    if isinstance(data, bytes):
        return data
    return bytes(data)


class Overlay:
    """One node's view of the flannel overlay.

    ``config`` is the network configuration, ``lease`` this node's lease, ``remotes`` the other
    nodes' leases. ``link_mtu`` is the external interface's MTU; ``underlay_mac`` its MAC, and
    ``peer_macs`` / ``gateway_mac`` the underlay next hops' MACs (needed only for Ethernet frames;
    they are not flannel data). ``underlay_prefix`` is the external interface's prefix, used to
    decide which peers are on-link for ``DirectRouting``.
    """

    def __init__(
        self,
        config: NetConf,
        lease: Lease,
        remotes: Sequence[Lease] = (),
        *,
        link_mtu: int = 1500,
        underlay_mac: str | None = None,
        peer_macs: Mapping[str, str] | None = None,
        gateway_mac: str | None = None,
        underlay_prefix: str | None = None,
        ip_masq: bool = True,
        udp_checksum: bool = True,
        random_fully: bool = True,
        port_range: tuple[int, int] = (32768, 60999),
    ) -> None:
        self.config = config
        self.lease = lease
        self.link_mtu = link_mtu
        self.underlay_mac = underlay_mac
        self.peer_macs = dict(peer_macs or {})
        self.gateway_mac = gateway_mac
        self.ip_masq = ip_masq
        self.udp_checksum = udp_checksum
        self.random_fully = random_fully
        self.port_range = port_range
        self.underlay_prefix = (
            None if underlay_prefix is None else ipaddress.ip_network(underlay_prefix, strict=False)
        )
        btype = config.backend.type
        if btype not in ("udp", "vxlan", "host-gw", "ipip"):
            raise ConfigError(
                f"Backend.Type: kubenat models udp, vxlan, host-gw and ipip, not {btype!r}",
                source="net-conf.json",
                field="Backend.Type",
            )
        if config.enable_ipv4 and (lease.subnet is None or config.network is None):
            raise ConfigError("lease: no IPv4 subnet but EnableIPv4 is true", source="lease", field="subnet")
        if btype == "vxlan" and lease.vtep_mac is None:
            raise ConfigError(
                "lease: BackendData.VtepMAC is missing", source="lease", field="BackendData.VtepMAC"
            )
        # flannel ignores leases of another backend type (with a warning) and its own lease.
        self.remotes = tuple(r for r in remotes if r.backend_type == btype and r.subnet != lease.subnet)
        self.ignored = tuple(r for r in remotes if r.backend_type != btype)

    # ------------------------------------------------------------ devices, MTU

    @property
    def backend(self) -> str:
        """The backend type."""
        return self.config.backend.type

    @property
    def device(self) -> str | None:
        """The device flannel creates: ``flannel.<VNI>``, ``flannel0`` (udp), ``flannel.ipip``."""
        return {
            "vxlan": f"flannel.{self.config.backend.vni}",
            "udp": "flannel0",
            "ipip": "flannel.ipip",
        }.get(self.backend)

    @property
    def device_v6(self) -> str | None:
        """``flannel-v6.<VNI>`` for a dual-stack vxlan overlay."""
        if self.backend == "vxlan" and self.config.enable_ipv6:
            return f"flannel-v6.{self.config.backend.vni}"
        return None

    @property
    def mtu(self) -> int:
        """``FLANNEL_MTU``: the backend's MTU (link - 28 udp, - 50 vxlan, - 20 ipip, host-gw the link)."""
        base = self.link_mtu
        if self.backend == "vxlan" and self.config.backend.mtu:
            base = self.config.backend.mtu
        return base - OVERHEAD[self.backend]

    @property
    def mtu_v6(self) -> int:
        """The MTU the kernel gives flannel-v6.<VNI>: flannel asks ``MTU - 50``, the kernel clamps
        to ``link - 70`` (IPv6 headroom)."""
        return min(self.mtu, self.link_mtu - 70)

    def subnet_env(self) -> SubnetEnv:
        """The subnet.env this node's flanneld writes."""
        c, lease = self.config, self.lease
        sub = None
        if lease.subnet is not None:
            sub = ipaddress.IPv4Interface(f"{lease.subnet.network_address + 1}/{lease.subnet.prefixlen}")
        sub6 = None
        if lease.ipv6_subnet is not None and c.enable_ipv6:
            sub6 = ipaddress.IPv6Interface(
                f"{lease.ipv6_subnet.network_address + 1}/{lease.ipv6_subnet.prefixlen}"
            )
        return SubnetEnv(
            network=c.network if c.enable_ipv4 else None,
            subnet=sub if c.enable_ipv4 else None,
            mtu=self.mtu,
            ipmasq=self.ip_masq,
            ipv6_network=c.ipv6_network if c.enable_ipv6 else None,
            ipv6_subnet=sub6,
        )

    # ------------------------------------------------------------ routes, neighbours, FDB

    def _direct(self, r: Lease) -> bool:
        """DirectRouting: the peer is on-link (flannel asks the kernel; kubenat asks ``underlay_prefix``)."""
        return (
            self.backend == "vxlan"
            and self.config.backend.direct_routing
            and self.underlay_prefix is not None
            and r.public_ip is not None
            and r.public_ip in self.underlay_prefix
        )

    def routes(self) -> list[Route]:
        """The routes flannel installs for the remote leases, in lease order."""
        if self.backend == "udp":
            assert self.config.network is not None
            return [Route(dst=self.config.network, dev="flannel0")]
        out: list[Route] = []
        for r in self.remotes:
            if self.backend == "host-gw" or self._direct(r):
                if r.subnet is not None and r.public_ip is not None and self.config.enable_ipv4:
                    out.append(Route(dst=r.subnet, via=r.public_ip))
                v6 = self.backend == "host-gw" and self.config.enable_ipv6
                if v6 and r.ipv6_subnet is not None and r.public_ipv6 is not None:
                    out.append(Route(dst=r.ipv6_subnet, via=r.public_ipv6))
                continue
            if self.backend == "ipip":
                if r.subnet is not None and r.public_ip is not None:
                    out.append(Route(dst=r.subnet, via=r.public_ip, dev="flannel.ipip", onlink=True))
                continue
            if r.subnet is not None and self.config.enable_ipv4:
                out.append(Route(dst=r.subnet, via=r.subnet.network_address, dev=self.device, onlink=True))
            if r.ipv6_subnet is not None and self.device_v6:
                out.append(
                    Route(
                        dst=r.ipv6_subnet, via=r.ipv6_subnet.network_address, dev=self.device_v6, onlink=True
                    )
                )
        return out

    def neighbours(self) -> list[Neighbour]:
        """The permanent neighbour entries (vxlan): remote subnet address → remote VtepMAC."""
        out: list[Neighbour] = []
        if self.backend != "vxlan":
            return out
        for r in self.remotes:
            if self._direct(r):
                continue
            if r.subnet is not None and r.vtep_mac and self.device:
                out.append(Neighbour(r.subnet.network_address, r.vtep_mac, self.device))
            if r.ipv6_subnet is not None and r.vtep_mac_v6 and self.device_v6:
                out.append(Neighbour(r.ipv6_subnet.network_address, r.vtep_mac_v6, self.device_v6))
        return out

    def fdb(self) -> list[FdbEntry]:
        """The FDB entries (vxlan): remote VtepMAC → remote public IP."""
        out: list[FdbEntry] = []
        if self.backend != "vxlan":
            return out
        for r in self.remotes:
            if self._direct(r):
                continue
            if r.public_ip is not None and r.vtep_mac and self.device:
                out.append(FdbEntry(r.vtep_mac, self.device, r.public_ip))
            if r.public_ipv6 is not None and r.vtep_mac_v6 and self.device_v6:
                out.append(FdbEntry(r.vtep_mac_v6, self.device_v6, r.public_ipv6))
        return out

    # ------------------------------------------------------------ iptables

    def iptables_save(self, family: int = 4) -> str:
        """FLANNEL-FWD (filter) and FLANNEL-POSTRTG (nat, with ``--ip-masq``) as iptables-save text,
        tables in the order iptables-save prints them."""
        cluster: Any
        pod: Any
        if family == 4:
            cluster, pod, mcast = self.config.network, self.lease.subnet, "224.0.0.0/4"
        elif family == 6:
            cluster, pod, mcast = self.config.ipv6_network, self.lease.ipv6_subnet, "ff00::/8"
        else:
            raise ConfigError(f"family: {family} is neither 4 nor 6", source="iptables_save", field="family")
        if cluster is None or pod is None:
            raise ConfigError(
                f"family: IPv{family} is not enabled in this overlay", source="iptables_save", field="family"
            )
        masq = 'flanneld masq"'
        c, p = str(cluster), str(pod)
        rf = " --random-fully" if self.random_fully else ""
        fwd = 'flanneld forward"'
        lines = [
            "*filter",
            ":INPUT ACCEPT [0:0]",
            ":FORWARD ACCEPT [0:0]",
            ":OUTPUT ACCEPT [0:0]",
            ":FLANNEL-FWD - [0:0]",
            f'-A FORWARD -m comment --comment "{fwd} -j FLANNEL-FWD',
            f'-A FLANNEL-FWD -s {c} -m comment --comment "{fwd} -j ACCEPT',
            f'-A FLANNEL-FWD -d {c} -m comment --comment "{fwd} -j ACCEPT',
            "COMMIT",
        ]
        if self.ip_masq:
            lines += [
                "*nat",
                ":PREROUTING ACCEPT [0:0]",
                ":INPUT ACCEPT [0:0]",
                ":OUTPUT ACCEPT [0:0]",
                ":POSTROUTING ACCEPT [0:0]",
                ":FLANNEL-POSTRTG - [0:0]",
                f'-A POSTROUTING -m comment --comment "{masq} -j FLANNEL-POSTRTG',
                f'-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "{masq} -j RETURN',
                f'-A FLANNEL-POSTRTG -s {p} -d {c} -m comment --comment "{masq} -j RETURN',
                f'-A FLANNEL-POSTRTG -s {c} -d {p} -m comment --comment "{masq} -j RETURN',
                f'-A FLANNEL-POSTRTG ! -s {c} -d {p} -m comment --comment "{masq} -j RETURN',
                f'-A FLANNEL-POSTRTG -s {c} ! -d {mcast} -m comment --comment "{masq} -j MASQUERADE{rf}',
                f'-A FLANNEL-POSTRTG ! -s {c} -d {c} -m comment --comment "{masq} -j MASQUERADE{rf}',
                "COMMIT",
            ]
        return "\n".join(lines) + "\n"

    def ruleset(self, family: int = 4) -> _core.Ruleset:
        """The same rules as a :class:`kubenat.Ruleset`."""
        return _core.Ruleset.parse(self.iptables_save(family), "ipv4" if family == 4 else "ipv6")

    # ------------------------------------------------------------ encap / decap

    def _peer_mac(self, r: Lease, v6: bool = False) -> str | None:
        ip = r.public_ipv6 if v6 else r.public_ip
        return r.underlay_mac or self.peer_macs.get(str(ip))

    @cached_property
    def encapsulator(self) -> _core.Encapsulator:
        """The Rust encapsulator for this node."""
        b, lease = self.config.backend, self.lease
        if self.backend == "ipip":
            raise ConfigError(
                "Backend.Type: ipip encapsulation is not modelled", source="overlay", field="Backend.Type"
            )
        entries: list[tuple[str, str, str | None, str | None]] = []
        for r in self.remotes:
            if self._direct(r):
                continue  # routed without encapsulation: see _direct_encapsulator
            if r.subnet is not None and r.public_ip is not None and self.config.enable_ipv4:
                entries.append((str(r.subnet), str(r.public_ip), r.vtep_mac, self._peer_mac(r)))
            if r.ipv6_subnet is not None and r.public_ipv6 is not None and self.config.enable_ipv6:
                entries.append(
                    (str(r.ipv6_subnet), str(r.public_ipv6), r.vtep_mac_v6, self._peer_mac(r, True))
                )
        tun = str(lease.subnet.network_address) if lease.subnet is not None else None
        return _core.Encapsulator(
            self.backend,
            public_ip=None if lease.public_ip is None else str(lease.public_ip),
            public_ipv6=None if lease.public_ipv6 is None else str(lease.public_ipv6),
            underlay_mac=self.underlay_mac,
            vtep_mac=lease.vtep_mac,
            vtep_mac_v6=lease.vtep_mac_v6,
            leases=entries,
            gateway_mac=self.gateway_mac,
            vni=b.vni,
            port=b.effective_port,
            udp_checksum=self.udp_checksum,
            gbp=b.gbp,
            port_range=self.port_range,
            mtu=self.mtu if self.config.enable_ipv4 else self.mtu_v6,
            tun_addr=tun,
        )

    @cached_property
    def _direct_encapsulator(self) -> _core.Encapsulator | None:
        """DirectRouting peers get host-gw treatment: the inner packet, routed, no encapsulation."""
        direct = [r for r in self.remotes if self._direct(r)]
        if not direct:
            return None
        entries = [(str(r.subnet), str(r.public_ip), None, self._peer_mac(r)) for r in direct]
        return _core.Encapsulator(
            "host-gw",
            public_ip=None if self.lease.public_ip is None else str(self.lease.public_ip),
            underlay_mac=self.underlay_mac,
            leases=entries,
            gateway_mac=self.gateway_mac,
            mtu=self.link_mtu,
        )

    def encap(self, packet: Any, *, ip_id: int = 0, mark: int = 0, link: str = "ethernet") -> bytes:
        """The frame this node sends for the inner IP packet (bytes or a scapy packet).

        Raises :class:`kubenat.DecapError` when the node would drop or answer it instead
        (``kind``: ``no_route``, ``net_unreachable``, ``ttl_expired``, ``oversize`` ...).
        With ``DirectRouting``, packets for on-link peers leave unencapsulated.
        """
        data = _as_bytes(packet)
        try:
            return self.encapsulator.encap(data, ip_id=ip_id, mark=mark, link=link)
        except DecapError as e:
            direct = self._direct_encapsulator
            if getattr(e, "kind", "") != "no_route" or direct is None:
                raise
            return direct.encap(data, link=link)

    def decap(self, frame: Any, *, link: str = "ethernet") -> bytes:
        """The inner IP packet of a frame this node receives; :class:`kubenat.DecapError` when the
        node's receive path would drop it (``.kind``, ``.offset``)."""
        return self.encapsulator.decap(_as_bytes(frame), link=link)

    def encap_batch(
        self, packets: Sequence[Any], *, ip_id: int = 0, mark: int = 0, link: str = "ethernet"
    ) -> list[bytes | KubenatError]:
        """Many packets at once (the GIL is released); errors are returned in place, not raised."""
        data = [_as_bytes(p) for p in packets]
        out = self.encapsulator.encap_batch(data, ip_id=ip_id, mark=mark, link=link)
        direct = self._direct_encapsulator
        if direct is not None:
            for i, r in enumerate(out):
                if isinstance(r, DecapError) and getattr(r, "kind", "") == "no_route":
                    try:
                        out[i] = direct.encap(data[i], link=link)
                    except KubenatError as e:
                        out[i] = e
        return out

    def decap_batch(self, frames: Sequence[Any], *, link: str = "ethernet") -> list[bytes | KubenatError]:
        """Many frames at once (the GIL is released); errors are returned in place, not raised."""
        return self.encapsulator.decap_batch([_as_bytes(f) for f in frames], link=link)

    def inspect(self, frame: Any, *, link: str = "ethernet") -> list[str]:
        """Warnings about a frame this node accepts but that shows a known flannel problem:
        an outer source port outside the ephemeral range (the outer packet was NATed, as in the
        kube-proxy mark / MASQUERADE bug), an outer source that is no lease's public IP, an inner
        source MAC that is not the sending lease's VtepMAC (a stale lease), an inner packet larger
        than FLANNEL_MTU. Frames the node drops raise :class:`kubenat.DecapError` instead."""
        data = _as_bytes(frame)
        inner = self.decap(data, link=link)
        out: list[str] = []
        if len(inner) > self.mtu:
            out.append(f"inner packet of {len(inner)} bytes exceeds FLANNEL_MTU {self.mtu}")
        at = 14 if link in ("ethernet", "ether", "eth") else 0
        if self.backend not in ("vxlan", "udp"):
            return out
        v6 = data[at] >> 4 == 6
        src: Any = (
            ipaddress.IPv6Address(data[at + 8 : at + 24])
            if v6
            else ipaddress.IPv4Address(data[at + 12 : at + 16])
        )
        l4 = at + (40 if v6 else (data[at] & 0x0F) * 4)
        sport = int.from_bytes(data[l4 : l4 + 2], "big")
        senders = [r for r in self.remotes if src in (r.public_ip, r.public_ipv6)]
        if not senders:
            out.append(f"outer source {src} is no remote lease's public IP")
        if self.backend == "vxlan":
            lo, hi = self.port_range
            if not lo <= sport < hi:
                out.append(
                    f"outer source port {sport} is outside {lo}-{hi - 1}: the outer packet was probably "
                    "NATed (e.g. MASQUERADE of VXLAN traffic carrying kube-proxy's 0x4000 mark)"
                )
            inner_src = data[l4 + 22 : l4 + 28].hex(":")
            for r in senders:
                want = r.vtep_mac_v6 if v6 else r.vtep_mac
                if want is not None and want != inner_src:
                    out.append(
                        f"inner source MAC {inner_src} is not lease {r.subnet}'s VtepMAC {want} (stale?)"
                    )
        elif sport != self.config.backend.effective_port:
            out.append(f"outer source port {sport} is not the UDP backend's port (NATed?)")
        return out

    def net_unreachable(self, packet: Any) -> bytes | None:
        """The ICMP net-unreachable the UDP backend's proxy answers ``packet`` with, or None."""
        return self.encapsulator.net_unreachable(_as_bytes(packet))

    def __repr__(self) -> str:
        return (
            f"Overlay(backend={self.backend!r}, subnet={self.lease.subnet}, "
            f"public_ip={self.lease.public_ip}, "
            f"remotes={len(self.remotes)}, mtu={self.mtu})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "link_mtu": self.link_mtu,
            "underlay_mac": self.underlay_mac,
            "peer_macs": self.peer_macs,
            "gateway_mac": self.gateway_mac,
            "underlay_prefix": None if self.underlay_prefix is None else str(self.underlay_prefix),
            "ip_masq": self.ip_masq,
            "udp_checksum": self.udp_checksum,
            "random_fully": self.random_fully,
            "port_range": self.port_range,
        }
        return (_rebuild, (self.config, self.lease, self.remotes + self.ignored, kwargs))


def _rebuild(config: NetConf, lease: Lease, remotes: Sequence[Lease], kwargs: dict[str, Any]) -> Overlay:
    return Overlay(config, lease, remotes, **kwargs)
