"""``LeanClassifier.classify`` (integers in, a tuple out) gives what ``Classifier.classify`` gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kubenat
from kubenat import _core
from kubenat.bench import workload
from kubenat.strategies import rulesets

SERVICES = 30
SERVICE = st.integers(1, SERVICES).map(lambda i: workload.SERVICE_BASE + i)
ADDRESSES = st.one_of(SERVICE, st.integers(0, 2**32 - 1), st.sampled_from([0x0A40_0005, 0xC0A8_0002]))
PROTOS = st.sampled_from([6, 17, 1, 132, 47])


@pytest.fixture(scope="module")
def pair() -> tuple[kubenat.Classifier, kubenat.LeanClassifier]:
    c = kubenat.Classifier(_core._synthetic_kube_proxy(SERVICES), **workload.NODE)
    return c, kubenat.LeanClassifier(c)


@given(
    ADDRESSES,
    ADDRESSES,
    PROTOS,
    st.integers(0, 65535),
    st.sampled_from([80, 443, 0, 9]),
    st.integers(0, 2**64 - 1),
)
def test_lean_call_equals_classify(
    pair: tuple[kubenat.Classifier, kubenat.LeanClassifier],
    src: int,
    dst: int,
    proto: int,
    sport: int,
    dport: int,
    seed: int,
) -> None:
    c, lean = pair
    assert lean.classify(src, dst, proto, sport, dport, seed) == c.classify(
        src, dst, proto, sport, dport, seed=seed
    )


@given(rulesets(tables=("nat", "filter")), ADDRESSES, ADDRESSES, PROTOS, st.integers(0, 65535))
def test_lean_call_equals_classify_on_random_rulesets(
    text: str, src: int, dst: int, proto: int, port: int
) -> None:
    c = kubenat.Classifier(text, **workload.NODE)
    lean = kubenat.LeanClassifier(c)
    assert lean.classify(src, dst, proto, port, port, 5) == c.classify(src, dst, proto, port, port, seed=5)


def test_lean_call_refuses_what_is_not_an_integer(
    pair: tuple[kubenat.Classifier, kubenat.LeanClassifier],
) -> None:
    _, lean = pair
    with pytest.raises(TypeError):
        lean.classify("10.0.0.1", 1, 6, 1, 80, 0)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        lean.classify(2**32, 1, 6, 1, 80, 0)
    assert "LeanClassifier(rules=" in repr(lean)
