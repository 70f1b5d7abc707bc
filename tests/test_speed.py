"""kubenat.Classifier: the compiled classifier from Python, against the plain evaluator."""

from __future__ import annotations

import ipaddress
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kubenat
from kubenat import _core

NODE = dict(
    local=["192.168.0.2"],
    interfaces={"eth0": ["192.168.0.2/24"], "cni0": ["10.64.0.1/24"], "flannel.1": ["10.64.0.0/32"]},
    routes=[("10.64.0.0/10", "flannel.1"), ("0.0.0.0/0", "eth0")],
)
SERVICES = 50


@pytest.fixture(scope="module")
def classifier() -> kubenat.Classifier:
    return kubenat.Classifier(_core._synthetic_kube_proxy(SERVICES), **NODE)


def ip(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def columns(n: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    src = (0x0A400000 | rng.integers(0, 0xFFFF, n)).astype(np.uint32)
    dst = (0xAC100001 + rng.integers(0, SERVICES, n)).astype(np.uint32)
    dst[rng.integers(0, 16, n) == 0] = ip("8.8.8.8")
    proto = rng.choice(np.array([6, 6, 6, 17, 1, 47], dtype=np.uint8), n)
    sport = rng.integers(1024, 60000, n).astype(np.uint16)
    dport = rng.choice(np.array([80, 80, 443], dtype=np.uint16), n)
    return src, dst, proto, sport, dport


def test_service_packet_is_dnated_to_an_endpoint(classifier: kubenat.Classifier) -> None:
    assert classifier.compiled and classifier.fallback_reason is None
    verdict, dst, dport, _src, _sport, _mark, rule = classifier.classify(
        "10.64.3.7", "172.16.0.8", 6, 1234, 80, seed=1
    )
    assert verdict == 0 and dport == 8080
    assert ip("10.64.1.0") + 7 * 4 <= dst < ip("10.64.1.0") + 8 * 4
    table, chain, _, line = classifier.rule(rule)
    assert (table, chain) == ("nat", chain) and line > 0
    outcomes = classifier.outcomes("10.64.3.7", "172.16.0.8", 6, 1234, 80)
    assert sorted(o[1][1] for o in outcomes) == [ip("10.64.1.0") + 28 + j for j in range(4)]
    assert sum(p for p, _ in outcomes) == pytest.approx(1.0)


def test_masquerade_for_sources_outside_the_cluster(classifier: kubenat.Classifier) -> None:
    verdict, _, _, src, _, mark, _ = classifier.classify("192.168.0.9", "172.16.0.3", 6, 1234, 80, seed=3)
    assert verdict == 0 and src == ip("10.64.0.0") and mark == 0
    assert classifier.classify("192.168.0.9", "8.8.8.8", 6, 1, 80, seed=3)[1] == ip("8.8.8.8")


def test_batch_equals_plain_evaluator_and_is_thread_independent(classifier: kubenat.Classifier) -> None:
    cols = columns(3000)
    fast = classifier.classify_batch(*cols, seed=5)
    two = classifier.classify_batch(*cols, seed=5, threads=2)
    plain = classifier.classify_batch(*cols, seed=5, engine="plain")
    for name in ("verdict", "nat", "dst", "dport", "src", "sport", "mark"):
        assert (fast[name] == plain[name]).all(), name
    for name in fast:
        assert (fast[name] == two[name]).all(), name
    assert (fast["nat"] & 1).sum() > 600


def test_batch_writes_into_given_arrays(classifier: kubenat.Classifier) -> None:
    cols = columns(100)
    out = {"verdict": np.full(100, 9, np.uint8), "dst": np.zeros(100, np.uint32)}
    r = classifier.classify_batch(*cols, seed=1, out=out)
    assert r["verdict"] is out["verdict"] and (out["verdict"] < 3).all()
    assert (out["dst"] == r["dst"]).all()
    with pytest.raises(kubenat.InvalidArgument):
        classifier.classify_batch(*cols, out={"mark": np.zeros(3, np.uint32)})


def test_batch_rejects_bad_input(classifier: kubenat.Classifier) -> None:
    src, dst, proto, sport, dport = columns(10)
    with pytest.raises(kubenat.InvalidArgument):
        classifier.classify_batch(src, dst[:5], proto, sport, dport)
    with pytest.raises(kubenat.InvalidArgument):
        classifier.classify_batch(src, dst, proto, sport, dport, np.full(10, 40, np.uint8))
    with pytest.raises(kubenat.InvalidArgument):
        classifier.classify_batch(src, dst, proto, sport, dport, engine="fast")
    with pytest.raises(kubenat.InvalidArgument):
        classifier.classify("10.0.0.1", "nonsense")


def test_lists_are_converted(classifier: kubenat.Classifier) -> None:
    r = classifier.classify_batch([ip("10.64.0.9")], [ip("172.16.0.2")], [6], [999], [80], seed=2)
    assert r["dport"].tolist() == [8080]


def test_frames_give_the_same_results_as_columns(classifier: kubenat.Classifier) -> None:
    src, dst, _, sport, dport = columns(200, seed=4)
    frames = [
        kubenat.Packet.tcp(
            src=str(ipaddress.IPv4Address(int(s))),
            dst=str(ipaddress.IPv4Address(int(d))),
            sport=int(sp),
            dport=int(dp),
        )
        for s, d, sp, dp in zip(src, dst, sport, dport, strict=False)
    ]
    data = b"".join(bytes(f) for f in frames)
    lengths = np.array([len(bytes(f)) for f in frames], dtype=np.uint32)
    a = classifier.classify_frames(data, lengths, seed=8)
    b = classifier.classify_batch(src, dst, np.full(200, 6, np.uint8), sport, dport, seed=8)
    for name in a:
        assert (a[name] == b[name]).all(), name
    with pytest.raises(kubenat.InvalidArgument):
        classifier.classify_frames(data, lengths[:-1])
    with pytest.raises(kubenat.PacketError):
        classifier.classify_frames(b"\x45" + bytes(19), np.array([20], np.uint32))


def test_pickles_and_unsupported_rulesets_fall_back(classifier: kubenat.Classifier) -> None:
    again = pickle.loads(pickle.dumps(classifier))
    cols = columns(50)
    assert (
        again.classify_batch(*cols, seed=1)["dst"] == classifier.classify_batch(*cols, seed=1)["dst"]
    ).all()
    text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" + (
        "-A FORWARD -m recent --name x --set -j ACCEPT\nCOMMIT\n"
    )
    c = kubenat.Classifier(kubenat.Ruleset.parse(text))
    assert not c.compiled and "recent" in (c.fallback_reason or "")
    assert c.classify("10.0.0.1", "10.0.0.2", 6, 1, 2)[0] == 0
    assert "Classifier" in repr(c)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([ip("10.64.0.5"), ip("192.168.0.7"), ip("192.168.0.2"), ip("127.0.0.1")]),
            st.one_of(
                st.integers(0xAC100000, 0xAC100000 + SERVICES + 2), st.sampled_from([ip("192.168.0.2")])
            ),
            st.sampled_from([6, 17, 132, 47]),
            st.integers(0, 65535),
            st.sampled_from([80, 443, 8080, 0]),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 2**64 - 1),
)
def test_compiled_equals_plain_through_the_bindings(
    classifier: kubenat.Classifier, rows: list[tuple[int, ...]], seed: int
) -> None:
    cols = [np.array(c) for c in zip(*rows, strict=False)]
    src, dst, proto, sport, dport, iface = cols
    fast = classifier.classify_batch(src, dst, proto, sport, dport, iface, seed=seed)
    plain = classifier.classify_batch(src, dst, proto, sport, dport, iface, seed=seed, engine="plain")
    for name in ("verdict", "nat", "dst", "dport", "src", "sport", "mark"):
        assert (fast[name] == plain[name]).all(), name
