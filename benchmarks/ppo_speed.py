"""PPO env-steps/s on s2r/Biped-v0 (rollouts + updates, env start-up included), against stable-baselines3's PPO
measured in the same run:

1. identical hyper-parameters — goal ≥ 1.3×. Identical on both sides: 4 envs, n_steps 512, batch 64, 10 epochs,
   lr 3e-4 (constant), Adam eps 1e-5, gamma 0.99, GAE lambda 0.95, clip 0.2, no value clipping, ent_coef 0,
   vf_coef 0.5, grad-norm clip 0.5, advantage normalization, separate 64-64 tanh actor and critic with
   orthogonal init, state-independent log-std starting at 0, actions clipped to [-1, 1], no observation or
   reward normalization, torch 1 thread. Measured twice: both in-process (ours ``sync``, SB3
   ``DummyVecEnv``) and both with subprocess envs (ours 2 workers, SB3 ``SubprocVecEnv``, one per env);
2. our biped preset as shipped (``s2r train --env biped --algo ppo``: 8 envs, ``auto`` vector env = ``split`` on
   2+ cores (4 envs in this process, 4 in one worker process), n_steps 512, batch 512, 10 epochs, 128-128, obs +
   reward normalization, 1 torch thread while acting and one per core during updates) vs SB3
   ``PPO("MlpPolicy")`` with its defaults (1 env, n_steps 2048, batch 64, 64-64) — goal ≥ 3×. SB3 runs with 1
   torch thread (variant 1) and with torch's default, one per core (variant 2); the baseline is the variant with
   the better median.
   The same preset with its envs all in this process (``--vec sync``, the default before the split env) and, unless
   ``--skip-subproc``, all in subprocess workers (``--vec subproc``: one worker per core) are measured beside it.

Runs are interleaved (ours, SB3, ours, SB3...) so load bursts from other jobs hit both alike; each figure is
the best of ``--repeats``, and next to it the median of the per-round ratios (round k of ours over round k of
SB3: robust to a slow round on either side). In-process runs with 1 thread are also timed in CPU seconds of this
process (``time.process_time``, robust to a shared box); the preset runs use a second process and a second
thread, so they are timed in wall seconds only.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

# torch and the learners are imported inside the functions: env worker processes (ours and SB3's) re-import this
# script as their __main__ (multiprocessing's forkserver/spawn rule), and torch at the top would add its
# import time to every worker start that `s2r train`, whose entry module is light, does not pay
if TYPE_CHECKING:
    from policies.ppo import PPOConfig

ENV = "s2r/Biped-v0"


def ours(cfg: PPOConfig, num_envs: int, steps: int, vec: str = "auto", update_threads: int = 0) -> None:
    """``s2r train``'s loop (``update_threads`` 0: its default, one per core)."""
    from policies.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as d:
        train(TrainConfig(env=ENV, algo="ppo", steps=steps, num_envs=num_envs, checkpoint_every=10**9, vec=vec,
                          update_threads=update_threads, tensorboard=False, progress=False, algo_config=cfg), d)  # fmt: skip


