"""Type stubs for kubenat's native module. Users import from ``kubenat``, not from here."""

from collections.abc import Sequence
from typing import final

from kubenat.errors import KubenatError

__version__: str

def _panic_for_tests() -> None:
    """Panics inside Rust on purpose; raises ``kubenat.InternalError``."""

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

def flannel_net_unreachable(offender: bytes, tun_addr: str) -> bytes | None:
    """The ICMP net-unreachable flannel's UDP proxy builds for ``offender``, or None."""

def flannel_decrement_ttl(packet: bytes) -> bytes | None:
    """flannel's UDP-proxy TTL decrement with its checksum patch; None when the TTL reaches 0."""
