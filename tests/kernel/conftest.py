"""Kernel tests run real netfilter inside throwaway network namespaces.

Outside CI they skip, with the reason, when not root or when a tool is missing. In CI
(CI=true) every such condition is a failure instead: the kernel suite must run there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

REQUIRED_TOOLS = (
    "ip",
    "iptables-restore",
    "ip6tables-restore",
    "iptables-save",
    "conntrack",
    "nfacct",
)


def kernel_unavailable_reason() -> str | None:
    """Why the kernel tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces, iptables-restore)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"kernel tests need {', '.join(missing)} (Debian: iptables iproute2 conntrack nfacct)"
    return None


@pytest.fixture(autouse=True)
def _kernel_available() -> Iterator[None]:
    reason = kernel_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the kernel tests, but {reason}")
        pytest.skip(reason)
    yield


# --- kernel: no namespace may outlive the test session ---
@pytest.fixture(scope="session", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    from kubenat.kernel import _netns

    before = set(_netns.existing()) if os.geteuid() == 0 else set()
    yield
    mine = _netns.created_by_this_process()
    # In CI nothing else runs beside this session, so a kn- namespace that appeared during the
    # session and is still there was leaked (by this process or by a subprocess it started).
    # Ones that existed before the session are not this run's doing and are left alone.
    in_ci = os.environ.get("CI") == "true"
    leaked = [
        n for n in _netns.existing() if n in mine or (in_ci and n.startswith("kn-") and n not in before)
    ]
    assert not leaked, f"network namespaces left behind: {leaked}"
