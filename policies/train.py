"""Training runs for TD3, DDPG, LSTM-TD3 and PPO: the run's config (:class:`TrainConfig`), its folder, and the
pieces the loop needs — vector envs, per-episode physical parameters from a ``ParamSource`` (nominal / DR /
ADR), the observation normalizer and the agent (``policies.agent``). The loop itself, with logging, evaluation,
checkpoints and exact resume, is :class:`policies.runner.Runner`.

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
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.agent import make_agent
from policies.checkpoint import LATEST, PREVIOUS, git_commit
from policies.lstm_td3 import LSTMTD3Config, lstm_td3_preset
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOConfig, ppo_preset
from policies.recurrent_ppo import RecurrentPPOConfig, rppo_preset
from policies.runner import Runner, StopSignals, TrainingStopped
from policies.td3 import TD3Config, td3_preset
from policies.vec_env import VEC_KINDS, make_env
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES, env_kwargs
from sim.errors import UserError
from sim.files import atomic_write, read_json

__all__ = ["ALGOS", "TrainConfig", "TrainingStopped", "config_from_dict", "config_to_dict", "resume_config", "train"]

ALGOS = ("td3", "ddpg", "ppo", "lstm-td3", "rppo")
LOCK = ".lock"


@dataclass(frozen=True)
class TrainConfig:
    """One training run (the flags of ``s2r train``; a --config file or a run's config.json fills the same)."""

    env: str = option("biped", "biped, biped-rough, biped-hardcore, knob or a Gymnasium id")
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)
    algo: str = option("td3", "lstm-td3: TD3 with an LSTM memory of the last K (observation, action) pairs; rppo: "
                       "PPO with an LSTM policy and critic trained on sequences", choices=ALGOS)
    steps: int = option(1_000_000, "total env steps, summed over sub-envs (with --resume: the new total)", above=0)
    seed: int = option(0, "seed of the envs, the networks and the exploration", low=0)
    num_envs: int = option(0, "sub-envs (0: the preset's; TD3 1, PPO several)", low=0)
    vec: str = option("auto", "vector env kind (policies.vec_env.make_vec_env)", choices=VEC_KINDS)
    ray: str | None = option(None, "step the envs in Ray actors: on the cluster this machine joined (auto, the "
                             "default), at a cluster ADDRESS, or on a private cluster on this machine (local); needs "
                             ".[ray]", const="auto", metavar="auto|ADDRESS|local")
    ray_mode: str = option("lockstep", "with --ray: lockstep (the learner acts every step; the same numbers as --vec "
                           "sync), segments (PPO: each actor collects its share of a rollout with a copy of the "
                           "policy) or async (TD3/DDPG: actors act on weights broadcast every --ray-sync-every steps; "
                           "policies.ray_rollouts)", choices=("lockstep", "segments", "async"))
    # the weights an async actor acts with lag the learner's by 1-2x ray_sync_every
    ray_sync_every: int = option(50, "--ray-mode async: vector steps an actor runs on one copy of the weights",
                                 above=0, metavar="N")
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
    env_options: str | None = option(None, "constructor keyword arguments of the training envs, a JSON object: e.g. "
                                     "'{\"reward\": \"smooth\"}' (the robot's reward-weight preset or fields, "
                                     "sim/rewards.py) or '{\"continuous_goals\": true}' (knob); evaluations run the "
                                     "defaults", metavar="JSON")
    action_filter_hz: float = option(0.0, "cutoff of a first-order low-pass action filter that is part of the policy "
                                     "(policies.action_filter): it runs in training, evaluation and the exported "
                                     "ONNX (as state), Hz (0: none)", low=0, metavar="HZ")
    gait_clock_hz: float = option(0.0, "frequency of a gait clock that is part of the policy (policies.gait_clock): "
                                  "the actor sees its phase, the reward's clock term (the biped's 'clock' reward) "
                                  "asks the feet to follow it; in training, evaluation and the exported ONNX (as "
                                  "state), Hz (0: none)", low=0, metavar="HZ")
    action_history: int = option(0, "the policy's own last K actions appended to its observation, part of the policy "
                                 "(policies.action_history): in training, evaluation and the exported ONNX (as "
                                 "state), control steps (0: none)", low=0, metavar="K")
    init_policy: str | None = option(None, "fine-tune: start the actor and the observation normalizer (then frozen) "
                                     "from a bundle's feed-forward ONNX policy of the same shape "
                                     "(policies/warm_start.py); default: from scratch", metavar="BUNDLE")
    init_log_std: float | None = option(None, "fine-tune: the PPO/rPPO actor's exploration log-std after "
                                        "--init-policy (default: the source's for a run or checkpoint, the "
                                        "config's log_std_init for a bundle); a small one lets training meet the "
                                        "stalls of the deterministic policy", metavar="LOG_STD")
    # None: the preset for (algo, env); its fields are the --td3-*/--ppo-*/--lstm-* flags (s2r/commands/train.py)
    algo_config: TD3Config | PPOConfig | None = field(default=None)

    def __post_init__(self) -> None:
        validate(self)
        env_kwargs(self.env, self.engine)  # --engine mujoco on a non-s2r env: UserError
        _check_ray_mode(self)
        if self.init_log_std is not None and (not self.init_policy or self.algo not in ("ppo", "rppo")):
            raise UserError("--init-log-std sets the exploration of a PPO or rPPO fine-tune: "
                            "use it with --init-policy and --algo ppo or rppo")  # fmt: skip
        self.training_env_kwargs()  # a bad --env-options fails here, with its one-line error
        if self.action_filter_hz and self.algo == "lstm-td3":
            raise UserError("--action-filter-hz is for feed-forward policies; lstm-td3 has its own memory")
        for flag, value in (("--gait-clock-hz", self.gait_clock_hz), ("--action-history", self.action_history)):
            if value and self.algo in ("lstm-td3", "rppo"):
                raise UserError(f"{flag} is for feed-forward policies (ppo, td3, ddpg), not {self.algo}")
        if self.action_history:
            from policies.action_history import check_history

            check_history(self.action_history)
            if self.gait_clock_hz:
                raise UserError("--action-history and --gait-clock-hz do not combine yet; use one of them")

    def training_env_kwargs(self) -> dict[str, Any]:
        """The constructor keyword arguments of the training envs beyond the engine's: ``--env-options`` and the
        action filter's and the gait clock's training halves (policies.action_filter, policies.gait_clock)."""
        out: dict[str, Any] = {}
        if self.env_options:
            try:
                out = json.loads(self.env_options)
            except json.JSONDecodeError as exc:
                raise UserError(f"--env-options is not a JSON object ({exc.msg}): {self.env_options!r}") from None
            if not isinstance(out, dict):
                raise UserError(f"--env-options must be a JSON object of keyword arguments, got {self.env_options!r}")
        if self.action_filter_hz:
            out["action_filter_hz"] = self.action_filter_hz
        if self.gait_clock_hz:
            out["gait_clock_hz"] = self.gait_clock_hz
        if self.action_history:
            out["action_history"] = self.action_history
        return out

    def resolved(self) -> TrainConfig:
        """Gymnasium id in ``env``, preset ``algo_config``, ``num_envs`` and ``update_threads`` filled in (the
        thread count is recorded in config.json, so a resume on a machine with other cores keeps its arithmetic)."""
        import sim

        env_id = sim.resolve_env_id(self.env)
        algo_cfg = self.algo_config
        if algo_cfg is None:
            algo_cfg = (ppo_preset(env_id) if self.algo == "ppo" else lstm_td3_preset(env_id)
                        if self.algo == "lstm-td3" else rppo_preset(env_id) if self.algo == "rppo"
                        else td3_preset(env_id, self.algo))  # fmt: skip
        num_envs = self.num_envs or (algo_cfg.num_envs if isinstance(algo_cfg, PPOConfig) else 1)
        # TD3 updates after every env step: on a box shared with anything a second thread slows it
        # (BENCHMARKS.md, Learners), so it only gets more threads when asked for
        auto_threads = (os.cpu_count() or 1) if self.algo in ("ppo", "rppo") else 1
        update_threads = self.update_threads if self.update_threads > 0 else auto_threads
        return dataclasses.replace(
            self, env=env_id, algo_config=algo_cfg, num_envs=num_envs, update_threads=update_threads
        )


