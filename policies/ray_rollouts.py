"""Ray actors that act on their own with a copy of the policy (``s2r train --ray ADDR --ray-mode segments|async``).

In ``--ray-mode lockstep`` (``policies.ray_vec``) the driver computes every action and sends it to every actor,
one Ray call per actor and vector step. Here each actor holds its shard of the vector env AND a copy of the
policy, and runs many steps per call; the driver gets back what its envs did (observations, the actions taken,
rewards, terminated/truncated, the final observation and info at episode ends) and feeds it, step by step, to
the same training loop as a local run: the learner, ParamSource/ADR, episode stats, run folder, checkpoints,
resume, progress.csv and TensorBoard are untouched (the loop's one hook: ``action = venv.act(agent, obs)``).

``segments`` (PPO). At each rollout start the driver broadcasts, once, the actor weights and the observation
normalizer's statistics, and sends each actor its rows of the rollout's Gaussian noise, drawn from the driver's own torch stream exactly as
the local rollout would draw it (then that stream is left where it was, so the driver's ``agent.act`` draws the
same numbers again). Each actor then runs its envs until one of them ends an episode or the rollout is full,
returning its steps in pieces of ``PIECE_STEPS`` (it runs the next piece while the driver consumes this one).
An episode end is the only round trip: the driver's loop reaches that step, reports the result to ADR, samples
the next episode's parameters and resets the env in the actor (``reset_one``), which then goes on. ADR thus
stays exact, in the driver, and in the same order as a local run. The actors compute their rows on a batch of
the full vector env's shape (other rows zero): GEMM and tanh round a row alike only in a batch of the same shape
(a 1- or 2-row batch rounds differently), and this keeps the actions bit-equal to the driver's. The driver runs
``agent.act`` on every step anyway (it fills the rollout buffer and is cheap) and checks the actors' actions
against it bit for bit; the local envs (``local_envs``) step with it, while the actors run ahead.

Parity with ``--vec sync``. With the observation normalizer off or frozen (``normalize_obs: false``; after a
DAgger warm start), a seeded run gives the progress rows of ``--vec sync`` bit for bit
(tests/policies/test_ray_rollouts.py). With a running normalizer it cannot: in a local run the statistics used
at step t include every env's observations up to step t-1, and an actor that runs its shard alone for a rollout
does not know the other shards' observations. The actors (and the driver's buffer, so the PPO ratio stays the
policy's true ratio) use the statistics of the rollout's start, as RLlib's MeanStdFilter syncs its filters once
per iteration; the statistics themselves are updated in the driver step by step, as in a local run, so the next
rollout starts from the same kind of numbers. The difference is the drift of the statistics over one rollout;
the test checks that such a run still learns.

``async`` (TD3/DDPG). Every env is in an actor. An actor runs chunks of ``sync_every`` vector steps with the
actor weights (and normalizer statistics) it last received, plus its own exploration noise (seeded by the run's
seed and the actor index; uniform random actions during the warm-up, as the local learner's); the driver sends
new weights with each chunk. A chunk is requested as soon as the previous one arrives, so the actor steps it
while the learner makes its gradient updates on the previous one: the weights an action uses lag the learner's
by between ``sync_every`` and ``2 * sync_every`` vector steps (Ape-X-style actors, one learner). An episode end
pauses the actor until the driver's loop has reported it and reset the env with ADR's next parameters (exact
ADR, as above). The chunk boundaries and weight versions follow from step counts only, so a seeded run
repeats; it does not equal ``--vec sync`` (the lag and the actors' noise streams).

Faults are handled as in lockstep mode (``RayVecEnv._recover``): a dead actor is restarted by Ray, its envs are
replayed to the last step the loop consumed and checked bit for bit; then it gets the policy again and redoes
the steps that were delivered but not consumed (the same numbers in segments mode: same noise, same weights).
Nothing unconsumed ever reaches the rollout buffer or the replay buffer. In async mode the restarted actor
draws its exploration noise from a fresh stream. Cost and overhead: BENCHMARKS.md (Ray scale-out).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import Any

import numpy as np
import torch

from policies.networks import GaussianActor, build_actor, mlp_forward
from policies.normalizer import ObsNormalizer
from policies.ray_vec import EnvShard, RayVecEnv
from policies.vec_env import _collate, _step
from sim.errors import UserError

MODES = ("lockstep", "segments", "async")
PIECE_STEPS = 16  # segments: vector steps an actor returns per call at most; it runs the next piece while the
# driver replays this one (a whole segment per call would make the two take turns instead of overlapping)


class _SegmentPolicy:
    """PPO's Gaussian policy with the rollout's pre-drawn noise: row r of step v is ``eps[v - v0, r]·std + mean``,
    computed on a batch of the vector env's shape (see the module docstring)."""

    def __init__(self, spec: dict, eps: torch.Tensor, rows: slice, num_envs: int) -> None:
        actor = build_actor(spec["arch"])
        assert isinstance(actor, GaussianActor)  # the driver sends segments only for it
        actor.load_state_dict(spec["actor"])
        self.actor = actor
        self.norm = _normalizer(spec["norm"])
        self.eps, self.v0, self.rows = eps, int(spec["v"]), rows  # eps: this shard's rows (T, rows, act_dim)
        self.full = np.zeros((num_envs, int(spec["arch"]["obs_dim"])), dtype=np.float32)
        self.full_eps = torch.zeros(num_envs, int(spec["arch"]["act_dim"]))  # other rows: any number will do

    def act(self, v: int, obs: np.ndarray) -> np.ndarray:
        self.full[self.rows] = self.norm(obs)
        self.full_eps[self.rows] = self.eps[v - self.v0]
        with torch.inference_mode():
            mean = mlp_forward(self.actor.net, torch.from_numpy(self.full))
            raw = self.full_eps.mul(self.actor.log_std.exp().expand_as(mean)).add(mean)  # = torch.normal's ops
            return self.actor.to_env(raw)[self.rows].numpy()

    def episode_end(self, j: int) -> None:
        pass


