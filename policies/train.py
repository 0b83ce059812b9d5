"""The training loop shared by TD3, DDPG and PPO: vector envs, per-episode physical parameters from a
``ParamSource`` (nominal / DR / ADR), observation normalizer, logging, checkpoints and exact resume.

``train(config, run_dir)`` is the entry point for the CLI, the benchmarks and the demo. A run dir holds
``config.json``, ``progress.csv``, TensorBoard events in ``tb/`` and ``checkpoints/{latest,previous,best}.pt``
(TD3 also ``checkpoints/replay.pt``). ``best.pt`` is chosen by a deterministic evaluation every ``eval_every``
env steps on the nominal plant (rl-zoo's EvalCallback habit), never on the noisy training return.

One training at a time owns a run folder: ``.lock`` is ``flock``'ed for the life of the run and holds its pid.
SIGINT and SIGTERM both save a checkpoint and stop; a second signal while it is being written waits for it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.checkpoint import (
    LATEST,
    PREVIOUS,
    atomic_torch_save,
    git_commit,
    inference_policy_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from policies.evaluate import evaluate
from policies.logger import CsvLog, Progress, TensorBoard
from policies.lstm_td3 import LSTMTD3Agent, LSTMTD3Config, lstm_td3_preset
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig, ppo_preset
from policies.td3 import TD3Agent, TD3Config, td3_preset
from policies.vec_env import VEC_KINDS, make_env, make_vec_env
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES, env_kwargs
from sim.errors import UserError
from sim.files import atomic_write

ALGOS = ("td3", "ddpg", "ppo", "lstm-td3")
REPLAY = "replay.pt"
LOCK = ".lock"
EVAL_SEED = 1_000_000  # eval episodes during training use seeds EVAL_SEED + seed * 1000 + k: never the seeds
# `s2r eval` starts from (10_000), so the reported evaluation is not the one best.pt was selected on

# the agents' training phases (``agent.phase``; progress.csv's ``phase`` column writes ``learn`` as the algo name):
# what the progress line says, and whose episodes its numbers are
PHASES = {
    "random": "warm-up: random actions fill the replay buffer (the numbers are the random policy's)",
    "expert": "imitation warm-up: the scripted expert acts, the policy learns its actions by DAgger "
    "(the numbers are the expert's)",
    "dagger": "imitation: the policy acts (deterministic) on its own, DAgger refits it to the expert's actions",
    "dagger-fit": "imitation: final DAgger fit of the policy to the expert's actions (no env steps meanwhile)",
    "learn": "the policy acts and learns by {algo} (the numbers are the policy's, with exploration)",
}
VIDEO_FRAME_EVERY = 5  # --video-every: a frame every 5th control step (10 per second of a 50 Hz robot)...
VIDEO_MAX_STEPS = 500  # ...for at most 500 steps: rendering costs far more than the physics
VIDEO_SEED = 10_000  # every video shows the same episode (s2r eval's first seed), on the nominal plant


@dataclass(frozen=True)
class TrainConfig:
    """One training run (the flags of ``s2r train``; a --config file or a run's config.json fills the same)."""

    env: str = option("biped", "biped, biped-rough, biped-hardcore, knob or a Gymnasium id")
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)
    algo: str = option("td3", "lstm-td3: TD3 with an LSTM memory of the last K (observation, action) pairs",
                       choices=ALGOS)
    steps: int = option(1_000_000, "total env steps, summed over sub-envs (with --resume: the new total)", above=0)
    seed: int = option(0, "seed of the envs, the networks and the exploration", low=0)
    num_envs: int = option(0, "sub-envs (0: the preset's; TD3 1, PPO several)", low=0)
    vec: str = option("auto", "vector env kind (policies.vec_env.make_vec_env)", choices=VEC_KINDS)
    ray: str | None = option(None, "step the envs in Ray actors: on the cluster this machine joined (auto, the "
                             "default), at a cluster ADDRESS, or on a private cluster on this machine (local); needs "
                             ".[ray]", const="auto", metavar="auto|ADDRESS|local")
    # >1 helps little for these small nets and, on a loaded or 2-core box, OpenMP spin-waiting against the env
    # workers made updates many times slower (BENCHMARKS.md)
    torch_threads: int = option(1, "torch intra-op threads (1 is the fastest here)", above=0)
    # a second thread speeds updates up on an idle box and slows them down beside busy processes: use 1 on a
    # shared box (BENCHMARKS.md, Learners); resolved() records the number
    update_threads: int = option(0, "torch threads for gradient updates (0: one per core for PPO, 1 for TD3/DDPG)",
                                 low=0)
    checkpoint_every: int = option(20_000, "env steps between checkpoints", above=0)
    eval_every: int = option(50_000, "env steps between deterministic evaluations on the nominal plant; the best is "
                             "saved as checkpoints/best.pt (also one at the end of a run that lasted that long; 0: "
                             "none, eval/export then use latest.pt)", low=0, metavar="N")
    eval_episodes: int = option(5, "episodes per evaluation during training", above=0, metavar="N")
    video_every: int = option(0, "every N env steps, record a deterministic episode of the current policy to "
                              "RUN/videos/step_NNNNNNNNN.mp4 (.gif without imageio-ffmpeg) and TensorBoard (0: never)",
                              low=0, metavar="N")
    log_every: int = option(0, "env steps between progress.csv rows (0: every PPO update / 1000 steps for TD3)",
                            low=0, cli=False)
    stats_window: int = option(20, "episodes in the rolling mean return/success/distance", above=0, cli=False)
    save_replay: bool = option(True, "TD3: checkpoint the replay buffer too (exact resume; big file)", cli=False)
    tensorboard: bool = option(True, "TensorBoard logs in RUN/tb (--no-tensorboard: none)")
    progress: bool = option(True, "progress bar / periodic log lines on stderr", cli=False)
    dr: str | None = option(None, "fixed domain randomization: preset name or JSON file (domain_rand.make_source)",
                            metavar="PRESET_OR_JSON")
    adr: bool = option(False, "automatic domain randomization")
    adr_config: str | None = option(None, "ADR config JSON (implies --adr)", metavar="FILE")
    # None: the preset for (algo, env); its fields are the --td3-*/--ppo-*/--lstm-* flags (s2r/commands/train.py)
    algo_config: TD3Config | PPOConfig | None = field(default=None)

    def __post_init__(self) -> None:
        validate(self)
        env_kwargs(self.env, self.engine)  # --engine mujoco on a non-s2r env: UserError

    def resolved(self) -> TrainConfig:
        """Gymnasium id in ``env``, preset ``algo_config``, ``num_envs`` and ``update_threads`` filled in (the
        thread count is recorded in config.json, so a resume on a machine with other cores keeps its arithmetic)."""
        import sim

        env_id = sim.resolve_env_id(self.env)
        algo_cfg = self.algo_config
        if algo_cfg is None:
            algo_cfg = (ppo_preset(env_id) if self.algo == "ppo" else lstm_td3_preset(env_id)
                        if self.algo == "lstm-td3" else td3_preset(env_id, self.algo))  # fmt: skip
        num_envs = self.num_envs or (algo_cfg.num_envs if isinstance(algo_cfg, PPOConfig) else 1)
        # TD3 updates after every env step: on a box shared with anything a second thread slows it
        # (BENCHMARKS.md, Learners), so it only gets more threads when asked for
        auto_threads = (os.cpu_count() or 1) if self.algo == "ppo" else 1
        update_threads = self.update_threads if self.update_threads > 0 else auto_threads
        return dataclasses.replace(
            self, env=env_id, algo_config=algo_cfg, num_envs=num_envs, update_threads=update_threads
        )


