"""Helpers of the Ray tests (test_ray_vec.py, test_ray_rollouts.py), reached through fixtures since conftest
modules are not importable under --import-mode=importlib: progress rows compared bit for bit, and a thread that
SIGKILLs one of this test's Ray actor processes at a chosen moment of a run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from policies.plotting import read_progress


def _same_progress(a: Path, b: Path, keys: tuple[str, ...]) -> None:
    """The runs in folders ``a`` and ``b`` logged the same ``keys`` in every progress row, bit for bit."""
    ra, rb = read_progress(a / "progress.csv"), read_progress(b / "progress.csv")
    for key in keys:
        np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)  # bit-equal; NaN (no value yet) = NaN


def _is_descendant(pid: int, ancestor: int) -> bool:
    """``ancestor`` is ``pid``'s parent, grandparent, ... (read from /proc)."""
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the parent's pid
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


def _actor_pids(actor: str) -> list[int]:
    """PIDs of this test's Ray actors of class ``actor`` (descendants of this process; `ps` shows
    ``ray::EnvShard``)."""
    me, pids = os.getpid(), []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(f"ray::{actor}".encode()) and _is_descendant(int(d.name), me):
                pids.append(int(d.name))
    return sorted(pids)


def _kill_an_actor_when(actor: str, path: Path, lines: int, killed: list[int]) -> threading.Thread:
    """A started thread that SIGKILLs one of this test's ``actor`` processes once the file ``path`` has ``lines``
    lines (it gives up after 300 s) and appends the pid to ``killed``; join it after the run."""

    def killer() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if path.is_file() and len(path.read_text().splitlines()) >= lines:
                pids = _actor_pids(actor)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                return
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def same_progress() -> Callable[[Path, Path, tuple[str, ...]], None]:
    """``same_progress(run_a, run_b, keys)``: the two runs' progress rows are equal in ``keys``, bit for bit."""
    return _same_progress


@pytest.fixture
def kill_an_actor_when() -> Callable[[str, Path, int, list[int]], threading.Thread]:
    """``kill_an_actor_when("EnvShard", run / "progress.csv", 2, killed)``: a started thread that SIGKILLs one of
    this test's Ray actors of that class once the file has that many lines, appending its pid to ``killed``."""
    return _kill_an_actor_when
