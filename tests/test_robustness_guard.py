"""Every binding entry point that works on caller data runs inside ``errors::guard``.

A Rust panic that escapes a guarded entry point becomes ``kubenat.InternalError`` (a
``KubenatError``); unguarded it would be pyo3's ``PanicException``, a ``BaseException`` that
``except Exception`` does not catch. This test reads the binding sources and finds every
``#[pymethods]`` method and ``#[pyfunction]`` that takes arguments (beyond ``self``, ``py`` and
the class); each must call ``guard(`` unless it is listed below with the reason it cannot panic.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "rust" / "python" / "src"

#: Entry points that need no guard: (file, function) → why.
NO_GUARD = {
    ("ruleset.rs", "chains"): "a name lookup in a parsed ruleset",
    ("ruleset.rs", "policy"): "a name lookup in a parsed ruleset",
    ("packet.rs", "from_scapy"): "calls the Python scapy glue, no Rust work",
    ("netfilter.rs", "from_packet"): "copies fields of a packet that was validated on creation",
    ("netfilter.rs", "advance"): "checks its argument, then saturating clock arithmetic",
}
RECEIVERS = re.compile(r"^(&\s*(mut\s+)?self|self|slf|py|_py|cls|_cls)\b")


def matching(text: str, start: int, open_: str, close: str) -> int:
    """Index just past the bracket that closes the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced {open_} at {start}")


def entry_points(path: Path) -> list[tuple[str, list[str], str]]:
    """(name, parameters, body) of each #[pymethods] method and #[pyfunction] of a file."""
    text = path.read_text()
    spans = []
    for m in re.finditer(r"#\[pymethods\]\s*impl[^{]*\{", text):
        spans.append((m.end(), matching(text, m.end() - 1, "{", "}")))
    found = []
    for m in re.finditer(r"\bfn\s+(\w+)\s*(<[^(]*>)?\s*\(", text):
        inside = any(a <= m.start() < b for a, b in spans)
        attrs = text[max(0, m.start() - 400) : m.start()]
        is_function = re.search(r"#\[pyfunction[^\]]*\]\s*(#\[[^\]]*\]\s*)*(pub(\([^)]*\))?\s+)?$", attrs)
        if not (inside or is_function):
            continue
        params_end = matching(text, m.end() - 1, "(", ")")
        params = [
            p.strip() for p in re.split(r",(?![^<(]*[>)])", text[m.end() : params_end - 1]) if p.strip()
        ]
        body_start = text.index("{", params_end)
        body = text[body_start : matching(text, body_start, "{", "}")]
        found.append((m.group(1), params, body))
    return found


def test_the_scan_finds_the_entry_points() -> None:
    names = {name for f in SRC.glob("*.rs") for name, _, _ in entry_points(f)}
    assert {"parse", "from_bytes", "decap", "process", "_panic_for_tests"} <= names


@pytest.mark.parametrize("path", sorted(SRC.glob("*.rs")), ids=lambda p: p.name)
def test_entry_points_with_arguments_are_guarded(path: Path) -> None:
    unguarded = []
    for name, params, body in entry_points(path):
        args = [p for p in params if not RECEIVERS.match(p)]
        if not args or (name.startswith("__") and name.endswith("__")):
            continue
        if "guard(" not in body and (path.name, name) not in NO_GUARD:
            unguarded.append(f"{name}({', '.join(args)})")
    assert not unguarded, f"{path.name}: entry points without errors::guard: {unguarded}"
