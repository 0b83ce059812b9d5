"""Quiet access to pybullet: its C core prints a build banner on import and ``argv[0]=`` on every connect,
straight to file descriptors 1 and 2, which would pollute CLI output and the firmware emulator's stdout."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Point fds 1 and 2 at /dev/null for the duration (Python exceptions still propagate afterwards)."""
    saved: list[tuple[int, int]] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # no real fd (e.g. captured): nothing to hide
            continue
        stream.flush()
        saved.append((fd, os.dup(fd)))
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd, _ in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        _libc_fflush()  # the banner may sit in libc's buffer: drop it while the fds point at /dev/null
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def _libc_fflush() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


with _quiet_fds():
    import pybullet as p
    from pybullet_utils import bullet_client


def connect_direct() -> bullet_client.BulletClient:
    """A new headless (``p.DIRECT``) physics client of its own; several can live in one process."""
    with _quiet_fds():
        return bullet_client.BulletClient(connection_mode=p.DIRECT)


__all__ = ["p", "bullet_client", "connect_direct"]
