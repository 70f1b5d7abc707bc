"""``kubenat bench``: measure the compiled classifier against its baselines."""

from __future__ import annotations

from pathlib import Path

import click

from kubenat.cli import main


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s.replace("_", "").replace("k", "000")) for s in text.split(",") if s)
    except ValueError as e:
        raise click.BadParameter(f"{text!r}: comma-separated service counts (100,1k,10k)") from e
    if not sizes or any(s < 1 or s > 1_000_000 for s in sizes):
        raise click.BadParameter("service counts must be between 1 and 1,000,000")
    return sizes


@main.command()
@click.option("--sizes", default=None, help="Service counts, e.g. 100,1k,10k (default: 100,1k,10k,20k,100k).")
@click.option("--quick", is_flag=True, help="100, 1k and 10k services and 200k packets (about a minute).")
@click.option("--packets", type=click.IntRange(1_000, 100_000_000), default=None, help="Packets per batch.")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="Threads (default: all CPUs).")
@click.option("--endpoints", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--kernel/--no-kernel", default=True, show_default=True, help="Measure netfilter (root only).")
@click.option(
    "--reference-max",
    type=click.IntRange(0, 1_000_000),
    default=10_000,
    show_default=True,
    help="Largest size the pure-Python reference runs on (it parses 10k services in ~20 s).",
)
@click.option(
    "--kernel-max",
    type=click.IntRange(0, 1_000_000),
    default=20_000,
    show_default=True,
    help="Largest size the kernel runs on (loading 20k services takes ~20 s).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench.json")
)
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench.png"))
def bench(
    sizes: str | None,
    quick: bool,
    packets: int | None,
    threads: int | None,
    endpoints: int,
    kernel: bool,
    reference_max: int,
    kernel_max: int,
    json_path: Path,
    png_path: Path,
) -> None:
    """Throughput of the compiled classifier on synthetic kube-proxy rulesets, with ratios to the
    plain evaluator, pure Python and the kernel; writes JSON and a PNG."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kubenat import bench as suite
    from kubenat.bench import report

    chosen = _sizes(sizes) if sizes else (suite.QUICK_SIZES if quick else suite.DEFAULT_SIZES)
    n = packets or (200_000 if quick else 1_000_000)
    limits = suite.Limits(reference_max=reference_max, kernel=kernel, kernel_max=kernel_max)
    # The table is wide; wrap rather than squeeze it into a narrow terminal.
    console = Console(width=max(Console().width, 190))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("starting", total=suite.steps(chosen, limits))

        def step(what: str) -> None:
            progress.update(task, description=what, advance=1)

        data = suite.run(chosen, endpoints=endpoints, packets=n, threads=threads, limits=limits, step=step)
    console.print(report.table(data))
    console.print(report.targets(data))
    report.save_json(data, json_path)
    report.draw(data, png_path)
    console.print(f"wrote {json_path} and {png_path}")
