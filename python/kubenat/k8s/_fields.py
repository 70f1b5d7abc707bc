"""Reading manifest fields with errors that name the object and the field path.

Manifests arrive in two spellings: the wire form (camelCase, what ``kubectl get -o yaml``
prints and lightkube's ``to_dict()`` returns) and the official Python client's ``to_dict()``
form (snake_case, with ``None`` for every unset field). :class:`Fields` looks a field up
under both spellings, so the parsers only ever name the wire form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NoReturn

from kubenat.errors import ManifestError

_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


@lru_cache(maxsize=1024)
def snake_case(name: str) -> str:
    """The official client's spelling of a wire field name (``clusterIPs`` -> ``cluster_i_ps``)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name)
    return name.replace("-", "_").lower()


def fail(obj: str, path: str, reason: str) -> NoReturn:
    """Raise the one error form every manifest problem takes."""
    where = f"{obj}: {path}: " if path else f"{obj}: "
    raise ManifestError(f"{where}{reason}", object=obj, path=path, reason=reason)


def describe(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Fields:
    """A mapping inside a manifest, with the object's name and the path to this mapping."""

    __slots__ = ("data", "obj", "path")

    def __init__(self, data: Any, obj: str, path: str = "") -> None:
        if not isinstance(data, Mapping):
            fail(obj, path, f"expected a mapping, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.obj = obj
        self.path = path

    def at(self, key: str) -> str:
        """The path of a child field."""
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, reason: str) -> NoReturn:
        fail(self.obj, self.at(key), reason)

    def raw(self, key: str) -> Any:
        """The value under either spelling; None when absent or null."""
        value = self.data.get(key)
        if value is None:
            snake = snake_case(key)
            if snake != key:
                value = self.data.get(snake)
        return value

    def has(self, key: str) -> bool:
        return self.raw(key) is not None

    def child(self, key: str, *, required: bool = False) -> Fields | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.fail(key, "required field is missing")
            return None
        return Fields(value, self.obj, self.at(key))

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(key)
        if value is None:
            if required or default is None:
                self.fail(key, "required field is missing")
            return default
        if not isinstance(value, str):
            self.fail(key, f"{describe(value)} is not a string")
        return value

    def opt_string(self, key: str) -> str | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, f"{describe(value)} is not a string")
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                self.fail(key, "required field is missing")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"{describe(value)} is not an integer")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(key, f"{describe(value)} is not a boolean")
        return value

    def port(self, key: str, *, required: bool = False, allow_zero: bool = False) -> int:
        """A TCP/UDP port number; 0 when absent and not required."""
        value = self.raw(key)
        if value is None:
            if required:
                self.fail(key, "required field is missing")
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"{describe(value)} is not a port")
        if not (1 if not allow_zero else 0) <= value <= 65535:
            self.fail(key, f"{value} is not a port")
        return value

    def items(self, key: str, *, required: bool = False) -> list[tuple[str, Any]]:
        """A list field as (path, element) pairs."""
        value = self.raw(key)
        if value is None:
            if required:
                self.fail(key, "required field is missing")
            return []
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            self.fail(key, f"expected a list, got {type(value).__name__}")
        return [(f"{self.at(key)}[{i}]", element) for i, element in enumerate(value)]

    def mappings(self, key: str, *, required: bool = False) -> list[Fields]:
        return [Fields(element, self.obj, path) for path, element in self.items(key, required=required)]

    def strings(self, key: str) -> tuple[str, ...]:
        out = []
        for path, element in self.items(key):
            if not isinstance(element, str):
                fail(self.obj, path, f"{describe(element)} is not a string")
            out.append(element)
        return tuple(out)

    def string_map(self, key: str) -> tuple[tuple[str, str], ...]:
        """A map of strings (labels, selector) as sorted pairs, so objects stay hashable."""
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            self.fail(key, f"expected a mapping, got {type(value).__name__}")
        pairs = []
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                self.fail(f"{key}[{k!r}]", f"{describe(v)} is not a string")
            pairs.append((k, v))
        return tuple(sorted(pairs))


def parse_ip_sloppy(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an IP address as Kubernetes' ParseIPSloppy does (IPv4 octets may have leading zeros)."""
    text = text.strip()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        octets = [int(p, 10) for p in parts]
        if all(o <= 255 for o in octets):
            return ipaddress.IPv4Address(".".join(str(o) for o in octets))
    return None


def parse_cidr_sloppy(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """Parse a CIDR as ParseCIDRSloppy does: host bits are masked off, leading zeros allowed."""
    text = text.strip()
    if "/" not in text:
        return None
    addr, _, bits = text.partition("/")
    ip = parse_ip_sloppy(addr)
    if ip is None or not bits.isdigit():
        return None
    try:
        return ipaddress.ip_network(f"{ip}/{int(bits)}", strict=False)
    except ValueError:
        return None


def _canonical_ipv4(text: str) -> bool:
    """A fast check for the common case: dotted quad, no leading zeros, every octet <= 255."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and p.isascii() and len(p) <= 3 and (p == "0" or p[0] != "0") and int(p) <= 255
        for p in parts
    )


def canonical_ip(text: str) -> str | None:
    """The canonical text of an IP address (parsed sloppily), or None."""
    if _canonical_ipv4(text):
        return text
    ip = parse_ip_sloppy(text)
    return None if ip is None else str(ip)


def ip_field(fields: Fields, key: str, value: Any, path: str | None = None) -> str:
    """Validate an IP address string and return its canonical form."""
    where = path if path is not None else fields.at(key)
    if not isinstance(value, str):
        fail(fields.obj, where, f"{describe(value)} is not an IP address")
    ip = canonical_ip(value)
    if ip is None:
        fail(fields.obj, where, f"{describe(value)} is not an IP address")
    return ip


def is_port_name(text: str) -> bool:
    """An IANA service name as a named targetPort must be."""
    return bool(_IANA_SVC_NAME.match(text)) and any(c.isalpha() for c in text) and "--" not in text
