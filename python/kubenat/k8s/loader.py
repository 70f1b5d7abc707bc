"""Loading manifests: files, directories, stdin, strings, dicts and client model objects.

Every source may hold single objects, ``kind: List`` / ``*List`` objects, or multi-document
YAML streams; JSON is read too. Objects kubenat has no model for are kept as
:class:`OtherObject` (never dropped silently); unknown fields are ignored, as the API server
ignores them; missing required fields and invalid values raise ``ManifestError``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, TextIO

import yaml

from kubenat.errors import LimitError, ManifestError
from kubenat.k8s._fields import Fields, fail
from kubenat.k8s.endpoints import Endpoints, EndpointSlice, parse_endpoint_slice, parse_endpoints
from kubenat.k8s.node import Node, parse_node
from kubenat.k8s.pod import Pod, parse_pod
from kubenat.k8s.service import Service, parse_service

#: The largest manifest file or string kubenat reads (bytes).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class OtherObject:
    """An object of a kind kubenat does not model (Deployment, ConfigMap, ...), kept by name."""

    kind: str
    api_version: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


KubeObject = Service | EndpointSlice | Endpoints | Node | Pod | OtherObject

_PARSERS: dict[str, Callable[[Any], KubeObject]] = {
    "Service": parse_service,
    "EndpointSlice": parse_endpoint_slice,
    "Endpoints": parse_endpoints,
    "Node": parse_node,
    "Pod": parse_pod,
}
_CLIENT_CLASS = re.compile(r"^V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])")


@dataclass(frozen=True)
class Cluster:
    """Everything loaded, in input order, with typed views."""

    objects: tuple[KubeObject, ...] = ()

    kind: ClassVar[str] = "Cluster"

    def _of(self, cls: type) -> tuple[Any, ...]:
        return tuple(o for o in self.objects if isinstance(o, cls))

    @cached_property
    def services(self) -> tuple[Service, ...]:
        return self._of(Service)

    @cached_property
    def endpoint_slices(self) -> tuple[EndpointSlice, ...]:
        return self._of(EndpointSlice)

    @cached_property
    def endpoints(self) -> tuple[Endpoints, ...]:
        return self._of(Endpoints)

    @cached_property
    def nodes(self) -> tuple[Node, ...]:
        return self._of(Node)

    @cached_property
    def pods(self) -> tuple[Pod, ...]:
        return self._of(Pod)

    @cached_property
    def others(self) -> tuple[OtherObject, ...]:
        return self._of(OtherObject)

    def __add__(self, other: Cluster) -> Cluster:
        return Cluster(self.objects + other.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[KubeObject]:
        return iter(self.objects)

    def service(self, namespace: str, name: str) -> Service | None:
        for svc in self.services:
            if svc.namespace == namespace and svc.name == name:
                return svc
        return None

    def node(self, name: str) -> Node | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    def __hash__(self) -> int:
        return hash(self.objects)

    def slices_for(self, service: Service) -> tuple[EndpointSlice, ...]:
        """The EndpointSlices kube-proxy joins to a Service (by the service-name label), sorted by name.

        When there are none, the legacy Endpoints object of the same name stands in, converted
        as the mirroring controller would.
        """
        slices = self._slice_index.get((service.namespace, service.name))
        if slices:
            return slices
        legacy = self._endpoints_index.get((service.namespace, service.name))
        return legacy.to_slices() if legacy is not None else ()

    @cached_property
    def _slice_index(self) -> dict[tuple[str, str], tuple[EndpointSlice, ...]]:
        index: dict[tuple[str, str], list[EndpointSlice]] = {}
        for s in self.endpoint_slices:
            if s.service_name is not None:
                index.setdefault((s.namespace, s.service_name), []).append(s)
        return {k: tuple(sorted(v, key=lambda s: s.name)) for k, v in index.items()}

    @cached_property
    def _endpoints_index(self) -> dict[tuple[str, str], Endpoints]:
        index: dict[tuple[str, str], Endpoints] = {}
        for e in self.endpoints:
            index.setdefault((e.namespace, e.name), e)
        return index


def _kind_from_class(obj: Any) -> str | None:
    name = type(obj).__name__
    stripped = _CLIENT_CLASS.sub("", name)
    return stripped or None


def _as_mapping(obj: Any) -> tuple[Any, str | None]:
    """A plain mapping for a dict, an official-client model or a lightkube model."""
    if isinstance(obj, Mapping):
        return obj, None
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict(), _kind_from_class(obj)
    return obj, None


def parse_object(data: Any, *, source: str = "<object>", default_kind: str | None = None) -> list[KubeObject]:
    """Turn one decoded document (or client object) into kubenat objects; Lists are flattened."""
    data, class_kind = _as_mapping(data)
    if not isinstance(data, Mapping):
        fail(source, "", f"expected a Kubernetes object (a mapping), got {type(data).__name__}")
    kind = data.get("kind") or class_kind or default_kind
    if not kind:
        label = source
        meta = data.get("metadata")
        if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
            label = f"object {meta['name']} in {source}"
        fail(label, "kind", "required field is missing")
    if not isinstance(kind, str):
        fail(source, "kind", f"{kind!r} is not a string")
    if kind == "List" or kind.endswith("List"):
        item_kind = kind[: -len("List")] or None
        out: list[KubeObject] = []
        for path, item in Fields(data, f"{kind} in {source}").items("items"):
            out.extend(parse_object(item, source=f"{source} {path}", default_kind=item_kind))
        return out
    parser = _PARSERS.get(kind)
    if parser is not None:
        return [parser(data)]
    meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    return [
        OtherObject(
            kind=kind,
            api_version=str(data.get("apiVersion") or data.get("api_version") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
        )
    ]


def _documents(text: str, source: str) -> Iterator[Any]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(source, "", f"JSON error at line {exc.lineno} column {exc.colno}: {exc.msg}")
        if isinstance(doc, list):
            yield from doc
        else:
            yield doc
        return
    try:
        for doc in yaml.safe_load_all(text):
            # A bare list of objects is accepted like a List, in YAML as in JSON.
            if isinstance(doc, list):
                yield from doc
            else:
                yield doc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        fail(source, "", f"YAML error{where}: {problem}")


def load_text(text: str, *, source: str = "<string>") -> Cluster:
    """Load manifests from YAML or JSON text."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise LimitError(
            f"{source}: manifest is {len(text)} bytes, more than {MAX_MANIFEST_BYTES}",
            what="manifest size",
            limit=MAX_MANIFEST_BYTES,
            actual=len(text),
        )
    objects: list[KubeObject] = []
    for i, doc in enumerate(_documents(text, source)):
        if doc is None:
            continue  # an empty document, e.g. after a trailing '---'
        objects.extend(parse_object(doc, source=f"{source} document {i + 1}" if i else source))
    return Cluster(tuple(objects))


