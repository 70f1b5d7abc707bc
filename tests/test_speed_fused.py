"""The fused kube-proxy fast path through the bindings: compact, exact, and safe to share."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import kubenat
from kubenat import _core

NODE = dict(
    local=["192.168.0.2"],
    interfaces={"eth0": ["192.168.0.2/24"], "cni0": ["10.64.0.1/24"], "flannel.1": ["10.64.0.0/32"]},
    routes=[("10.64.0.0/10", "flannel.1"), ("0.0.0.0/0", "eth0")],
)
SERVICES = 200
TEXT = _core._synthetic_kube_proxy(SERVICES)
CLASSIFIER = kubenat.Classifier(TEXT, **NODE)


def test_fast_path_is_small() -> None:
    mem = CLASSIFIER.memory()
    assert set(mem) >= {"total", "dispatch", "fast"}
    assert 0 < mem["fast"] <= 160 * SERVICES, mem
    assert mem["fast"] <= mem["total"]


def test_built_from_a_ruleset_object_pickles_and_agrees() -> None:
    c = kubenat.Classifier(kubenat.Ruleset.parse(TEXT), **NODE)
    again = pickle.loads(pickle.dumps(c))
    rng = np.random.default_rng(3)
    n = 500
    src = (0x0A400000 | rng.integers(0, 0xFFFF, n)).astype(np.uint32)
    dst = (0xAC100001 + rng.integers(0, SERVICES, n)).astype(np.uint32)
    cols = (src, dst, np.full(n, 6, np.uint8), np.full(n, 999, np.uint16), np.full(n, 80, np.uint16))
    a, b, t = (
        c.classify_batch(*cols, seed=9),
        again.classify_batch(*cols, seed=9),
        CLASSIFIER.classify_batch(*cols, seed=9),
    )
    for name in ("verdict", "nat", "dst", "dport", "src", "sport", "mark", "rule"):
        assert (a[name] == b[name]).all() and (a[name] == t[name]).all(), name


def test_single_calls_on_two_classifiers_in_turn() -> None:
    # One thread's scratch serves both; results must not leak from one classifier to the other.
    drop_all = kubenat.Classifier(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", **NODE
    )
    for proto in (1, 6, 17):
        for _ in range(3):
            a = CLASSIFIER.classify("10.64.3.7", "8.8.8.8", proto, 1000, 80, "eth0", 1)
            b = drop_all.classify("10.64.3.7", "8.8.8.8", proto, 1000, 80, "eth0", 1)
            assert a[0] == 0 and b[0] == 1, (proto, a, b)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(0x0A400000, 0x0A40FFFF), st.integers(0xC0A80000, 0xC0A800FF)),
            st.one_of(
                st.integers(0xAC100001, 0xAC100001 + SERVICES + 1),
                st.sampled_from([0x08080808, 0xC0A80002, 0x0A400105, 0xE0000001, 0xC0A800FF]),
            ),
            st.sampled_from([6, 6, 17]),
            st.integers(1, 65535),
            st.sampled_from([80, 80, 53]),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 2**64 - 1),
    st.integers(1, 3),
)
def test_fused_and_miss_classes_equal_plain(rows: list[tuple[int, ...]], seed: int, threads: int) -> None:
    src, dst, proto, sport, dport, iface = (np.array(c) for c in zip(*rows, strict=False))
    fast = CLASSIFIER.classify_batch(src, dst, proto, sport, dport, iface, seed=seed, threads=threads)
    plain = CLASSIFIER.classify_batch(src, dst, proto, sport, dport, iface, seed=seed, engine="plain")
    for name in ("verdict", "nat", "dst", "dport", "src", "sport", "mark"):
        assert (fast[name] == plain[name]).all(), name
