"""``kubenat demo``: kubenat on the built-in example cluster."""

from __future__ import annotations

import click

import kubenat
from kubenat.cli import main


@main.command()
def demo() -> None:
    """Show kubenat on the built-in example cluster."""
    click.echo(f"kubenat {kubenat.__version__}")
