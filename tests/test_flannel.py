"""flannel: configuration loading, Overlay programming, encap/decap properties, scapy agreement."""

from __future__ import annotations

import ipaddress
import json
import pickle
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

import kubenat
from kubenat import _core
from kubenat.flannel import (
    Lease,
    NetConf,
    Overlay,
    SubnetEnv,
    lease_from_node,
    parse_etcd_lease,
)

A_NIC, B_NIC = "02:00:00:00:00:01", "02:00:00:00:00:02"
A_VTEP, B_VTEP = "02:aa:00:00:00:01", "02:bb:00:00:00:01"


def conf(backend: dict[str, object] | None = None, **extra: object) -> NetConf:
    obj: dict[str, object] = {"Network": "10.244.0.0/16", **extra}
    if backend is not None:
        obj["Backend"] = backend
    return NetConf.parse(json.dumps(obj))


def leases(btype: str) -> tuple[Lease, Lease]:
    a = Lease(
        ipaddress.IPv4Network("10.244.1.0/24"),
        ipaddress.IPv4Address("192.168.50.1"),
        btype,
        A_VTEP if btype == "vxlan" else None,
        1 if btype == "vxlan" else None,
        underlay_mac=A_NIC,
    )
    b = Lease(
        ipaddress.IPv4Network("10.244.2.0/24"),
        ipaddress.IPv4Address("192.168.50.2"),
        btype,
        B_VTEP if btype == "vxlan" else None,
        1 if btype == "vxlan" else None,
        underlay_mac=B_NIC,
    )
    return a, b


