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


# --- kernel: the differential tests together compare at least MIN_COMPARED examples ---
@pytest.fixture(scope="session", autouse=True)
def _enough_examples_compared(request: pytest.FixtureRequest) -> Iterator[None]:
    """When every differential test ran (always in CI), they must have compared at least
    ``differential.MIN_COMPARED`` ruleset-by-packet examples with the kernel, with no
    disagreement. A run of some of them alone (a developer's selection) is not counted."""
    yield
    from differential import FEEDERS, MIN_COMPARED, TALLY

    selected = {item.nodeid.split("tests/kernel/")[-1] for item in request.session.items}
    if not all(feeder in selected for feeder in FEEDERS):
        return
    if request.session.testsfailed or kernel_unavailable_reason() is not None:
        return  # the failure (or the skip) is reported already
    total = sum(TALLY.compared.values())
    per_test = ", ".join(f"{name}: {count}" for name, count in sorted(TALLY.compared.items()))
    print(f"\nkernel differential: {total} ruleset-by-packet examples compared ({per_test})")
    silent = [feeder for feeder in FEEDERS if not TALLY.compared[feeder]]
    assert not silent, f"differential tests that compared nothing: {silent}"
    assert total >= MIN_COMPARED, f"only {total} examples compared with the kernel (< {MIN_COMPARED})"
    assert not sum(TALLY.disagreements.values()), f"disagreements: {dict(TALLY.disagreements)}"
