"""Object metadata shared by every kind: namespace, name, labels, annotations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubenat.k8s._fields import Fields, fail


@dataclass(frozen=True)
class Meta:
    """What kubenat keeps of ``metadata``."""

    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


def read_meta(kind: str, data: Any, *, namespaced: bool = True) -> tuple[Fields, Meta, str]:
    """The object's fields, its metadata and the label errors use (``Service default/web``)."""
    probe = Fields(data, kind)
    meta = probe.child("metadata")
    if meta is None:
        fail(kind, "metadata", "required field is missing")
    name = meta.raw("name")
    namespace = meta.raw("namespace") or ("default" if namespaced else "")
    if not isinstance(namespace, str):
        fail(kind, "metadata.namespace", f"{namespace!r} is not a string")
    if not isinstance(name, str) or not name:
        label = f"{kind} {namespace}/?" if namespaced else f"{kind} ?"
        reason = "required field is missing" if name is None else f"{name!r} is not a name"
        fail(label, "metadata.name", reason)
    label = f"{kind} {namespace}/{name}" if namespaced else f"{kind} {name}"
    fields = Fields(data, label)
    meta_fields = Fields(meta.data, label, "metadata")
    return (
        fields,
        Meta(
            namespace=namespace,
            name=name,
            labels=meta_fields.string_map("labels"),
            annotations=meta_fields.string_map("annotations"),
        ),
        label,
    )


def lookup(pairs: tuple[tuple[str, str], ...], key: str) -> str | None:
    """A value from a sorted pair tuple (labels, annotations, selector)."""
    for k, v in pairs:
        if k == key:
            return v
    return None
