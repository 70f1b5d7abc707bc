"""What the kernel did with one probe, and the comparison with kubenat's answer."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubenat.kernel.conntrack import ConntrackTuple


@dataclass(frozen=True)
class KernelObservation:
    """The kernel's verdict on one injected packet, in the shape of kubenat's evaluation result.

    ``verdict`` is ``"ACCEPT"`` (the packet left the node or was delivered locally),
    ``"REJECT"`` (an ICMP error or TCP RST came back for it) or ``"DROP"`` (nothing at all).
    ``src``/``sport``/``dst``/``dport`` are the packet's addresses after NAT as it left (or as it
    was delivered locally); for DROP and REJECT they are the injected packet's.
    """

    verdict: str
    src: str
    sport: int | None
    dst: str
    dport: int | None
    proto: str
    masquerade: bool = False
    """The source was rewritten to the address of the interface the packet left on."""
    mark: int | None = None
    """The packet mark after the last hook (saved into the connection by the testbed's
    observation table); None when there is no conntrack entry (DROP, REJECT, NOTRACK)."""
    out_interface: str | None = None
    """The node interface the packet left on (None for local delivery, DROP and REJECT)."""
    local_delivery: bool = False
    original: ConntrackTuple | None = None
    """The conntrack entry's original tuple (None when no entry was confirmed)."""
    reply: ConntrackTuple | None = None
    reject_with: str | None = None
    """For REJECT: ``"tcp-reset"`` or ``"icmp-<type>/<code>"`` (``"icmp6-<type>/<code>"``)."""
    sink: str | None = None
    """The namespace role (``"sink"``, ``"sink1"``, ``"client"``) where the packet was captured."""
    sent: bytes = field(default=b"", repr=False)
    """The IP packet as injected (with the testbed's tag)."""
    emitted: bytes | None = field(default=None, repr=False)
    """The IP packet as it left the node (or reached the local stack), checksums final."""
    response: bytes | None = field(default=None, repr=False)
    """For REJECT: the ICMP error or RST the node sent back."""

    @property
    def dnat(self) -> bool:
        """The destination address or port was rewritten."""
        if self.reply is None or self.original is None:
            return False
        untranslated = self.original.reversed()
        return (self.reply.src, self.reply.sport) != (untranslated.src, untranslated.sport)

    def outcome(self) -> tuple[object, ...]:
        """The key used to count statistic outcomes: verdict and translated addresses."""
        return (self.verdict, self.dst, self.dport, self.masquerade, self.local_delivery)


PORTED = ("tcp", "udp", "sctp")

# How a kubenat result may spell each field: the first attribute found is used. Fields a result
# does not have are not compared (so the comparison works with partial results and dicts).
_ALIASES: dict[str, tuple[str, ...]] = {
    "verdict": ("verdict",),
    "src": ("src", "saddr"),
    "sport": ("sport",),
    "dst": ("dst", "daddr"),
    "dport": ("dport",),
    "masquerade": ("masquerade",),
    "mark": ("mark",),
    "out_interface": ("out_interface", "oif", "out_iface"),
    "local_delivery": ("local_delivery", "local"),
}


def _get(result: Any, name: str) -> tuple[bool, Any]:
    for alias in _ALIASES.get(name, (name,)):
        if isinstance(result, Mapping):
            if alias in result:
                return True, result[alias]
        elif hasattr(result, alias):
            return True, getattr(result, alias)
    return False, None


def _normal(value: Any) -> Any:
    """Compare enums, strings and numbers by their plain value."""
    if value is None or isinstance(value, (bool, int)):
        return value
    for attr in ("name", "value"):
        inner = getattr(value, attr, None)
        if isinstance(inner, str):
            return inner.upper() if attr == "name" else inner
    text = str(value)
    if text.startswith("0x"):
        try:
            return int(text, 16)
        except ValueError:
            return text
    return text


def _tuple_of(value: Any) -> tuple[object, ...] | None:
    if value is None:
        return None
    if isinstance(value, ConntrackTuple):
        return (value.src, value.dst, value.sport, value.dport)
    if isinstance(value, Mapping):
        return tuple(value.get(k) for k in ("src", "dst", "sport", "dport"))
    if isinstance(value, tuple) and len(value) == 5:
        # kubenat's Connection tuples: (proto, src, dst, sport, dport), as conntrack -L orders them.
        return tuple(value[1:])
    if isinstance(value, tuple):
        return value
    return tuple(getattr(value, k, None) for k in ("src", "dst", "sport", "dport"))


