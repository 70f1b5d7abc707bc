"""Network namespaces: create, enter (per thread), run tools inside, and always delete.

Safety rules enforced here: every name starts with ``kn-``; a name that already exists is
refused; nothing is ever configured in the caller's own namespace (tools run through
``ip netns exec`` / ``ip -n``, sockets are opened by a short-lived thread that has entered the
target namespace). Every namespace this process creates is remembered, and an ``atexit`` hook
deletes any that are still there when the interpreter exits.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from kubenat.errors import KernelError

PREFIX = "kn-"
NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_lock = threading.Lock()
_live: set[str] = set()
"""Namespaces created by this process and not deleted yet."""
_created: set[str] = set()
"""Every namespace this process ever created (for the test session's final check)."""


def run(
    args: Sequence[str], *, netns: str | None = None, input: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool (argument list, never a shell), inside ``netns`` when given."""
    argv = list(args)
    if netns is not None:
        _check_name(netns)
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        done = subprocess.run(argv, input=input, capture_output=True, check=False, timeout=120)
    except FileNotFoundError as exc:
        raise KernelError(f"{argv[0]} is not installed: {exc}", command=argv) from exc
    except subprocess.TimeoutExpired as exc:
        raise KernelError(f"{' '.join(argv)} did not finish in 120 s", command=argv) from exc
    if check and done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise KernelError(
            f"{' '.join(argv)} failed (exit {done.returncode}): {err}",
            command=argv,
            stderr=err,
            returncode=done.returncode,
        )
    return done


def _check_name(name: str) -> None:
    if not name.startswith(PREFIX) or "/" in name or len(name) > 200:
        raise KernelError(f"refusing to use network namespace {name!r}: names must start with {PREFIX!r}")


def existing() -> list[str]:
    """Names of all network namespaces known to ``ip netns``."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def created_by_this_process() -> frozenset[str]:
    """Every namespace this process has created (deleted or not)."""
    with _lock:
        return frozenset(_created)


def check_free(names: Sequence[str]) -> None:
    """Refuse (KernelError) if a name is not a ``kn-`` name or already exists."""
    for name in names:
        _check_name(name)
    clash = sorted(set(names) & set(existing()))
    if clash:
        raise KernelError(f"refusing to run: network namespace(s) {', '.join(clash)} already exist")


def add(names: Sequence[str]) -> None:
    """Create the namespaces, refusing if any of them exists already (nothing created then)."""
    check_free(names)
    for name in names:
        with _lock:
            _live.add(name)
            _created.add(name)
        run(["ip", "netns", "add", name])


def delete(names: Sequence[str]) -> list[str]:
    """Delete the namespaces (only those this process created); returns error messages, never raises."""
    errors = []
    for name in names:
        with _lock:
            if name not in _live:
                continue
        if name in existing():
            done = run(["ip", "netns", "del", name], check=False)
            if done.returncode != 0 and name in existing():
                errors.append(f"{name}: {done.stderr.decode(errors='replace').strip()}")
                continue
        with _lock:
            _live.discard(name)
    return errors


@atexit.register
def _delete_leftovers() -> None:
    with _lock:
        names = sorted(_live)
    delete(names)


def _libc_setns() -> Callable[[int, int], int]:
    libc = ctypes.CDLL(None, use_errno=True)
    setns: Callable[[int, int], int] = libc.setns
    return setns


def call_in(name: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh thread that has entered network namespace ``name``.

    Sockets created by ``fn`` stay in that namespace for their whole life, whichever thread
    uses them later; the caller's own thread never changes namespace.
    """
    _check_name(name)
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc_setns()(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise KernelError(f"cannot enter network namespace {name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def sysctl(name: str, settings: dict[str, str]) -> None:
    """Write sysctls (keys like ``"net/ipv4/ip_forward"``) inside namespace ``name``.

    ``/proc/sys/net`` shows the namespace of the thread that opens it."""

    def write() -> None:
        for key, value in settings.items():
            # Keys use "/" (interface names may contain dots, like flannel.1).
            path = "/proc/sys/" + key
            with open(path, "w") as handle:
                handle.write(value)

    call_in(name, write)
