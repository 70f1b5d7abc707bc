"""Printing, saving and drawing ``kubenat bench`` results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def table(data: dict[str, Any]) -> Any:
    """A rich Table: one row per size, ratios against the baselines."""
    from rich.table import Table

    t = Table(
        title=f"kubenat bench — {data['packets']:,} packets, {data['endpoints']} endpoints/service, "
        f"{data.get('cpus')} CPUs",
        caption="x plain / x Python / x kernel: compiled batch (1 thread) over that engine; "
        "vs 1k: batch throughput over that at 1k services",
    )
    for col in (
        "services",
        "rules",
        "parse+compile ms",
        "B/svc",
        "batch Mpps",
        "threads Mpps",
        "Python call ns",
        "lean call ns",
        "plain pps",
        "x plain",
        "Python pps",
        "x Python",
        "kernel pps",
        "x kernel",
        "vs 1k",
    ):
        t.add_column(col, justify="right")
    rows = data["rows"]
    base = next((r["batch_mpps"] for r in rows if r["services"] == 1_000), None)
    for r in rows:
        batch_pps = r["batch_mpps"] * 1e6
        kernel = r["kernel_pps"]
        t.add_row(
            f"{r['services']:,}",
            f"{r['rules']:,}",
            _fmt(r["parse_ms"] + r["compile_ms"]),
            _fmt(r["bytes_per_service"], 0),
            _fmt(r["batch_mpps"], 2),
            f"{_fmt(r['batch_threads_mpps'], 2)} ({r['threads']})",
            _fmt(r["single_call_ns"], 0),
            _fmt(r["lean_call_ns"], 0),
            _fmt(r["plain_mpps"] * 1e6, 0),
            _fmt(r["batch_mpps"] / r["plain_mpps"], 0) if r["plain_mpps"] else "—",
            _fmt(r["python_pps"], 1) if r["python_pps"] else "skipped",
            _fmt(batch_pps / r["python_pps"], 0) if r["python_pps"] else "—",
            _fmt(kernel, 0) if kernel else r["kernel_note"].split(" above")[0][:24],
            _fmt(batch_pps / kernel, 0) if kernel else "—",
            _fmt(r["batch_mpps"] / base, 2) if base else "—",
        )
    return t


def targets(data: dict[str, Any]) -> Any:
    """A rich Table of the targets and whether each is met."""
    from rich.table import Table

    t = Table(title="targets")
    for col in ("target", "measured", "goal", "met", "how"):
        t.add_column(col, justify="right" if col != "how" else "left")
    for name, v in data["summary"].items():
        met = {True: "yes", False: "no", None: "not measured"}[v["met"]]
        t.add_row(name, _fmt(v["value"], 3), _fmt(v["target"], 2), met, v.get("how", ""))
    vx = data["vxlan"]

    def mpps(key: str) -> str:
        return _fmt(vx[key] / 1e6, 1) if vx.get(key) else "—"

    if "encap_pps" not in vx:
        t.caption = f"VXLAN: {vx.get('note')}"
        return t
    t.caption = (
        f"VXLAN, {vx['inner_bytes']}-byte inner packets, Mpps: encap/decap "
        f"{mpps('encap_pps')}/{mpps('decap_pps')} in cache ({vx['in_cache_packets']:,} packets), "
        f"{mpps('encap_large_pps')}/{mpps('decap_large_pps')} for {vx['large_packets']:,} packets, "
        f"{mpps('encap_list_pps')}/{mpps('decap_list_pps')} as lists of bytes"
    )
    return t


def save_json(data: dict[str, Any], path: Path) -> None:
    """Writes the results as JSON."""
    path.write_text(json.dumps(data, indent=2) + "\n")


def draw(data: dict[str, Any], path: Path) -> None:
    """Throughput against services (log-log), one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    x = [r["services"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = [
        ("compiled batch (1 thread)", [r["batch_mpps"] * 1e6 for r in rows]),
        ("compiled batch (threads)", [r["batch_threads_mpps"] * 1e6 for r in rows]),
        ("single Python call", [1e9 / r["single_call_ns"] for r in rows]),
        ("lean Python call", [1e9 / r["lean_call_ns"] for r in rows]),
        ("plain Rust evaluator", [r["plain_mpps"] * 1e6 for r in rows]),
        ("pure-Python reference", [r["python_pps"] or float("nan") for r in rows]),
    ]
    if any(r["kernel_pps"] for r in rows):
        series.append(("kernel (namespaces)", [r["kernel_pps"] or float("nan") for r in rows]))
    for label, y in series:
        ax.plot(x, y, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"services (x {data['endpoints']} endpoints)")
    ax.set_ylabel("packets per second")
    ax.set_title("kubenat: throughput against ruleset size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
