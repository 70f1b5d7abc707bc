"""``kubenat trace``: where does a packet go through a ruleset — outcomes, probabilities, trace."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

import kubenat
from kubenat.cli import main


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _interfaces(specs: tuple[str, ...]) -> dict[str, list[str]] | None:
    if not specs:
        return None
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, addrs = spec.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{spec!r} is not NAME=ADDR/PREFIX[,ADDR/PREFIX...]", param_hint="--interface"
            )
        out.setdefault(name, []).extend(a for a in addrs.split(",") if a)
    return out


def _routes(specs: tuple[str, ...]) -> list[tuple[str, str]]:
    routes = []
    for spec in specs:
        dest, sep, iface = spec.partition("=")
        if not sep:
            raise click.BadParameter(f"{spec!r} is not PREFIX=IFACE", param_hint="--route")
        routes.append((dest, iface))
    return routes


def outcome_dict(o: Any) -> dict[str, Any]:
    """The stable JSON form of one outcome."""
    r = o.result
    d = r.to_dict()
    exact = o.exact
    return {
        "probability": o.probability,
        "exact": f"{exact.numerator}/{exact.denominator}",
        "verdict": d["verdict"],
        "dnat": d["dnat"],
        "snat": d["snat"],
        "masquerade": d["masquerade"],
        "random_port": d["random_port"],
        "mark": d["mark"],
        "nat": d["nat"],
        "ct_state": d["ct_state"],
        "in_interface": d["in_interface"],
        "out_interface": d["out_interface"],
        "local_delivery": d["local_delivery"],
        "trace": d["trace"],
    }


def _summary(o: Any) -> str:
    r = o.result
    parts = [f"[bold]{r.verdict}[/bold]"]
    if r.dnat:
        parts.append(f"DNAT → [cyan]{r.dnat}[/cyan]")
    if r.snat:
        parts.append(f"{'MASQUERADE' if r.masquerade else 'SNAT'} → [cyan]{r.snat}[/cyan]")
    if r.mark:
        parts.append(f"mark 0x{r.mark:x}")
    if r.local_delivery:
        parts.append("delivered locally")
    elif r.out_interface:
        parts.append(f"out {r.out_interface}")
    return "  ".join(parts)


def _tree(o: Any) -> Any:
    from rich.markup import escape
    from rich.tree import Tree

    e = o.exact
    root = Tree(f"p = {o.probability:.6f} ({e.numerator}/{e.denominator})  {_summary(o)}")
    hook_node = None
    table_node = None
    last: tuple[str, str] | None = None
    skipped = 0
    stack: list[Any] = []

    def flush() -> None:
        nonlocal skipped
        if skipped and stack:
            stack[-1].add(f"[dim]… {skipped} rule(s) did not match[/dim]")
        skipped = 0

    for s in o.result.trace:
        if (s.hook, s.table) != last:
            flush()
            if hook_node is None or last is None or last[0] != s.hook:
                hook_node = root.add(f"[bold magenta]{s.hook}[/bold magenta]")
            table_node = hook_node.add(f"[yellow]{s.table}[/yellow]")
            stack = [table_node]
            last = (s.hook, s.table)
        assert table_node is not None
        if s.kind == "note":
            flush()
            table_node.add(f"[italic]{escape(s.action)}[/italic]")
            continue
        del stack[s.depth + 1 :]
        if s.kind == "policy":
            flush()
            stack[0].add(f"{s.chain} [bold]{escape(s.action)}[/bold]")
            continue
        if not s.matched:
            skipped += 1
            continue
        flush()
        parent = stack[min(s.depth, len(stack) - 1)]
        node = parent.add(
            f"[green]✓[/green] {s.chain}:{s.rule} [dim]{escape(s.text)}[/dim]"
            f" → [bold]{escape(s.action)}[/bold]"
        )
        if s.action.startswith(("jump ", "goto ")):
            stack.append(node)
    flush()
    return root


@main.command()
@click.argument("rules", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--src", required=True, help="Source address.")
@click.option("--dst", required=True, help="Destination address.")
@click.option("--dport", type=int, default=0, show_default=True, help="Destination port.")
@click.option("--sport", type=int, default=40000, show_default=True, help="Source port (ICMP: echo id).")
@click.option("--proto", type=click.Choice(["tcp", "udp", "sctp", "icmp"]), default="tcp", show_default=True)
@click.option(
    "--from",
    "from_",
    default="auto",
    show_default=True,
    help="auto (local source: generated locally; else the first interface), local, or an interface.",
)
@click.option("--local", "local", multiple=True, help="An address of the node (repeatable).")
@click.option("--interface", "interfaces", multiple=True, help="NAME=ADDR/PREFIX[,...] (repeatable).")
@click.option("--route", "routes", multiple=True, help="PREFIX=IFACE (repeatable).")
@click.option("--route-localnet", is_flag=True, help="Allow 127.0.0.0/8 off lo (as kube-proxy sets it).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON.")
def trace(
    rules: str,
    src: str,
    dst: str,
    dport: int,
    sport: int,
    proto: str,
    from_: str,
    local: tuple[str, ...],
    interfaces: tuple[str, ...],
    routes: tuple[str, ...],
    route_localnet: bool,
    as_json: bool,
) -> None:
    """Trace a packet through RULES (an iptables-save dump; - for stdin)."""
    try:
        ruleset = kubenat.Ruleset.parse(_read(rules))
        nf = kubenat.Netfilter(
            ruleset,
            local_addresses=list(local),
            interfaces=_interfaces(interfaces),
            routes=_routes(routes),
            stateless=True,
            route_localnet=route_localnet,
        )
        flow = kubenat.Flow(src, dst, dport, sport=sport, proto=proto)
        outs = nf.outcomes(flow, from_=from_)
    except (kubenat.KubenatError, OSError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps({"outcomes": [outcome_dict(o) for o in outs]}, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{flow}[/bold] from {from_}: {len(outs)} outcome(s)")
    for o in outs:
        console.print(_tree(o))