class _ExplorationPolicy:
    """TD3/DDPG's actor plus Gaussian or OU exploration noise; uniform random actions during the warm-up."""

    def __init__(self, spec: dict, rng: np.random.Generator, n_envs: int) -> None:
        self.actor = build_actor(spec["arch"])
        self.actor.load_state_dict(spec["actor"])
        self.norm = _normalizer(spec["norm"])
        self.spec, self.rng = spec, rng
        self.act_dim = int(spec["arch"]["act_dim"])
        self.ou = np.zeros((n_envs, self.act_dim))

    def act(self, v: int, obs: np.ndarray) -> np.ndarray:
        s, n = self.spec, obs.shape[0]
        steps_seen = s["steps_seen"] + (v - s["v"]) * s["num_envs"]  # the learner's count at this step
        if steps_seen < s["learning_starts"]:
            return self.rng.uniform(-1.0, 1.0, (n, self.act_dim)).astype(np.float32)
        with torch.no_grad():
            a = self.actor(torch.as_tensor(self.norm(obs))).numpy()
        if s["noise_type"] == "ou":
            self.ou += -s["ou_theta"] * self.ou + s["expl_noise"] * self.rng.standard_normal((n, self.act_dim))
            noise = self.ou
        else:
            noise = s["expl_noise"] * self.rng.standard_normal((n, self.act_dim))
        return np.clip(a + noise, -1.0, 1.0).astype(np.float32)

    def episode_end(self, j: int) -> None:
        self.ou[j] = 0.0


def _normalizer(state: dict) -> ObsNormalizer:
    norm = ObsNormalizer(len(state["mean"]))
    norm.load_state_dict(state)
    norm.frozen = True
    return norm


