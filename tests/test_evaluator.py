"""kubenat.Netfilter from Python: results, outcomes, conntrack, recent, process(), the CLI."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import kubenat
from kubenat.cli import main

SVC = (Path(__file__).parent / "data" / "evaluator-service.rules").read_text()

IFACES = {"eth0": ["192.168.0.2/24"], "flannel.1": ["10.244.0.0/32"], "cni0": ["10.244.0.1/24"]}
ROUTES = [("10.244.0.0/16", "flannel.1"), ("0.0.0.0/0", "eth0")]


def node(stateless: bool = False) -> kubenat.Netfilter:
    return kubenat.Netfilter(
        kubenat.Ruleset.parse(SVC),
        local_addresses=["192.168.0.2"],
        interfaces=IFACES,
        routes=ROUTES,
        stateless=stateless,
    )


def test_outcomes_are_exact_and_sum_to_one() -> None:
    outs = node().outcomes(kubenat.Flow("1.2.3.4", "10.96.0.10", 80))
    assert [o.result.dnat for o in outs] == ["10.244.1.5:8080", "10.244.2.5:8080", "10.244.3.5:8080"]
    assert outs[0].exact == Fraction(715827883, 2**31)
    assert sum(o.exact for o in outs) == 1
    assert abs(sum(o.probability for o in outs) - 1) < 1e-12
    for o in outs:
        r = o.result
        assert r.verdict == "ACCEPT"
        assert r.masquerade and r.nat == ["DNAT", "MASQUERADE"]
        assert r.snat == "10.244.0.0:40000"
        assert r.out_interface == "flannel.1"
        assert r.mark == 0
        assert "Outcome(0." in repr(o)


def test_result_fields_and_trace() -> None:
    r = node().evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80), seed=3)
    assert (r.src, r.dport) == ("10.244.0.0", 8080)
    assert r.ct_state == "NEW"
    assert r.conntrack is not None
    assert r.conntrack.original == ("tcp", "1.2.3.4", "10.96.0.10", 40000, 80)
    assert r.conntrack.reply[1] == r.dst
    matched = [s for s in r.trace if s.matched and s.kind == "rule"]
    assert matched[0].hook == "PREROUTING" and matched[0].table == "nat"
    assert any(s.action.startswith("DNAT") for s in matched)
    assert all(isinstance(s.text, str) and s.text for s in matched)
    assert "Result(ACCEPT" in repr(r) and "dnat=10.244" in repr(r)
    assert r.to_dict()["mark"] == "0x0"


def test_seeded_sampling_is_reproducible() -> None:
    a = node(stateless=True).evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80), seed=11)
    b = node(stateless=True).evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80), seed=11)
    assert a.dnat == b.dnat
    seen = {
        node(stateless=True).evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80), seed=s).dnat
        for s in range(60)
    }
    assert len(seen) == 3


def test_conntrack_keeps_the_mapping_and_reverses_replies() -> None:
    nf = node()
    first = nf.evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=5000), seed=1)
    for seed in range(10):
        again = nf.evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=5000, tcp_flags=0x10), seed=seed)
        assert again.dnat == first.dnat
        assert not any(s.table == "nat" and s.kind == "rule" for s in again.trace)
    ep, port = first.dnat.rsplit(":", 1)
    snat_ip, snat_port = first.snat.rsplit(":", 1)
    reply = nf.evaluate(
        kubenat.Flow(ep, snat_ip, int(snat_port), sport=int(port), tcp_flags=0x12), from_="flannel.1"
    )
    assert reply.ct_state == "ESTABLISHED"
    assert (reply.src, reply.sport, reply.dst, reply.dport) == ("10.96.0.10", 80, "1.2.3.4", 5000)
    assert len(nf.connections) == 1
    assert "SEEN_REPLY" in nf.connections[0].status


def test_client_ip_affinity_across_connections() -> None:
    nf = node()
    first = nf.evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=1000), seed=5)
    for i in range(20):
        r = nf.evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=2000 + i), seed=i)
        assert r.dnat == first.dnat
    assert any("1.2.3.4" in addrs for _, addrs in nf.recent)
    assert len(nf.outcomes(kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=3000))) == 1
    nf.advance(10801)
    assert len(nf.outcomes(kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=3001))) == 3
    nf.reset()
    assert nf.connections == [] and nf.recent == []


def test_stateless_keeps_nothing() -> None:
    nf = node(stateless=True)
    nf.evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80), seed=1)
    assert nf.connections == [] and nf.stateless


def test_filter_verdicts() -> None:
    nf = node()
    assert nf.evaluate(kubenat.Flow("1.2.3.4", "192.168.0.2", 22)).verdict == "REJECT"
    r = nf.evaluate(kubenat.Flow("1.2.3.4", "192.168.0.2", 80))
    assert r.verdict == "ACCEPT" and r.local_delivery and r.in_interface == "eth0"
    assert nf.evaluate(kubenat.Flow("1.2.3.4", "10.244.9.9", 80)).verdict == "DROP"


def test_process_rewrites_bytes_and_scapy_agrees() -> None:
    scapy = pytest.importorskip("scapy.all")
    nf = node(stateless=True)
    pkt = scapy.IP(src="1.2.3.4", dst="10.96.0.10", ttl=64) / scapy.TCP(sport=5555, dport=80, flags="S")
    out = nf.process(bytes(pkt), seed=2)
    assert out is not None
    got = scapy.IP(out)
    assert got.dst.startswith("10.244.") and got[scapy.TCP].dport == 8080
    assert got.src == "10.244.0.0" and got.ttl == 63
    ref = got.copy()
    del ref.chksum
    del ref[scapy.TCP].chksum
    ref = scapy.IP(bytes(ref))
    assert got.chksum == ref.chksum and got[scapy.TCP].chksum == ref[scapy.TCP].chksum
    assert nf.process(bytes(scapy.IP(src="1.2.3.4", dst="192.168.0.2") / scapy.TCP(dport=22))) is None


def test_evaluate_packet_returns_rewritten_packet() -> None:
    p = kubenat.Packet.tcp(src="1.2.3.4", dst="10.96.0.10", sport=5555, dport=80)
    r = node(stateless=True).evaluate(p, seed=1)
    assert r.packet is not None and r.packet.dport == 8080 and r.packet.checksums_valid()
    outs = node().outcomes(p)
    assert {o.result.packet.dst for o in outs if o.result.packet} == {
        "10.244.1.5",
        "10.244.2.5",
        "10.244.3.5",
    }
    f = kubenat.Flow.from_packet(p)
    assert (f.src, f.dst, f.sport, f.dport, f.tcp_flags, f.proto) == (
        "1.2.3.4",
        "10.96.0.10",
        5555,
        80,
        2,
        "tcp",
    )
    assert f != kubenat.Flow("1.2.3.4", "10.96.0.10", 81)


def test_bad_input_is_named() -> None:
    nf = node()
    with pytest.raises(kubenat.InvalidArgument, match="wlan0"):
        nf.evaluate(kubenat.Flow("1.2.3.4", "10.96.0.10", 80), from_="wlan0")
    with pytest.raises(kubenat.EvalError, match="IPv6"):
        nf.evaluate(kubenat.Flow("fd00::1", "fd00::2", 80))
    with pytest.raises(kubenat.InvalidArgument):
        kubenat.Flow("1.2.3.4", "fd00::2", 80)
    with pytest.raises(kubenat.InvalidArgument, match="proto"):
        kubenat.Flow("1.2.3.4", "1.2.3.5", 80, proto="gre!")
    with pytest.raises(kubenat.InvalidArgument, match="route"):
        kubenat.Netfilter(kubenat.Ruleset.parse(SVC), routes=[("10.0.0.0/8", "nope0")])
    assert "Netfilter(" in repr(nf)


@settings(max_examples=200)
@given(st.integers(0, 2**32 - 1), st.integers(1, 65535))
def test_any_seed_gives_one_of_the_outcomes(seed: int, sport: int) -> None:
    nf = node(stateless=True)
    flow = kubenat.Flow("1.2.3.4", "10.96.0.10", 80, sport=sport)
    possible = {o.result.dnat for o in nf.outcomes(flow, trace=False)}
    assert nf.evaluate(flow, seed=seed, trace=False).dnat in possible


def test_cli_trace_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules"
    rules.write_text(SVC)
    res = CliRunner().invoke(
        main,
        [
            "trace",
            str(rules),
            "--src",
            "1.2.3.4",
            "--dst",
            "10.96.0.10",
            "--dport",
            "80",
            "--local",
            "192.168.0.2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    outs = data["outcomes"]
    assert [o["dnat"] for o in outs] == ["10.244.1.5:8080", "10.244.2.5:8080", "10.244.3.5:8080"]
    assert abs(sum(o["probability"] for o in outs) - 1) < 1e-12
    assert all(o["masquerade"] and o["snat"] == "192.168.0.2:40000" and o["mark"] == "0x0" for o in outs)
    assert outs[0]["trace"][0]["table"] == "nat"


def test_cli_trace_tree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules"
    rules.write_text(SVC)
    res = CliRunner().invoke(
        main,
        [
            "trace",
            str(rules),
            "--src",
            "1.2.3.4",
            "--dst",
            "192.168.0.2",
            "--dport",
            "22",
            "--local",
            "192.168.0.2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "REJECT" in res.output and "INPUT" in res.output
    bad = CliRunner().invoke(
        main, ["trace", str(tmp_path / "missing"), "--src", "1.2.3.4", "--dst", "1.2.3.5"]
    )
    assert bad.exit_code != 0
