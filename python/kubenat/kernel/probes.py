"""Matching what was captured to the probes of one round, and the verdict for each probe.

A probe is recognised wherever it shows up by what NAT never changes: its tag (IPv4
identification / IPv6 flow label), protocol and transport fields beyond the ports. A REJECT shows
up as an ICMP error quoting the probe's tag, or a TCP RST to the probe's source port. Nothing at
all means DROP. When the probe reached the node's own stack, an RST or port-unreachable that
follows is the stack's answer (no listener), not a REJECT.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kubenat.kernel import _wire
from kubenat.kernel.capture import Captured
from kubenat.kernel.conntrack import ConntrackEntry, ConntrackTuple
from kubenat.kernel.observe import KernelObservation

if TYPE_CHECKING:
    from kubenat.kernel.testbed import Testbed

REJECT_NAMES: dict[tuple[int, int | None, int | None], str] = {
    (4, 3, 0): "icmp-net-unreachable",
    (4, 3, 1): "icmp-host-unreachable",
    (4, 3, 2): "icmp-proto-unreachable",
    (4, 3, 3): "icmp-port-unreachable",
    (4, 3, 9): "icmp-net-prohibited",
    (4, 3, 10): "icmp-host-prohibited",
    (4, 3, 13): "icmp-admin-prohibited",
    (6, 1, 0): "icmp6-no-route",
    (6, 1, 1): "icmp6-adm-prohibited",
    (6, 1, 3): "icmp6-addr-unreachable",
    (6, 1, 4): "icmp6-port-unreachable",
}


def round_key(probe: _wire.Parsed) -> tuple[object, ...]:
    """Probes with the same key cannot share a round (their connections would merge, their
    replies could not be told apart)."""
    return (probe.proto, probe.src, probe.sport)


def ct_tuple(probe: _wire.Parsed) -> ConntrackTuple:
    """The conntrack original tuple a probe creates."""
    name = {_wire.ICMPV6: "icmpv6"}.get(probe.proto, probe.proto_name)
    if probe.proto in (_wire.ICMP, _wire.ICMPV6):
        return ConntrackTuple(name, probe.src, probe.dst, probe.sport, None)
    return ConntrackTuple(name, probe.src, probe.dst, probe.sport, probe.dport)


def _answers(response: _wire.Parsed, probe: _wire.Parsed) -> str | None:
    """If ``response`` is a REJECT-style answer to ``probe``, its ``--reject-with`` name."""
    inner = response.inner
    if response.is_icmp_error and inner is not None:
        if inner.ident == probe.ident and inner.proto == probe.proto and inner.version == probe.version:
            if probe.proto != _wire.TCP or inner.seq == probe.seq:
                key = (probe.version, response.icmp_type, response.icmp_code)
                return REJECT_NAMES.get(key, f"icmp-{response.icmp_type}/{response.icmp_code}")
    if response.is_rst and probe.proto == _wire.TCP and not probe.tcp_flags & 0x04:
        if response.dst == probe.src and response.dport == probe.sport and response.ident != probe.ident:
            return "tcp-reset"
    return None


def classify_round(
    sent: Sequence[bytes],
    send_errors: Sequence[int | None],
    captured: Sequence[Captured],
    entries: Sequence[ConntrackEntry],
    testbed: Testbed,
) -> list[KernelObservation]:
    """One observation per sent probe."""
    parsed: list[tuple[Captured, _wire.Parsed]] = []
    for item in captured:
        try:
            parsed.append((item, _wire.parse(item.data)))
        except Exception:
            continue  # not IP we can read (noise from the peers' stacks)
    by_invariant: dict[tuple[object, ...], list[tuple[Captured, _wire.Parsed]]] = {}
    responses = []
    for item, packet in parsed:
        if item.where != "nflog":  # copies of answers the node sent, never the probe itself
            by_invariant.setdefault(packet.invariant(), []).append((item, packet))
        if packet.is_icmp_error or packet.is_rst:
            responses.append((item, packet))
    by_tuple = {entry.original: entry for entry in entries}
    role_if = {lnk.role: lnk for lnk in testbed.links}
    observations = []
    for data, error in zip(sent, send_errors, strict=True):
        probe = _wire.parse(data)
        entry = by_tuple.get(ct_tuple(probe))
        common = dict(
            proto=probe.proto_name,
            sent=data,
            original=entry.original if entry else None,
            reply=entry.reply if entry else None,
            mark=entry.mark if entry else None,
        )
        seen = by_invariant.get(probe.invariant(), [])
        local = [p for item, p in seen if item.where == "local"]
        away = [(item, p) for item, p in seen if item.where != "local"]
        if local or away:
            out = local[0] if local else away[0][1]
            link = None if local else role_if[away[0][0].where]
            if link is not None:
                masq = out.src != probe.src and out.src in (link.node_v4, link.node_v6)
            else:
                masq = False
            observations.append(
                KernelObservation(
                    "ACCEPT",
                    out.src,
                    out.sport,
                    out.dst,
                    out.dport,
                    masquerade=masq,
                    out_interface=link.node_if if link else None,
                    local_delivery=bool(local),
                    sink=link.role if link else None,
                    emitted=out.raw,
                    **common,  # type: ignore[arg-type]
                )
            )
            continue
        reject = None
        for _, response in responses:
            reject = _answers(response, probe)
            if reject is not None:
                break
        verdict = "REJECT" if reject is not None and reject.startswith(("icmp", "tcp")) else "DROP"
        if reject is not None and not (reject in REJECT_NAMES.values() or reject == "tcp-reset"):
            verdict = "DROP"  # an ICMP error that no REJECT sends (time exceeded, ...)
        if error not in (None, errno.EPERM) and reject is None:
            verdict = "DROP"
        observations.append(
            KernelObservation(
                verdict,
                probe.src,
                probe.sport,
                probe.dst,
                probe.dport,
                reject_with=reject,
                response=response.raw if reject is not None else None,
                **common,  # type: ignore[arg-type]
            )
        )
    return observations
