"""Arrow batches through the compiled classifier, for Spark, Ray and Dask workers.

:class:`BatchClassifier` takes a ``pyarrow.RecordBatch`` or ``Table`` with packet columns and
returns it with result columns appended. It pickles as its ruleset text and node, so a driver
can hand it to workers that rebuild (and recompile) it on first use::

    bc = BatchClassifier(ruleset_text, interfaces={"eth0": ["192.168.0.2/24"]})
    df.mapInArrow(bc.map_batches, schema)                              # Spark
    ds.map_batches(bc, batch_format="pyarrow")                          # Ray
    ddf.map_partitions(bc.pandas)                                      # Dask

Input columns: ``src``, ``dst`` (IPv4 as uint32 integers or dotted strings), ``proto``,
``sport``, ``dport`` (integers), optional ``iface`` (interface index or name). Added columns:
``verdict`` (ACCEPT/DROP/REJECT), ``nat_dst``, ``nat_dport``, ``nat_src``, ``nat_sport``,
``mark``, ``rule`` (index of the deciding rule, -1 for a policy).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from kubenat._core import Classifier
from kubenat.errors import InvalidArgument

VERDICTS = ("ACCEPT", "DROP", "REJECT")
RESULT_COLUMNS = ("verdict", "nat_dst", "nat_dport", "nat_src", "nat_sport", "mark", "rule")


def _pa() -> Any:
    try:
        import pyarrow
    except ImportError as e:  # pragma: no cover - exercised only without pyarrow
        raise InvalidArgument(
            "kubenat.arrow needs pyarrow (pip install pyarrow)", what="pyarrow", reason="not installed"
        ) from e
    return pyarrow


def _addresses(column: Any, name: str) -> Any:
    import numpy as np

    pa = _pa()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            values = [int(ipaddress.IPv4Address(v)) for v in column.to_pylist()]
        except (ValueError, TypeError) as e:
            raise InvalidArgument(f"{name}: {e}", what=name, reason="not an IPv4 address") from e
        return np.asarray(values, dtype=np.uint32)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.uint32)


class BatchClassifier:
    """A picklable classifier for Arrow batches (rebuilt from its ruleset text where unpickled)."""

    def __init__(
        self,
        ruleset: Any,
        *,
        local: Sequence[str] = (),
        interfaces: Mapping[str, Sequence[str]] | None = None,
        routes: Sequence[tuple[str, str]] = (),
        seed: int | None = None,
        threads: int = 1,
    ) -> None:
        self.text: str = ruleset if isinstance(ruleset, str) else ruleset.save()
        self.local = list(local)
        self.interfaces = {k: list(v) for k, v in (interfaces or {}).items()}
        self.routes = [tuple(r) for r in routes]
        self.seed = seed
        self.threads = threads
        self._classifier: Classifier | None = None
        self._calls = 0

    @property
    def classifier(self) -> Classifier:
        """The compiled classifier (built on first use, so unpickling stays cheap)."""
        if self._classifier is None:
            self._classifier = Classifier(
                self.text, local=self.local, interfaces=self.interfaces, routes=self.routes
            )
        return self._classifier

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_rebuild, (self.text, self.local, self.interfaces, self.routes, self.seed, self.threads))

    def _iface(self, batch: Any) -> Any:
        import numpy as np

        if "iface" not in batch.schema.names:
            return None
        column = batch.column("iface")
        pa = _pa()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            names = self.classifier.interfaces
            try:
                return np.asarray([names.index(v) for v in column.to_pylist()], dtype=np.uint8)
            except ValueError as e:
                raise InvalidArgument(f"iface: {e}", what="iface", reason="unknown interface") from e
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.uint8)

    def classify(self, batch: Any) -> Any:
        """One ``RecordBatch`` (or ``Table``) in, the same rows plus result columns out."""
        pa = _pa()
        if isinstance(batch, pa.Table):
            batches = [self.classify(b) for b in batch.to_batches()]
            schema = batches[0].schema if batches else self.output_schema(batch.schema)
            return pa.Table.from_batches(batches, schema=schema)
        for name in ("src", "dst", "proto", "sport", "dport"):
            if name not in batch.schema.names:
                raise InvalidArgument(f"batch has no column {name!r}", what=name, reason="missing column")
        seed = None
        if self.seed is not None:
            seed = (self.seed + self._calls) & 0xFFFF_FFFF_FFFF_FFFF
            self._calls += 1
        col = batch.column
        r = self.classifier.classify_batch(
            _addresses(col("src"), "src"),
            _addresses(col("dst"), "dst"),
            col("proto").to_numpy(zero_copy_only=False),
            col("sport").to_numpy(zero_copy_only=False),
            col("dport").to_numpy(zero_copy_only=False),
            self._iface(batch),
            seed=seed,
            threads=self.threads,
        )
        verdict = pa.DictionaryArray.from_arrays(pa.array(r["verdict"].astype("int8")), pa.array(VERDICTS))
        arrays = [
            *list(batch.columns),
            verdict,
            pa.array(r["dst"]),
            pa.array(r["dport"]),
            pa.array(r["src"]),
            pa.array(r["sport"]),
            pa.array(r["mark"]),
            pa.array(r["rule"]),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.output_schema(batch.schema))

    __call__ = classify

    def output_schema(self, schema: Any) -> Any:
        """The schema of :meth:`classify`'s output for an input schema (Spark needs it up front)."""
        pa = _pa()
        extra = [
            pa.field("verdict", pa.dictionary(pa.int8(), pa.string())),
            pa.field("nat_dst", pa.uint32()),
            pa.field("nat_dport", pa.uint16()),
            pa.field("nat_src", pa.uint32()),
            pa.field("nat_sport", pa.uint16()),
            pa.field("mark", pa.uint32()),
            pa.field("rule", pa.int32()),
        ]
        return pa.schema(list(schema) + extra)

    def map_batches(self, batches: Iterable[Any]) -> Iterator[Any]:
        """Spark's ``mapInArrow`` form: an iterator of batches in, an iterator out."""
        for b in batches:
            yield self.classify(b)

    def pandas(self, frame: Any) -> Any:
        """Dask's ``map_partitions`` form: a pandas DataFrame in, a DataFrame out."""
        pa = _pa()
        table = self.classify(pa.Table.from_pandas(frame, preserve_index=False))
        out = table.to_pandas()
        out.index = frame.index
        return out

    def __repr__(self) -> str:
        return f"<BatchClassifier {len(self.text.splitlines())} lines, {len(self.interfaces)} interfaces>"


def _rebuild(
    text: str,
    local: list[str],
    interfaces: dict[str, list[str]],
    routes: list[tuple[str, str]],
    seed: int | None,
    threads: int,
) -> BatchClassifier:
    return BatchClassifier(
        text, local=local, interfaces=interfaces, routes=routes, seed=seed, threads=threads
    )
