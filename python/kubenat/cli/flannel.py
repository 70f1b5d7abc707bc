"""``kubenat encap`` / ``kubenat decap``: flannel encapsulation of pcap files, in batch.

The node's overlay comes from flannel's own files: ``--net-conf`` (net-conf.json), the leases
(``--leases``: etcd records as JSON ``{key: value}`` or ``etcdctl get --prefix`` output;
or ``--nodes``: Kubernetes Node objects, YAML or JSON) and ``--node`` (which lease is this
node: its subnet, public IP or Node name). Underlay MACs are not flannel data: give
``--underlay-mac`` and ``--peer-mac IP=MAC`` / ``--gateway-mac`` for Ethernet output.

Every frame the node would drop (or answer instead of sending) is reported with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

import kubenat
from kubenat import pcap
from kubenat.cli import main
from kubenat.errors import ConfigError, KubenatError
from kubenat.flannel import Lease, NetConf, Overlay, lease_from_node, parse_etcd_lease

_MAX_CONFIG = 64 << 20


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > _MAX_CONFIG:
        raise ConfigError(
            f"{path}: {size} bytes exceeds the limit of {_MAX_CONFIG}", source=str(path), field=""
        )
    return path.read_text()


def load_leases(path: Path) -> list[Lease]:
    """Leases from etcd records: a JSON object ``{key: value}`` or ``etcdctl get --prefix`` text."""
    text = _read_text(path)
    pairs: list[tuple[str, Any]]
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: line {e.lineno}: {e.msg}", source=str(path), field="") from None
        pairs = list(obj.items())
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if len(lines) % 2:
            raise ConfigError(
                f"{path}: etcdctl output must alternate key and value lines ({len(lines)} lines)",
                source=str(path),
                field="",
            )
        pairs = list(zip(lines[::2], lines[1::2], strict=True))
    return [parse_etcd_lease(k, v) for k, v in pairs if "/subnets/" in k]


def load_nodes(path: Path) -> list[tuple[str, Lease]]:
    """(name, lease) of every Node in a YAML/JSON file (List/NodeList items or documents)."""
    objs: list[Any] = []
    try:
        docs = list(yaml.safe_load_all(_read_text(path)))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {e}", source=str(path), field="") from None
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("items"), list):
            objs.extend(doc["items"])
        elif doc is not None:
            objs.append(doc)
    out = []
    for obj in objs:
        if isinstance(obj, dict) and obj.get("kind", "Node") == "Node":
            out.append(((obj.get("metadata") or {}).get("name", "?"), lease_from_node(obj)))
    return out


def build_overlay(
    net_conf: Path,
    leases: Path | None,
    nodes: Path | None,
    node: str,
    underlay_mac: str | None,
    peer_macs: Sequence[str],
    gateway_mac: str | None,
    link_mtu: int,
    udp_checksum: bool,
) -> Overlay:
    """The overlay of ``node`` from flannel's files."""
    conf = NetConf.load(net_conf)
    named: list[tuple[str, Lease]] = []
    if leases is not None:
        named += [("", lease) for lease in load_leases(leases)]
    if nodes is not None:
        named += load_nodes(nodes)
    if not named:
        raise click.UsageError("give the leases with --leases (etcd) or --nodes (Kubernetes Nodes)")

    def matches(name: str, lease: Lease) -> bool:
        keys = {name, str(lease.subnet), str(lease.public_ip), str(lease.ipv6_subnet), str(lease.public_ipv6)}
        return node in keys

    mine = [lease for name, lease in named if matches(name, lease)]
    if len(mine) != 1:
        known = ", ".join(str(lease.subnet) for _, lease in named)
        raise click.UsageError(f"--node {node!r} matches {len(mine)} leases (known: {known})")
    macs: dict[str, str] = {}
    for item in peer_macs:
        ip, sep, mac = item.partition("=")
        if not sep:
            raise click.UsageError(f"--peer-mac {item!r}: expected IP=MAC")
        macs[ip] = mac
    others = [lease for _, lease in named if lease is not mine[0]]
    return Overlay(
        conf,
        mine[0],
        others,
        link_mtu=link_mtu,
        underlay_mac=underlay_mac,
        peer_macs=macs,
        gateway_mac=gateway_mac,
        udp_checksum=udp_checksum,
    )


