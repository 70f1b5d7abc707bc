"""kubenat.arrow.BatchClassifier with pyarrow alone (the Spark/Ray/Dask call shapes)."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

import kubenat
from kubenat import _core
from kubenat.arrow import RESULT_COLUMNS, BatchClassifier

NODE = dict(
    local=["192.168.0.2"],
    interfaces={"eth0": ["192.168.0.2/24"], "cni0": ["10.64.0.1/24"], "flannel.1": ["10.64.0.0/32"]},
    routes=[("10.64.0.0/10", "flannel.1"), ("0.0.0.0/0", "eth0")],
)


@pytest.fixture(scope="module")
def bc() -> BatchClassifier:
    return BatchClassifier(_core._synthetic_kube_proxy(20), seed=3, **NODE)


def batch(n: int = 64) -> pa.RecordBatch:
    rng = np.random.default_rng(0)
    return pa.RecordBatch.from_pydict(
        {
            "id": np.arange(n),
            "src": [f"10.64.0.{i % 200 + 2}" for i in range(n)],
            "dst": (0xAC100001 + rng.integers(0, 20, n)).astype(np.uint32),
            "proto": np.full(n, 6, np.uint8),
            "sport": rng.integers(1024, 60000, n),
            "dport": np.full(n, 80),
        }
    )


def test_rows_keep_their_columns_and_gain_results(bc: BatchClassifier) -> None:
    b = batch()
    out = bc.classify(b)
    assert out.schema.names == b.schema.names + list(RESULT_COLUMNS)
    assert out.column("id").to_pylist() == list(range(64))
    assert set(out.column("verdict").to_pylist()) == {"ACCEPT"}
    assert set(out.column("nat_dport").to_pylist()) == {8080}
    assert out.schema == bc.output_schema(b.schema)


def test_tables_iterators_and_pickling(bc: BatchClassifier) -> None:
    table = pa.Table.from_batches([batch(10), batch(7)])
    out = bc(table)
    assert isinstance(out, pa.Table) and out.num_rows == 17
    spark = list(bc.map_batches(iter([batch(5), batch(6)])))
    assert [b.num_rows for b in spark] == [5, 6]
    clone = pickle.loads(pickle.dumps(bc))
    assert clone._classifier is None
    b = batch(30)
    a1 = BatchClassifier(bc.text, seed=9, **NODE).classify(b)
    a2 = pickle.loads(pickle.dumps(BatchClassifier(bc.text, seed=9, **NODE))).classify(b)
    assert a1.equals(a2)


def test_ruleset_objects_and_bad_input() -> None:
    rs = kubenat.Ruleset.parse(_core._synthetic_kube_proxy(3))
    bc = BatchClassifier(rs, **NODE)
    with pytest.raises(kubenat.InvalidArgument):
        bc.classify(pa.RecordBatch.from_pydict({"src": [1]}))
    bad = batch(2).set_column(1, "src", pa.array(["10.0.0.1", "not an ip"]))
    with pytest.raises(kubenat.InvalidArgument):
        bc.classify(bad)
    with_iface = batch(3).append_column("iface", pa.array(["eth0", "cni0", "eth0"]))
    assert bc.classify(with_iface).num_rows == 3
    assert "BatchClassifier" in repr(bc)
