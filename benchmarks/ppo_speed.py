"""PPO env-steps/s on s2r/Biped-v0 (rollouts + updates, env start-up included), against stable-baselines3's PPO
measured in the same run:

1. identical hyper-parameters — goal ≥ 1.3×. Identical on both sides: 4 envs, n_steps 512, batch 64, 10 epochs,
   lr 3e-4 (constant), Adam eps 1e-5, gamma 0.99, GAE lambda 0.95, clip 0.2, no value clipping, ent_coef 0,
   vf_coef 0.5, grad-norm clip 0.5, advantage normalization, separate 64-64 tanh actor and critic with
   orthogonal init, state-independent log-std starting at 0, actions clipped to [-1, 1], no observation or
   reward normalization, torch 1 thread. Measured twice: both in-process (ours ``sync``, SB3
   ``DummyVecEnv``) and both with subprocess envs (ours 2 workers, SB3 ``SubprocVecEnv``, one per env);
2. our biped preset as shipped (``s2r train --env biped --algo ppo``: 8 envs ``auto`` = in-process below 4
   cores, n_steps 512, batch 512, 128-128, obs + reward normalization) vs SB3 ``PPO("MlpPolicy")`` with its
   defaults (1 env, n_steps 2048, batch 64, 64-64) — goal ≥ 3×; and the same preset with its 8 envs in
   subprocess workers (``--vec subproc``: one worker per core), wall clock, against the same SB3 baseline.

Runs are interleaved (ours, SB3, ours, SB3...) so load bursts from other jobs hit both alike; each figure is
the best of ``--repeats``. In-process runs are timed in CPU seconds of this process (``time.process_time``,
robust to a shared box) and wall seconds; subprocess runs only in wall seconds (the work is in the workers).
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable

import torch

from policies.ppo import PPOConfig, ppo_preset
from policies.train import TrainConfig, train
from policies.vec_env import make_env  # picklable factory: SB3's workers must register s2r envs too

ENV = "s2r/Biped-v0"


def ours(cfg: PPOConfig, num_envs: int, steps: int, vec: str = "auto") -> None:
    with tempfile.TemporaryDirectory() as d:
        train(TrainConfig(env=ENV, algo="ppo", steps=steps, num_envs=num_envs, checkpoint_every=10**9, vec=vec,
                          tensorboard=False, progress=False, algo_config=cfg), d)  # fmt: skip


def sb3(kwargs: dict, num_envs: int, steps: int, vec: str = "dummy") -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    vec_cls = SubprocVecEnv if vec == "subproc" else DummyVecEnv  # DummyVecEnv: make_vec_env's default
    venv = make_vec_env(functools.partial(make_env, ENV), n_envs=num_envs, vec_env_cls=vec_cls)
    PPO("MlpPolicy", venv, device="cpu", **kwargs).learn(steps)
    venv.close()


def rates(fn: Callable[[], None], steps: int) -> tuple[float, float]:
    """(env steps per CPU second of this process, env steps per wall second) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def compare(name: str, ours_fn: Callable[[], None], sb3_fn: Callable[[], None], steps: int, repeats: int,
            goal: float, cpu: bool) -> None:  # fmt: skip
    best = {"ours": (0.0, 0.0), "sb3": (0.0, 0.0)}
    for _ in range(repeats):
        for who, fn in (("ours", ours_fn), ("sb3", sb3_fn)):
            r = rates(fn, steps)
            best[who] = (max(best[who][0], r[0]), max(best[who][1], r[1]))
    (o_cpu, o_wall), (s_cpu, s_wall) = best["ours"], best["sb3"]
    line = f"{name}, {steps} steps, best of {repeats}: wall ours {o_wall:.0f} / SB3 {s_wall:.0f} steps/s = "
    line += f"{o_wall / s_wall:.2f}x"
    if cpu:
        line += f"; CPU ours {o_cpu:.0f} / SB3 {s_cpu:.0f} steps/cpu-s = {o_cpu / s_cpu:.2f}x"
    print(f"{line} (goal >= {goal}x)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=2, help="rollouts per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best of each counts")
    ap.add_argument("--skip-subproc", action="store_true", help="only the in-process comparisons")
    ap.add_argument("--only-preset", action="store_true", help="only the preset-vs-SB3-defaults comparisons")
    args = ap.parse_args()
    torch.set_num_threads(1)  # train() sets the same (TrainConfig.torch_threads = 1)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    # warm-up: lazy imports (pybullet, sim.biped, torch.distributions) must not be charged to the first measurement
    ours(PPOConfig(n_steps=8, batch_size=32, n_epochs=1), 4, 32, "sync")
    sb3({"n_steps": 8, "batch_size": 8, "n_epochs": 1}, 1, 16)

    same = PPOConfig(n_steps=512, batch_size=64, n_epochs=10, hidden=(64, 64), normalize_obs=False,
                     normalize_reward=False, num_envs=4)  # fmt: skip
    sb3_same = {"n_steps": 512, "batch_size": 64, "n_epochs": 10, "policy_kwargs": {"net_arch": [64, 64]}}
    steps = 512 * 4 * args.rollouts
    if not args.only_preset:
        compare_identical(args, same, sb3_same, steps)
    preset_comparisons(args)


def compare_identical(args: argparse.Namespace, same: PPOConfig, sb3_same: dict, steps: int) -> None:
    """Comparison 1: identical hyper-parameters, in-process and (unless --skip-subproc) with subprocess envs."""
    compare("identical hyper-parameters, 4 envs in-process", lambda: ours(same, 4, steps, "sync"),
            lambda: sb3(sb3_same, 4, steps, "dummy"), steps, args.repeats, 1.3, cpu=True)  # fmt: skip
    if not args.skip_subproc:
        compare("identical hyper-parameters, 4 envs subprocess", lambda: ours(same, 4, steps, "subproc"),
                lambda: sb3(sb3_same, 4, steps, "subproc"), steps, args.repeats, 1.3, cpu=False)  # fmt: skip


def preset_comparisons(args: argparse.Namespace) -> None:
    """Comparison 2: our biped preset (``auto`` vector env, and unless --skip-subproc forced subprocess workers,
    wall clock) vs SB3's PPO defaults."""
    preset = ppo_preset(ENV)
    steps = preset.n_steps * preset.num_envs * args.rollouts
    compare(f"our preset ({preset.num_envs} envs auto, n_steps {preset.n_steps}, batch {preset.batch_size}) vs SB3 "
            "defaults (1 env, n_steps 2048, batch 64)", lambda: ours(preset, preset.num_envs, steps),
            lambda: sb3({}, 1, steps), steps, args.repeats, 3.0, cpu=(os.cpu_count() or 1) < 4)  # fmt: skip
    if not args.skip_subproc:  # the physics of the 8 envs on all cores: only the wall clock tells
        compare(f"our preset ({preset.num_envs} envs in subprocess workers, one per core) vs SB3 defaults",
                lambda: ours(preset, preset.num_envs, steps, "subproc"), lambda: sb3({}, 1, steps), steps,
                args.repeats, 3.0, cpu=False)  # fmt: skip


if __name__ == "__main__":
    main()
