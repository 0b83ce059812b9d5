"""PPO env-steps/s on s2r/Biped-v0 (rollouts + updates, wall clock incl. env start-up), against
stable-baselines3's PPO measured in the same run:

1. identical hyper-parameters (4 subprocess envs, n_steps 512, batch 64, 10 epochs, 64-64 tanh MLPs, no
   normalization) — goal ≥ 1.3×;
2. our biped preset with its vector envs ("auto") vs SB3 PPO with its defaults (1 env, n_steps 2048, batch 64)
   — goal ≥ 3×.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import torch

from policies.ppo import PPOConfig, ppo_preset
from policies.train import TrainConfig, train
from policies.vec_env import make_env  # picklable factory: SB3's workers must register s2r envs too

ENV = "s2r/Biped-v0"


def ours(cfg: PPOConfig, num_envs: int, steps: int, vec: str = "auto") -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        train(TrainConfig(env=ENV, algo="ppo", steps=steps, num_envs=num_envs, checkpoint_every=10**9, vec=vec,
                          tensorboard=False, progress=False, algo_config=cfg), d)  # fmt: skip
        return steps / (time.perf_counter() - t)


def sb3(kwargs: dict, num_envs: int, steps: int, vec: str = "dummy") -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv


    vec_cls = SubprocVecEnv if vec == "subproc" else DummyVecEnv  # DummyVecEnv: make_vec_env's default
    t = time.perf_counter()
    venv = make_vec_env(functools.partial(make_env, ENV), n_envs=num_envs, vec_env_cls=vec_cls)
    PPO("MlpPolicy", venv, device="cpu", **kwargs).learn(steps)
    venv.close()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rollouts", type=int, default=2, help="rollouts per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)

    # warm-up: lazy imports (pybullet, sim.biped, torch.distributions) must not be charged to the first measurement
    ours(PPOConfig(n_steps=8, batch_size=32, n_epochs=1), 4, 32, "sync")
    sb3({"n_steps": 8, "batch_size": 8, "n_epochs": 1}, 1, 16)

    same = PPOConfig(n_steps=512, batch_size=64, n_epochs=10, hidden=(64, 64), normalize_obs=False,
                     normalize_reward=False, num_envs=4)  # fmt: skip
    sb3_same = {"n_steps": 512, "batch_size": 64, "n_epochs": 10, "policy_kwargs": {"net_arch": [64, 64]}}
    steps = 512 * 4 * args.rollouts
    for vec in ("sync", "subproc"):  # both libraries' in-process and subprocess vector envs
        r_ours = ours(same, 4, steps, vec)
        r_sb3 = sb3(sb3_same, 4, steps, "dummy" if vec == "sync" else "subproc")
        print(f"identical hyper-parameters, 4 envs {vec}, {steps} steps: ours {r_ours:.0f} steps/s, SB3 {r_sb3:.0f} "
              f"steps/s, ratio {r_ours / r_sb3:.2f}x (goal >= 1.3x)")  # fmt: skip

    preset = ppo_preset(ENV)
    steps = preset.n_steps * preset.num_envs * args.rollouts
    r_default = sb3({}, 1, steps)
    r_preset = ours(preset, preset.num_envs, steps)
    print(f"our preset ({preset.num_envs} envs auto, n_steps {preset.n_steps}, batch {preset.batch_size}) vs SB3 "
          f"defaults, {steps} steps: ours {r_preset:.0f} steps/s, SB3 {r_default:.0f} steps/s, ratio "
          f"{r_preset / r_default:.2f}x (goal >= 3x)")  # fmt: skip


if __name__ == "__main__":
    main()
