"""Type stubs for kubenat's native module. Users import from ``kubenat``, not from here."""

__version__: str

def _panic_for_tests() -> None:
    """Panics inside Rust on purpose; raises ``kubenat.InternalError``."""
