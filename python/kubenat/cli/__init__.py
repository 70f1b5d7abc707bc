"""The ``kubenat`` command: one click group; each subcommand lives in its own module here."""

from __future__ import annotations

import click

import kubenat


@click.group()
@click.version_option(kubenat.__version__, prog_name="kubenat")
def main() -> None:
    """Where does this packet go, and what bytes come out? Kubernetes NAT, offline."""


# Subcommands register themselves on `main` when imported (one line per command module).
from kubenat.cli import bench as _bench  # noqa: E402  # speed
from kubenat.cli import demo as _demo  # noqa: E402
from kubenat.cli import diff as _diff  # noqa: E402
from kubenat.cli import env as _env  # noqa: E402
from kubenat.cli import example as _example  # noqa: E402
from kubenat.cli import flannel as _flannel  # noqa: E402
from kubenat.cli import rules as _rules  # noqa: E402
from kubenat.cli import trace as _trace  # noqa: E402  (evaluator)
from kubenat.cli import verify as _verify  # noqa: E402

__all__ = ["main"]
_ = (_bench, _demo, _diff, _env, _example, _flannel, _rules, _verify, _trace)