def load_file(path: str | os.PathLike[str]) -> Cluster:
    """Load one manifest file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise LimitError(
                f"{p}: manifest is {size} bytes, more than {MAX_MANIFEST_BYTES}",
                what="manifest size",
                limit=MAX_MANIFEST_BYTES,
                actual=size,
            )
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: cannot read: {exc}", object=str(p), path="", reason=str(exc)) from exc
    return load_text(text, source=str(p))


def load_dir(path: str | os.PathLike[str]) -> Cluster:
    """Load every ``*.yaml``, ``*.yml`` and ``*.json`` file of a directory (not recursive, sorted by name)."""
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in MANIFEST_SUFFIXES)
    cluster = Cluster()
    for f in files:
        cluster = cluster + load_file(f)
    return cluster


def load_stream(stream: TextIO, *, source: str = "<stdin>") -> Cluster:
    """Load manifests from an open text stream (stdin by default in :func:`load`)."""
    text = stream.read(MAX_MANIFEST_BYTES + 1)
    return load_text(text, source=source)


def load(*sources: Any) -> Cluster:
    """Load manifests from any mix of sources.

    A source is a :class:`Cluster`, a path (``str`` or ``Path``) to a file or directory,
    ``"-"`` for stdin, YAML/JSON text (a string with a newline or starting with ``{``), an
    open text stream, a mapping, an official-client or lightkube model object, or an
    iterable of any of these.
    """
    objects: list[KubeObject] = []
    for source in sources:
        objects.extend(_load_one(source))
    return Cluster(tuple(objects))


def _load_one(source: Any) -> Iterable[KubeObject]:
    if isinstance(source, Cluster):
        return source.objects
    if isinstance(source, (Service, EndpointSlice, Endpoints, Node, Pod, OtherObject)):
        return (source,)
    if isinstance(source, Path):
        return (load_dir(source) if source.is_dir() else load_file(source)).objects
    if isinstance(source, str):
        if source == "-":
            return load_stream(sys.stdin).objects
        looks_like_text = "\n" in source or source.lstrip().startswith(("{", "[", "apiVersion:", "kind:"))
        if not looks_like_text:
            p = Path(source)
            if p.is_dir():
                return load_dir(p).objects
            if p.exists():
                return load_file(p).objects
            fail(source, "", "no such file or directory")
        return load_text(source).objects
    if hasattr(source, "read"):
        return load_stream(source, source=str(getattr(source, "name", "<stream>"))).objects
    if isinstance(source, Mapping) or callable(getattr(source, "to_dict", None)):
        return parse_object(source)
    if isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray)):
        out: list[KubeObject] = []
        for item in source:
            out.extend(_load_one(item))
        return out
    fail("<input>", "", f"cannot load manifests from a {type(source).__name__}")