class RolloutShard(EnvShard):
    """Runs in a Ray actor: an :class:`EnvShard` that also holds a copy of the policy and runs many steps per call.
    It keeps each env's current observation (the policy's input)."""

    def __init__(self, index: int, env_id: str, n_envs: int, env_kwargs: dict, info_keys: tuple[str, ...] = ()):
        super().__init__(index, env_id, n_envs, env_kwargs, info_keys)
        self.obs: list[Any] = [None] * len(self.envs)
        self.policy: Any = None
        self.rows, self.num_envs = slice(0, len(self.envs)), len(self.envs)
        self.rng = np.random.default_rng(index)

    def setup(self, rows: tuple[int, int], num_envs: int, seed: int, torch_threads: int) -> None:
        """Where this shard's rows sit in the vector env, the noise seed and the learner's torch settings (a
        restarted actor gets them again: Ray reruns only ``__init__``)."""
        self.rows, self.num_envs = slice(*rows), num_envs
        self.rng = np.random.default_rng([seed, self.index])
        torch.set_num_threads(torch_threads)
        torch.set_flush_denormal(True)  # as train() sets it for the learner: the same float results

    def load(self, spec: dict, eps: torch.Tensor | None) -> None:
        """A new copy of the policy: ``spec`` (weights, normalizer statistics...) and, for a PPO rollout, this
        shard's rows of its noise."""
        if spec["kind"] == "segments":
            assert eps is not None
            self.policy = _SegmentPolicy(spec, eps, self.rows, self.num_envs)
        else:
            ou = getattr(self.policy, "ou", None)
            self.policy = _ExplorationPolicy(spec, self.rng, len(self.envs))
            if ou is not None:  # an OU process goes on across weight updates (it restarts at episode ends)
                self.policy.ou = ou

    def step(self, actions: np.ndarray) -> list[tuple]:
        out = super().step(actions)
        self.obs = [res[0] for res in out]
        return out

    def reset(self, j: int, seed: int | None, options: dict | None) -> tuple[np.ndarray, dict, Any]:
        out = super().reset(j, seed, options)
        self.obs[j] = out[0]
        if self.policy is not None:
            self.policy.episode_end(j)
        return out

    def replay(self, j: int, start: tuple, actions: list[np.ndarray]) -> np.ndarray:
        self.obs[j] = super().replay(j, start, actions)
        return self.obs[j]

    def run(self, v0: int, n: int) -> tuple[list[list[tuple]], np.ndarray]:
        """Vector steps ``v0 .. v0 + n - 1`` with the loaded policy, stopping after a step where an episode ended
        (the driver resets that env); returns each step's per-env results and the actions taken."""
        results, actions = [], []
        for v in range(v0, v0 + n):
            a = self.policy.act(v, np.stack(self.obs))
            res = [_step(env, a_j, self.info_keys) for env, a_j in zip(self.envs, a, strict=True)]
            self.obs = [r[0] for r in res]
            results.append(res)
            actions.append(a)
            if any(r[2] or r[3] for r in res):
                break
        return results, np.stack(actions)


