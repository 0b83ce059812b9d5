"""Vector-env throughput on s2r/Biped-v0 with random actions: our pipe-based ``SubprocVecEnv`` (per-env reset
with options, no autoreset) vs gymnasium's ``AsyncVectorEnv`` (shared memory, autoreset) vs in-process
``SyncVecEnv``. Prints env steps/s and ratios; run nice'd."""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from policies.vec_env import SubprocVecEnv, SyncVecEnv, make_env

ENV = "s2r/Biped-v0"


def ours(kind: type, n: int, steps: int) -> float:
    venv = kind(ENV, n)
    for i in range(n):
        venv.reset_one(i, seed=i)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(steps // n):
        _, _, term, trunc, _ = venv.step(rng.uniform(-1, 1, (n, 4)).astype(np.float32))
        for i in np.flatnonzero(term | trunc):
            venv.reset_one(i)
    rate = steps / (time.perf_counter() - t)
    venv.close()
    return rate


def gym_async(n: int, steps: int) -> float:
    venv = gym.vector.AsyncVectorEnv([lambda: make_env(ENV) for _ in range(n)], shared_memory=True,
                                     context="forkserver")  # fmt: skip
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(steps // n):
        venv.step(rng.uniform(-1, 1, (n, 4)).astype(np.float32))
    rate = steps / (time.perf_counter() - t)
    venv.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--envs", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best of each counts")
    args = ap.parse_args()
    for n in args.envs:
        runs = [(ours(SubprocVecEnv, n, args.steps), gym_async(n, args.steps), ours(SyncVecEnv, n, args.steps))
                for _ in range(args.repeats)]  # interleaved so load bursts hit all three kinds alike
        r_ours, r_gym, r_sync = (max(r[k] for r in runs) for k in range(3))
        print(f"{n} envs: ours subproc {r_ours:.0f} steps/s, gymnasium async {r_gym:.0f} steps/s, in-process "
              f"{r_sync:.0f} steps/s; ours/gymnasium {r_ours / r_gym:.2f}x, ours/in-process {r_ours / r_sync:.2f}x")


if __name__ == "__main__":
    main()
