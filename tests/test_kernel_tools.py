"""The kernel oracle's pure parts: statistics, packet building, conntrack parsing, comparison."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from kubenat.kernel import KernelObservation, _wire, build_packet, compare
from kubenat.kernel.conntrack import ConntrackTuple, parse_line
from kubenat.kernel.stats import binomial_test, chi_square_sf, judge


def test_binomial_test_known_values() -> None:
    # R: binom.test(3, 10, 0.5)$p.value == 0.34375; binom.test(0, 20, 0.5) == 1.907349e-06
    assert math.isclose(binomial_test(3, 10, 0.5), 0.34375, rel_tol=1e-9)
    assert math.isclose(binomial_test(0, 20, 0.5), 2 * 0.5**20, rel_tol=1e-9)
    assert binomial_test(5, 10, 0.0) == 0.0
    assert binomial_test(0, 10, 0.0) == 1.0


def test_chi_square_known_values() -> None:
    # R: pchisq(3.84145882, 1, lower.tail=FALSE) == 0.05; pchisq(10, 4, lower=FALSE) == 0.04042768
    assert math.isclose(chi_square_sf(3.841458820694124, 1), 0.05, rel_tol=1e-6)
    assert math.isclose(chi_square_sf(10.0, 4), 0.040427681994512805, rel_tol=1e-6)
    assert math.isclose(chi_square_sf(100.0, 50), 3.45493138298486e-05, rel_tol=1e-9)  # mpmath.gammainc


@given(st.integers(0, 2**32 - 1))
def test_judge_accepts_fair_samples(seed: int) -> None:
    rng = random.Random(seed)
    probabilities = {"a": 0.2, "b": 0.3, "c": 0.5}
    counts: dict[str, int] = {}
    for _ in range(500):
        key = rng.choices(list(probabilities), weights=list(probabilities.values()))[0]
        counts[key] = counts.get(key, 0) + 1
    assert judge(counts, probabilities).ok


def test_judge_rejects_wrong_and_impossible() -> None:
    assert not judge({"a": 400, "b": 600}, {"a": 0.5, "b": 0.5}).ok
    assert not judge({"a": 999, "z": 1}, {"a": 1.0}).ok
    assert judge({"a": 1000}, {"a": 1.0}).ok


@given(
    st.sampled_from(["tcp", "udp", "sctp", "icmp"]),
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.booleans(),
    st.binary(max_size=40),
)
def test_build_matches_scapy_checksums(proto: str, sport: int, dport: int, v6: bool, payload: bytes) -> None:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.sctp import SCTP  # noqa: F401  (registers the SCTP dissector)

    src, dst = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    ip = IPv6 if v6 else IP

    def redone(data: bytes) -> tuple[int, bytes]:
        """The transport checksum on the wire, and the packet with scapy's own checksums."""
        packet = ip(data)
        layer = packet.payload
        name = "cksum" if "cksum" in layer.fields else "chksum"
        wire = layer.fields[name]
        delattr(layer, name)
        if not v6:
            del packet.chksum
        rebuilt = ip(bytes(packet))
        return wire, bytes(rebuilt)

    if proto == "sctp":
        payload = b""  # bytes after the INIT chunk would be a malformed chunk
    data = build_packet(proto, src, dst, sport, dport, payload=payload, ident=7)
    wire, rebuilt = redone(data)
    assert rebuilt == data, (wire, data.hex(), rebuilt.hex())
    parsed = _wire.parse(data)
    assert (parsed.src, parsed.dst, parsed.ident) == (src, dst, 7)
    assert _wire.parse(_wire.retag(data, 99)).ident == 99
    moved = _wire.with_source_port(data, 4242)
    assert _wire.parse(moved).sport == 4242
    assert redone(moved)[1] == moved


def test_conntrack_line() -> None:
    entry = parse_line(
        "tcp      6 119 SYN_SENT src=10.0.0.5 dst=10.96.0.10 sport=40000 dport=80 [UNREPLIED] "
        "src=10.244.2.7 dst=10.253.2.1 sport=8080 dport=40000 mark=16384 use=1"
    )
    assert entry.original == ConntrackTuple("tcp", "10.0.0.5", "10.96.0.10", 40000, 80)
    assert entry.reply == ConntrackTuple("tcp", "10.244.2.7", "10.253.2.1", 8080, 40000)
    assert (entry.state, entry.mark, entry.flags) == ("SYN_SENT", 0x4000, frozenset({"UNREPLIED"}))
    assert entry.dnat and entry.snat
    icmp = parse_line(
        "icmp     1 29 src=10.0.0.5 dst=10.253.1.1 type=8 code=0 id=7 src=10.253.1.1 dst=10.0.0.5 "
        "type=0 code=0 id=7 mark=0 use=1"
    )
    assert icmp.original == ConntrackTuple("icmp", "10.0.0.5", "10.253.1.1", 7, None)
    assert not icmp.dnat and not icmp.snat


def test_compare_reports_each_field() -> None:
    obs = KernelObservation("ACCEPT", "10.253.2.1", 1, "10.244.2.7", 8080, "tcp", masquerade=True, mark=16384)
    assert compare(obs, {"verdict": "ACCEPT", "dst": "10.244.2.7", "dport": 8080, "masquerade": True}) == []
    assert compare(obs, {"verdict": "ACCEPT", "masquerade": False, "mark": "0x4000"}) == [
        "masquerade: kernel True, kubenat False"
    ]
    assert compare(obs, {"verdict": "DROP", "dst": "x"}) == ["verdict: kernel ACCEPT, kubenat DROP"]


def test_verify_explains_root(monkeypatch, tmp_path) -> None:
    from click.testing import CliRunner

    from kubenat.cli import main

    rules = tmp_path / "rules"
    rules.write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["verify", str(rules), "--random", "3"])
    assert result.exit_code != 0 and "needs root" in result.output


def test_probe_file_errors_name_the_line() -> None:
    import pytest

    from kubenat.errors import InvalidArgument
    from kubenat.kernel.generate import parse_probes

    probes = parse_probes("# c\ntcp 10.0.0.5:40000 10.96.0.10:80\nudp [fd00::5]:53 [fd00::10]:53 out\n")
    shown = ["tcp 10.0.0.5:40000 10.96.0.10:80", "udp [fd00::5]:53 [fd00::10]:53 out"]
    assert [str(p) for p in probes] == shown
    with pytest.raises(InvalidArgument, match="line 2"):
        parse_probes("tcp 10.0.0.5 10.0.0.6\ngre 10.0.0.5 10.0.0.6\n")
    with pytest.raises(InvalidArgument, match=r"line 1: .*different IP families"):
        parse_probes("tcp 10.0.0.5 [fd00::1]:80\n")
