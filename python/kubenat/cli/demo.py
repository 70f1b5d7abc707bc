"""``kubenat demo``: the four Kubernetes network models on the built-in example cluster."""

from __future__ import annotations

import json

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from kubenat.cli import main
from kubenat.cluster import Hop, Journey, write_pcap

HOP_STYLE = {
    "namespace": "cyan",
    "veth": "cyan",
    "netfilter": "yellow",
    "proxy": "magenta",
    "encap": "blue",
    "decap": "blue",
    "wire": "white",
    "deliver": "green",
    "drop": "red",
}


def hexdump(data: bytes, width: int = 16) -> str:
    """``offset  hex bytes  ascii`` lines, like ``xxd``."""
    lines = []
    for off in range(0, len(data), width):
        chunk = data[off : off + width]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:04x}  {hexpart:<{width * 3}} {text}")
    return "\n".join(lines)


def _hop_node(tree: Tree, hop: Hop) -> None:
    label = Text.assemble(
        (f"{hop.kind:<9}", HOP_STYLE.get(hop.kind, "white")), f" {hop.where}: ", hop.summary
    )
    branch = tree.add(label)
    for choice in hop.choices:
        branch.add(Text(choice, style="dim"))
    for rule in hop.rules:
        # Jumps that only pass through and RETURNs say little; the rules that decide stay.
        if rule.endswith("→ RETURN") or (rule.startswith("filter/") and "→ jump" in rule):
            continue
        branch.add(Text(rule, style="dim"))


def journey_tree(journey: Journey) -> Tree:
    pkt = journey.first
    head = f"{journey.protocol} {pkt.src}:{pkt.sport} → {pkt.dst}:{pkt.dport}  ({journey.model})"
    tree = Tree(Text(head, style="bold"))
    for hop in journey.hops:
        _hop_node(tree, hop)
    if journey.reply:
        back = tree.add(Text("reply", style="bold"))
        for hop in journey.reply:
            _hop_node(back, hop)
    end = journey.delivered_to or f"not delivered ({journey.verdict})"
    tree.add(Text(f"⇒ {end}", style="bold green" if journey.delivered else "bold red"))
    return tree


def frame_panel(journey: Journey) -> Panel | None:
    frames = journey.encapsulated()
    if not frames:
        return None
    hop = frames[0]
    outer = hop.packet
    table = Table.grid(padding=(0, 2))
    table.add_row("outer Ethernet", f"{outer.src_mac} → {outer.dst_mac}")
    table.add_row(
        "outer IPv4", f"{outer.src} → {outer.dst}  ttl {outer.ttl}  tos {outer.tos:#04x}  id {outer.ident}"
    )
    table.add_row("outer UDP", f"{outer.sport} → {outer.dport}")
    payload = outer.payload
    if len(payload) >= 8 and outer.dport == 8472:
        vni = int.from_bytes(payload[4:7], "big")
        table.add_row("VXLAN", f"flags {payload[0]:#04x}  VNI {vni}")
    return Panel(
        Group(table, Text(hexdump(hop.data), style="dim")),
        title=f"flannel frame on the wire ({len(hop.data)} bytes): {hop.summary}",
    )


@main.command()
@click.option(
    "--mode",
    type=click.Choice(["iptables", "userspace"]),
    default="iptables",
    show_default=True,
    help="kube-proxy mode on the nodes.",
)
@click.option(
    "--backend",
    type=click.Choice(["vxlan", "udp", "host-gw"]),
    default="vxlan",
    show_default=True,
    help="flannel backend between the nodes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (for scripts).")
@click.option("--pcap", type=click.Path(dir_okay=False), help="Also write every hop's bytes to a pcap file.")
@click.option(
    "--wire-pcap",
    type=click.Path(dir_okay=False),
    help="Also write the flannel frames on the underlay (only those) to a pcap file.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for kube-proxy's random endpoint choice."
)
def demo(mode: str, backend: str, as_json: bool, pcap: str | None, wire_pcap: str | None, seed: int) -> None:
    """The four Kubernetes network models on the built-in example cluster, end to end.

    Two nodes joined by flannel; nginxpod (containers on 80 and 8800, both hostPorts),
    my-first-nginx (ClusterIP 192.168.235.209:80) and my-second-nginx (LoadBalancer
    192.168.156.93:80, NodePort 31150). Needs no root.
    """
    from kubenat.demo import run

    report = run(mode, backend=backend, seed=seed)
    journeys = [s.journey for s in report.scenarios]
    if pcap:
        frames = write_pcap(pcap, journeys)
    if wire_pcap:
        write_pcap(wire_pcap, journeys, overlay_only=True)
    if as_json:
        data = report.to_dict()
        if pcap:
            data["pcap"] = {"path": pcap, "frames": frames}
        click.echo(json.dumps(data, indent=2))
        return
    console = Console(highlight=False)
    nodes = ", ".join(f"{n.name} {n.ip} (pods {n.pod_cidr})" for n in report.cluster.nodes.values())
    console.print(
        Panel(
            f"kube-proxy mode [bold]{mode}[/], flannel [bold]{report.cluster.netconf.backend.type}[/] "
            f"over {report.cluster.netconf.network}\nnodes: {nodes}",
            title="kubenat demo: the walkthrough cluster",
        )
    )
    for scenario in report.scenarios:
        console.rule(f"[bold]{scenario.title}")
        console.print(Text(scenario.explanation, style="italic"))
        console.print(journey_tree(scenario.journey))
    framed = next((p for s in report.scenarios if (p := frame_panel(s.journey)) is not None), None)
    if framed is not None:
        console.rule("[bold]the overlay on the wire")
        console.print(framed)
    console.rule(f"[bold]iptables -t nat -L on {report.listing_node}")
    console.print(Syntax(report.listing, "text", word_wrap=False))
    console.rule("[bold]service environment variables (namespace default)")
    console.print("\n".join(f"{k}={v}" for k, v in report.environment))
    if pcap:
        console.print(f"\nwrote {frames} frames to {pcap}")
