"""A vector env whose sub-envs step in Ray actors (``s2r train --ray``), on this machine or a Ray cluster.

The contract is ``policies.vec_env``'s (``reset_one``, ``step``, ``close``; no autoreset): only where the envs
step changes, so the learner, the run folder, checkpoints, resume, progress.csv and TensorBoard are those of a
local run. Actor k owns the contiguous envs ``[bounds[k], bounds[k + 1])`` (the split of ``SubprocVecEnv``) and
steps them in lockstep with the learner: one ``step`` call per actor per vector step, all in flight at once.
Every reset is the driver's, with the seed and the options (the physical parameters drawn by the driver's
ParamSource) that the loop passes, so ADR keeps its whole state in the driver and sees every episode result,
and a run gives the same progress rows as ``--vec sync`` with the same seed (tests/policies/test_ray_vec.py).

Faults. Actors are created with Ray's ``max_restarts``: when an actor's process or node dies, Ray starts it
again (on any node with a free CPU) and this class rebuilds its envs exactly where they were. The driver keeps,
for each env, how its current episode began (the seed, or the env's RNG state just before an unseeded reset,
and the reset options) and the actions taken since; the restarted actor replays them. s2r's envs are
deterministic given these (``tests/sim``), and the replayed observation is checked bit for bit against the
one the learner holds before the interrupted call is sent again. The run therefore goes on with no transition
lost, invented or changed in the replay buffer or the PPO rollout. An env that does not replay exactly (its
randomness does not all come from ``np_random``) stops the run with a RuntimeError: continue it with
``s2r train --resume`` from its last checkpoint. A Python exception raised by an env in an actor is not a
fault: it is re-raised here with its own type after its remote traceback is logged (policies.vec_env).

Actors that act on their own, with a copy of the policy (PPO rollout segments, asynchronous TD3), are
``policies.ray_rollouts`` (``--ray-mode segments|async``): a subclass of this one, which keeps the lockstep
mode's fault handling.

Cost: a vector step is one Ray call per actor on top of the physics, hidden in part behind the local envs'
steps; BENCHMARKS.md (Ray scale-out, benchmarks/ray_scale.py) has the overhead against ``--vec split``.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any

import numpy as np

from policies.vec_env import _collate, _reset, _step, make_env, raise_worker_error, worker_error
from sim.errors import UserError

log = logging.getLogger(__name__)

MAX_RESTARTS = 10  # per actor over a run: a crash-looping node should stop the run, not stall it forever
RESTART_TIMEOUT_S = 300.0  # how long to wait for Ray to bring a dead actor back (a new node may have to join)


def connect(address: str) -> bool:
    """Connect this process to Ray; True when this call started Ray (the caller then shuts it down).

    ``local``: a private single-machine cluster with one CPU per core; ``auto``: the cluster this machine
    joined with ``ray start`` (or ``RAY_ADDRESS``); anything else: a cluster address (``HOST:6379`` or
    ``ray://HOST:10001``). A process that is already connected keeps its connection.
    """
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray; install it with: pip install -e '.[ray]'") from None
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=True)
    else:
        if address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as exc:  # no cluster there: a user error with a fix
            raise UserError(
                f"cannot reach a Ray cluster at '{address}' ({exc}); start one with `ray start --head` "
                "or use --ray local"
            ) from None
    return True


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds, with the fix, where ``ray.init`` would retry an unreachable address for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address}: give auto, local or a cluster address HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({exc}); start one there with `ray start --head` "
            "or use --ray local"
        ) from None


class EnvShard:
    """Runs in a Ray actor: a few sub-envs, stepped in turn. Construction errors are kept and reported by
    :meth:`spaces` (an ``__init__`` that raised would make Ray restart the actor ``max_restarts`` times)."""

    def __init__(self, index: int, env_id: str, n_envs: int, env_kwargs: dict, info_keys: tuple[str, ...] = ()):
        self.index = index
        self.info_keys = tuple(info_keys)
        self.error: tuple | None = None
        self.envs = []
        try:
            self.envs = [make_env(env_id, **env_kwargs) for _ in range(n_envs)]
        except Exception as exc:
            self.error = worker_error(index, exc)

    def spaces(self) -> tuple[str, Any]:
        if self.error is not None:
            return "error", self.error
        return "ok", (self.envs[0].observation_space, self.envs[0].action_space)

    def pid(self) -> int:
        return os.getpid()

    def step(self, actions: np.ndarray) -> list[tuple]:
        return [_step(env, a, self.info_keys) for env, a in zip(self.envs, actions, strict=True)]

    def reset(self, j: int, seed: int | None, options: dict | None) -> tuple[np.ndarray, dict, Any]:
        """Reset env j; also returns its RNG state just before an unseeded reset (what a replay needs)."""
        env = self.envs[j].unwrapped
        rng_state = None if seed is not None else copy.deepcopy(env.np_random.bit_generator.state)
        obs, info = _reset(self.envs[j], seed, options)
        return obs, info, rng_state

    def replay(self, j: int, start: tuple, actions: list[np.ndarray]) -> np.ndarray:
        """Bring a fresh env j to where the driver's env j was: reset as ``start`` = (seed, options, RNG state)
        did, then take ``actions``; returns the last observation (the caller checks it)."""
        seed, options, rng_state = start
        if rng_state is not None:
            gen = np.random.Generator(getattr(np.random, rng_state["bit_generator"])())
            gen.bit_generator.state = rng_state
            self.envs[j].unwrapped.np_random = gen
        obs, _ = _reset(self.envs[j], seed, options)
        for a in actions:
            obs = _step(self.envs[j], a)[0]
        return obs


class RayVecEnv:
    """The first ``local_envs`` sub-envs step in this process while ``n_actors`` Ray actors step the rest, each
    using ``cpus_per_actor`` of Ray's CPUs. ``address``: see :func:`connect`.

    Defaults (``None``) follow ``--vec split``: the learner is idle while the envs step, so its process counts
    as one more worker. Actors: one per Ray CPU but the driver's, at most one per remote env; local envs: this
    process's even share, ``num_envs / (n_actors + 1)``, and always fewer than ``num_envs`` (one env, as TD3's:
    it steps in an actor). ``local_envs=0`` puts every env in an actor."""

    SHARD: Any = EnvShard  # the actor class (policies.ray_rollouts gives its actors a copy of the policy)

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        env_kwargs: dict | None = None,
        address: str = "local",
        n_actors: int | None = None,
        cpus_per_actor: float = 1.0,
        local_envs: int | None = None,
        info_keys: tuple[str, ...] = (),
    ) -> None:
        if local_envs is not None and not 0 <= local_envs < num_envs:
            raise UserError(f"local_envs must be in [0, {num_envs}) so that an actor has an env, got {local_envs}")
        self.owns_ray = connect(address)
        import ray

        self.num_envs = num_envs
        self.info_keys = tuple(info_keys)  # info keys returned every step (policies.vec_env)
        if not n_actors:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            n_actors = max(1, int((cpus - 1) // cpus_per_actor))
        if local_envs is None:
            local_envs = min(num_envs - 1, round(num_envs / (n_actors + 1)))
        self.local_envs = local_envs
        remote_envs = num_envs - local_envs
        n_actors = max(1, min(remote_envs, n_actors))
        # actor k owns envs [bounds[k], bounds[k + 1]), after the local ones
        self.bounds = [local_envs + round(k * remote_envs / n_actors) for k in range(n_actors + 1)]
        self.actor_cls = ray.remote(self.SHARD).options(
            num_cpus=cpus_per_actor, max_restarts=MAX_RESTARTS, max_task_retries=0
        )
        self.actors: list[Any] = [  # Ray actor handles
            self.actor_cls.remote(k, env_id, self.bounds[k + 1] - self.bounds[k], env_kwargs or {},
                                  self.info_keys)
            for k in range(n_actors)
        ]
        replies = ray.get([a.spaces.remote() for a in self.actors])
        for status, data in replies:
            if status == "error":
                self.close()
                raise_worker_error(data, "Ray env actor")
        self.observation_space, self.action_space = replies[0][1]
        self.local = [make_env(env_id, **(env_kwargs or {})) for _ in range(local_envs)]
        self.unwrapped = self.local[0].unwrapped if self.local else None
        # per env: how its episode began (seed, options, RNG state) and its actions since; its last observation
        self.starts: list[tuple | None] = [None] * num_envs
        self.actions: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self.last_obs: list[Any] = [None] * num_envs  # np.ndarray once the env was reset
        self.deaths = [0] * n_actors  # per actor: how often it died (Ray restarts it up to MAX_RESTARTS times)
        self.restarts = 0  # actor restarts recovered from, all actors

    # ---------------------------------------------------------------------------------------- the contract
    def reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if 0 <= i < self.local_envs:
            return _reset(self.local[i], seed, options)
        k = self._actor_of(i)
        j = i - self.bounds[k]
        obs, info, rng_state = self._call(k, lambda: self.actors[k].reset.remote(j, seed, options))
        self.starts[i], self.actions[i], self.last_obs[i] = (seed, options, rng_state), [], obs
        return obs, info

    def step(self, actions: np.ndarray) -> tuple:
        calls = [self._step_call(k, actions) for k in range(len(self.actors))]
        refs = [call() for call in calls]
        try:  # the local envs step while the actors step theirs
            local = [_step(env, a, self.info_keys) for env, a in zip(self.local, actions, strict=False)]
        finally:  # even when a local env raised: the actors' envs stepped, their logs must say so
            remote = self._gather(calls, refs, actions)
        return _collate(local + remote)

    def _gather(self, calls: list, refs: list, actions: np.ndarray) -> list[tuple]:
        import ray

        try:
            shards = ray.get(refs)
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            shards = [self._call(k, calls[k], ref) for k, ref in enumerate(refs)]  # which one failed, and how
        remote = [res for shard in shards for res in shard]
        for i, res in enumerate(remote, start=self.local_envs):
            self.actions[i].append(np.array(actions[i], copy=True))
            self.last_obs[i] = res[0]
        return remote

    def close(self) -> None:
        import ray

        for a in getattr(self, "actors", []):
            ray.kill(a, no_restart=True)
        self.actors = []
        for env in getattr(self, "local", []):
            env.close()
        self.local = []
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
        self.owns_ray = False

    # ------------------------------------------------------------------------------------------- plumbing
    def _actor_of(self, i: int) -> int:
        if not self.local_envs <= i < self.num_envs:
            raise IndexError(f"env index {i} out of range for {self.num_envs} envs")
        return next(k for k in range(len(self.actors)) if i < self.bounds[k + 1])

    def _step_call(self, k: int, actions: np.ndarray):
        shard = np.ascontiguousarray(actions[self.bounds[k] : self.bounds[k + 1]])
        return lambda: self.actors[k].step.remote(shard)

    def _call(self, k: int, submit, ref=None) -> Any:
        """``ray.get`` of actor k's call (``ref``, or a new ``submit()``): an env's exception is re-raised with
        its type; a dead actor is waited for, rebuilt by replay, and the call sent again."""
        import ray

        for _ in range(MAX_RESTARTS + 1):
            try:
                return ray.get(ref if ref is not None else submit())
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                raise_worker_error((k, type(cause), str(cause), str(exc)), "Ray env actor")
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                ref = None
                self._recover(k, exc)
        raise ConnectionError(f"Ray env actor {k} kept dying ({MAX_RESTARTS + 1} times in one call); giving up")

    def _recover(self, k: int, cause: Exception) -> None:
        """Wait for Ray to restart actor k, then replay its envs' episodes and check they are where they were."""
        import ray

        envs = range(self.bounds[k], self.bounds[k + 1])
        log.warning("Ray env actor %d (envs %d-%d) died (%s); waiting for its restart",
                    k, envs[0], envs[-1], type(cause).__name__)  # fmt: skip
        self.deaths[k] += 1
        if self.deaths[k] > MAX_RESTARTS:  # Ray has given up on it too; the cluster, not s2r, is at fault
            raise ConnectionError(f"Ray env actor {k} died {self.deaths[k]} times (max_restarts {MAX_RESTARTS}); "
                                  "continue the run from its last checkpoint with `s2r train --resume`")  # fmt: skip
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while True:
            try:
                ray.get(self.actors[k].pid.remote(), timeout=10.0)
                break
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise ConnectionError(f"Ray env actor {k} did not come back within {RESTART_TIMEOUT_S:.0f} s (no "
                                          "free CPU left in the cluster?); continue with `s2r train --resume`") from None
                time.sleep(0.2)
        replayed = 0
        for i in envs:
            start = self.starts[i]
            if start is None:  # never reset: the fresh env is already where it was
                continue
            j = i - self.bounds[k]
            try:
                obs = ray.get(self.actors[k].replay.remote(j, start, self.actions[i]))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                return self._recover(k, exc)  # died again while replaying: start over on the next incarnation
            if not np.array_equal(obs, self.last_obs[i]):
                raise RuntimeError(
                    f"env {i} did not replay exactly after Ray env actor {k} restarted (its randomness is not all "
                    "from np_random?); continue the run from its last checkpoint with `s2r train --resume`"
                )
            replayed += len(self.actions[i])
        self.restarts += 1
        log.warning("Ray env actor %d restarted; its envs replayed %d steps exactly, the run goes on", k, replayed)
