"""``kubenat rules``: the NAT rules kube-proxy writes for a set of manifests."""

from __future__ import annotations

from typing import Any

import click

import kubenat
from kubenat import examples, hostport
from kubenat.cli import main
from kubenat.errors import KubenatError
from kubenat.k8s import Cluster, load


def _proxy_ports(values: tuple[str, ...]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for value in values:
        name, sep, port = value.rpartition("=")
        if not sep or not name or not port.isdigit():
            raise click.BadParameter(f"{value!r} is not SERVICE=PORT (e.g. default/my-first-nginx:=43321)")
        ports[name] = int(port)
    return ports


def load_manifests(manifests: tuple[str, ...], example: str | None) -> Cluster:
    """Manifests from paths/``-`` plus an optional built-in example."""
    sources: list[Any] = list(manifests)
    if example:
        sources.insert(0, examples.path(example if "." in example else f"{example}.yaml"))
    if not sources:
        raise click.UsageError("give manifest files, directories or '-' (stdin), or --example NAME")
    return load(*sources)


@main.command()
@click.argument("manifests", nargs=-1)
@click.option("--example", metavar="NAME", help="Add a built-in example (e.g. walkthrough).")
@click.option("--mode", type=click.Choice(["iptables", "userspace"]), default="iptables", show_default=True)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="KubeProxyConfiguration file.",
)
@click.option("--node-name", help="The node kube-proxy runs on (decides which endpoints are local).")
@click.option("--node-ip", "node_ips", multiple=True, help="The node's IP (repeat for dual-stack).")
@click.option(
    "--cluster-cidr", "cluster_cidrs", multiple=True, help="Pod network CIDR (local-traffic detector)."
)
@click.option(
    "--detect-local-mode",
    type=click.Choice(["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "None"]),
)
@click.option("--masquerade-all", is_flag=True, default=None, help="SNAT all traffic to cluster IPs.")
@click.option("--masquerade-bit", type=click.IntRange(0, 31), help="Mark bit for masquerading (default 14).")
@click.option(
    "--nodeport-addresses",
    "nodeport_addresses",
    multiple=True,
    metavar="CIDR",
    help="NodePorts only on these IPs.",
)
@click.option(
    "--localhost-nodeports/--no-localhost-nodeports",
    default=None,
    help="NodePorts on 127.0.0.1 (IPv4, default on).",
)
@click.option("--bind-address", help="Userspace mode: the proxy's listen IP (0.0.0.0 uses REDIRECT).")
@click.option("--ipv6", is_flag=True, help="Build ip6tables rules (IPv6 proxier).")
@click.option("--kube-proxy-version", "version", help="Rule text of this kube-proxy (1.28, 1.31, current).")
@click.option("--restore-payload", is_flag=True, help="Only what kube-proxy hands to iptables-restore.")
@click.option(
    "--order",
    type=click.Choice(["canonical", "write"]),
    default="canonical",
    show_default=True,
    help="Restore payload order: kube-proxy's test order, or the order it writes.",
)
@click.option("--listing", is_flag=True, help="Print as 'iptables -t TABLE -L' would.")
@click.option("--proxy-port", "proxy_ports", multiple=True, metavar="SVC=PORT", help="Userspace proxy port.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for userspace proxy ports not given."
)
@click.option("--hostports", type=click.Choice(["cni", "docker"]), help="Print the hostPort rules instead.")
@click.option(
    "--with-hostports",
    type=click.Choice(["cni", "docker"]),
    help="Add the hostPort rules of the node's pods to kube-proxy's (one complete node ruleset).",
)
def rules(
    manifests: tuple[str, ...],
    example: str | None,
    mode: str,
    config_file: str | None,
    node_name: str | None,
    node_ips: tuple[str, ...],
    cluster_cidrs: tuple[str, ...],
    detect_local_mode: str | None,
    masquerade_all: bool | None,
    masquerade_bit: int | None,
    nodeport_addresses: tuple[str, ...],
    localhost_nodeports: bool | None,
    bind_address: str | None,
    ipv6: bool,
    version: str | None,
    restore_payload: bool,
    order: str,
    listing: bool,
    proxy_ports: tuple[str, ...],
    seed: int,
    hostports: str | None,
    with_hostports: str | None,
) -> None:
    """Print the rules kube-proxy writes for MANIFESTS (files, directories, or - for stdin).

    The default is a complete iptables-save ruleset that loads into an empty kernel; with
    --restore-payload, exactly kube-proxy's iptables-restore input.
    """
    try:
        cluster = load_manifests(manifests, example)
        if hostports:
            text = hostport.build_text(cluster, hostports, node_name=node_name)
        else:
            options: dict[str, Any] = {
                "node_name": node_name,
                "node_ips": node_ips or None,
                "cluster_cidrs": cluster_cidrs or None,
                "detect_local_mode": detect_local_mode,
                "masquerade_all": masquerade_all,
                "masquerade_bit": masquerade_bit,
                "node_port_addresses": nodeport_addresses or None,
                "localhost_node_ports": localhost_nodeports,
                "bind_address": bind_address,
                "ip_family": "IPv6" if ipv6 else None,
                "version": version,
            }
            if example == "walkthrough" and config_file is None:
                config_file = str(examples.WALKTHROUGH_PROXY)
            ports = _proxy_ports(proxy_ports)
            if mode == "userspace" and example == "walkthrough" and not ports:
                ports = dict(examples.WALKTHROUGH_PROXY_PORTS)
            if with_hostports:
                if restore_payload:
                    raise click.UsageError(
                        "--with-hostports gives a complete ruleset; drop --restore-payload"
                    )
                text = kubenat.proxy.node_text(
                    cluster,
                    mode,
                    config_file,
                    hostports=with_hostports,
                    proxy_ports=ports,
                    seed=seed,
                    **options,
                )
            else:
                text = kubenat.proxy.build_text(
                    cluster,
                    mode,
                    config_file,
                    restore_payload=restore_payload,
                    order=order,
                    proxy_ports=ports,
                    seed=seed,
                    **options,
                )
        if listing:
            ruleset = getattr(kubenat, "Ruleset", None)
            if ruleset is None or not hasattr(ruleset, "listing"):
                raise click.ClickException(
                    "--listing needs kubenat.Ruleset (the iptables parser), not in this build"
                )
            parsed = ruleset.parse(text)
            tables = ["nat"] if mode == "userspace" else ["filter", "nat"]
            text = "".join(parsed.listing(table) for table in tables)
    except KubenatError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(text, nl=False)
