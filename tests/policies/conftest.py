"""Helpers reached through fixtures, since conftest modules are not importable under --import-mode=importlib: for
the Ray tests (test_ray_vec.py, test_ray_rollouts.py), progress rows compared bit for bit and a thread that
SIGKILLs one of this test's Ray actor processes at a chosen moment of a run; for the tests of a policy's parts
with state (action filter, gait clock, action history), the training env, the torch policy and its bundle played side by side."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from policies.evaluate import policy_initial_state, policy_step
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


def _side_by_side(policy: Any, raw: Any, train_env: Any, eval_env: Any, onnx_policy: Any, *,
                  before: Callable[[np.ndarray, np.ndarray, tuple], None] = lambda *_: None,
                  after: Callable[[np.ndarray, np.ndarray, dict], None] = lambda *_: None, min_steps: int = 120,
                  seeds: Iterable[int] = range(5, 50), max_steps: int = 400) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Seeded episodes (``seeds``, at most ``max_steps`` each; a random policy falls soon) until ``min_steps`` are
    played: ``raw`` (the network behind the policy's parts with state) acts on the training env's observation,
    ``policy`` in torch on the plain env's, and ``onnx_policy`` (its bundle) is fed the same observations.
    ``before(obs_train, obs_eval, state)`` checks each step's inputs, ``after(obs_train, obs_eval, info)`` sees what the step returned.
    Returns the commands the training env's action filter sent, the torch policy's and onnxruntime's
    (normalized), one row per step."""
    limits = onnx_policy.bundle.limits_nm()
    sent, torch_cmd, onnx_cmd = [], [], []
    for seed in seeds:
        obs_train, obs_eval = train_env.reset(seed=seed)[0], eval_env.reset(seed=seed)[0]
        state = policy_initial_state(policy)
        onnx_policy.reset_state()
        for _ in range(max_steps):
            before(obs_train, obs_eval, state)
            with torch.no_grad():
                a_raw = raw(torch.as_tensor(obs_train)[None])[0].numpy()
            a_torch, state = policy_step(policy, obs_eval, state)
            onnx_cmd.append(onnx_policy(obs_eval).copy() / limits)
            obs_train, _, term_train, trunc_train, info = train_env.step(a_raw)
            obs_eval, _, term_eval, trunc_eval, _ = eval_env.step(a_torch)
            after(obs_train, obs_eval, info)
            filt = train_env if hasattr(train_env, "_y") else train_env.env
            sent.append(filt._y.copy())  # noqa: SLF001  (what the filter wrapper sent the env)
            torch_cmd.append(a_torch)
            assert (term_train, trunc_train) == (term_eval, trunc_eval)
            if term_eval or trunc_eval:
                break
        if len(sent) >= min_steps:
            break
    assert len(sent) >= min_steps
    return np.stack(sent), np.stack(torch_cmd), np.stack(onnx_cmd)


@pytest.fixture
def side_by_side() -> Callable[..., tuple[np.ndarray, ...]]:
    return _side_by_side


def _warm_start_takes_the_actor(ckpt: dict, n_extra: int, folder: Path) -> None:
    """The bundle exported from ``ckpt`` (a [32, 32] biped actor with ``n_extra`` inputs beyond the sensors, behind
    the policy's parts with state) warm-starts a training actor of that shape with the checkpoint's weights, and
    does not fit one without the extra inputs."""
    from deploy.export import export_bundle
    from policies.checkpoint import inference_policy_from_checkpoint
    from policies.networks import GaussianActor
    from policies.normalizer import ObsNormalizer
    from policies.warm_start import warm_start
    from sim.errors import UserError
    from sim.robots import get_robot

    export_bundle(inference_policy_from_checkpoint(ckpt), folder, n_random=200)
    spec = get_robot("biped")
    n_in = spec.obs_dim + n_extra
    actor = GaussianActor(n_in, spec.action.n, [32, 32])
    warm_start(actor, ObsNormalizer(n_in), folder)
    for name, value in actor.state_dict().items():
        if name != "log_std":
            assert torch.equal(value, ckpt["actor"][name]), name
    with pytest.raises(UserError, match="does not fit"):
        warm_start(GaussianActor(spec.obs_dim, spec.action.n, [32, 32]), ObsNormalizer(spec.obs_dim), folder)


@pytest.fixture
def warm_start_takes_the_actor() -> Callable[[dict, int, Path], None]:
    return _warm_start_takes_the_actor