class RayRolloutVecEnv(RayVecEnv):
    """A :class:`RayVecEnv` whose actors act on their own (``mode`` "segments" or "async", see the module
    docstring). The training loop calls :meth:`act` instead of ``agent.act``; the rest is the vector-env contract.
    Async mode keeps no env in this process (``local_envs`` 0)."""

    SHARD = RolloutShard

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict | None = None, address: str = "local",
                 mode: str = "segments", sync_every: int = 50, seed: int = 0, torch_threads: int = 1,
                 n_actors: int | None = None, local_envs: int | None = None,
                 info_keys: tuple[str, ...] = ()) -> None:  # fmt: skip
        if mode not in ("segments", "async"):
            raise UserError(f"unknown Ray rollout mode '{mode}'; use segments (PPO) or async (TD3/DDPG)")
        if mode == "async":
            local_envs = 0  # the learner updates while the actors step: it has no time to step envs
        super().__init__(env_id, num_envs, env_kwargs, address=address, n_actors=n_actors, local_envs=local_envs,
                         info_keys=info_keys)  # fmt: skip
        self.mode, self.sync_every, self.seed, self.torch_threads = mode, max(1, sync_every), seed, torch_threads
        n = len(self.actors)
        for k in range(n):
            self._setup(k)
        self.v = 0  # vector steps consumed by the loop
        self.queue: list[deque] = [deque() for _ in range(n)]  # per actor: delivered (results, actions), unconsumed
        self.pending: list[Any] = [None] * n  # per actor: the ref of a run in flight
        self.next_v = [0] * n  # per actor: the vector step its next run starts at
        self.waiting: list[set[int]] = [set() for _ in range(n)]  # per actor: its envs that ended, to be reset
        self.loaded: list[int] = [-1] * n  # per actor: the policy spec it holds (its id)
        self.spec_ref: Any = None
        self.spec_id = -1
        self.spec_v = -1  # the consumed step its spec was made at (async: weights refresh when this moved on)
        self.eps = torch.zeros(0)  # segments: the rollout's Gaussian noise (T, num_envs, act_dim)
        self.end_v: float = 0  # the actors run up to this vector step (a rollout's end; async: no end)
        self.agent: Any = None
        self.live_norm: ObsNormalizer | None = None  # segments: the loop's normalizer, while the PPO agent
        self.swapped: Any = None  # (this one) acts with the rollout's snapshot

    # ------------------------------------------------------------------------------------------ the hook
    def act(self, agent: Any, obs: np.ndarray) -> np.ndarray:
        """What the training loop calls instead of ``agent.act(obs)``: the actions of this vector step."""
        self.agent = agent
        if self.mode == "async":
            if self.end_v == 0:  # the first step: the actors start
                self.end_v = math.inf
                for k in range(len(self.actors)):
                    self.next_v[k] = self.v
                    self._submit(k)
            for k in range(len(self.actors)):
                self._need(k)
            return np.concatenate([self.queue[k][0][1] for k in range(len(self.actors))])
        ppo = getattr(agent, "agent", agent)  # PPO itself, or the PPO inside the DAgger warm start
        if getattr(ppo, "t", None) == 0:  # between PPO rollouts
            self._restore_normalizer()
            if self._segments_apply(agent, ppo):
                self._start_rollout(ppo)
        return agent.act(obs)

    @staticmethod
    def _segments_apply(agent: Any, ppo: Any) -> bool:
        """A PPO rollout of the Gaussian policy (the DAgger warm start and the Beta policy step in lockstep)."""
        return hasattr(ppo, "buf") and not getattr(agent, "imitating", False) and ppo.cfg.distribution == "gaussian"

    def _start_rollout(self, ppo: Any) -> None:
        n_steps = ppo.cfg.n_steps
        self.swapped, self.live_norm = ppo, ppo.normalizer
        snapshot = copy.deepcopy(ppo.normalizer)
        snapshot.frozen = True
        ppo.normalizer = snapshot  # the rollout buffer holds what the actors' policy saw
        with torch.random.fork_rng(devices=[]):  # the draws ppo.act will make again, step by step
            self.eps = torch.stack([torch.empty(self.num_envs, ppo.act_dim).normal_() for _ in range(n_steps)])
        self._new_spec({"kind": "segments", "arch": ppo.actor_arch, "actor": _weights(ppo.actor),
                        "norm": snapshot.state_dict(), "v": self.v})  # fmt: skip
        self.end_v = self.v + n_steps
        for k in range(len(self.actors)):
            self.next_v[k] = self.v
            self._submit(k)

    def _restore_normalizer(self) -> None:
        if self.live_norm is not None:
            self.swapped.normalizer, self.live_norm = self.live_norm, None

    # ---------------------------------------------------------------------------------------- the contract
    def step(self, actions: np.ndarray) -> tuple:
        if self.v >= self.end_v:  # no rollout in the actors: lockstep (DAgger warm start, Beta policy)
            self.v += 1
            return super().step(actions)
        local = [_step(env, a, self.info_keys) for env, a in zip(self.local, actions, strict=False)]  # actors run
        remote: list[tuple] = []
        for k in range(len(self.actors)):
            self._need(k)
            results, taken = self.queue[k].popleft()
            lo, hi = self.bounds[k], self.bounds[k + 1]
            if not np.array_equal(actions[lo:hi], taken):
                raise RuntimeError(f"Ray actor {k} took other actions than the learner's at vector step {self.v} "
                                   "(a bug in policies.ray_rollouts; use --ray-mode lockstep)")  # fmt: skip
            for j, res in enumerate(results):
                self.actions[lo + j].append(np.array(taken[j], copy=True))
                self.last_obs[lo + j] = res[0]
            self.waiting[k] = {j for j, res in enumerate(results) if res[2] or res[3]}
            remote += results
        self.v += 1
        return _collate(local + remote)

    def reset_one(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        out = super().reset_one(i, seed, options)
        if i >= self.local_envs:
            k = self._actor_of(i)
            self.waiting[k].discard(i - self.bounds[k])
            if not self.waiting[k] and self.pending[k] is None and not self.queue[k] and self.next_v[k] < self.end_v:
                self._submit(k)  # it goes on while the loop finishes this step
        return out

    def close(self) -> None:
        self._restore_normalizer()
        super().close()

    # ------------------------------------------------------------------------------------------- plumbing
    def _setup(self, k: int) -> None:
        self.actors[k].setup.remote((0, self.bounds[k + 1] - self.bounds[k]) if self.mode == "async"
                                    else (self.bounds[k], self.bounds[k + 1]), self.num_envs, self.seed,
                                    self.torch_threads)  # fmt: skip

    def _new_spec(self, spec: dict) -> None:
        import ray

        self.spec_ref, self.spec_id, self.spec_v = ray.put(spec), self.spec_id + 1, self.v

    def _run_ref(self, k: int) -> Any:
        """Send actor k its run from ``next_v[k]`` (and the policy first, if it holds an older one)."""
        if self.mode == "async" and self.spec_v != self.v:  # the learner has moved on: new weights
            a = self.agent
            self._new_spec({"kind": "async", "arch": a.actor_arch, "actor": _weights(a.actor),
                            "norm": a.normalizer.state_dict(), "v": self.v, "steps_seen": a.steps_seen,
                            "num_envs": self.num_envs, "learning_starts": a.cfg.learning_starts,
                            "expl_noise": a.cfg.expl_noise, "noise_type": a.cfg.noise_type,
                            "ou_theta": a.cfg.ou_theta})  # fmt: skip
        if self.loaded[k] != self.spec_id:
            eps = self.eps[:, self.bounds[k] : self.bounds[k + 1]].clone() if self.mode == "segments" else None
            self.actors[k].load.remote(self.spec_ref, eps)  # an actor runs its calls in order: before the run
            self.loaded[k] = self.spec_id
        n = self.sync_every if self.mode == "async" else int(min(PIECE_STEPS, self.end_v - self.next_v[k]))
        return self.actors[k].run.remote(self.next_v[k], n)

    def _submit(self, k: int) -> None:
        self.pending[k] = self._run_ref(k)

    def _need(self, k: int) -> None:
        """Make sure actor k's record of vector step ``self.v`` is in its queue."""
        while not self.queue[k]:
            if self.pending[k] is None:
                if self.waiting[k]:
                    raise RuntimeError(f"Ray actor {k}: envs {sorted(self.waiting[k])} of its shard ended an episode "
                                       "and were not reset before the next step")  # fmt: skip
                self._submit(k)
            ref, self.pending[k] = self.pending[k], None
            results, actions = self._call(k, lambda k=k: self._run_ref(k), ref)
            self.next_v[k] += len(results)
            self.queue[k].extend(zip(results, actions, strict=True))
            ended = any(r[2] or r[3] for r in results[-1])
            if not ended and self.next_v[k] < self.end_v:
                self._submit(k)  # the next chunk steps while the learner works through this one

    def _recover(self, k: int, cause: Exception) -> None:
        super()._recover(k, cause)  # restarted, envs replayed to the last consumed step and checked
        self._setup(k)
        self.loaded[k] = -1
        self.queue[k].clear()
        self.pending[k] = None
        self.next_v[k] = self.v  # redo what was delivered but not consumed


def _weights(module: torch.nn.Module) -> dict:
    return {name: t.detach().clone() for name, t in module.state_dict().items()}



def make_rollout_vec_env(cfg: Any, env_kwargs: dict, info_keys: tuple[str, ...] = ()) -> RayRolloutVecEnv:
    """The vector env of a resolved ``TrainConfig`` with ``ray_mode`` segments or async (``info_keys``: as
    ``policies.vec_env.make_vec_env``'s)."""
    if cfg.vec != "auto":
        raise UserError(f"--vec {cfg.vec} and --ray both say where the envs step; give one of them")
    return RayRolloutVecEnv(cfg.env, cfg.num_envs, env_kwargs, address=cfg.ray, mode=cfg.ray_mode,
                            sync_every=cfg.ray_sync_every, seed=cfg.seed, torch_threads=max(1, cfg.torch_threads),
                            info_keys=info_keys)  # fmt: skip
