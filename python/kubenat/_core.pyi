"""Type stubs for kubenat's native module. Users import from ``kubenat``, not from here."""

from array import array
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, final

from kubenat.errors import KubenatError

__version__: str

def _panic_for_tests() -> None:
    """Panics inside Rust on purpose; raises ``kubenat.InternalError``."""

# --- packets ---

@final
class Packet:
    """One IP packet (optionally behind Ethernet), owning its bytes. Immutable; hashable."""

    @classmethod
    def tcp(
        cls,
        *,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        flags: str = "S",
        ttl: int = 64,
        payload: bytes = ...,
        seq: int = 0,
        ack: int = 0,
        window: int = 8192,
        tos: int = 0,
        ident: int = 0,
        dont_fragment: bool = False,
        ip_options: bytes = ...,
        tcp_options: bytes = ...,
    ) -> Packet:
        """A TCP segment; IPv4 or IPv6 follows from the addresses. ``flags`` in scapy letters."""
    @classmethod
    def udp(
        cls,
        *,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        ttl: int = 64,
        payload: bytes = ...,
        tos: int = 0,
        ident: int = 0,
        dont_fragment: bool = False,
        ip_options: bytes = ...,
        checksum: bool = True,
    ) -> Packet:
        """A UDP datagram; ``checksum=False`` leaves the checksum 0 (IPv4 only)."""
    @classmethod
    def sctp(
        cls,
        *,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        ttl: int = 64,
        payload: bytes = ...,
        verification_tag: int = 0,
        tos: int = 0,
        ident: int = 0,
        dont_fragment: bool = False,
        ip_options: bytes = ...,
    ) -> Packet:
        """An SCTP packet; ``payload`` is the chunk bytes. CRC32c computed."""
    @classmethod
    def icmp(
        cls,
        *,
        src: str,
        dst: str,
        type: int | None = None,
        code: int = 0,
        id: int = 0,
        seq: int = 0,
        ttl: int = 64,
        payload: bytes = ...,
        tos: int = 0,
        ident: int = 0,
        dont_fragment: bool = False,
        ip_options: bytes = ...,
    ) -> Packet:
        """An ICMP message (ICMPv6 for IPv6 addresses); ``type`` defaults to echo request."""
    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, link: str = "auto") -> Packet:
        """Dissects bytes (``link``: "auto", "ip" or "ethernet"); raises ``PacketError``."""
    @classmethod
    def from_scapy(cls, p: Any) -> Packet:
        """Converts a scapy packet (needs the ``scapy`` extra)."""
    def to_scapy(self) -> Any:
        """This packet as a scapy packet (needs the ``scapy`` extra)."""
    @staticmethod
    def _unpickle(data: bytes, link: str) -> Packet: ...
    def to_bytes(self) -> bytes:
        """The packet's bytes (link header included when it has one)."""
    def __bytes__(self) -> bytes: ...
    def __len__(self) -> int: ...
    @property
    def link(self) -> str:
        """``"ip"`` or ``"ethernet"``."""
    @property
    def family(self) -> int:
        """4 or 6."""
    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...
    @property
    def protocol(self) -> int:
        """Upper-layer protocol number (after IPv6 extension headers)."""
    @property
    def proto(self) -> str:
        """Protocol name as iptables prints it, or the number as text."""
    @property
    def sport(self) -> int | None: ...
    @property
    def dport(self) -> int | None: ...
    @property
    def ttl(self) -> int:
        """TTL or hop limit."""
    @property
    def tos(self) -> int: ...
    @property
    def length(self) -> int:
        """IP length (IPv4 total length; IPv6 40 + payload length)."""
    @property
    def ident(self) -> int: ...
    @property
    def flags(self) -> str | None:
        """TCP flags as scapy letters (``"SA"``)."""
    @property
    def tcp_flags(self) -> int | None:
        """TCP flag byte (FIN=0x01 ... CWR=0x80)."""
    @property
    def seq(self) -> int | None: ...
    @property
    def ack(self) -> int | None: ...
    @property
    def icmp_type(self) -> int | None: ...
    @property
    def icmp_code(self) -> int | None: ...
    @property
    def icmp_id(self) -> int | None: ...
    @property
    def icmp_seq(self) -> int | None: ...
    @property
    def fragment_offset(self) -> int:
        """Fragment offset in 8-byte units."""
    @property
    def more_fragments(self) -> bool: ...
    @property
    def dont_fragment(self) -> bool: ...
    @property
    def is_fragment(self) -> bool: ...
    @property
    def ip_options(self) -> bytes: ...
    @property
    def payload(self) -> bytes:
        """Transport payload (after the TCP/UDP/SCTP/ICMP header)."""
    @property
    def quoted(self) -> tuple[str, str, int, int | None, int | None] | None:
        """The packet an ICMP error quotes: ``(src, dst, protocol, sport, dport)``, else None."""
    @property
    def src_mac(self) -> str | None: ...
    @property
    def dst_mac(self) -> str | None: ...
    @property
    def vlan(self) -> int | None: ...
    def checksums_valid(self) -> bool:
        """Whether every checksum the packet carries is valid."""
    def with_checksums(self) -> Packet:
        """A copy with every checksum recomputed."""
    def with_nat(
        self,
        *,
        src: str | None = None,
        dst: str | None = None,
        sport: int | None = None,
        dport: int | None = None,
    ) -> Packet:
        """A copy with NAT applied, checksums updated incrementally (RFC 1624)."""
    def decrement_ttl(self) -> Packet | None:
        """A copy with TTL/hop limit minus one, or None when it was 0."""
    def with_ethernet(
        self, *, src: str = "02:00:00:00:00:01", dst: str = "02:00:00:00:00:02", vlan: int | None = None
    ) -> Packet:
        """The same IP packet behind an Ethernet header (802.1Q-tagged when ``vlan`` is given)."""
    def to_ip(self) -> Packet:
        """The bare IP packet (Ethernet header and padding dropped)."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes, str]]: ...

# --- flannel ---

@final
class Encapsulator:
    """One node's overlay: encapsulates inner IP packets and decapsulates received frames."""

    def __new__(
        cls,
        backend: str,
        *,
        public_ip: str | None = None,
        public_ipv6: str | None = None,
        underlay_mac: str | None = None,
        vtep_mac: str | None = None,
        vtep_mac_v6: str | None = None,
        leases: Sequence[tuple[str, str, str | None, str | None]] = ...,
        gateway_mac: str | None = None,
        vni: int = 1,
        port: int = 0,
        udp_checksum: bool = True,
        gbp: bool = False,
        port_range: tuple[int, int] = ...,
        mtu: int = 0,
        tun_addr: str | None = None,
        ttl: int = 64,
        decrement_ttl: bool = True,
        hash_seed: int = 0,
    ) -> Encapsulator: ...
    @property
    def backend(self) -> str: ...
    def encap(self, packet: bytes, *, ip_id: int = 0, mark: int = 0, link: str = "ethernet") -> bytes: ...
    def decap(self, frame: bytes, *, link: str = "ethernet") -> bytes: ...
    def encap_batch(
        self, packets: Sequence[bytes], *, ip_id: int = 0, mark: int = 0, link: str = "ethernet"
    ) -> list[bytes | KubenatError]: ...
    def decap_batch(
        self, frames: Sequence[bytes], *, link: str = "ethernet"
    ) -> list[bytes | KubenatError]: ...
    def net_unreachable(self, packet: bytes) -> bytes | None: ...
    # --- bench: buffer calls ---
    def encap_buffer(
        self,
        data: bytes | bytearray | memoryview,
        offsets: Any,
        lengths: Any,
        *,
        ip_id: int = 0,
        mark: int = 0,
        link: str = "ethernet",
    ) -> tuple[bytearray, array[int], array[int], dict[int, KubenatError]]:
        """Encapsulates ``data[offsets[i]:offsets[i] + lengths[i]]`` for every i without the GIL:
        ``(frames, frame offsets, frame lengths, {index: error})``; a failed packet has length 0."""
    def decap_buffer(
        self,
        data: bytes | bytearray | memoryview,
        offsets: Any,
        lengths: Any,
        *,
        link: str = "ethernet",
    ) -> tuple[bytearray, array[int], array[int], dict[int, KubenatError]]:
        """Decapsulates many frames of one buffer, as :meth:`encap_buffer` encapsulates."""

