"""The training loop: :class:`Runner` owns envs, timing, logging, evaluation (``best.pt``), checkpoints, stop
signals and exact resume, for any :class:`policies.agent.Agent` — it never asks which one (rsl_rl's
``OnPolicyRunner``). What differs between on- and off-policy learners sits behind the agent's interface: when it
wants an update (``update_due``), when a checkpoint loses nothing (``at_boundary``), its replay buffer.

:meth:`Runner.learn` is the loop, on one screen; the rest of this module is its plumbing. ``policies.train``
builds the run (config, run folder, envs' probe, parameter source, agent) and hands it to a runner.
"""

from __future__ import annotations

import math
import random
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from domain_rand.base import ParamSource
from policies.agent import PHASES, Agent
from policies.checkpoint import (
    InferencePolicy,
    atomic_torch_save,
    inference_policy_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from policies.evaluate import evaluate
from policies.logger import CsvLog, Progress, TensorBoard
from policies.normalizer import ObsNormalizer
from policies.vec_env import make_env, make_vec_env
from sim.engines import env_kwargs
from sim.errors import UserError

if TYPE_CHECKING:
    from policies.train import TrainConfig

REPLAY = "replay.pt"
EVAL_SEED = 1_000_000  # eval episodes during training use seeds EVAL_SEED + seed * 1000 + k: never the seeds
# `s2r eval` starts from (10_000), so the reported evaluation is not the one best.pt was selected on
VIDEO_FRAME_EVERY = 5  # --video-every: a frame every 5th control step (10 per second of a 50 Hz robot)...
VIDEO_MAX_STEPS = 500  # ...for at most 500 steps: rendering costs far more than the physics
VIDEO_SEED = 10_000  # every video shows the same episode (s2r eval's first seed), on the nominal plant


class Runner:
    """Trains ``agent`` in the run folder ``run_dir`` to ``cfg.steps`` env steps (:meth:`learn`), after
    :meth:`restore` when the run is resumed. ``meta`` is what every checkpoint records about the run (env and
    robot ids, dimensions, config, commit); ``perf_kind`` what the parameter source's thresholds apply to."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, agent: Agent, norm: ObsNormalizer, source: ParamSource,
                 meta: dict[str, Any], signals: StopSignals, perf_kind: str) -> None:  # fmt: skip
        self.cfg, self.run_dir, self.agent, self.norm, self.source = cfg, run_dir, agent, norm, source
        self.meta, self.signals, self.perf_kind = {**meta, "actor_arch": agent.actor_arch}, signals, perf_kind
        self.ckpt_dir = run_dir / "checkpoints"
        self.stats = EpisodeStats(cfg.stats_window)
        self.counters: dict[str, Any] = {"global_step": 0, "resumes": 0, "time_s": 0.0}
        self.best_return = -math.inf  # highest rolling training return seen (reported, not used to choose best.pt)
        self.best_eval = -math.inf  # highest deterministic eval return: best.pt
        self.csv_log = CsvLog(run_dir / "progress.csv")
        self.saved_at = -1  # step of the newest checkpoint on disk
        self.last_eval = -1
        self.losses: dict[str, list[float]] = {}
        self.phase = agent.phase

    @property
    def step(self) -> int:
        return int(self.counters["global_step"])

    # ------------------------------------------------------------------------------------------------ the loop
    def learn(self) -> dict[str, Any]:
        """Run to ``cfg.steps`` env steps; SIGINT/SIGTERM save a checkpoint and raise :class:`TrainingStopped`.
        Returns the run's summary."""
        cfg, agent = self.cfg, self.agent
        kwargs = {**env_kwargs(cfg.env, cfg.engine), **cfg.training_env_kwargs()}  # --env-options, action filter
        # an asymmetric critic (the config's privileged_critic) reads info["privileged"] of every step: the s2r envs
        # report it only when asked (privileged=True), as it costs every step
        self.privileged = bool(getattr(cfg.algo_config, "privileged_critic", False))
        if self.privileged:
            kwargs["privileged"] = True
        info_keys = ("privileged",) if self.privileged else ()
        # --ray-mode segments|async: the Ray actors act with a copy of the policy; the loop asks them for the actions
        actors_act = cfg.ray is not None and cfg.ray_mode != "lockstep"
        if actors_act:
            from policies.ray_rollouts import make_rollout_vec_env

            self.venv = make_rollout_vec_env(cfg, kwargs, info_keys)
        else:
            self.venv = make_vec_env(cfg.env, cfg.num_envs, cfg.vec, env_kwargs=kwargs,
                                     ray=cfg.ray, info_keys=info_keys)  # fmt: skip
        try:
            obs = self._start()  # fresh episodes, clocks, schedules, logs
            try:
                while self.step < cfg.steps:
                    # ---- rollout: one step of every sub-env
                    action = self.venv.act(agent, obs) if actors_act else agent.act(obs)
                    next_obs, reward, terminated, truncated, infos = self.venv.step(action)
                    self.ep_ret += reward
                    self.ep_len += 1
                    agent.observe(obs, action, reward, next_obs, terminated, truncated, **self._privileged(infos))
                    # ---- episode ends: statistics, the parameter source's report, fresh episodes
                    obs = self._end_episodes(next_obs, terminated, truncated, infos)
                    self.counters["global_step"] += cfg.num_envs
                    # ---- update: whenever the agent wants one (a full rollout, a replay step, a refit)
                    self._follow_phase()  # before a long update (the final DAgger fit) and after it
                    self._update()
                    self._follow_phase()
                    # ---- evaluation (best.pt), progress.csv, checkpoints, videos
                    self._periodic()
                    self.progress.update(self.step, self._status)
                self._finish()
            except KeyboardInterrupt as exc:
                self._stop(exc)
        finally:
            self._close()
        return {"run_dir": str(self.run_dir), "global_step": self.step, **self.stats.row(),
                "time_s": self._time_s(), "best_return": self.best_return, "best_eval": self.best_eval}  # fmt: skip

    # ------------------------------------------------------------------------------------------------ envs
    def _start(self) -> np.ndarray:
        """Reset every sub-env and start the clocks, schedules and logs; returns the first observations."""
        cfg, n, step = self.cfg, self.cfg.num_envs, self.step
        self.tags: list[Any] = [None] * n
        self.ep_ret, self.ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)
        # env states cannot be checkpointed: a resumed run starts fresh episodes, seeded by (seed, resume count)
        base_seed = cfg.seed * 1_000_003 + self.counters["resumes"] * 10_007
        self.priv: list[Any] = [None] * n  # info["privileged"] of each sub-env's current observation
        obs = np.stack([self._reset_env(i, base_seed + i) for i in range(n)])
        if hasattr(self.agent, "reset_memory"):  # every episode starts afresh: so does a memory of them
            self.agent.reset_memory()
        self.norm.update(obs)
        self.log_every = cfg.log_every or self.agent.log_every
        self.next_at = {"log": self._next(step, self.log_every), "ckpt": self._next(step, cfg.checkpoint_every),
                        "eval": self._next(step, cfg.eval_every), "video": self._next(step, cfg.video_every)}  # fmt: skip
        self.time_base, self.t_start = float(self.counters["time_s"]), time.monotonic()
        self.rate_t, self.rate_step = self.t_start, step
        self.tb = TensorBoard(self.run_dir / "tb", cfg.tensorboard)
        self.progress = Progress(cfg.steps, step, enabled=cfg.progress)
        self.progress.note(f"phase {self._phase_name()} at step {step}: {PHASES[self.phase].format(algo=cfg.algo)}")
        return obs

    def _reset_env(self, i: int, seed: int | None) -> np.ndarray:
        params, self.tags[i] = self.source.sample()
        o, info = self.venv.reset_one(i, seed=seed, options={"params": params} if params else None)
        self.ep_ret[i], self.ep_len[i] = 0.0, 0
        self.priv[i] = info.get("privileged")
        return o

    def _privileged(self, infos: list) -> dict[str, np.ndarray]:
        """For an asymmetric critic, the privileged states of the step's observations and next observations (the
        final one where an episode ended; the fresh episode's replaces it in :meth:`_reset_env`); else nothing."""
        if not self.privileged:
            return {}
        before, after = np.stack(self.priv), np.stack([info["privileged"] for info in infos])
        self.priv = list(after)
        return {"privileged": before, "next_privileged": after}

    def _end_episodes(self, next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                      infos: list) -> np.ndarray:  # fmt: skip
        """Record the episodes that ended, report them to the parameter source and start the next ones; returns
        the observations the agent acts on next (the normalizer learns them)."""
        for i in np.flatnonzero(np.logical_or(terminated, truncated)):
            info = infos[i] or {}
            self.stats.add(float(self.ep_ret[i]), int(self.ep_len[i]), info)
            perf = _performance(self.cfg.env, float(self.ep_ret[i]), info, self.perf_kind)
            self.source.report(self.tags[i], perf)
            next_obs[i] = self._reset_env(int(i), None)
        self.norm.update(next_obs)
        return next_obs

    # ------------------------------------------------------------------------------------------------ updates
    def _update(self) -> None:
        """The agent's update, with ``update_threads`` intra-op threads while it trains; its losses are kept for
        the next progress row."""
        threads, update_threads = max(1, self.cfg.torch_threads), self.cfg.update_threads
        if update_threads != threads and self.agent.update_due:
            torch.set_num_threads(update_threads)
            try:
                out = self.agent.update()
            finally:
                torch.set_num_threads(threads)
        else:
            out = self.agent.update()
        for k, v in (out or {}).items():
            self.losses.setdefault(k, []).append(v)

    def _follow_phase(self) -> None:
        if self.agent.phase != self.phase:
            self.phase = self.agent.phase
            self.progress.note(f"phase {self._phase_name()} at step {self.step}: "
                               f"{PHASES[self.phase].format(algo=self.cfg.algo)}")  # fmt: skip
            self.stats.clear_window()  # another actor from here on: the window shows its episodes only

    def _phase_name(self) -> str:
        """The name shown and logged: the algorithm's for the policy's own learning (ppo, td3, ddpg)."""
        return self.cfg.algo if self.phase == "learn" else self.phase

    def _status(self) -> str:
        return f"{self._phase_name()} | {self.stats.line()}"

    # ------------------------------------------------------------------------------------------------ schedule
    @staticmethod
    def _next(step: int, every: int) -> float:
        """The first multiple of ``every`` after ``step`` (never, for ``every`` 0: the event is off)."""
        return (step // every + 1) * every if every else math.inf

    def _periodic(self) -> None:
        """What is due at this step: an evaluation, a progress row, a checkpoint, a video. Evaluations and
        checkpoints wait for the agent's boundary (PPO: between rollouts, so resume loses no transitions)."""
        cfg, step, boundary = self.cfg, self.step, self.agent.at_boundary
        eval_row, selection = None, None
        if boundary and step >= self.next_at["eval"]:
            self.next_at["eval"] = self._next(step, cfg.eval_every)
            eval_row, selection = self._evaluate()
            self.last_eval = step
        if step >= self.next_at["log"] or eval_row:
            self.next_at["log"] = self._next(step, self.log_every)
            self._log_row(eval_row)
        if boundary and (step >= self.next_at["ckpt"] or eval_row):
            self.next_at["ckpt"] = self._next(step, cfg.checkpoint_every)
            self._checkpoint(selection)
        if step >= self.next_at["video"]:
            self.next_at["video"] = self._next(step, cfg.video_every)
            path, ret = self._record_video()
            self.progress.note(f"video at step {step}: {path} (deterministic policy, return {ret:.1f})")

    def _finish(self) -> None:
        """The end of the run: judge the final policy too, log the last partial interval, save."""
        step, eval_row, selection = self.step, None, None
        if self.cfg.eval_every and step >= self.cfg.eval_every and self.last_eval != step:
            eval_row, selection = self._evaluate()
        if self.rate_step != step or eval_row:
            self._log_row(eval_row)
        if self.saved_at != step or selection:
            self._checkpoint(selection)

    def _stop(self, exc: KeyboardInterrupt) -> None:
        """A stop signal (or Ctrl-C): save unless the checkpoint is current, say how to continue, re-raise."""
        signum = getattr(exc, "signum", signal.SIGINT)
        try:
            if self.saved_at != self.step:
                self._checkpoint()
        except KeyboardInterrupt:
            pass  # a second signal during that save: protect() let the save finish first
        print(f"s2r: stopped by {signal.Signals(signum).name} at step {self.step:,}; checkpoint saved in "
              f"{self.ckpt_dir} (continue with `s2r train --resume {self.run_dir}`)", file=sys.stderr, flush=True)
        raise TrainingStopped(signum) from None

    def _close(self) -> None:
        if hasattr(self, "progress"):
            self.progress.close()
            self.tb.close()
        self.venv.close()

    # ------------------------------------------------------------------------------------------------ logging
    def _time_s(self) -> float:
        return self.time_base + time.monotonic() - self.t_start

    def _log_row(self, extra: dict[str, float] | None = None) -> None:
        """A progress.csv row (and TensorBoard scalars): episode stats, mean losses since the last row, the
        parameter source's numbers, and ``extra`` (an evaluation)."""
        now, step = time.monotonic(), self.step
        row: dict[str, float | str] = {"global_step": float(step), "phase": self._phase_name(), "time_s": self.time_base + now - self.t_start,
               "steps_per_s": (step - self.rate_step) / max(1e-9, now - self.rate_t), **self.stats.row(),
               **{k: float(np.mean(v)) for k, v in self.losses.items()}, **self.source.scalars(),
               **(extra or {})}  # fmt: skip
        self.rate_t, self.rate_step, self.losses = now, step, {}
        self.csv_log.write(row)
        self.tb.write(row, step)

    # ------------------------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self, selection: dict[str, Any] | None = None) -> None:
        """Save latest.pt (and best.pt when ``selection``, the evaluation that made this the best policy), the
        replay buffer first: a checkpoint must never outrun its replay."""
        row = self.stats.row()
        if "return_mean" in row and row["return_mean"] > self.best_return:
            self.best_return = row["return_mean"]
        self.counters["time_s"] = self._time_s()
        ckpt = {**self.meta, "actor": self.agent.actor.state_dict(), "agent": self.agent.state_dict(),
                "normalizer": self.norm.state_dict(), "param_source": self.source.state_dict(),
                "episode_stats": self.stats.state_dict(), "rng": _rng_state(), "counters": dict(self.counters),
                "best_return": self.best_return, "best_eval": self.best_eval, "replay_step": self.step,
                **({"selection": selection} if selection else {})}  # fmt: skip
        replay = self.agent.replay if self.cfg.save_replay else None

        def save() -> None:
            if replay is not None:
                atomic_torch_save({"step": self.step, **replay.state_dict()}, self.ckpt_dir / REPLAY)
            save_checkpoint(ckpt, self.ckpt_dir, best=selection is not None)

        self.signals.protect(save)
        self.saved_at = self.step

    def restore(self) -> None:
        """Continue from the run's newest loadable checkpoint: agent, normalizer, parameter source, episode
        window, RNGs, counters, replay buffer; progress.csv loses the rows logged after it."""
        ckpt, path = load_checkpoint(self.run_dir)
        self.agent.load_state_dict(ckpt["agent"])
        self.norm.load_state_dict(ckpt["normalizer"])
        self.source.load_state_dict(ckpt["param_source"])
        self.stats.load_state_dict(ckpt["episode_stats"])
        _set_rng_state(ckpt["rng"])
        self.counters = dict(ckpt["counters"])
        self.counters["resumes"] += 1
        self.best_return = float(ckpt["best_return"])
        self.best_eval = float(ckpt.get("best_eval", -math.inf))
        self.phase = self.agent.phase
        step = self.step
        if step >= self.cfg.steps:
            raise UserError(f"{self.run_dir} is already at step {step:,} of its {self.cfg.steps:,}; give a larger "
                            "--steps (the new total) to continue it")  # fmt: skip
        self.csv_log.truncate_after(step)
        if self.agent.replay is not None and self.cfg.save_replay:
            self._load_replay(ckpt["replay_step"])
        self.saved_at = step
        print(f"s2r: resumed {self.run_dir} from {path.name} at step {step}", file=sys.stderr)

    def _load_replay(self, step: int) -> None:
        """Restore the replay buffer saved with the checkpoint at ``step``; missing/corrupt → start empty."""
        path = self.ckpt_dir / REPLAY
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            print(f"s2r: warning: replay buffer {path} unreadable ({type(exc).__name__}); refilling it",
                  file=sys.stderr)  # fmt: skip
            self.agent.forget_replay()
            return
        if int(state.get("step", -1)) != int(step):
            # replay.pt is newer than the checkpoint we fell back to: still valid data, only a few steps ahead
            print(f"s2r: note: replay buffer from step {state.get('step')} used with checkpoint step {step}",
                  file=sys.stderr)  # fmt: skip
        assert self.agent.replay is not None
        self.agent.replay.load_state_dict(state)

    # ------------------------------------------------------------------------------------------------ evaluation
    def _policy(self) -> InferencePolicy:
        """The current policy as an inference policy (frozen normalizer folded in), as a checkpoint gives it."""
        return inference_policy_from_checkpoint({**self.meta, "actor": self.agent.actor.state_dict(),
                                                 "normalizer": self.norm.state_dict()})  # fmt: skip

    def _evaluate(self) -> tuple[dict[str, float], dict[str, Any] | None]:
        """Deterministic episodes on the nominal plant; returns the eval row and, if best so far, the selection."""
        cfg, step = self.cfg, self.step
        self.progress.note(f"evaluating the policy at step {step:,} ({cfg.eval_episodes} deterministic episodes "
                           "on the nominal plant)...")  # fmt: skip
        policy = self._policy()
        with torch.random.fork_rng():  # evaluation must not shift the training's random streams
            py_state = random.getstate()
            summary = evaluate(policy, cfg.eval_episodes, seed=EVAL_SEED + cfg.seed * 1000, engine=cfg.engine).summary()
            random.setstate(py_state)
        eval_row = {f"eval_{k}": v for k, v in summary.items() if k != "episodes"}
        is_best = summary["return_mean"] > self.best_eval
        self.progress.note(f"eval at step {step:,}: return {summary['return_mean']:.1f} ± {summary['return_std']:.1f} "
                           f"over {cfg.eval_episodes} deterministic episodes"
                           + (" (best so far: saved as best.pt)" if is_best else f" (best {self.best_eval:.1f})"))  # fmt: skip
        if not is_best:
            return eval_row, None
        self.best_eval = summary["return_mean"]
        return eval_row, {"metric": "eval_return_mean", "value": self.best_eval, "std": summary["return_std"],
                          "episodes": cfg.eval_episodes, "step": step}  # fmt: skip

    def _record_video(self) -> tuple[Path, float]:
        """One deterministic episode of the current policy → ``run_dir/videos/step_NNNNNNNNN.mp4`` (.gif without
        imageio-ffmpeg) and a few of its frames to TensorBoard; returns (path, episode return)."""
        from policies.evaluate import EvalResult, run_policy_episode
        from sim.video import mp4_available, write_video

        policy = self._policy()
        env = make_env(self.cfg.env, render_mode="rgb_array")
        frames: list[np.ndarray] = []
        result = EvalResult()
        py_state = random.getstate()
        try:
            with torch.random.fork_rng():  # like evaluations: a video must not shift the training's random streams
                fps = float(env.metadata.get("render_fps") or 50) / VIDEO_FRAME_EVERY
                run_policy_episode(env, policy, VIDEO_SEED, None, result, frames, VIDEO_FRAME_EVERY, VIDEO_MAX_STEPS)
        finally:
            env.close()
            random.setstate(py_state)
        ext = "mp4" if mp4_available() else "gif"
        path = write_video(frames, self.run_dir / "videos" / f"step_{self.step:09d}.{ext}", fps=fps)
        self.tb.frames("video/episode", frames, self.step, note=f"{path} (return {result.returns[0]:.1f})")
        return path, result.returns[0]


def _performance(env_id: str, ep_return: float, info: dict, kind: str) -> float:
    try:
        from domain_rand import episode_performance
    except ImportError:
        return ep_return
    return episode_performance(env_id, ep_return, info, kind)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


class EpisodeStats:
    """Rolling window of finished episodes: return, length, and every task metric of the final
    ``info["metrics"]`` (domain_rand.success.episode_metrics), whatever the task reports. Columns: the mean of
    each metric under its own name, ``success`` as ``success_rate`` and ``fell`` as ``fall_rate``."""

    COLUMNS = {"success": "success_rate", "fell": "fall_rate"}  # metric → column, where the names differ
    OLD_KEYS = {"is_success": "success"}  # window keys of checkpoints written before info["metrics"]

    def __init__(self, window: int) -> None:
        self.window: dict[str, deque[float]] = {k: deque(maxlen=window) for k in ("return", "length")}
        self.size = window
        self.episodes = 0

    def add(self, ep_return: float, length: int, info: dict) -> None:
        from domain_rand.success import episode_metrics

        self.episodes += 1
        self.window["return"].append(ep_return)
        self.window["length"].append(length)
        for k, v in episode_metrics(info).items():
            self.window.setdefault(k, deque(maxlen=self.size)).append(v)

    def row(self) -> dict[str, float]:
        w = self.window
        out = {"episodes": float(self.episodes)}
        if w["return"]:
            out.update(return_mean=float(np.mean(w["return"])), return_std=float(np.std(w["return"])),
                       length_mean=float(np.mean(w["length"])))  # fmt: skip
        for k, values in w.items():
            if k not in ("return", "length") and values:
                out[self.COLUMNS.get(k, k)] = float(np.mean(values))
        return out

    def clear_window(self) -> None:
        """Forget the windowed episodes (at a phase change: the next numbers are the new phase's alone)."""
        for w in self.window.values():
            w.clear()

    def line(self) -> str:
        r = self.row()
        parts = [f"episodes {self.episodes}"]
        if "return_mean" in r:
            parts.append(f"return {r['return_mean']:.1f}")
        if "success_rate" in r:
            parts.append(f"success {100 * r['success_rate']:.0f}%")
        basic = {"episodes", "return_mean", "return_std", "length_mean", "success_rate"}
        parts += [f"{name} {value:.2f}" for name, value in r.items() if name not in basic]
        return " | ".join(parts)

    def state_dict(self) -> dict:
        return {"episodes": self.episodes, **{k: list(v) for k, v in self.window.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.episodes = int(state["episodes"])
        for k, values in state.items():
            if k != "episodes":
                self.window.setdefault(self.OLD_KEYS.get(k, k), deque(maxlen=self.size)).extend(values)


class TrainingStopped(KeyboardInterrupt):
    """A training stopped by SIGINT or SIGTERM after saving its checkpoint; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT and SIGTERM raise :class:`TrainingStopped`, except while a checkpoint is being written: then the
    signal is noted, the write finishes, and the stop comes right after it (a kill mid-``torch.save`` used to give
    a cryptic torch error and lose the save). Once a stop has begun, further signals are only noted: the final
    save and the clean-up run to the end, and the handlers stay installed after a stop (the process is exiting).
    Installed only in the main thread (``signal`` allows no other)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.saving = False
        self.stopping = False
        self.pending: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stopping:
            # the process is on its way out: a further SIGTERM must not kill it by the default action after the
            # checkpoint and the stop line (a second `kill` a few ms after the first would), so the handler
            # that only notes signals stays installed
            return
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if not self.saving and not self.stopping:
            self.stopping = True
            raise TrainingStopped(signum)
        if self.stopping:
            print(f"s2r: {signal.Signals(signum).name} received while stopping; finishing the checkpoint save",
                  file=sys.stderr, flush=True)  # fmt: skip
            return
        if self.pending is None:
            print(f"s2r: {signal.Signals(signum).name} received while writing a checkpoint; stopping as soon as "
                  "it is written", file=sys.stderr, flush=True)  # fmt: skip
        self.pending = signum

    def protect(self, save: Any) -> None:
        """Run ``save()`` with stop signals deferred; raise the deferred stop once it returned."""
        self.saving = True
        try:
            save()
        finally:
            self.saving = False
        if self.pending is not None and not self.stopping:
            signum, self.pending = self.pending, None
            self.stopping = True
            raise TrainingStopped(signum)
