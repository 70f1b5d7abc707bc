"""kubenat.pcap round trips and limits; ``kubenat encap`` / ``kubenat decap`` on pcap files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.utils import RawPcapReader, wrpcap

import kubenat
from kubenat import pcap
from kubenat.cli import main

records = st.lists(
    st.tuples(st.integers(0, 2**31), st.integers(0, 999_999_999), st.binary(max_size=200)), max_size=20
)


@given(records, st.booleans(), st.sampled_from([pcap.LINKTYPE_ETHERNET, pcap.LINKTYPE_RAW]))
def test_round_trip(
    tmp_path_factory: pytest.TempPathFactory, recs: list[tuple[int, int, bytes]], ns: bool, lt: int
) -> None:
    path = tmp_path_factory.mktemp("pcap") / "x.pcap"
    items = [
        pcap.Record(0.0, data, len(data), sec * 1_000_000_000 + (frac if ns else frac // 1000 * 1000))
        for sec, frac, data in recs
    ]
    assert pcap.write(path, items, lt, nanosecond=ns) == len(items)
    linktype, back = pcap.read_records(path)
    assert linktype == lt
    assert [(r.data, r.ts_ns) for r in back] == [(r.data, r.ts_ns) for r in items]


def test_big_endian_and_scapy_files(tmp_path: Path) -> None:
    body = b"\x45" + b"\0" * 19
    be = (
        struct.pack(">IHHiIII", pcap.MAGIC_NS, 2, 4, 0, 0, 65535, 101)
        + struct.pack(">IIII", 5, 7, 20, 20)
        + body
    )
    (tmp_path / "be.pcap").write_bytes(be)
    with open(tmp_path / "be.pcap", "rb") as f:
        r = pcap.Reader(f)
        assert (r.byteorder, r.nanosecond, r.linktype) == (">", True, 101)
        (rec,) = list(r)
    assert rec.ts_ns == 5_000_000_007 and rec.data == body
    pkts = [IP(dst="10.0.0.1") / UDP() / b"a", IP(dst="10.0.0.2") / UDP() / b"bb"]
    wrpcap(str(tmp_path / "s.pcap"), pkts)
    assert [d for _, d in pcap.read(tmp_path / "s.pcap")] == [bytes(p) for p in pkts]
    pcap.write(tmp_path / "k.pcap", [bytes(p) for p in pkts], pcap.LINKTYPE_RAW)
    with RawPcapReader(str(tmp_path / "k.pcap")) as reader:
        assert [bytes(d) for d, _ in reader] == [bytes(p) for p in pkts]


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.pcap"
    p.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 20)
    with pytest.raises(kubenat.PacketError, match="pcapng"):
        list(pcap.read(p))
    p.write_bytes(b"nope" * 6)
    with pytest.raises(kubenat.PacketError) as e:
        list(pcap.read(p))
    assert e.value.field == "magic"
    head = struct.pack("<IHHiIII", pcap.MAGIC_US, 2, 4, 0, 0, 65535, 1)
    p.write_bytes(head + struct.pack("<IIII", 0, 0, 0x7FFFFFFF, 0x7FFFFFFF))
    with pytest.raises(kubenat.LimitError):
        list(pcap.read(p))
    p.write_bytes(head + struct.pack("<IIII", 0, 0, 100, 100) + b"x" * 10)
    with pytest.raises(kubenat.PacketError) as e:
        list(pcap.read(p))
    assert e.value.offset == 40
    p.write_bytes(head + b"\0" * 7)
    with pytest.raises(kubenat.PacketError) as e:
        list(pcap.read(p))
    assert e.value.offset == 24


NET_CONF = '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'


def _files(tmp_path: Path) -> list[str]:
    (tmp_path / "net-conf.json").write_text(NET_CONF)
    leases = {
        "/coreos.com/network/subnets/10.244.1.0-24": {
            "PublicIP": "192.168.50.1",
            "BackendType": "vxlan",
            "BackendData": {"VNI": 1, "VtepMAC": "02:aa:00:00:00:01"},
        },
        "/coreos.com/network/subnets/10.244.2.0-24": {
            "PublicIP": "192.168.50.2",
            "BackendType": "vxlan",
            "BackendData": {"VNI": 1, "VtepMAC": "02:bb:00:00:00:01"},
        },
    }
    (tmp_path / "leases.json").write_text(json.dumps(leases))
    return ["--net-conf", str(tmp_path / "net-conf.json"), "--leases", str(tmp_path / "leases.json")]


def test_cli_encap_then_decap(tmp_path: Path) -> None:
    common = _files(tmp_path)
    inner = [
        bytes(IP(src="10.244.1.5", dst="10.244.2.5", ttl=63) / UDP(sport=1000 + i, dport=53) / bytes([i]))
        for i in range(5)
    ]
    inner.append(bytes(IP(src="10.244.1.5", dst="10.9.9.9") / UDP()))
    pcap.write(tmp_path / "in.pcap", [(float(i), p) for i, p in enumerate(inner)], pcap.LINKTYPE_RAW)
    runner = CliRunner()
    a = [*common, "--node", "10.244.1.0/24", "--underlay-mac", "02:00:00:00:00:01"]
    a += ["--peer-mac", "192.168.50.2=02:00:00:00:00:02"]
    res = runner.invoke(main, ["encap", str(tmp_path / "in.pcap"), str(tmp_path / "mid.pcap"), *a])
    assert res.exit_code == 0, res.output
    assert "frame 5: dropped: no_route" in res.output
    assert "encapsulated 5 of 6 frames; 1 dropped" in res.output
    linktype, mid = pcap.read_records(tmp_path / "mid.pcap")
    assert linktype == pcap.LINKTYPE_ETHERNET and len(mid) == 5
    assert mid[3].ts == 3.0
    b = [*common, "--node", "192.168.50.2", "--underlay-mac", "02:00:00:00:00:02"]
    # corrupt one frame: the report says which and why
    frames = [r.data for r in mid]
    bad = bytearray(frames[1])
    bad[42] = 0x0C
    bad[40:42] = b"\0\0"
    frames[1] = bytes(bad)
    pcap.write(tmp_path / "mid2.pcap", frames)
    res = runner.invoke(
        main, ["decap", str(tmp_path / "mid2.pcap"), str(tmp_path / "out.pcap"), *b, "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["frames"] == 5
    assert report["dropped"] == [
        {"frame": 1, "kind": "vxlan_reserved", "offset": 42, "reason": report["dropped"][0]["reason"]}
    ]
    linktype, out = pcap.read_records(tmp_path / "out.pcap")
    assert linktype == pcap.LINKTYPE_RAW
    assert [r.data for r in out] == [inner[0], *inner[2:5]]


def test_cli_errors_are_messages(tmp_path: Path) -> None:
    common = _files(tmp_path)
    (tmp_path / "in.pcap").write_bytes(b"junk" * 10)
    runner = CliRunner()
    res = runner.invoke(
        main, ["decap", str(tmp_path / "in.pcap"), str(tmp_path / "o.pcap"), *common, "--node", "x"]
    )
    assert res.exit_code != 0 and "matches 0 leases" in res.output
    res = runner.invoke(
        main,
        ["decap", str(tmp_path / "in.pcap"), str(tmp_path / "o.pcap"), *common, "--node", "10.244.2.0/24"],
    )
    assert res.exit_code != 0 and "magic" in res.output
    (tmp_path / "net-conf.json").write_text('{"Network": "10.0.0.0/16", "Backend": {"Type": "nope"}}')
    res = runner.invoke(
        main, ["decap", str(tmp_path / "in.pcap"), str(tmp_path / "o.pcap"), *common, "--node", "x"]
    )
    assert res.exit_code != 0 and "Backend.Type" in res.output


def test_cli_reads_kubernetes_nodes_and_etcdctl_output(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "net-conf.json").write_text(NET_CONF)
    prefix = "flannel.alpha.coreos.com"

    def node(n: int) -> dict[str, object]:
        return {
            "kind": "Node",
            "metadata": {
                "name": f"node-{n}",
                "annotations": {
                    f"{prefix}/backend-type": "vxlan",
                    f"{prefix}/backend-data": f'{{"VNI":1,"VtepMAC":"02:aa:00:00:00:0{n}"}}',
                    f"{prefix}/public-ip": f"192.168.50.{n}",
                },
            },
            "spec": {"podCIDR": f"10.244.{n}.0/24"},
        }

    (tmp_path / "nodes.yaml").write_text(yaml.safe_dump({"kind": "List", "items": [node(1), node(2)]}))
    inner = bytes(IP(src="10.244.1.5", dst="10.244.2.5") / UDP(sport=5, dport=53) / b"q")
    pcap.write(tmp_path / "in.pcap", [inner], pcap.LINKTYPE_RAW)
    runner = CliRunner()
    conf = ["--net-conf", str(tmp_path / "net-conf.json"), "--nodes", str(tmp_path / "nodes.yaml")]
    res = runner.invoke(
        main,
        [
            "encap",
            str(tmp_path / "in.pcap"),
            str(tmp_path / "mid.pcap"),
            *conf,
            "--node",
            "node-1",
            "--link",
            "ip",
        ],
    )
    assert res.exit_code == 0, res.output
    etcd = "\n".join(
        [
            "/coreos.com/network/subnets/10.244.1.0-24",
            '{"PublicIP":"192.168.50.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:aa:00:00:00:01"}}',
            "/coreos.com/network/subnets/10.244.2.0-24",
            '{"PublicIP":"192.168.50.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:aa:00:00:00:02"}}',
        ]
    )
    (tmp_path / "etcd.txt").write_text(etcd + "\n")
    conf = ["--net-conf", str(tmp_path / "net-conf.json"), "--leases", str(tmp_path / "etcd.txt")]
    res = runner.invoke(
        main, ["decap", str(tmp_path / "mid.pcap"), str(tmp_path / "out.pcap"), *conf, "--node", "node-2x"]
    )
    assert res.exit_code != 0 and "matches 0 leases" in res.output
    res = runner.invoke(
        main,
        ["decap", str(tmp_path / "mid.pcap"), str(tmp_path / "out.pcap"), *conf, "--node", "192.168.50.2"],
    )
    assert res.exit_code == 0, res.output
    assert [d for _, d in pcap.read(tmp_path / "out.pcap")] == [inner]
