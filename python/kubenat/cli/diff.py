"""``kubenat diff``: two iptables-save dumps compared rule by rule, spelling differences aside."""

from __future__ import annotations

import sys

import click

from kubenat.cli import main


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


@main.command("diff")
@click.argument("first", type=click.Path(allow_dash=True, dir_okay=False))
@click.argument("second", type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--table", "tables", multiple=True, help="Compare only this table (repeatable).")
def diff_command(first: str, second: str, tables: tuple[str, ...]) -> None:
    """Compare two iptables-save dumps (e.g. `kubenat rules` output and a node's `iptables-save`).

    Both are parsed and normalised as the kernel stores them, so only real differences are
    shown. Exits 0 when they are the same, 1 when they differ (like diff).
    """
    from kubenat._core import Ruleset
    from kubenat.diff import diff, render

    a, b = Ruleset.parse(_read(first)), Ruleset.parse(_read(second))
    report = render(diff(a, b, tables=tables or None), first, second)
    if report:
        click.echo(report, nl=False)
        sys.exit(1)
    click.echo("same rules")