def pair(btype: str, **kw: object) -> tuple[Overlay, Overlay]:
    c = conf({"Type": btype})
    a, b = leases(btype)
    return (
        Overlay(c, a, [b], underlay_mac=A_NIC, **kw),  # type: ignore[arg-type]
        Overlay(c, b, [a], underlay_mac=B_NIC, **kw),  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------ configuration


def test_net_conf_defaults_follow_flannel() -> None:
    c = NetConf.parse('{"Network": "10.244.0.0/16"}')
    # parseBackendType: no Backend means udp
    assert c.backend.type == "udp"
    assert c.backend.effective_port == 8285
    assert c.subnet_len == 24
    assert str(c.subnet_min) == "10.244.1.0"
    assert str(c.subnet_max) == "10.244.255.0"
    v = conf({"Type": "vxlan"})
    assert (v.backend.vni, v.backend.effective_port, v.backend.gbp, v.backend.direct_routing) == (
        1,
        8472,
        False,
        False,
    )
    assert NetConf.parse('{"Network": "10.0.0.0/25"}').subnet_len == 27
    # Go's JSON is case-insensitive
    assert (
        NetConf.parse('{"network": "10.5.0.0/16", "backend": {"type": "host-gw"}}').backend.type == "host-gw"
    )
    assert len(list(NetConf.parse('{"Network": "10.0.0.0/26"}').subnets())) == 3


@pytest.mark.parametrize(
    ("text", "fld"),
    [
        ("{", ""),
        ("{}", "Network"),
        ('{"Network": "nope"}', "Network"),
        ('{"Network": "10.0.0.0/29"}', "Network"),
        ('{"Network": "10.0.0.0/16", "SubnetLen": 31}', "SubnetLen"),
        ('{"Network": "10.0.0.0/16", "SubnetLen": 17}', "SubnetLen"),
        ('{"Network": "10.0.0.0/16", "SubnetLen": "24"}', "SubnetLen"),
        ('{"Network": "10.0.0.0/16", "SubnetMin": "10.1.0.0"}', "SubnetMin"),
        ('{"Network": "10.0.0.0/16", "SubnetMax": "10.0.3.7"}', "SubnetMax"),
        ('{"Network": "10.0.0.0/16", "Backend": {}}', "Backend.Type"),
        ('{"Network": "10.0.0.0/16", "Backend": {"Type": "bogus"}}', "Backend.Type"),
        ('{"Network": "10.0.0.0/16", "Backend": {"Type": "vxlan", "VNI": "1"}}', "Backend.VNI"),
        ('{"Network": "10.0.0.0/16", "Backend": {"Type": "vxlan", "Port": 70000}}', "Backend.Port"),
        ('{"Network": "10.0.0.0/16", "EnableIPv6": true}', "IPv6Network"),
    ],
)
def test_net_conf_errors_name_the_field(text: str, fld: str) -> None:
    with pytest.raises(kubenat.ConfigError) as e:
        NetConf.parse(text)
    assert e.value.field == fld
    assert e.value.source == "net-conf.json"
    if fld:
        assert fld in str(e.value)


def test_ipv6_config() -> None:
    c = NetConf.parse('{"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56"}')
    assert c.ipv6_subnet_len == 64
    assert str(c.ipv6_subnet_min) == "fd00:10:244:1::"


def test_etcd_lease_round_trip() -> None:
    key = "/coreos.com/network/subnets/10.244.1.0-24"
    value = (
        '{"PublicIP":"192.168.0.10","PublicIPv6":null,"BackendType":"vxlan",'
        '"BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}'
    )
    lease = parse_etcd_lease(key, value)
    assert str(lease.subnet) == "10.244.1.0/24"
    assert lease.vtep_mac == "aa:bb:cc:dd:ee:ff"
    assert lease.etcd_key() == key
    assert lease.etcd_value() == value
    dual = parse_etcd_lease(
        "/coreos.com/network/subnets/10.244.1.0-24&fd00:12:13::-56",
        {"PublicIP": "192.168.0.10", "PublicIPv6": "fd99::10", "BackendType": "host-gw"},
    )
    assert str(dual.ipv6_subnet) == "fd00:12:13::/56"
    assert dual.etcd_key().endswith("10.244.1.0-24&fd00:12:13::-56")


@pytest.mark.parametrize(
    ("key", "value", "fld"),
    [
        ("/coreos.com/network/subnets/bogus", "{}", "key"),
        ("/coreos.com/network/subnets/10.244.1.0-24", "{", "value"),
        ("/coreos.com/network/subnets/10.244.1.0-24", "{}", "PublicIP"),
        ("/coreos.com/network/subnets/10.244.1.0-24", '{"PublicIP": "x"}', "PublicIP"),
        (
            "/coreos.com/network/subnets/10.244.1.0-24",
            '{"PublicIP": "1.2.3.4", "BackendData": {"VtepMAC": "zz"}}',
            "BackendData.VtepMAC",
        ),
    ],
)
def test_etcd_lease_errors(key: str, value: str, fld: str) -> None:
    with pytest.raises(kubenat.ConfigError) as e:
        parse_etcd_lease(key, value)
    assert e.value.field == fld


def test_node_annotations() -> None:
    a, _ = leases("vxlan")
    node = {
        "metadata": {"name": "n1", "annotations": a.annotations()},
        "spec": {"podCIDR": "10.244.1.0/24"},
    }
    back = lease_from_node(node)
    assert back.vtep_mac == A_VTEP
    assert back.public_ip == a.public_ip
    assert back.backend_type == "vxlan"
    assert (
        a.annotations()["flannel.alpha.coreos.com/backend-data"] == '{"VNI":1,"VtepMAC":"02:aa:00:00:00:01"}'
    )
    hostgw = Lease(a.subnet, a.public_ip, "host-gw")
    assert hostgw.annotations()["flannel.alpha.coreos.com/backend-data"] == "null"
    node["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip-overwrite"] = "10.9.9.9"  # type: ignore[index]
    assert str(lease_from_node(node).public_ip) == "10.9.9.9"
    with pytest.raises(kubenat.ConfigError, match="pod cidr not assigned") as e:
        lease_from_node({"metadata": {"name": "n2"}, "spec": {}})
    assert e.value.field == "spec.podCIDR"


def test_subnet_env() -> None:
    o, _ = pair("vxlan")
    text = o.subnet_env().render()
    assert text == (
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    assert SubnetEnv.parse(text) == o.subnet_env()
    with pytest.raises(kubenat.ConfigError) as e:
        SubnetEnv.parse("FLANNEL_MTU=abc\n")
    assert e.value.field == "FLANNEL_MTU"


def test_mtu_per_backend() -> None:
    assert pair("vxlan")[0].mtu == 1450
    assert pair("udp")[0].mtu == 1472
    assert pair("host-gw")[0].mtu == 1500
    c = conf({"Type": "vxlan", "MTU": 9001})
    assert Overlay(c, leases("vxlan")[0], link_mtu=9001).mtu == 8951


def test_programming_per_backend() -> None:
    vx, _ = pair("vxlan")
    assert [str(r) for r in vx.routes()] == ["10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"]
    assert [str(n) for n in vx.neighbours()] == [f"10.244.2.0 lladdr {B_VTEP} dev flannel.1 nud permanent"]
    assert [str(f) for f in vx.fdb()] == [f"{B_VTEP} dev flannel.1 dst 192.168.50.2 self permanent"]
    hg, _ = pair("host-gw")
    assert [str(r) for r in hg.routes()] == ["10.244.2.0/24 via 192.168.50.2"]
    assert hg.neighbours() == [] and hg.fdb() == []
    udp, _ = pair("udp")
    assert [str(r) for r in udp.routes()] == ["10.244.0.0/16 dev flannel0"]
    direct = conf({"Type": "vxlan", "DirectRouting": True})
    a, b = leases("vxlan")
    o = Overlay(direct, a, [b], underlay_prefix="192.168.50.0/24")
    assert [str(r) for r in o.routes()] == ["10.244.2.0/24 via 192.168.50.2"]
    # leases of another backend type are ignored, as flannel does
    o = Overlay(conf({"Type": "vxlan"}), a, [Lease(b.subnet, b.public_ip, "host-gw")])
    assert o.routes() == [] and len(o.ignored) == 1


def test_iptables_rules() -> None:
    o, _ = pair("vxlan")
    text = o.iptables_save()
    assert (
        '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN'
        in text
    )
    assert (
        '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" '
        "-j MASQUERADE --random-fully"
    ) in text
    assert '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT' in text
    assert text.count("COMMIT") == 2
    assert "*nat" not in Overlay(conf({"Type": "vxlan"}), leases("vxlan")[0], ip_masq=False).iptables_save()


def test_overlay_pickles() -> None:
    a, _ = pair("vxlan")
    b = pickle.loads(pickle.dumps(a))
    assert b.routes() == a.routes()


# ------------------------------------------------------------------ encap / decap


def tcp4(src: str = "10.244.1.5", dst: str = "10.244.2.5", sport: int = 12345, tos: int = 0) -> bytes:
    return bytes(IP(src=src, dst=dst, ttl=63, tos=tos, id=7) / TCP(sport=sport, dport=80, flags="S"))


ipv4_packets = st.builds(
    lambda host, sport, dport, tos, ttl, ident, payload, proto: bytes(
        IP(src="10.244.1.5", dst=f"10.244.2.{host}", tos=tos, ttl=ttl, id=ident)
        / (TCP(sport=sport, dport=dport) if proto else UDP(sport=sport, dport=dport))
        / payload
    ),
    st.integers(0, 255),
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.integers(0, 255),
    st.integers(3, 255),
    st.integers(0, 65535),
    st.binary(max_size=300),
    st.booleans(),
)


@given(ipv4_packets, st.integers(0, 65535), st.sampled_from(["ethernet", "ip"]))
def test_vxlan_round_trip(packet: bytes, ip_id: int, link: str) -> None:
    a, b = pair("vxlan")
    frame = a.encap(packet, ip_id=ip_id, link=link)
    assert b.decap(frame, link=link) == packet


@given(ipv4_packets)
def test_host_gw_round_trip(packet: bytes) -> None:
    a, b = pair("host-gw")
    assert b.decap(a.encap(packet)) == packet


def _ttl_minus(packet: bytes, n: int) -> bytes:
    p = IP(packet)
    p.ttl -= n
    del p.chksum
    return bytes(p)


@given(ipv4_packets)
def test_udp_round_trip_is_the_packet_two_hops_older(packet: bytes) -> None:
    a, b = pair("udp")
    out = b.decap(a.encap(packet))
    # both proxies decrement; the patched checksum equals a recomputed one except for the
    # proxy's 0x0000-for-0xFFFF corner case
    expect = _ttl_minus(packet, 2)
    assert out[:10] == expect[:10] and out[12:] == expect[12:]
    assert IP(out).ttl == IP(packet).ttl - 2
    plain = _core.Encapsulator("udp", public_ip="192.168.50.2", decrement_ttl=False)
    unaged = _core.Encapsulator("udp", public_ip="192.168.50.1", decrement_ttl=False, leases=raw_leases())
    assert plain.decap(unaged.encap(packet, link="ip"), link="ip") == packet


def raw_leases() -> list[tuple[str, str, str | None, str | None]]:
    return [("10.244.2.0/24", "192.168.50.2", None, None)]


@given(
    st.binary(max_size=200), st.sampled_from(["ethernet", "ip"]), st.sampled_from(["vxlan", "udp", "host-gw"])
)
def test_random_bytes_never_panic(data: bytes, link: str, btype: str) -> None:
    _, b = pair(btype)
    try:
        b.decap(data, link=link)
    except kubenat.DecapError as e:
        assert isinstance(e.kind, str) and 0 <= e.offset <= max(len(data), 1)
    try:
        b.encap(data, link=link)
    except (kubenat.DecapError, kubenat.PacketError):
        pass


@given(st.binary(min_size=64, max_size=200), st.integers(0, 63))
def test_mutated_frames_decap_or_fail_cleanly(tail: bytes, at: int) -> None:
    a, b = pair("vxlan")
    frame = bytearray(a.encap(tcp4()))
    frame[at] ^= 0xFF
    try:
        b.decap(bytes(frame))
    except kubenat.DecapError as e:
        assert e.offset <= len(frame)


def test_scapy_dissects_vxlan_frames() -> None:
    a, _ = pair("vxlan")
    inner = tcp4(tos=0x03)
    pkt = Ether(a.encap(inner, ip_id=0x1017))
    assert pkt[Ether].dst == B_NIC and pkt[Ether].src == A_NIC
    assert pkt[IP].ttl == 64 and pkt[IP].flags == 0 and pkt[IP].tos == 0x02 and pkt[IP].id == 0x1017
    assert pkt[UDP].dport == 8472 and 32768 <= pkt[UDP].sport < 60999
    assert pkt[VXLAN].flags == 0x08 and pkt[VXLAN].vni == 1
    assert pkt[VXLAN].payload[Ether].dst == B_VTEP and pkt[VXLAN].payload[Ether].src == A_VTEP
    assert bytes(pkt[VXLAN].payload[IP]) == inner
    # scapy's own checksums agree
    rebuilt = pkt.copy()
    del rebuilt[IP].chksum
    del rebuilt[UDP].chksum
    assert bytes(Ether(bytes(rebuilt))) == bytes(pkt)


def test_scapy_built_vxlan_is_accepted_only_with_flags_0x08() -> None:
    _, b = pair("vxlan")
    inner = IP(tcp4())
    base = (
        Ether(dst=B_NIC, src=A_NIC)
        / IP(src="192.168.50.1", dst="192.168.50.2")
        / UDP(sport=40000, dport=8472)
    )
    good = base / VXLAN(flags=0x08, vni=1) / Ether(dst=B_VTEP, src=A_VTEP) / inner
    assert b.decap(bytes(good)) == bytes(inner)
    scapy_default = base / VXLAN(vni=1) / Ether(dst=B_VTEP, src=A_VTEP) / inner
    with pytest.raises(kubenat.DecapError) as e:
        b.decap(bytes(scapy_default))
    assert e.value.kind == "vxlan_reserved" and e.value.offset == 42


def test_udp_backend_frames_dissect() -> None:
    from scapy.packet import bind_layers

    bind_layers(UDP, IP, dport=8285)
    a, _ = pair("udp")
    pkt = Ether(a.encap(tcp4(), ip_id=0))
    assert pkt[UDP].sport == pkt[UDP].dport == 8285
    assert pkt[IP].flags == "DF" and pkt[IP].id == 0 and pkt[IP].ttl == 64
    assert pkt[UDP].payload[IP].ttl == 62
    assert pkt[UDP].payload[TCP].dport == 80


def test_udp_backend_net_unreachable_is_flannels_construction() -> None:
    a, _ = pair("udp")
    offender = tcp4(dst="10.244.77.5")
    with pytest.raises(kubenat.DecapError) as e:
        a.encap(offender)
    assert e.value.kind == "net_unreachable"
    icmp = a.net_unreachable(offender)
    assert icmp is not None
    # flannel's send_net_unreachable, field by field
    ihl = (offender[0] & 0x0F) * 4
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + ihl + 8, 0, 0, 8, 1, 0, bytes([10, 244, 1, 0]), offender[12:16]
    )
    body = struct.pack("!BBHI", 3, 0, 0, 0) + offender[: ihl + 8]

    def csum(b: bytes) -> int:
        s = sum(struct.unpack(f"!{len(b) // 2}H", b))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF

    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    assert icmp == hdr + body
    assert IP(icmp)[ICMP].type == 3 and IP(icmp)[ICMP].code == 0
    assert _core.flannel_net_unreachable(offender, "10.244.1.0") == icmp
    # no ICMP about ICMP, nor for non-first fragments
    assert a.net_unreachable(bytes(IP(dst="10.244.77.5") / ICMP())) is None
    assert a.net_unreachable(bytes(IP(dst="10.244.77.5", frag=10) / (b"x" * 8))) is None


def test_udp_backend_ttl_expiry_and_oversize() -> None:
    a, _ = pair("udp")
    with pytest.raises(kubenat.DecapError) as e:
        a.encap(bytes(IP(src="10.244.1.5", dst="10.244.2.5", ttl=1) / UDP()))
    assert e.value.kind == "ttl_expired"
    with pytest.raises(kubenat.DecapError) as e:
        a.encap(bytes(IP(src="10.244.1.5", dst="10.244.2.5") / UDP() / (b"x" * 1500)))
    assert e.value.kind == "oversize"
    assert _core.flannel_decrement_ttl(bytes(IP(ttl=1))) is None


def test_vxlan_decap_error_kinds() -> None:
    a, b = pair("vxlan")
    frame = a.encap(tcp4())

    def kind(f: bytes) -> tuple[str, int]:
        with pytest.raises(kubenat.DecapError) as e:
            b.decap(f)
        return e.value.kind, e.value.offset

    wrong_vni = Ether(frame)
    wrong_vni[VXLAN].vni = 2
    del wrong_vni[UDP].chksum
    assert kind(bytes(wrong_vni)) == ("vni", 46)
    wrong_mac = Ether(frame)
    wrong_mac[VXLAN].payload[Ether].dst = "02:cc:00:00:00:01"
    del wrong_mac[UDP].chksum
    assert kind(bytes(wrong_mac)) == ("inner_dst_mac", 50)
    bad_sum = bytearray(frame)
    bad_sum[40] ^= 1
    assert kind(bytes(bad_sum)) == ("udp_checksum", 40)
    assert kind(frame[:45])[0] == "truncated"
    with pytest.raises(kubenat.DecapError) as e:
        a.decap(frame)  # the sender's own frame is for another host
    assert e.value.kind == "outer_dst_mac"


def test_batches_return_errors_in_place() -> None:
    a, b = pair("vxlan")
    out = a.encap_batch([tcp4(), b"\x45" + b"\0" * 5, tcp4(sport=1)], ip_id=100)
    assert isinstance(out[0], bytes) and isinstance(out[2], bytes)
    assert isinstance(out[1], kubenat.PacketError)
    assert Ether(out[2])[IP].id == 101
    back = b.decap_batch([out[0], b"junk", out[2]])
    assert back[0] == tcp4() and back[2] == tcp4(sport=1)
    assert isinstance(back[1], kubenat.DecapError) and back[1].kind == "truncated"


def test_source_port_is_stable_per_flow() -> None:
    a, _ = pair("vxlan")
    ports = {Ether(a.encap(tcp4(sport=s)))[UDP].sport for s in range(1000, 1100)}
    again = {Ether(a.encap(tcp4(sport=s), ip_id=9))[UDP].sport for s in range(1000, 1100)}
    assert ports == again
    assert len(ports) > 90
    assert all(32768 <= p < 60999 for p in ports)


def test_ipv6_overlay() -> None:
    c = NetConf.parse(
        '{"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56",'
        ' "Backend": {"Type": "vxlan"}}'
    )
    a6 = Lease(
        ipaddress.IPv4Network("10.244.1.0/24"),
        ipaddress.IPv4Address("192.168.50.1"),
        "vxlan",
        A_VTEP,
        1,
        ipaddress.IPv6Network("fd00:10:244:1::/64"),
        ipaddress.IPv6Address("fd99::1"),
        "02:a6:00:00:00:01",
        underlay_mac=A_NIC,
    )
    b6 = Lease(
        ipaddress.IPv4Network("10.244.2.0/24"),
        ipaddress.IPv4Address("192.168.50.2"),
        "vxlan",
        B_VTEP,
        1,
        ipaddress.IPv6Network("fd00:10:244:2::/64"),
        ipaddress.IPv6Address("fd99::2"),
        "02:b6:00:00:00:01",
        underlay_mac=B_NIC,
    )
    a = Overlay(c, a6, [b6], underlay_mac=A_NIC)
    b = Overlay(c, b6, [a6], underlay_mac=B_NIC)
    assert a.device_v6 == "flannel-v6.1" and a.mtu_v6 == 1430
    assert "fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel-v6.1 onlink" in [str(r) for r in a.routes()]
    inner = bytes(
        IPv6(src="fd00:10:244:1::5", dst="fd00:10:244:2::5", hlim=63) / UDP(sport=5, dport=53) / b"q"
    )
    frame = a.encap(inner)
    pkt = Ether(frame)
    assert pkt[IPv6].hlim == 64 and pkt[IPv6].nh == 17 and pkt[IPv6].dst == "fd99::2"
    assert pkt[UDP].dport == 8472 and pkt[UDP].chksum != 0
    assert pkt[VXLAN].payload[Ether].dst == "02:b6:00:00:00:01"
    assert b.decap(frame) == inner
    assert len(frame) == len(inner) + 70 + 14
    assert a.iptables_save(6).count("ff00::/8") == 1


def test_bad_constructor_arguments() -> None:
    with pytest.raises(kubenat.InvalidArgument) as e:
        _core.Encapsulator("gre")
    assert e.value.what == "backend"
    with pytest.raises(kubenat.InvalidArgument) as e:
        _core.Encapsulator("vxlan", vtep_mac="nope")
    assert e.value.what == "vtep_mac"
    with pytest.raises(kubenat.InvalidArgument) as e:
        _core.Encapsulator(
            "vxlan", leases=[("10.0.0.0/8", "1.1.1.1", None, None), ("10.1.0.0/16", "1.1.1.2", None, None)]
        )
    assert "overlaps" in str(e.value)
    a, _ = pair("vxlan")
    with pytest.raises(kubenat.InvalidArgument):
        a.encap(tcp4(), link="ppp")


# ------------------------------------------------------------------ scapy helpers


@given(ipv4_packets, st.booleans(), st.integers(0, 65535))
def test_scapy_helper_builds_kubenats_vxlan_bytes(packet: bytes, csum: bool, ip_id: int) -> None:
    from kubenat.packets import flannel_vxlan

    a, _ = pair("vxlan", udp_checksum=csum)
    ours = a.encap(packet, ip_id=ip_id)
    sport = struct.unpack("!H", ours[34:36])[0]
    theirs = flannel_vxlan(
        packet,
        outer_src="192.168.50.1",
        outer_dst="192.168.50.2",
        vtep_src=A_VTEP,
        vtep_dst=B_VTEP,
        src_mac=A_NIC,
        dst_mac=B_NIC,
        sport=sport,
        udp_checksum=csum,
        ip_id=ip_id,
    )
    assert bytes(theirs) == ours


def test_scapy_helper_builds_kubenats_udp_bytes() -> None:
    from kubenat.packets import bind_flannel_layers, flannel_udp

    a, _ = pair("udp")
    inner = tcp4()
    ours = a.encap(inner)
    aged = _core.flannel_decrement_ttl(inner)
    assert aged is not None
    theirs = flannel_udp(
        aged, outer_src="192.168.50.1", outer_dst="192.168.50.2", src_mac=A_NIC, dst_mac=B_NIC
    )
    assert bytes(theirs) == ours
    bind_flannel_layers()
    assert Ether(ours)[UDP].payload.haslayer(TCP)


def test_flannel_rules_parse_as_a_ruleset() -> None:
    o, _ = pair("vxlan")
    text = o.iptables_save()
    saved = o.ruleset().save()
    rules = sorted(line for line in text.splitlines() if line.startswith("-A"))
    assert sorted(line for line in saved.splitlines() if line.startswith("-A")) == rules


def test_direct_routing_peers_are_not_encapsulated() -> None:
    a, b = leases("vxlan")
    far = Lease(
        ipaddress.IPv4Network("10.244.3.0/24"),
        ipaddress.IPv4Address("172.16.0.3"),
        "vxlan",
        "02:cc:00:00:00:01",
        1,
    )
    o = Overlay(
        conf({"Type": "vxlan", "DirectRouting": True}),
        a,
        [b, far],
        underlay_mac=A_NIC,
        underlay_prefix="192.168.50.0/24",
        gateway_mac="02:00:00:00:00:fe",
    )
    near_pkt = tcp4()
    assert (
        o.encap(near_pkt)
        == bytes.fromhex(B_NIC.replace(":", "") + A_NIC.replace(":", "")) + b"\x08\x00" + near_pkt
    )
    far_frame = Ether(o.encap(tcp4(dst="10.244.3.9")))
    assert far_frame.haslayer(VXLAN) and far_frame[IP].dst == "172.16.0.3"
    batch = o.encap_batch([near_pkt, tcp4(dst="10.244.3.9"), tcp4(dst="10.99.0.1")])
    assert batch[0] == o.encap(near_pkt)
    assert isinstance(batch[1], bytes) and Ether(batch[1]).haslayer(VXLAN)
    assert isinstance(batch[2], kubenat.DecapError) and batch[2].kind == "no_route"


ipv6_packets = st.builds(
    lambda host, sport, dport, tc, hlim, payload: bytes(
        IPv6(src="fd00:10:244:1::5", dst=f"fd00:10:244:2::{host:x}", tc=tc, hlim=hlim)
        / UDP(sport=sport, dport=dport)
        / payload
    ),
    st.integers(0, 0xFFFF),
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.integers(0, 255),
    st.integers(1, 255),
    st.binary(max_size=300),
)


def _v6_pair() -> tuple[Overlay, Overlay]:
    c = NetConf.parse(
        '{"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56",'
        ' "Backend": {"Type": "vxlan"}}'
    )

    def lease(n: int) -> Lease:
        return Lease(
            ipaddress.IPv4Network(f"10.244.{n}.0/24"),
            ipaddress.IPv4Address(f"192.168.50.{n}"),
            "vxlan",
            f"02:aa:00:00:00:0{n}",
            1,
            ipaddress.IPv6Network(f"fd00:10:244:{n}::/64"),
            ipaddress.IPv6Address(f"fd99::{n}"),
            f"02:a6:00:00:00:0{n}",
            underlay_mac=f"02:00:00:00:00:0{n}",
        )

    return Overlay(c, lease(1), [lease(2)], underlay_mac=A_NIC), Overlay(
        c, lease(2), [lease(1)], underlay_mac=B_NIC
    )


@given(ipv6_packets, st.sampled_from(["ethernet", "ip"]))
def test_ipv6_vxlan_round_trip(packet: bytes, link: str) -> None:
    a, b = _v6_pair()
    frame = a.encap(packet, link=link)
    assert b.decap(frame, link=link) == packet


@given(ipv4_packets, st.integers(0, 2**32 - 1))
def test_gbp_round_trip(packet: bytes, mark: int) -> None:
    a, b = pair_gbp()
    frame = a.encap(packet, mark=mark)
    vx = Ether(frame)[VXLAN]
    assert vx.flags == (0x88 if mark else 0x08)
    assert b.decap(frame) == packet
    # a device without gbp drops GBP-flagged frames as malformed
    _, plain = pair("vxlan")
    if mark:
        with pytest.raises(kubenat.DecapError) as e:
            plain.decap(frame)
        assert e.value.kind == "vxlan_reserved"


def pair_gbp() -> tuple[Overlay, Overlay]:
    c = conf({"Type": "vxlan", "GBP": True})
    a, b = leases("vxlan")
    return Overlay(c, a, [b], underlay_mac=A_NIC), Overlay(c, b, [a], underlay_mac=B_NIC)


def test_inspect_flags_known_flannel_problems() -> None:
    a, b = pair("vxlan")
    frame = a.encap(tcp4())
    assert b.inspect(frame) == []
    natted = Ether(frame)
    natted[UDP].sport = 1234
    del natted[UDP].chksum
    warnings = b.inspect(bytes(natted))
    assert len(warnings) == 1 and "NATed" in warnings[0]
    stale = Ether(frame)
    stale[VXLAN].payload[Ether].src = "02:dd:00:00:00:01"
    del stale[UDP].chksum
    assert any("stale" in w for w in b.inspect(bytes(stale)))
    stranger = Ether(frame)
    stranger[IP].src = "192.168.50.99"
    del stranger[IP].chksum
    del stranger[UDP].chksum
    assert any("no remote lease" in w for w in b.inspect(bytes(stranger)))
    with pytest.raises(kubenat.DecapError):
        b.inspect(frame[:30])
