"""Vector envs that reset each sub-env individually, with its own options (per-episode physical parameters).

No autoreset: the training loop sees every episode end, reports it to the parameter source, samples new
parameters and calls :meth:`reset_one`. ``SubprocVecEnv`` runs one env per process over pipes (step commands
are sent to all workers before any reply is read, so the envs step in parallel); ``SyncVecEnv`` runs them in
this process (tests, one env, debugging). Infos travel only at episode ends, which is all the loop reads.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from typing import Any

import gymnasium as gym
import numpy as np


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` of a short name (biped, knob...) or Gymnasium id, with actions mapped to [-1, 1]."""
    import sim  # registers s2r/* ids

    env = gym.make(sim.resolve_env_id(env_id), **kwargs)
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"{env_id} has a {type(space).__name__} action space; s2r's learners need a continuous Box")
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        # the policy always acts in [-1, 1]; this is the one place other bounds (Pendulum's ±2 N·m) are mapped
        env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return env


def _step(env: gym.Env, action: np.ndarray) -> tuple:
    obs, reward, terminated, truncated, info = env.step(action)
    return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), bool(truncated), (
        info if terminated or truncated else None
    )


def _reset(env: gym.Env, seed: int | None, options: dict | None) -> tuple:
    obs, info = env.reset(seed=seed, options=options)
    return np.asarray(obs, dtype=np.float32), info


class SyncVecEnv:
    """All sub-envs in this process."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict | None = None) -> None:
        self.envs = [make_env(env_id, **(env_kwargs or {})) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.unwrapped = self.envs[0].unwrapped

    def reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        return _reset(self.envs[i], seed, options)

    def step(self, actions: np.ndarray) -> tuple:
        return _collate([_step(env, a) for env, a in zip(self.envs, actions, strict=True)])

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _collate(results: list[tuple]) -> tuple:
    obs, rew, term, trunc, infos = zip(*results, strict=True)
    return np.stack(obs), np.array(rew), np.array(term), np.array(trunc), list(infos)


def _worker(remote, env_id: str, n_envs: int, env_kwargs: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle; it closes us cleanly
    try:
        envs = [make_env(env_id, **env_kwargs) for _ in range(n_envs)]
    except Exception as exc:  # report instead of dying silently
        remote.send(("error", f"could not create {env_id}: {exc}"))
        return
    remote.send(("ok", (envs[0].observation_space, envs[0].action_space)))
    while True:
        try:
            cmd, data = remote.recv()
        except (EOFError, KeyboardInterrupt):  # parent gone
            break
        try:
            if cmd == "step":
                remote.send(("ok", [_step(env, a) for env, a in zip(envs, data, strict=True)]))
            elif cmd == "reset":
                i, seed, options = data
                remote.send(("ok", _reset(envs[i], seed, options)))
            elif cmd == "close":
                break
        except Exception as exc:
            remote.send(("error", f"{type(exc).__name__}: {exc}"))
    for env in envs:
        env.close()
    remote.close()


class SubprocVecEnv:
    """Sub-envs in ``n_workers`` processes, each stepping its contiguous slice of envs in turn.

    Fewer workers than envs means fewer process wake-ups per step: on a 2-core box, 2 workers x 4 envs beat
    8 workers x 1 env (see benchmarks/vec_env_speed.py). ``forkserver``: no inherited torch thread pools or
    pybullet clients.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        env_kwargs: dict | None = None,
        n_workers: int | None = None,
        start_method: str = "forkserver",
    ) -> None:
        ctx = mp.get_context(start_method)
        self.num_envs = num_envs
        n_workers = max(1, min(num_envs, n_workers or os.cpu_count() or 1))
        # slices as even as possible: worker w owns envs [bounds[w], bounds[w + 1])
        self.bounds = [round(w * num_envs / n_workers) for w in range(n_workers + 1)]
        self.remotes, self.procs = [], []
        for w in range(n_workers):
            parent, child = ctx.Pipe()
            n = self.bounds[w + 1] - self.bounds[w]
            proc = ctx.Process(target=_worker, args=(child, env_id, n, env_kwargs or {}), daemon=True)  # type: ignore[attr-defined]
            proc.start()
            child.close()
            self.remotes.append(parent)
            self.procs.append(proc)
        spaces = [self._recv(r) for r in self.remotes]
        self.observation_space, self.action_space = spaces[0]
        self.unwrapped = None  # lives in the workers; use make_env for spec lookups

    def _recv(self, remote) -> Any:
        try:
            status, data = remote.recv()
        except EOFError:
            self.close()
            raise RuntimeError("a vector-env worker died (see its traceback above)") from None
        if status == "error":
            self.close()
            raise RuntimeError(f"vector-env worker failed: {data}")
        return data

    def reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        w = next(w for w in range(len(self.remotes)) if i < self.bounds[w + 1])
        self.remotes[w].send(("reset", (i - self.bounds[w], seed, options)))
        return self._recv(self.remotes[w])

    def step(self, actions: np.ndarray) -> tuple:
        for w, remote in enumerate(self.remotes):
            remote.send(("step", actions[self.bounds[w] : self.bounds[w + 1]]))
        return _collate([res for r in self.remotes for res in self._recv(r)])

    def close(self) -> None:
        for remote in self.remotes:
            with contextlib.suppress(BrokenPipeError, OSError):
                remote.send(("close", None))
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
        self.remotes, self.procs = [], []


def make_vec_env(
    env_id: str, num_envs: int, kind: str = "auto", env_kwargs: dict | None = None, n_workers: int | None = None
):
    """``kind``: "subproc", "sync", or "auto"; ``n_workers``: default one per CPU core.

    "auto" runs the envs in this process on machines with fewer than 4 cores: on the shared 2-core box,
    in-process stepping measured 2.6x faster than subprocess workers (pipe round trips and process wake-ups
    cost more than two contended cores give back; benchmarks/vec_env_speed.py), and subprocesses otherwise.
    """
    if kind == "auto":
        kind = "subproc" if num_envs > 1 and (os.cpu_count() or 1) >= 4 else "sync"
    if kind == "subproc":
        return SubprocVecEnv(env_id, num_envs, env_kwargs, n_workers)
    if kind == "sync":
        return SyncVecEnv(env_id, num_envs, env_kwargs)
    raise ValueError(f"unknown vector env kind '{kind}'; use auto, subproc or sync")
