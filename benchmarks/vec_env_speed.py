"""Vector-env throughput on s2r/Biped-v0 with random actions: our pipe-based ``SubprocVecEnv`` (per-env reset
with options, no autoreset; all envs in workers, or split with this process) vs gymnasium's ``AsyncVectorEnv``
(shared memory, autoreset) vs in-process ``SyncVecEnv``. Prints env steps/s and ratios; run nice'd."""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from policies.vec_env import SubprocVecEnv, SyncVecEnv, make_env

ENV = "s2r/Biped-v0"


def throughput(venv, n: int, steps: int) -> float:
    """Env steps/s of our vector env ``venv`` of ``n`` biped envs with random actions (falls and resets included,
    as in early training); benchmarks/ray_scale.py measures its Ray env the same way."""
    for i in range(n):
        venv.reset_one(i, seed=i)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(steps // n):
        _, _, term, trunc, _ = venv.step(rng.uniform(-1, 1, (n, 4)).astype(np.float32))
        for i in np.flatnonzero(term | trunc):
            venv.reset_one(int(i))
    return steps / (time.perf_counter() - t)


def ours(kind, n: int, steps: int) -> float:
    venv = kind(ENV, n)
    try:
        return throughput(venv, n, steps)
    finally:
        venv.close()


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
        kinds = {
            "ours, 1 env/worker": lambda e, k: SubprocVecEnv(e, k, n_workers=k),
            "ours, 2 workers": lambda e, k: SubprocVecEnv(e, k, n_workers=2),
            "ours, split (half in this process, half in 1 worker)": lambda e, k: SubprocVecEnv(
                e, k, n_workers=1, local_envs=k // 2
            ),
            "in-process": SyncVecEnv,
        }
        best = dict.fromkeys([*kinds, "gymnasium async"], 0.0)
        for _ in range(args.repeats):  # interleaved so load bursts hit every kind alike; best of each counts
            for name, kind in kinds.items():
                best[name] = max(best[name], ours(kind, n, args.steps))
            best["gymnasium async"] = max(best["gymnasium async"], gym_async(n, args.steps))
        base = best["gymnasium async"]
        print(f"{n} envs: " + ", ".join(f"{k} {v:.0f} steps/s ({v / base:.2f}x)" for k, v in best.items()))


if __name__ == "__main__":
    main()
