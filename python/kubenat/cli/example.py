"""``kubenat example``: print a bundled example file (manifests, kube-proxy or flannel config)."""

from __future__ import annotations

import click

from kubenat.cli import main


@main.command()
@click.argument("name", required=False)
def example(name: str | None) -> None:
    """Print the bundled example file NAME (list them without NAME).

    The walkthrough cluster: walkthrough.yaml (Nodes, Pods, Services, Endpoints),
    walkthrough-proxy.yaml (KubeProxyConfiguration), walkthrough-net-conf.json (flannel).
    """
    from kubenat import examples

    if name is None:
        click.echo("\n".join(examples.names()))
        return
    try:
        path = examples.path(name)
    except FileNotFoundError as e:
        raise click.UsageError(str(e)) from None
    click.echo(path.read_text(encoding="utf-8"), nl=False)