def flannel_net_unreachable(offender: bytes, tun_addr: str) -> bytes | None:
    """The ICMP net-unreachable flannel's UDP proxy builds for ``offender``, or None."""

def flannel_decrement_ttl(packet: bytes) -> bytes | None:
    """flannel's UDP-proxy TTL decrement with its checksum patch; None when the TTL reaches 0."""

# --- parser ---

@final
class Rule:
    """One rule of a :class:`Ruleset`: where it is and its iptables-save text."""

    @property
    def table(self) -> str: ...
    @property
    def chain(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def counters(self) -> tuple[int, int] | None: ...

@final
class Ruleset:
    """A parsed iptables-save dump (immutable)."""

    @staticmethod
    def parse(text: str, family: str | None = None) -> Ruleset: ...
    def save(self, counters: bool = False) -> str: ...
    def listing(self, table: str = "nat", numeric: bool = False) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def tables(self) -> list[str]: ...
    def chains(self, table: str) -> list[str]: ...
    def policy(self, table: str, chain: str) -> str | None: ...
    def rules(self, table: str, chain: str) -> list[Rule]: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[object, tuple[str, str]]: ...

def _ruleset_from_text(text: str, family: str) -> Ruleset: ...

# --- evaluator ---

@final
class Flow:
    """A flow key: addresses, protocol, ports, TCP flags, ICMP type/code/id, TTL."""

    def __new__(
        cls,
        src: str,
        dst: str,
        dport: int = 0,
        *,
        sport: int = 40000,
        proto: str = "tcp",
        tcp_flags: int | None = None,
        icmp_type: int | None = None,
        icmp_code: int = 0,
        ttl: int = 64,
        fragment_offset: int = 0,
    ) -> Flow: ...
    @staticmethod
    def from_packet(packet: Packet) -> Flow: ...
    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dport(self) -> int: ...
    @property
    def proto(self) -> str: ...
    @property
    def protocol(self) -> int: ...
    @property
    def tcp_flags(self) -> int: ...
    @property
    def icmp_type(self) -> int: ...
    @property
    def icmp_code(self) -> int: ...
    @property
    def icmp_id(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def quoted(self) -> tuple[str, str, str, int, int] | None:
        """An ICMP error's quoted packet as conntrack reads it: (proto, src, dst, sport, dport)."""
    @property
    def family(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class TraceStep:
    """One rule, policy or note visited during an evaluation."""

    @property
    def hook(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def chain(self) -> str: ...
    @property
    def rule(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def matched(self) -> bool: ...
    @property
    def action(self) -> str: ...
    @property
    def depth(self) -> int: ...
    @property
    def kind(self) -> str: ...

@final
class Connection:
    """A tracked connection: original and reply tuples ``(proto, src, dst, sport, dport)``."""

    @property
    def original(self) -> tuple[str, str, str, int, int]: ...
    @property
    def reply(self) -> tuple[str, str, str, int, int]: ...
    @property
    def mark(self) -> int: ...
    @property
    def status(self) -> list[str]: ...

@final
class Result:
    """What netfilter did with one packet."""

    @property
    def verdict(self) -> str: ...
    @property
    def reject_with(self) -> str | None: ...
    @property
    def packet(self) -> Packet | None: ...
    @property
    def flow(self) -> Flow: ...
    @property
    def original(self) -> Flow: ...
    @property
    def src(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dst(self) -> str: ...
    @property
    def dport(self) -> int: ...
    @property
    def nat(self) -> list[str]: ...
    @property
    def dnat(self) -> str | None: ...
    @property
    def snat(self) -> str | None: ...
    @property
    def masquerade(self) -> bool: ...
    @property
    def random_port(self) -> bool: ...
    @property
    def chosen(self) -> dict[str, tuple[int, int] | tuple[str, str]]: ...
    @property
    def mark(self) -> int: ...
    @property
    def ct_state(self) -> str: ...
    @property
    def conntrack(self) -> Connection | None: ...
    @property
    def in_interface(self) -> str | None: ...
    @property
    def out_interface(self) -> str | None: ...
    @property
    def local_delivery(self) -> bool: ...
    @property
    def locally_generated(self) -> bool: ...
    @property
    def physdev_in(self) -> str | None: ...
    @property
    def physdev_out(self) -> str | None: ...
    @property
    def trace(self) -> list[TraceStep]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class Outcome:
    """One possible result with its exact probability."""

    @property
    def probability(self) -> float: ...
    @property
    def exact(self) -> Fraction: ...
    @property
    def result(self) -> Result: ...

@final
class Netfilter:
    """A node evaluating packets through its ruleset, with conntrack and ``recent`` state."""

    def __new__(
        cls,
        ruleset: Ruleset | str,
        *,
        local_addresses: list[str] = ...,
        interfaces: dict[str, list[str]] | None = None,
        routes: list[tuple[str, str]] = ...,
        stateless: bool = False,
        route_localnet: bool = False,
        bridges: dict[str, dict[str, list[str]]] | None = None,
    ) -> Netfilter: ...
    def evaluate(
        self,
        packet: Packet | Flow,
        *,
        from_: str = "auto",
        seed: int | None = None,
        trace: bool = True,
        origin: str | None = None,
    ) -> Result: ...
    def outcomes(
        self, packet: Packet | Flow, *, from_: str = "auto", trace: bool = True, origin: str | None = None
    ) -> list[Outcome]: ...
    def process(
        self, data: bytes, *, link: str = "auto", from_: str = "auto", seed: int | None = None
    ) -> bytes | None: ...
    def advance(self, seconds: float) -> None: ...
    def reset(self) -> None: ...
    @property
    def connections(self) -> list[Connection]: ...
    @property
    def recent(self) -> list[tuple[str, list[str]]]: ...
    @property
    def stateless(self) -> bool: ...

# --- speed ---

_Decision = tuple[int, int, int, int, int, int, int]

@final
class Classifier:
    """A ruleset compiled for a node: one packet per call, or batches of columns or frames."""

    def __new__(
        cls,
        ruleset: Ruleset | str,
        *,
        local: Sequence[str] = ...,
        interfaces: Mapping[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]] | None = None,
        routes: Sequence[tuple[str, str]] = ...,
    ) -> Classifier: ...
    @property
    def compiled(self) -> bool: ...
    @property
    def fallback_reason(self) -> str | None: ...
    @property
    def interfaces(self) -> list[str]: ...
    @property
    def rule_count(self) -> int: ...
    def rule(self, index: int) -> tuple[str, str, int, int]: ...
    def memory(self) -> dict[str, int]: ...
    def classify(
        self,
        src: int | str,
        dst: int | str,
        proto: int = 6,
        sport: int = 0,
        dport: int = 0,
        iface: int | str | None = None,
        seed: int | None = None,
    ) -> _Decision: ...
    def outcomes(
        self,
        src: int | str,
        dst: int | str,
        proto: int = 6,
        sport: int = 0,
        dport: int = 0,
        iface: int | str | None = None,
    ) -> list[tuple[float, _Decision]]: ...
    def classify_batch(
        self,
        src: Any,
        dst: Any,
        proto: Any,
        sport: Any,
        dport: Any,
        iface: Any | None = None,
        *,
        seed: int | None = None,
        threads: int = 1,
        engine: str = "compiled",
        out: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...
    def classify_frames(
        self,
        data: Any,
        lengths: Any,
        *,
        link: str = "ip",
        iface: int | str | None = None,
        seed: int | None = None,
        threads: int = 1,
        out: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...
    def __reduce__(
        self,
    ) -> tuple[object, tuple[str, list[str], list[tuple[str, list[str]]], list[tuple[str, str]]]]: ...

def _classifier_from_state(
    text: str,
    local: Sequence[str],
    interfaces: Sequence[tuple[str, Sequence[str]]],
    routes: Sequence[tuple[str, str]],
) -> Classifier: ...
def _synthetic_kube_proxy(services: int, endpoints: int = 4) -> str: ...

# --- bench ---

@final
class LeanClassifier:
    """A :class:`Classifier` reduced to its cheapest call: integers in, the ``classify`` tuple out.
    Shares the classifier's compiled ruleset; packets arrive on its default interface."""

    def __new__(cls, classifier: Classifier) -> LeanClassifier: ...
    def classify(
        self, src: int, dst: int, proto: int, sport: int, dport: int, seed: int, /
    ) -> tuple[int, int, int, int, int, int, int]:
        """``Classifier.classify(src, dst, proto, sport, dport, seed=seed)``."""