def _overlay_options(f: Any) -> Any:
    options = [
        click.option(
            "--net-conf", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
        ),
        click.option("--leases", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None),
        click.option("--nodes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None),
        click.option("--node", required=True, help="this node: its lease subnet, public IP or Node name"),
        click.option("--underlay-mac", default=None, help="MAC of this node's external interface"),
        click.option("--peer-mac", multiple=True, help="IP=MAC of a peer's external interface (repeatable)"),
        click.option(
            "--gateway-mac", default=None, help="MAC of the underlay gateway (peers without --peer-mac)"
        ),
        click.option("--link-mtu", type=int, default=1500, show_default=True),
        click.option("--no-udp-checksum", is_flag=True, help="the device has noudpcsum (vxlan)"),
        click.option("--json", "as_json", is_flag=True, help="print the drop report as JSON"),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _report(
    action: str,
    total: int,
    drops: list[dict[str, Any]],
    as_json: bool,
    warnings: list[dict[str, Any]] | None = None,
) -> None:
    if as_json:
        doc: dict[str, Any] = {"frames": total, "dropped": drops}
        if warnings is not None:
            doc["warnings"] = warnings
        click.echo(json.dumps(doc, indent=2))
        return
    for d in drops:
        click.echo(f"frame {d['frame']}: dropped: {d['kind']} at byte {d['offset']}: {d['reason']}", err=True)
    for w in warnings or []:
        click.echo(f"frame {w['frame']}: warning: {w['warning']}", err=True)
    click.echo(f"{action} {total - len(drops)} of {total} frames; {len(drops)} dropped", err=True)


def _drop(index: int, err: KubenatError) -> dict[str, Any]:
    return {
        "frame": index,
        "kind": getattr(err, "kind", type(err).__name__),
        "offset": getattr(err, "offset", 0),
        "reason": getattr(err, "reason", str(err)),
    }


@main.command()
@click.argument("inp", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_overlay_options
@click.option("--link", type=click.Choice(["ethernet", "ip"]), default="ethernet", show_default=True)
@click.option("--ip-id", type=int, default=0, help="outer IPv4 ID of the first frame (then +1 per frame)")
def encap(inp: Path, out: Path, link: str, ip_id: int, as_json: bool, **kw: Any) -> None:
    """Encapsulate the inner packets of pcap INP as this node sends them; write pcap OUT."""
    overlay = _build(kw)
    linktype, records = _records(inp)
    in_link = _link(linktype)
    inners: list[bytes] = []
    for r in records:
        data = r.data
        if in_link == "ethernet":
            data = data[14:] if data[12:14] in (b"\x08\x00", b"\x86\xdd") else b""
        inners.append(data)
    results = overlay.encap_batch(inners, ip_id=ip_id, link=link)
    drops = []
    kept = []
    for i, (rec, res) in enumerate(zip(records, results, strict=True)):
        if isinstance(res, bytes):
            kept.append(pcap.Record(rec.ts, res, len(res), rec.ts_ns))
            continue
        d = _drop(i, res)
        if not inners[i]:
            d.update(kind="not_ip", offset=12, reason="the frame does not carry IPv4 or IPv6")
        if d["kind"] == "net_unreachable" and overlay.net_unreachable(inners[i]) is not None:
            d["reason"] += " (flannel answers with ICMP net-unreachable)"
        drops.append(d)
    pcap.write(out, kept, pcap.LINKTYPE_ETHERNET if link == "ethernet" else pcap.LINKTYPE_RAW)
    _report("encapsulated", len(records), drops, as_json)


@main.command()
@click.argument("inp", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_overlay_options
@click.option(
    "--check", is_flag=True, help="also warn about accepted frames that show known flannel problems"
)
def decap(inp: Path, out: Path, as_json: bool, check: bool, **kw: Any) -> None:
    """Decapsulate the frames of pcap INP as this node receives them; write the inner packets
    (raw IP) to pcap OUT and report every frame the node would drop, and why."""
    overlay = _build(kw)
    linktype, records = _records(inp)
    results = overlay.decap_batch([r.data for r in records], link=_link(linktype))
    drops = []
    kept = []
    warnings: list[dict[str, Any]] = []
    link = _link(linktype)
    for i, (rec, res) in enumerate(zip(records, results, strict=True)):
        if isinstance(res, bytes):
            kept.append(pcap.Record(rec.ts, res, len(res), rec.ts_ns))
            if check:
                warnings += [{"frame": i, "warning": w} for w in overlay.inspect(rec.data, link=link)]
        else:
            drops.append(_drop(i, res))
    pcap.write(out, kept, pcap.LINKTYPE_RAW)
    _report("decapsulated", len(records), drops, as_json, warnings)


def _records(path: Path) -> tuple[int, list[pcap.Record]]:
    try:
        return pcap.read_records(path)
    except KubenatError as e:
        raise click.ClickException(f"{path}: {e}") from None


def _link(linktype: int) -> str:
    try:
        return pcap.link_name(linktype)
    except kubenat.PacketError as e:
        raise click.ClickException(str(e)) from None


def _build(kw: dict[str, Any]) -> Overlay:
    try:
        return build_overlay(
            kw["net_conf"],
            kw["leases"],
            kw["nodes"],
            kw["node"],
            kw["underlay_mac"],
            kw["peer_mac"],
            kw["gateway_mac"],
            kw["link_mtu"],
            not kw["no_udp_checksum"],
        )
    except KubenatError as e:
        raise click.ClickException(str(e)) from None