def compare(
    observation: KernelObservation,
    result: Any,
    *,
    fields: tuple[str, ...] | None = None,
) -> list[str]:
    """Differences between what the kernel did and kubenat's result; empty when they agree.

    ``result`` is kubenat's evaluation result (or any object / mapping with the same field
    names). Addresses and ports are compared only for ACCEPT (they are what left the node); the
    mark only when the kernel had a conntrack entry to carry it; conntrack tuples when both
    sides have them. ``fields`` restricts the comparison. A field the result lists in
    ``chosen`` (the kernel picks it at random or by a hash: ``--random``, port and address
    ranges) is checked to be inside kubenat's span instead of equal to kubenat's value.
    """
    wanted = fields or (*_ALIASES, "conntrack")
    diffs: list[str] = []
    has, verdict = _get(result, "verdict")
    if "verdict" in wanted and has and _normal(verdict) != observation.verdict:
        diffs.append(f"verdict: kernel {observation.verdict}, kubenat {_normal(verdict)}")
        return diffs
    if observation.verdict == "REJECT" and "verdict" in wanted and observation.reject_with is not None:
        # The kind of error the kernel sent back (ICMP type/code or RST) against --reject-with.
        has, kind = _get(result, "reject_with")
        if has and kind is not None and _normal(kind) != observation.reject_with:
            diffs.append(f"reject-with: kernel {observation.reject_with}, kubenat {_normal(kind)}")
    if observation.verdict != "ACCEPT":
        return diffs
    chosen: Mapping[str, tuple[Any, Any]] = _get(result, "chosen")[1] or {}
    for name in ("src", "sport", "dst", "dport", "masquerade", "out_interface", "local_delivery", "mark"):
        if name not in wanted:
            continue
        has, value = _get(result, name)
        if not has:
            continue
        kernel = getattr(observation, name)
        if name == "mark" and (kernel is None or observation.local_delivery):
            # Locally delivered: the node's own answer (echo reply, RST) shares the conntrack
            # entry and passes OUTPUT, whose CONNMARK rules may change the mark read back.
            continue
        if name == "out_interface" and observation.local_delivery:
            continue
        if name in ("sport", "dport") and observation.proto not in PORTED:
            continue  # ICMP identifiers are not ports (kubenat reports 0); see icmp_id below
        if name in chosen:
            if not within(kernel, chosen[name]):
                low, high = chosen[name]
                diffs.append(f"{name}: kernel {kernel!r} outside kubenat's {low}-{high}")
            continue
        if name == "masquerade" and _get(result, "src")[1] == observation.src:
            continue  # SNAT to the interface's address looks the same as MASQUERADE on the wire
        if name in ("masquerade", "local_delivery"):
            value = bool(value)
        elif name in ("sport", "dport") and value is not None:
            value = int(value)
        else:
            value = _normal(value)
        if kernel != value:
            diffs.append(f"{name}: kernel {kernel!r}, kubenat {value!r}")
    if (
        "icmp_id" in chosen
        and observation.sport is not None
        and not within(observation.sport, chosen["icmp_id"])
    ):
        diffs.append(f"icmp_id: kernel {observation.sport} outside kubenat's {chosen['icmp_id']}")
    if "conntrack" in wanted and observation.original is not None and observation.proto in PORTED:
        ct = result.get("conntrack") if isinstance(result, Mapping) else getattr(result, "conntrack", None)
        if ct is not None:
            for direction in ("original", "reply"):
                mine = _tuple_of(getattr(observation, direction))
                side = ct.get(direction) if isinstance(ct, Mapping) else getattr(ct, direction, None)
                theirs = _tuple_of(side)
                if chosen and mine and theirs and direction == "reply":
                    # The reply tuple holds the chosen values (reversed); they were checked above.
                    mine, theirs = _without_chosen(mine, chosen), _without_chosen(theirs, chosen)
                if theirs is not None and mine != theirs:
                    diffs.append(f"conntrack {direction}: kernel {mine}, kubenat {theirs}")
    return diffs


def within(value: Any, span: tuple[Any, Any]) -> bool:
    """Whether a port (int) or address (text) lies in the inclusive span ``(low, high)``."""
    low, high = span
    if isinstance(low, int):
        return isinstance(value, int) and low <= value <= high
    try:
        return ipaddress.ip_address(low) <= ipaddress.ip_address(value) <= ipaddress.ip_address(high)
    except (TypeError, ValueError):
        return False


# Where a translated field sits in a reply tuple (src, dst, sport, dport): reversed.
_REPLY_SLOT = {"dst": 0, "src": 1, "dport": 2, "sport": 3}


def _without_chosen(key: tuple[object, ...], chosen: Mapping[str, object]) -> tuple[object, ...]:
    """A reply tuple with the slots of chosen fields blanked."""
    slots = {_REPLY_SLOT[name] for name in chosen if name in _REPLY_SLOT}
    return tuple(None if i in slots else v for i, v in enumerate(key))
