"""Vector envs that reset each sub-env individually, with its own options (per-episode physical parameters).

No autoreset: the training loop sees every episode end, reports it to the parameter source, samples new
parameters and calls :meth:`reset_one`. ``SubprocVecEnv`` runs one env per process over pipes (step commands
are sent to all workers before any reply is read, so the envs step in parallel) and can keep a share of the envs
in this process, stepped while the workers step theirs (``local_envs``: on 2 cores the learner's own core steps
half the envs instead of waiting); ``SyncVecEnv`` runs them all in this process (tests, one env, debugging);
``policies.ray_vec.RayVecEnv`` (``make_vec_env(..., ray=...)``) runs them in Ray actors, on one machine or a
cluster. Full infos travel only at episode ends, which is all the loop reads; ``info_keys`` names keys sent every
step (``("privileged",)`` for an asymmetric critic: ``sim.tasks.<robot>``): a sub-env whose episode goes on then gets
an info dict with just those keys instead of None.

Workers fail loudly, as Gymnasium's async vector env does: a worker that raises sends back
``(worker index, exception type, message, traceback)``; the parent logs the traceback and raises the same type
with the same message (a ``ValueError`` from an env stays a ``ValueError``, a ``gymnasium.error.ResetNeeded``
stays one). A worker process that dies without a word is a ``RuntimeError``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np

from sim.errors import UserError

log = logging.getLogger(__name__)


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` of a short name (biped, knob...) or Gymnasium id, with actions mapped to [-1, 1].

    ``action_filter_hz`` > 0: the training half of the policy's action filter wraps the env
    (:class:`policies.action_filter.LowPassAction`); ``gait_clock_hz`` > 0: the training half of its gait clock
    (:class:`policies.gait_clock.GaitClock`), inside the filter; ``action_history`` K > 0: the training half of its
    action history (:class:`policies.action_history.ActionHistory`), outside the filter."""
    import sim  # registers s2r/* ids

    action_filter_hz = float(kwargs.pop("action_filter_hz", 0.0) or 0.0)
    gait_clock_hz = float(kwargs.pop("gait_clock_hz", 0.0) or 0.0)
    action_history = int(kwargs.pop("action_history", 0) or 0)
    env = gym.make(sim.resolve_env_id(env_id), **kwargs)
    if gait_clock_hz:
        from policies.gait_clock import GaitClock

        env = GaitClock(env, gait_clock_hz)
    if action_filter_hz:
        from policies.action_filter import LowPassAction

        env = LowPassAction(env, action_filter_hz)
    if action_history:
        from policies.action_history import ActionHistory

        env = ActionHistory(env, action_history)
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise UserError(f"{env_id} has a {type(space).__name__} action space; s2r's learners need a continuous Box")
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        # the policy always acts in [-1, 1]; this is the one place other bounds (Pendulum's ±2 N·m) are mapped
        env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return env


def _step(env: gym.Env, action: np.ndarray, info_keys: tuple[str, ...] = ()) -> tuple:
    """One env step for a vector env: the info in full at an episode end, else only ``info_keys`` (None if none)."""
    obs, reward, terminated, truncated, info = env.step(action)
    out: dict | None = info
    if not (terminated or truncated):
        out = {k: info[k] for k in info_keys} if info_keys else None
    return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), bool(truncated), out


def _reset(env: gym.Env, seed: int | None, options: dict | None) -> tuple:
    obs, info = env.reset(seed=seed, options=options)
    return np.asarray(obs, dtype=np.float32), info


