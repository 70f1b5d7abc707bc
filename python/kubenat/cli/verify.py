"""``kubenat verify``: a ruleset through kubenat and through the local Linux kernel, side by side."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import click

from kubenat.cli import main

_TOOLS = ("ip", "iptables-restore", "ip6tables-restore", "conntrack", "nft", "ethtool")


def _describe(obs: object) -> str:
    from kubenat.kernel import KernelObservation

    assert isinstance(obs, KernelObservation)
    if obs.verdict == "REJECT":
        return f"REJECT ({obs.reject_with})"
    if obs.verdict != "ACCEPT":
        return obs.verdict
    where = "local" if obs.local_delivery else f"out {obs.out_interface}"
    ports = f":{obs.dport}" if obs.dport is not None and obs.proto != "icmp" else ""
    masq = " masq" if obs.masquerade else ""
    mark = f" mark {obs.mark:#x}" if obs.mark else ""
    return f"ACCEPT → {obs.dst}{ports} src {obs.src} ({where}){masq}{mark}"


@main.command()
@click.argument("rules", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--packets", "packets_file", type=click.Path(exists=True, dir_okay=False), help="Probe file.")
@click.option(
    "--random", "random_count", type=click.IntRange(1, 50_000), help="Draw N probes hitting the rules."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --random.")
@click.option(
    "--family", type=click.Choice(["4", "6"]), default=None, help="IP family (default: from the rules)."
)
@click.option("--sinks", type=click.IntRange(1, 8), default=1, show_default=True, help="Sink namespaces.")
@click.option("--show-all", is_flag=True, help="Print agreements too, not only disagreements.")
def verify(
    rules: str,
    packets_file: str | None,
    random_count: int | None,
    seed: int,
    family: str | None,
    sinks: int,
    show_all: bool,
) -> None:
    """Run RULES (iptables-save text) through kubenat and the local kernel, and compare.

    The kernel side runs in throwaway network namespaces (root only). Probes come from
    --packets FILE (lines like 'tcp 10.0.0.5:40000 10.96.0.10:80 [in|out]') or --random N.
    Exit status 1 when kubenat and the kernel disagree on any probe.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if os.geteuid() != 0:
        raise click.ClickException(
            "kubenat verify needs root: it builds network namespaces and loads the rules with "
            "iptables-restore inside them (nothing touches this machine's own network). Run it with sudo."
        )
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        raise click.ClickException(
            f"missing tools: {', '.join(missing)} (Debian: iproute2 iptables conntrack nftables ethtool)"
        )
    if (packets_file is None) == (random_count is None):
        raise click.UsageError("give exactly one of --packets FILE or --random N")

    from kubenat.errors import KubenatError
    from kubenat.kernel import Testbed, generate
    from kubenat.kernel.model import Model, evaluator_available

    text = sys.stdin.read() if rules == "-" else Path(rules).read_text()
    fam = (
        int(family) if family else (6 if re.search(r"-[sd] !?\s*[0-9a-fA-F]*:[0-9a-fA-F:]*/\d+", text) else 4)
    )
    try:
        with Testbed(sinks=sinks) as tb:
            if packets_file is not None:
                probes = generate.parse_probes(Path(packets_file).read_text(), source=packets_file)
            else:
                local = [
                    a
                    for a in tb.local_addresses
                    if (":" in a) == (fam == 6) and not a.startswith(("127.", "::1"))
                ]
                probes = generate.random_probes(text, random_count or 0, seed=seed, family=fam, local=local)
            tb.load(text, family=fam)
            model = Model(text, tb) if evaluator_available() else None
            if model is None:
                console.print(
                    "[yellow]this kubenat build has no evaluator: showing the kernel's answers only[/]"
                )
            observations = []
            for path in ("in", "out"):
                chosen = [p for p in probes if p.path == path]
                packets = [p.packet() for p in chosen]
                sent = model.inject(packets, path) if model else tb.inject_batch(packets, path=path)
                observations += list(zip(chosen, sent, strict=True))
            columns = ("probe", "kernel", "kubenat") if model else ("probe", "kernel")
            table = Table(*columns, title=f"{len(probes)} probes")
            disagreements = 0
            for probe, obs in observations:
                diffs = model.outcomes(probe.packet(), probe.path).explain(obs) if model else []
                disagreements += bool(diffs)
                if diffs or show_all or model is None:
                    row = [str(probe), _describe(obs)]
                    if model:
                        row.append("; ".join(diffs) if diffs else "agrees")
                    table.add_row(*row)
    except KubenatError as exc:
        raise click.ClickException(str(exc)) from None
    if table.row_count:
        console.print(table)
    if model is not None:
        agree = len(observations) - disagreements
        style = "green" if not disagreements else "red"
        console.print(f"[{style}]{agree} agree, {disagreements} disagree[/]")
        if disagreements:
            sys.exit(1)
