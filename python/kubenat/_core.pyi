"""Type stubs for kubenat's native module. Users import from ``kubenat``, not from here."""

from collections.abc import Sequence
from typing import Any, final

from kubenat.errors import KubenatError

__version__: str

def _panic_for_tests() -> None:
    """Panics inside Rust on purpose; raises ``kubenat.InternalError``."""

from collections.abc import Sequence
from typing import Any, final

from kubenat.errors import KubenatError