class SyncVecEnv:
    """All sub-envs in this process."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict | None = None, info_keys: tuple[str, ...] = ()):
        self.envs = [make_env(env_id, **(env_kwargs or {})) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.info_keys = tuple(info_keys)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.unwrapped = self.envs[0].unwrapped

    def reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        return _reset(self.envs[i], seed, options)

    def step(self, actions: np.ndarray) -> tuple:
        return _collate([_step(env, a, self.info_keys) for env, a in zip(self.envs, actions, strict=True)])

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _collate(results: list[tuple]) -> tuple:
    obs, rew, term, trunc, infos = zip(*results, strict=True)
    return np.stack(obs), np.array(rew), np.array(term), np.array(trunc), list(infos)


SPIN_S = 2e-3  # how long a side busy-polls its pipe before it blocks (see _spin_until_readable)


def _spin_until_readable(conn, spin_s: float = SPIN_S) -> None:
    """Busy-poll ``conn`` for up to ``spin_s`` seconds; the blocking ``recv`` that follows takes over after that.

    A process blocked in ``recv`` sleeps and must be woken, which on a VM can mean waking an idle vCPU. The
    commands and replies of a rollout come every env step, so a short spin keeps both sides awake through the
    rollout; between rollouts (the PPO update) the worker falls back to sleeping. What the spin gains:
    BENCHMARKS.md, Figures moved out of code comments.
    """
    end = time.perf_counter() + spin_s
    while not conn.poll() and time.perf_counter() < end:
        pass


def worker_error(index: int, exc: BaseException) -> tuple[int, type, str, str]:
    """What a failing worker sends back: ``(index, exception type, message, formatted traceback)``. Call it in
    the ``except`` block. A type that cannot travel by pickle (defined in a closure, say) is sent as
    RuntimeError with its name in the message."""
    exc_type: type = type(exc)
    message = str(exc)
    try:
        pickle.loads(pickle.dumps(exc_type))
    except Exception:
        exc_type, message = RuntimeError, f"{type(exc).__name__}: {exc}"
    return index, exc_type, message, traceback.format_exc()


def raise_worker_error(error: tuple[int, type, str, str], what: str = "vector-env worker") -> NoReturn:
    """Log a worker's traceback and raise its exception type with its message in this process (a type whose
    constructor does not take one message becomes RuntimeError naming it)."""
    index, exc_type, message, trace = error
    log.error("%s %d raised %s; its traceback:\n%s", what, index, exc_type.__name__, trace.rstrip())
    try:
        exc = exc_type(message)
    except Exception:
        exc = RuntimeError(f"{exc_type.__name__}: {message}")
    raise exc


def _worker(remote, index: int, env_id: str, n_envs: int, env_kwargs: dict, info_keys: tuple[str, ...] = ()) -> None:
    # Ctrl-C and SIGTERM (systemd stops the whole group) are the learner's to handle: it saves, then closes us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        envs = [make_env(env_id, **env_kwargs) for _ in range(n_envs)]
    except Exception as exc:  # report instead of dying silently
        remote.send(("error", worker_error(index, exc)))
        return
    remote.send(("ok", (envs[0].observation_space, envs[0].action_space)))
    while True:
        try:
            _spin_until_readable(remote)
            cmd, data = remote.recv()
        except (EOFError, KeyboardInterrupt):  # parent gone
            break
        try:
            if cmd == "step":
                remote.send(("ok", [_step(env, a, info_keys) for env, a in zip(envs, data, strict=True)]))
            elif cmd == "reset":
                i, seed, options = data
                remote.send(("ok", _reset(envs[i], seed, options)))
            elif cmd == "close":
                break
        except Exception as exc:
            remote.send(("error", worker_error(index, exc)))
    for env in envs:
        env.close()
    remote.close()


class SubprocVecEnv:
    """Sub-envs in ``n_workers`` processes, each stepping its contiguous slice of envs in turn; the first
    ``local_envs`` envs (default none) step in this process while the workers step theirs.

    Fewer workers than envs means fewer process wake-ups per step: on a 2-core box, 2 workers x 4 envs beat
    8 workers x 1 env (BENCHMARKS.md, Learners), and 1 worker x 4 envs + 4 local envs beat both: this
    process would otherwise sit idle for the whole physics step. ``forkserver``: no inherited torch thread pools
    or pybullet clients. Each worker re-imports the caller's ``__main__`` module (multiprocessing's rule for
    forkserver and spawn): a script that imports torch at its top pays for it at every worker
    start; the ``s2r`` entry point is light.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        env_kwargs: dict | None = None,
        n_workers: int | None = None,
        start_method: str = "forkserver",
        local_envs: int = 0,
        info_keys: tuple[str, ...] = (),
    ) -> None:
        if not 0 <= local_envs < num_envs:
            raise UserError(f"local_envs must be in [0, {num_envs}) so that a worker has an env, got {local_envs}")
        ctx = mp.get_context(start_method)
        self.num_envs = num_envs
        self.local_envs = local_envs
        self.info_keys = tuple(info_keys)
        remote_envs = num_envs - local_envs
        n_workers = max(1, min(remote_envs, n_workers or os.cpu_count() or 1))
        # slices as even as possible: worker w owns envs [bounds[w], bounds[w + 1]), after the local ones
        self.bounds = [local_envs + round(w * remote_envs / n_workers) for w in range(n_workers + 1)]
        self.remotes, self.procs = [], []
        for w in range(n_workers):
            parent, child = ctx.Pipe()
            n = self.bounds[w + 1] - self.bounds[w]
            args = (child, w, env_id, n, env_kwargs or {}, self.info_keys)
            proc = ctx.Process(target=_worker, args=args, daemon=True)  # type: ignore[attr-defined]
            proc.start()
            child.close()
            self.remotes.append(parent)
            self.procs.append(proc)
        # built while the workers start: creating an env costs about as much here as there
        self.local = [make_env(env_id, **(env_kwargs or {})) for _ in range(local_envs)]
        spaces = [self._recv(r) for r in self.remotes]
        self.observation_space, self.action_space = spaces[0]
        # where no env lives in this process, use make_env for spec lookups
        self.unwrapped = self.local[0].unwrapped if self.local else None

    def _recv(self, remote) -> Any:
        try:
            status, data = remote.recv()
        except EOFError:
            self.close()
            raise RuntimeError("a vector-env worker died (see its traceback above)") from None
        if status == "error":
            self.close()
            raise_worker_error(data)
        return data

    def reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if i < self.local_envs:
            return _reset(self.local[i], seed, options)
        w = next(w for w in range(len(self.remotes)) if i < self.bounds[w + 1])
        self.remotes[w].send(("reset", (i - self.bounds[w], seed, options)))
        return self._recv(self.remotes[w])

    def step(self, actions: np.ndarray) -> tuple:
        for w, remote in enumerate(self.remotes):
            remote.send(("step", actions[self.bounds[w] : self.bounds[w + 1]]))
        try:
            local = [_step(env, a, self.info_keys) for env, a in zip(self.local, actions, strict=False)]
        except Exception:
            for r in self.remotes:  # drain the replies already on their way: the pipes stay in step for close()
                with contextlib.suppress(EOFError, OSError):
                    r.recv()
            raise
        if self.local:  # the workers have had as long as the local envs took: their replies are due now
            for r in self.remotes:
                _spin_until_readable(r)
        return _collate(local + [res for r in self.remotes for res in self._recv(r)])

    def close(self) -> None:
        for remote in self.remotes:
            with contextlib.suppress(BrokenPipeError, OSError):
                remote.send(("close", None))
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
        self.remotes, self.procs = [], []
        for env in self.local:
            env.close()
        self.local = []


