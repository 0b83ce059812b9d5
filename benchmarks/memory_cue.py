"""Memory sanity for recurrent PPO: a cue task that only a policy with memory can solve, recurrent PPO against MLP
PPO (the baseline, same run, same hyper-parameters).

The cue (±1) is in the first observation only; each of the ``--length`` steps pays +1 when the action's sign
matches it and −1 otherwise. Without memory the best expected return is 1 (the first action sees the cue);
with memory it is ``--length``. Each arm trains ``--steps`` env steps on 8 envs (seed 0); the figure is the mean
return of the last 40 episodes and the CPU seconds it took. Record results in BENCHMARKS.md ("Memory").

    python benchmarks/memory_cue.py --steps 4096
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig
from policies.recurrent_ppo import RecurrentPPOAgent, RecurrentPPOConfig


def train_on_cue(agent, steps: int, length: int, n: int = 8, seed: int = 0) -> float:
    """Mean return of the last 40 episodes after ``steps`` env steps on ``n`` cue envs (vectorized by hand)."""
    rng = np.random.default_rng(seed)
    cue, t = rng.choice([-1.0, 1.0], n), np.zeros(n, dtype=np.int64)
    obs = np.stack([cue, np.ones(n)], axis=1).astype(np.float32)
    returns, ep = [], np.zeros(n)
    for _ in range(steps // n):
        act = agent.act(obs)
        t += 1
        reward = np.where(np.sign(act[:, 0]) == cue, 1.0, -1.0)
        done = t >= length
        agent.observe(obs, act, reward, np.zeros_like(obs), np.zeros(n, bool), done)
        agent.update()
        ep += reward
        returns += ep[done].tolist()
        ep[done], t[done] = 0.0, 0
        cue = np.where(done, rng.choice([-1.0, 1.0], n), cue)
        obs = np.where(done[:, None], np.stack([cue, np.ones(n)], axis=1), 0.0).astype(np.float32)
    return float(np.mean(returns[-40:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4096)
    ap.add_argument("--length", type=int, default=3, help="rewarded steps per episode")
    args = ap.parse_args()
    torch.set_num_threads(1)
    common = {"n_steps": 32, "batch_size": 64, "n_epochs": 4, "lr": 3e-3, "normalize_obs": False,
              "normalize_reward": False, "gamma": 0.9, "hidden": (16,)}  # fmt: skip
    arms = {
        "recurrent PPO": lambda: RecurrentPPOAgent(RecurrentPPOConfig(**common, seq_len=8, lstm_hidden=16), 2, 1,
                                                   ObsNormalizer(2), 8, args.steps, seed=0),
        "MLP PPO": lambda: PPOAgent(PPOConfig(**common), 2, 1, ObsNormalizer(2), 8, args.steps, seed=0),
    }  # fmt: skip
    print(f"cue task, {args.length} rewarded steps (no memory: at best 1), {args.steps} env steps, seed 0")
    for name, make in arms.items():
        torch.manual_seed(0)
        t0 = time.process_time()
        ret = train_on_cue(make(), args.steps, args.length)
        print(f"{name:14s} return {ret:5.2f} of {args.length}   {time.process_time() - t0:5.1f} CPU-s")


if __name__ == "__main__":
    main()
