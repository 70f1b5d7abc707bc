"""``kubenat env``: the service environment variables kubelet injects into a namespace's pods."""

from __future__ import annotations

import click

from kubenat import envvars
from kubenat.cli import main
from kubenat.cli.rules import load_manifests
from kubenat.errors import KubenatError


@main.command()
@click.argument("manifests", nargs=-1)
@click.option("--example", metavar="NAME", help="Add a built-in example (e.g. walkthrough).")
@click.option("--namespace", "-n", default="default", show_default=True, help="The pod's namespace.")
@click.option(
    "--service-links/--no-service-links",
    default=True,
    show_default=True,
    help="The pod's enableServiceLinks (off: only the default/kubernetes service).",
)
def env(manifests: tuple[str, ...], example: str | None, namespace: str, service_links: bool) -> None:
    """Print NAME=value for every service variable a pod in NAMESPACE gets."""
    try:
        cluster = load_manifests(manifests, example)
        pairs = envvars.service_env(cluster, namespace, enable_service_links=service_links)
    except KubenatError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(envvars.format_env(pairs), nl=False)
