"""The ``kubenat`` command."""

from __future__ import annotations

import click

import kubenat


@click.group()
@click.version_option(kubenat.__version__, prog_name="kubenat")
def main() -> None:
    """Where does this packet go, and what bytes come out? Kubernetes NAT, offline."""


@main.command()
def demo() -> None:
    """Show kubenat on the built-in example cluster."""
    click.echo(f"kubenat {kubenat.__version__}")