def _is_s2r_env(env_id: str) -> bool:
    import sim
    from sim.task import find_env

    return find_env(sim.resolve_env_id(env_id)) is not None


VEC_KINDS = ("auto", "split", "subproc", "sync")  # make_vec_env's kinds


def make_vec_env(
    env_id: str,
    num_envs: int,
    kind: str = "auto",
    env_kwargs: dict | None = None,
    n_workers: int | None = None,
    ray: str | None = None,
    info_keys: tuple[str, ...] = (),
):
    """``kind``: "split", "subproc", "sync", or "auto"; ``n_workers``: default one per CPU core ("split": one per
    core but this process's, which steps its share of the envs, ``num_envs / cores``, itself). ``ray``: a Ray
    address (``local``, ``auto``, ``HOST:PORT``): the envs step in Ray actors instead (policies.ray_vec, the
    split of "split" with Ray actors as the workers; ``n_workers`` is then the number of actors). ``info_keys``:
    info keys every step returns (see the module docstring), not only the last of an episode.

    "auto" picks, from measurements on the 2-core box (BENCHMARKS.md, Learners):
    * one env or one core: "sync";
    * s2r's own envs (PyBullet, a costly step): "split". The learner's process steps half the envs while one
      worker steps the other half, which made PPO on the biped faster than "sync";
    * any other env: "sync" below 4 cores, "subproc" from 4. A cheap env (Pendulum) gains nothing from a
      second core that a pipe round trip per step does not take back. With every env in workers (subproc,
      2 workers), PPO on the biped ran slower than in-process: the learner idles while the workers step.
    """
    if ray:
        if kind != "auto":
            raise UserError(f"--vec {kind} and --ray both say where the envs step; give one of them")
        from policies.ray_vec import RayVecEnv  # Ray only where asked for: `s2r run` and deploy never load it

        return RayVecEnv(env_id, num_envs, env_kwargs, address=ray, n_actors=n_workers, info_keys=info_keys)
    if kind == "auto":
        cores = os.cpu_count() or 1
        if num_envs == 1 or cores == 1:
            kind = "sync"
        elif _is_s2r_env(env_id):
            kind = "split"
        else:
            kind = "subproc" if cores >= 4 else "sync"
    if kind == "split":
        cores = os.cpu_count() or 1
        workers = n_workers or max(1, cores - 1)
        local = min(num_envs - 1, round(num_envs / (workers + 1)))
        return SubprocVecEnv(env_id, num_envs, env_kwargs, workers, local_envs=local, info_keys=info_keys)
    if kind == "subproc":
        return SubprocVecEnv(env_id, num_envs, env_kwargs, n_workers, info_keys=info_keys)
    if kind == "sync":
        return SyncVecEnv(env_id, num_envs, env_kwargs, info_keys)
    raise UserError(f"unknown vector env kind '{kind}'; use one of {', '.join(VEC_KINDS)}")