def config_to_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))  # tuples → lists, plain JSON types only


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of :func:`config_to_dict` (unknown keys are an error: a config from a newer s2r)."""
    d = dict(d)
    algo_d = d.pop("algo_config", None)
    if algo_d is not None:
        cls = {"ppo": PPOConfig, "lstm-td3": LSTMTD3Config}.get(d.get("algo", ""), TD3Config)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(algo_d) - names
        if unknown:
            raise UserError(f"config has unknown {cls.__name__} fields {sorted(unknown)}")
        algo_d = {k: tuple(v) if isinstance(v, list) else v for k, v in algo_d.items()}
        d["algo_config"] = cls(**algo_d)
    return TrainConfig(**d)


def resume_config(run_dir: str | os.PathLike, steps: int | None = None) -> TrainConfig:
    """The config of an existing run (``config.json``), with ``steps`` raised to a new total if given."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; --resume needs a run dir written by `s2r train`")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); was it edited by hand?") from None
    cfg = config_from_dict(d)
    return dataclasses.replace(cfg, steps=steps) if steps is not None else cfg


def _expert(cfg: TrainConfig):
    """The scripted expert the PPO config names (ValueError if the env has none of that name), else None."""
    if isinstance(cfg.algo_config, PPOConfig) and cfg.algo_config.expert is not None:
        import sim

        return sim.get_expert(cfg.algo_config.expert, cfg.env)
    return None