def _check_ray_mode(cfg: TrainConfig) -> None:
    modes = {"lockstep": ALGOS, "segments": ("ppo",), "async": ("td3", "ddpg")}  # validate() checked the name
    if cfg.algo not in modes[cfg.ray_mode]:
        raise UserError(f"--ray-mode {cfg.ray_mode} is for {' and '.join(modes[cfg.ray_mode])}, not {cfg.algo}; "
                        "use --ray-mode lockstep")  # fmt: skip
    if cfg.ray_mode != "lockstep" and not cfg.ray:
        raise UserError(f"--ray-mode {cfg.ray_mode} needs --ray (local, auto or a cluster address)")


def config_to_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))  # tuples → lists, plain JSON types only


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of :func:`config_to_dict` (unknown keys are an error: a config from a newer s2r)."""
    d = dict(d)
    algo_d = d.pop("algo_config", None)
    if algo_d is not None:
        cls = {"ppo": PPOConfig, "lstm-td3": LSTMTD3Config, "rppo": RecurrentPPOConfig}.get(d.get("algo", ""), TD3Config)
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
    cfg = config_from_dict(read_json(path, "run config", "was it edited by hand?"))
    return dataclasses.replace(cfg, steps=steps) if steps is not None else cfg


def _expert(cfg: TrainConfig):
    """The scripted expert the PPO config names (ValueError if the env has none of that name), else None."""
    if isinstance(cfg.algo_config, PPOConfig) and cfg.algo_config.expert is not None:
        import sim

        return sim.get_expert(cfg.algo_config.expert, cfg.env)
    return None


def _make_source(cfg: TrainConfig, env):
    try:
        from domain_rand import make_source
    except ImportError:  # DR stage not installed/landed: nominal physics unless DR was asked for
        if cfg.dr or cfg.adr or cfg.adr_config:
            raise UserError("--dr/--adr need domain_rand.make_source, which is not available") from None
        from domain_rand.base import NominalSource

        return NominalSource()
    return make_source(env, dr=cfg.dr, adr=cfg.adr, adr_config=cfg.adr_config, seed=cfg.seed)


class _RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock`` for the life of a training; the file holds the owner's pid.

    A training that fails before it wrote anything (a bad ``--adr-config`` file, say) leaves no trace: the lock
    removes the folders it created if they hold nothing but the lock file.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self.fd: int | None = None
        self.created: list[Path] = []  # the folders __enter__ made, innermost first

    def __enter__(self) -> _RunLock:
        self.created = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
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

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        if exc_type is not None and self.created and os.listdir(self.path.parent) == [LOCK]:
            self._remove_created()  # still holding the flock, so no other training is inside
        # closing releases the flock; a kept lock file stays (deleting one that another training may have opened
        # races; a folder this lock made and nothing else wrote to is a run that never began)
        os.close(self.fd)
        self.fd = None

    def _remove_created(self) -> None:
        """Unlink the lock file and remove the folders this lock created, innermost first, while they are empty."""
        self.path.unlink()
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:  # something else appeared in it meanwhile: keep it and its parents
                return


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
        with _RunLock(Path(run_dir)), StopSignals() as signals:
            return _train(config, Path(run_dir), resume, signals)
    finally:
        # the flag is process-wide (the CPU's FTZ/DAZ bits): give callers (benchmarks, tests, the demo) back
        # IEEE subnormals
        torch.set_flush_denormal(False)


def _obs_floor_and_names(cfg: TrainConfig, spec: Any, act_dim: int) -> tuple[np.ndarray | None, list[str] | None]:
    """The normalizer's std floor and the names of the actor's inputs, for an s2r robot (else None, None): every
    field's std is floored at the resolution its spec declares (no input gain above 1/res.), then the gait clock's
    and the action history's inputs, if the policy has them."""
    if spec is None:
        return None, None
    floor, obs_names = np.asarray(spec.obs_resolution), [f.name for f in spec.obs_fields]
    if cfg.gait_clock_hz:
        from policies.gait_clock import CLOCK_FIELDS, CLOCK_RESOLUTION

        floor = np.concatenate([floor, np.full(len(CLOCK_FIELDS), CLOCK_RESOLUTION)])
        obs_names = [*obs_names, *CLOCK_FIELDS]
    if cfg.action_history:
        from policies.action_history import HISTORY_RESOLUTION, history_fields

        names = history_fields(cfg.action_history, act_dim)
        floor = np.concatenate([floor, np.full(len(names), HISTORY_RESOLUTION)])
        obs_names = [*obs_names, *names]
    return floor, obs_names


