"""Run the benchmark suite without the CLI: ``python benches/run_bench.py [sizes...]``."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from kubenat import bench
from kubenat.bench import report


def main(argv: list[str]) -> None:
    sizes = tuple(int(a) for a in argv) or bench.QUICK_SIZES
    limits = bench.Limits(kernel=False)
    data = bench.run(sizes, packets=200_000, limits=limits, step=lambda s: print(s, file=sys.stderr))
    console = Console()
    console.print(report.table(data))
    console.print(report.targets(data))
    report.save_json(data, Path("bench.json"))
    report.draw(data, Path("bench.png"))


if __name__ == "__main__":
    main(sys.argv[1:])