def _make_agent(cfg: TrainConfig, obs_dim: int, act_dim: int, norm: ObsNormalizer, expert=None):
    if isinstance(cfg.algo_config, PPOConfig):
        return PPOAgent(cfg.algo_config, obs_dim, act_dim, norm, cfg.num_envs, cfg.steps, seed=cfg.seed,
                        expert=expert)  # fmt: skip
    assert isinstance(cfg.algo_config, TD3Config), "train() resolves the config first"
    if isinstance(cfg.algo_config, LSTMTD3Config):
        return LSTMTD3Agent(cfg.algo_config, obs_dim, act_dim, norm, seed=cfg.seed)
    return TD3Agent(cfg.algo_config, obs_dim, act_dim, norm, seed=cfg.seed)


def _make_source(cfg: TrainConfig, env):
    try:
        from domain_rand import make_source
    except ImportError:  # DR stage not installed/landed: nominal physics unless DR was asked for
        if cfg.dr or cfg.adr or cfg.adr_config:
            raise UserError("--dr/--adr need domain_rand.make_source, which is not available") from None
        from domain_rand.base import NominalSource

        return NominalSource()
    return make_source(env, dr=cfg.dr, adr=cfg.adr, adr_config=cfg.adr_config, seed=cfg.seed)


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
    """Rolling window of finished episodes: return, length, and the task metrics found in the final info."""

    KEYS = ("return", "length", "distance_m", "fell", "is_success")

    def __init__(self, window: int) -> None:
        self.window: dict[str, deque[float]] = {k: deque(maxlen=window) for k in self.KEYS}
        self.episodes = 0

    def add(self, ep_return: float, length: int, info: dict) -> None:
        self.episodes += 1
        self.window["return"].append(ep_return)
        self.window["length"].append(length)
        for k in ("distance_m", "fell", "is_success"):
            if k in info:
                self.window[k].append(float(info[k]))

    def row(self) -> dict[str, float]:
        w = self.window
        out = {"episodes": float(self.episodes)}
        if w["return"]:
            out.update(return_mean=float(np.mean(w["return"])), return_std=float(np.std(w["return"])),
                       length_mean=float(np.mean(w["length"])))  # fmt: skip
        for k, name in (("distance_m", "distance_m"), ("fell", "fall_rate"), ("is_success", "success_rate")):
            if w[k]:
                out[name] = float(np.mean(w[k]))
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
        if "distance_m" in r:
            parts.append(f"dist {r['distance_m']:.2f} m")
        return " | ".join(parts)

    def state_dict(self) -> dict:
        return {"episodes": self.episodes, **{k: list(v) for k, v in self.window.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.episodes = int(state["episodes"])
        for k in self.KEYS:
            self.window[k].extend(state[k])


class TrainingStopped(KeyboardInterrupt):
    """A training stopped by SIGINT or SIGTERM after saving its checkpoint; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopSignals:
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

    def __enter__(self) -> _StopSignals:
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


class _RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock`` for the life of a training; the file holds the owner's pid."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self.fd: int | None = None

    def __enter__(self) -> _RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"run folder {self.path.parent} is in use by another training (pid {owner}); wait for "
                            "it to finish or stop it, or pick another --run-dir") from None  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock; the file stays (deleting a lock file races)
            self.fd = None


OLD_RUN_FILES = ("config.json", "progress.csv", "tb", "checkpoints")


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """A fresh run refuses a folder with a loadable checkpoint (that is a --resume) and moves the logs of an
    older run without one into ``old-<time>/``, saying so (appending to them drew zig-zag curves)."""
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        if not (run_dir / "config.json").is_file():
            raise FileNotFoundError(f"{run_dir / 'config.json'} not found; --resume needs a run dir written by "
                                    "`s2r train`")  # fmt: skip
        return
    if (ckpt_dir / LATEST).exists() or (ckpt_dir / PREVIOUS).exists():
        raise UserError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick a new --run-dir")
    leftovers = [n for n in OLD_RUN_FILES if (run_dir / n).exists()]
    if leftovers:
        aside = run_dir / time.strftime("old-%Y%m%d-%H%M%S")
        aside.mkdir()
        for name in leftovers:
            os.replace(run_dir / name, aside / name)
        print(f"s2r: {run_dir} held logs of an earlier run without a checkpoint ({', '.join(leftovers)}); moved "
              f"them to {aside}", file=sys.stderr)  # fmt: skip


def train(config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a run in ``run_dir``; returns a summary dict.

    A fresh run refuses a ``run_dir`` that already has checkpoints (use ``resume``) and one that another
    training holds (its lock). SIGINT/SIGTERM save a checkpoint and raise :class:`TrainingStopped` (a
    KeyboardInterrupt).
    """
    _expert(config.resolved())  # a bad env, preset or expert name fails before the run folder is touched
    torch.set_flush_denormal(True)  # tiny Adam moments turn denormal, and denormal CPU math is slow
    try:
        with _RunLock(Path(run_dir)), _StopSignals() as signals:
            return _train(config, Path(run_dir), resume, signals)
    finally:
        # the flag is process-wide (the CPU's FTZ/DAZ bits): give callers (benchmarks, tests, the demo) back
        # IEEE subnormals
        torch.set_flush_denormal(False)


def _train(config: TrainConfig, run_dir: Path, resume: bool, signals: _StopSignals) -> dict[str, Any]:
    cfg = config.resolved()
    algo_cfg = cfg.algo_config
    assert algo_cfg is not None
    expert = _expert(cfg)
    ckpt_dir = run_dir / "checkpoints"
    engine_kwargs = env_kwargs(cfg.env, cfg.engine)  # {} in PyBullet (checked in TrainConfig)
    _prepare_run_dir(run_dir, resume)
    torch_threads = max(1, cfg.torch_threads)
    update_threads = cfg.update_threads  # resolved: >= 1
    torch.set_num_threads(torch_threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    probe = make_env(cfg.env, **engine_kwargs)  # spaces, robot spec, param space: the same env the workers build
    obs_shape, act_shape = probe.observation_space.shape, probe.action_space.shape
    assert obs_shape is not None and act_shape is not None  # Box spaces (make_env checks the action space)
    obs_dim, act_dim = int(obs_shape[0]), int(act_shape[0])
    spec = getattr(probe.unwrapped, "robot_spec", None)
    robot_id = spec.robot_id if spec is not None else None
    source = _make_source(cfg, probe)
    # what the source's thresholds apply to: ADR says (task success by default); fixed DR and nominal ignore it
    perf_kind = str(getattr(getattr(source, "config", None), "performance", "success"))
    probe.close()

    # s2r robots: every field's std is floored at the resolution its spec declares (no input gain above 1/res.)
    floor = spec.obs_resolution if spec is not None else None
    norm = ObsNormalizer(obs_dim, enabled=algo_cfg.normalize_obs, std_floor=floor)
    agent = _make_agent(cfg, obs_dim, act_dim, norm, expert)
    stats = EpisodeStats(cfg.stats_window)
    counters: dict[str, Any] = {"global_step": 0, "resumes": 0, "time_s": 0.0}
    best_return = -math.inf  # highest rolling training return seen (reported, not used to choose best.pt)
    best_eval = -math.inf  # highest deterministic eval return: best.pt
    csv_log = CsvLog(run_dir / "progress.csv")

    if resume:
        ckpt, path = load_checkpoint(run_dir)
        agent.load_state_dict(ckpt["agent"])
        norm.load_state_dict(ckpt["normalizer"])
        source.load_state_dict(ckpt["param_source"])
        stats.load_state_dict(ckpt["episode_stats"])
        _set_rng_state(ckpt["rng"])
        counters = dict(ckpt["counters"])
        counters["resumes"] += 1
        best_return = float(ckpt["best_return"])
        best_eval = float(ckpt.get("best_eval", -math.inf))
        if counters["global_step"] >= cfg.steps:
            raise UserError(f"{run_dir} is already at step {counters['global_step']:,} of its {cfg.steps:,}; give a "
                            "larger --steps (the new total) to continue it")  # fmt: skip
        csv_log.truncate_after(counters["global_step"])
        if isinstance(agent, TD3Agent) and cfg.save_replay:
            _load_replay(agent, ckpt_dir / REPLAY, ckpt["replay_step"])
        print(f"s2r: resumed {run_dir} from {path.name} at step {counters['global_step']}", file=sys.stderr)
    else:
        atomic_write(run_dir / "config.json", json.dumps(config_to_dict(cfg), indent=2) + "\n")

    meta = {"env_id": cfg.env, "robot_id": robot_id, "obs_dim": obs_dim, "act_dim": act_dim,
            "config": config_to_dict(cfg), "git_commit": git_commit(), "actor_arch": agent.actor_arch}  # fmt: skip

    def checkpoint(selection: dict[str, Any] | None = None) -> None:
        """Save latest.pt (and best.pt when ``selection``, the evaluation that made this the best policy)."""
        nonlocal best_return
        row = stats.row()
        if "return_mean" in row and row["return_mean"] > best_return:
            best_return = row["return_mean"]
        counters["time_s"] = time_base + time.monotonic() - t_start
        ckpt = {**meta, "actor": agent.actor.state_dict(), "agent": agent.state_dict(),
                "normalizer": norm.state_dict(), "param_source": source.state_dict(),
                "episode_stats": stats.state_dict(), "rng": _rng_state(), "counters": dict(counters),
                "best_return": best_return, "best_eval": best_eval, "replay_step": counters["global_step"],
                **({"selection": selection} if selection else {})}  # fmt: skip

        def save() -> None:
            if isinstance(agent, TD3Agent) and cfg.save_replay:  # first: a checkpoint must never outrun its replay
                atomic_torch_save({"step": counters["global_step"], **agent.buffer.state_dict()}, ckpt_dir / REPLAY)
            save_checkpoint(ckpt, ckpt_dir, best=selection is not None)

        signals.protect(save)
        saved_at[0] = counters["global_step"]

    def run_eval() -> tuple[dict[str, float], dict[str, Any] | None]:
        """Deterministic episodes on the nominal plant; returns the eval row and, if best so far, the selection."""
        nonlocal best_eval
        progress.note(f"evaluating the policy at step {counters['global_step']:,} ({cfg.eval_episodes} "
              "deterministic episodes on the nominal plant)...")  # fmt: skip
        policy = inference_policy_from_checkpoint({**meta, "actor": agent.actor.state_dict(),
                                                   "normalizer": norm.state_dict()})  # fmt: skip
        with torch.random.fork_rng():  # evaluation must not shift the training's random streams
            py_state = random.getstate()
            summary = evaluate(policy, cfg.eval_episodes, seed=EVAL_SEED + cfg.seed * 1000, engine=cfg.engine).summary()
            random.setstate(py_state)
        eval_row = {f"eval_{k}": v for k, v in summary.items() if k != "episodes"}
        is_best = summary["return_mean"] > best_eval
        progress.note(f"eval at step {counters['global_step']:,}: return {summary['return_mean']:.1f} ± "
              f"{summary['return_std']:.1f} over {cfg.eval_episodes} deterministic episodes"
              + (" (best so far: saved as best.pt)" if is_best else f" (best {best_eval:.1f})"))  # fmt: skip
        if not is_best:
            return eval_row, None
        best_eval = summary["return_mean"]
        return eval_row, {"metric": "eval_return_mean", "value": best_eval, "std": summary["return_std"],
                          "episodes": cfg.eval_episodes, "step": counters["global_step"]}  # fmt: skip

    saved_at = [counters["global_step"] if resume else -1]  # step of the newest checkpoint on disk
    venv = make_vec_env(cfg.env, cfg.num_envs, cfg.vec, env_kwargs=engine_kwargs, ray=cfg.ray)
    n = cfg.num_envs
    tags: list[Any] = [None] * n
    ep_ret, ep_len = np.zeros(n), np.zeros(n, dtype=np.int64)

    def reset_env(i: int, seed: int | None) -> np.ndarray:
        params, tags[i] = source.sample()
        o, _ = venv.reset_one(i, seed=seed, options={"params": params} if params else None)
        ep_ret[i], ep_len[i] = 0.0, 0
        return o

    # env states cannot be checkpointed: a resumed run starts fresh episodes, seeded by (seed, resume count)
    base_seed = cfg.seed * 1_000_003 + counters["resumes"] * 10_007
    obs = np.stack([reset_env(i, base_seed + i) for i in range(n)])
    norm.update(obs)
    default_log = algo_cfg.n_steps * n if isinstance(algo_cfg, PPOConfig) else 1000
    log_every = cfg.log_every or default_log
    step = int(counters["global_step"])
    next_log = (step // log_every + 1) * log_every
    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    next_eval = (step // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else math.inf
    next_video = (step // cfg.video_every + 1) * cfg.video_every if cfg.video_every else 0
    losses: dict[str, list[float]] = {}
    time_base, t_start = counters["time_s"], time.monotonic()
    rate_t, rate_step = t_start, step
    tb = TensorBoard(run_dir / "tb", cfg.tensorboard)

    def log_row(extra: dict[str, float] | None = None) -> None:
        nonlocal rate_t, rate_step, losses
        now = time.monotonic()
        row = {"global_step": float(step), "phase": _phase_name(phase, cfg),
               "time_s": time_base + now - t_start,
               "steps_per_s": (step - rate_step) / max(1e-9, now - rate_t), **stats.row(),
               **{k: float(np.mean(v)) for k, v in losses.items()}, **source.scalars(), **(extra or {})}  # fmt: skip
        rate_t, rate_step, losses = now, step, {}
        csv_log.write(row)
        tb.write(row, step)

    last_eval = -1
    progress = Progress(cfg.steps, step, enabled=cfg.progress)
    phase = agent.phase
    progress.note(f"phase {_phase_name(phase, cfg)} at step {step}: {PHASES[phase].format(algo=cfg.algo)}")

    def follow_phase() -> None:
        nonlocal phase
        if agent.phase != phase:
            phase = agent.phase
            progress.note(f"phase {_phase_name(phase, cfg)} at step {step}: {PHASES[phase].format(algo=cfg.algo)}")
            if phase != "dagger-fit":  # another actor from here on: the window shows its episodes only
                stats.clear_window()

    def status() -> str:
        return f"{_phase_name(phase, cfg)} | {stats.line()}"

    try:
        while step < cfg.steps:
            action = agent.act(obs)
            next_obs, reward, terminated, truncated, infos = venv.step(action)
            ep_ret += reward
            ep_len += 1
            agent.observe(obs, action, reward, next_obs, terminated, truncated)
            for i in np.flatnonzero(np.logical_or(terminated, truncated)):
                info = infos[i] or {}
                stats.add(float(ep_ret[i]), int(ep_len[i]), info)
                source.report(tags[i], _performance(cfg.env, float(ep_ret[i]), info, perf_kind))
                next_obs[i] = reset_env(int(i), None)
            norm.update(next_obs)
            obs = next_obs
            step += n
            counters["global_step"] = step
            follow_phase()  # before a long update (the final DAgger fit) and after it
            if update_threads != torch_threads and agent.update_due:
                torch.set_num_threads(update_threads)
                try:
                    out = agent.update()
                finally:
                    torch.set_num_threads(torch_threads)
            else:
                out = agent.update()
            follow_phase()
            for k, v in (out or {}).items():
                losses.setdefault(k, []).append(v)
            # PPO: evaluate and checkpoint only between rollouts, so no transitions are lost on resume
            boundary = not isinstance(agent, PPOAgent) or agent.t == 0
            eval_row, selection = None, None
            if boundary and step >= next_eval:
                next_eval = (step // cfg.eval_every + 1) * cfg.eval_every
                eval_row, selection = run_eval()
                last_eval = step
            if step >= next_log or eval_row:
                next_log = (step // log_every + 1) * log_every
                log_row(eval_row)
            if boundary and (step >= next_ckpt or eval_row):
                next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
                checkpoint(selection)
            if cfg.video_every and step >= next_video:
                next_video = (step // cfg.video_every + 1) * cfg.video_every
                path, ret = _record_video(cfg, agent, norm, meta, run_dir / "videos", step, tb)
                progress.note(f"video at step {step}: {path} (deterministic policy, return {ret:.1f})")
            progress.update(step, status)
        eval_row, selection = None, None
        if cfg.eval_every and step >= cfg.eval_every and last_eval != step:  # judge the final policy too
            eval_row, selection = run_eval()
        if rate_step != step or eval_row:  # the last partial logging interval
            log_row(eval_row)
        if saved_at[0] != step or selection:
            checkpoint(selection)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        try:
            if saved_at[0] != step:
                checkpoint()
        except KeyboardInterrupt:
            pass  # a second signal during that save: protect() let the save finish first
        print(f"s2r: stopped by {signal.Signals(signum).name} at step {step:,}; checkpoint saved in {ckpt_dir} "
              f"(continue with `s2r train --resume {run_dir}`)", file=sys.stderr, flush=True)  # fmt: skip
        raise TrainingStopped(signum) from None
    finally:
        progress.close()
        tb.close()
        venv.close()
    return {"run_dir": str(run_dir), "global_step": step, **stats.row(),
            "time_s": time_base + time.monotonic() - t_start, "best_return": best_return,
            "best_eval": best_eval}  # fmt: skip


def _record_video(cfg: TrainConfig, agent, norm: ObsNormalizer, meta: dict, folder: Path, step: int,
                  tb: TensorBoard) -> tuple[Path, float]:
    """One deterministic episode of the current policy → ``folder/step_NNNNNNNNN.mp4`` (.gif without
    imageio-ffmpeg) and a few of its frames to TensorBoard; returns (path, episode return)."""
    from policies.checkpoint import inference_policy_from_checkpoint
    from policies.evaluate import EvalResult, run_policy_episode
    from sim.video import mp4_available, write_video

    policy = inference_policy_from_checkpoint({**meta, "actor": agent.actor.state_dict(),
                                               "normalizer": norm.state_dict()})  # fmt: skip
    env = make_env(cfg.env, render_mode="rgb_array")
    frames: list[np.ndarray] = []
    result = EvalResult()
    py_state = random.getstate()
    try:
        with torch.random.fork_rng():  # like run_eval: a video must not shift the training's random streams
            fps = float(env.metadata.get("render_fps") or 50) / VIDEO_FRAME_EVERY
            run_policy_episode(env, policy, VIDEO_SEED, None, result, frames, VIDEO_FRAME_EVERY, VIDEO_MAX_STEPS)
    finally:
        env.close()
        random.setstate(py_state)
    path = write_video(frames, folder / f"step_{step:09d}.{'mp4' if mp4_available() else 'gif'}", fps=fps)
    tb.frames("video/episode", frames, step, note=f"{path} (return {result.returns[0]:.1f})")
    return path, result.returns[0]


def _phase_name(phase: str, cfg: TrainConfig) -> str:
    """The name shown and logged: the algorithm's for the policy's own learning (ppo, td3, ddpg)."""
    return cfg.algo if phase == "learn" else phase


def _load_replay(agent: TD3Agent, path: Path, step: int) -> None:
    """Restore the replay buffer saved with the checkpoint at ``step``; missing/corrupt/stale → start empty."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        print(f"s2r: warning: replay buffer {path} unreadable ({type(exc).__name__}); refilling it", file=sys.stderr)
        agent.steps_seen = 0  # re-run the random warm-up so the empty buffer fills before learning
        return
    if int(state.get("step", -1)) != int(step):
        # replay.pt is newer than the checkpoint we fell back to: still valid data, only a few steps ahead
        print(f"s2r: note: replay buffer from step {state.get('step')} used with checkpoint step {step}",
              file=sys.stderr)  # fmt: skip
    agent.buffer.load_state_dict(state)