def _train(config: TrainConfig, run_dir: Path, resume: bool, signals: StopSignals) -> dict[str, Any]:
    """Build the run — seeds, the envs' probe, parameter source, normalizer, agent — and hand it to a Runner."""
    cfg = config.resolved()
    algo_cfg = cfg.algo_config
    assert algo_cfg is not None
    expert = _expert(cfg)
    _prepare_run_dir(run_dir, resume)
    torch.set_num_threads(max(1, cfg.torch_threads))
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # spaces, robot spec, param space: the same env the workers build (with the gait clock's and the action
    # history's inputs, if any)
    clock = {"gait_clock_hz": cfg.gait_clock_hz} if cfg.gait_clock_hz else {}
    history = {"action_history": cfg.action_history} if cfg.action_history else {}
    probe = make_env(cfg.env, **env_kwargs(cfg.env, cfg.engine), **clock, **history)
    obs_shape, act_shape = probe.observation_space.shape, probe.action_space.shape
    assert obs_shape is not None and act_shape is not None  # Box spaces (make_env checks the action space)
    obs_dim, act_dim = int(obs_shape[0]), int(act_shape[0])
    spec = getattr(probe.unwrapped, "robot_spec", None)
    source = _make_source(cfg, probe)
    # what the source's thresholds apply to: ADR says (task success by default); fixed DR and nominal ignore it
    perf_kind = str(getattr(getattr(source, "config", None), "performance", "success"))
    # an asymmetric critic's extra inputs: the env's privileged layout (sim.tasks.<robot>), normalized per field
    priv_fields = getattr(probe.unwrapped, "privileged_fields", None)
    priv_floor = np.array([f.resolution for f in priv_fields]) if priv_fields else None
    probe.close()

    floor, obs_names = _obs_floor_and_names(cfg, spec, act_dim)
    norm = ObsNormalizer(obs_dim, enabled=algo_cfg.normalize_obs, std_floor=floor)
    agent = make_agent(algo_cfg, obs_dim, act_dim, norm, cfg.num_envs, cfg.steps, seed=cfg.seed, expert=expert,
                       obs_names=obs_names, privileged_floor=priv_floor)  # fmt: skip
    meta = {"env_id": cfg.env, "robot_id": spec.robot_id if spec is not None else None, "obs_dim": obs_dim,
            "act_dim": act_dim, "config": config_to_dict(cfg), "git_commit": git_commit()}  # fmt: skip
    if cfg.init_policy and not resume:  # fine-tuning: actor and (frozen) normalizer from a bundle
        from policies.warm_start import set_log_std, warm_start

        warm_start(agent.actor, norm, cfg.init_policy)
        if hasattr(agent, "mask_ignored_inputs"):  # the loaded weights see every input: hide actor_ignores
            agent.mask_ignored_inputs()
        if cfg.init_log_std is not None:
            set_log_std(agent.actor, cfg.init_log_std)
    runner = Runner(cfg, run_dir, agent, norm, source, meta, signals, perf_kind)
    if resume:
        runner.restore()
        norm.frozen = norm.frozen or bool(cfg.init_policy)  # a fine-tuning keeps its normalizer frozen
    else:
        atomic_write(run_dir / "config.json", json.dumps(config_to_dict(cfg), indent=2) + "\n")
    return runner.learn()