def sb3(kwargs: dict, num_envs: int, steps: int, vec: str = "dummy", threads: int = 1) -> None:
    """SB3's PPO with ``threads`` torch threads (restored to 1 afterwards, as train() leaves them)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from policies.vec_env import make_env  # picklable factory: SB3's workers must register s2r envs too

    vec_cls = SubprocVecEnv if vec == "subproc" else DummyVecEnv  # DummyVecEnv: make_vec_env's default
    venv = make_vec_env(functools.partial(make_env, ENV), n_envs=num_envs, vec_env_cls=vec_cls)
    torch.set_num_threads(threads)
    try:
        PPO("MlpPolicy", venv, device="cpu", **kwargs).learn(steps)
    finally:
        torch.set_num_threads(1)
        venv.close()


def rates(fn: Callable[[], None], steps: int) -> tuple[float, float]:
    """(env steps per CPU second of this process, env steps per wall second) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def compare(name: str, ours_fn: Callable[[], None], sb3_fns: list[Callable[[], None]], steps: int, repeats: int,
            goal: float, cpu: bool) -> None:  # fmt: skip
    """Interleaved rounds of ours and each SB3 variant; SB3's baseline is the variant with the best median wall
    rate, and the per-round ratios pair round k of ours with round k of that variant. Prints best-of and median."""
    ours_runs: list[tuple[float, float]] = []
    sb3_runs: list[list[tuple[float, float]]] = [[] for _ in sb3_fns]
    for _ in range(repeats):
        ours_runs.append(rates(ours_fn, steps))
        for runs, fn in zip(sb3_runs, sb3_fns, strict=True):
            runs.append(rates(fn, steps))
    base = max(sb3_runs, key=lambda runs: sorted(r[1] for r in runs)[len(runs) // 2])
    (o_cpu, o_wall), (s_cpu, s_wall) = (tuple(max(col) for col in zip(*runs, strict=True)) for runs in (ours_runs, base))
    paired = sorted(o[1] / s[1] for o, s in zip(ours_runs, base, strict=True))
    which = f" (SB3 variant {sb3_runs.index(base) + 1} of {len(sb3_fns)})" if len(sb3_fns) > 1 else ""
    line = f"{name}, {steps} steps, best of {repeats}: wall ours {o_wall:.0f} / SB3 {s_wall:.0f}{which} steps/s = "
    line += f"{o_wall / s_wall:.2f}x (per-round ratios {', '.join(f'{r:.2f}' for r in paired)}; median "
    line += f"{paired[len(paired) // 2]:.2f}x)"
    if cpu:
        line += f"; CPU ours {o_cpu:.0f} / SB3 {s_cpu:.0f} steps/cpu-s = {o_cpu / s_cpu:.2f}x"
    print(f"{line} (goal >= {goal}x)", flush=True)


def main() -> None:
    import torch

    from policies.ppo import PPOConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=2, help="rollouts per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best of each counts")
    ap.add_argument("--skip-subproc", action="store_true", help="only the in-process comparisons")
    ap.add_argument("--only-preset", action="store_true", help="only the preset-vs-SB3-defaults comparisons")
    args = ap.parse_args()
    torch.set_num_threads(1)  # train() sets the same (TrainConfig.torch_threads = 1)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    # warm-up: lazy imports (pybullet, sim.biped, torch.distributions) and multiprocessing's forkserver (started
    # once per process, by the first split env) must not be charged to the first measurement
    ours(PPOConfig(n_steps=8, batch_size=32, n_epochs=1), 4, 32, "sync")
    ours(PPOConfig(n_steps=8, batch_size=32, n_epochs=1), 4, 32, "split")
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
    compare("identical hyper-parameters, 4 envs in-process", lambda: ours(same, 4, steps, "sync", 1),
            [lambda: sb3(sb3_same, 4, steps, "dummy")], steps, args.repeats, 1.3, cpu=True)  # fmt: skip
    if not args.skip_subproc:
        compare("identical hyper-parameters, 4 envs subprocess", lambda: ours(same, 4, steps, "subproc", 1),
                [lambda: sb3(sb3_same, 4, steps, "subproc")], steps, args.repeats, 1.3, cpu=False)  # fmt: skip


def preset_comparisons(args: argparse.Namespace) -> None:
    """Comparison 2: our biped preset as ``s2r train`` runs it (``auto`` vector env), then with its envs all in
    this process (``sync``) and, unless --skip-subproc, all in subprocess workers, vs SB3's PPO defaults."""
    from policies.ppo import ppo_preset

    preset = ppo_preset(ENV)
    steps = preset.n_steps * preset.num_envs * args.rollouts
    cores = os.cpu_count() or 1
    sb3_defaults = [lambda: sb3({}, 1, steps, threads=1), lambda: sb3({}, 1, steps, threads=cores)]
    variants = {"auto": "as shipped", "sync": "all envs in this process"}
    if not args.skip_subproc:
        variants["subproc"] = "all envs in subprocess workers, one per core"
    for vec, what in variants.items():
        compare(f"our preset ({preset.num_envs} envs {vec}: {what}; n_steps {preset.n_steps}, batch "
                f"{preset.batch_size}) vs SB3 defaults (1 env, n_steps 2048, batch 64)",
                lambda vec=vec: ours(preset, preset.num_envs, steps, vec), sb3_defaults, steps, args.repeats, 3.0,
                cpu=False)  # fmt: skip


if __name__ == "__main__":
    main()
