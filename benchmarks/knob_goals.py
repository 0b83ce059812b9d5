"""Goals in a row: a knob bundle on ``s2r/Knob-v0`` with ``continuous_goals=True`` (a new target 180° ± 60° away
after each success), the share of seeded episodes (400 steps, 8 s) that reach at least 1, 2, 3 goals in a row.

Each bundle runs through the controller's ``deploy.bundle.Policy`` (onnxruntime; the state of a bundle with one
is reset at every episode start), deterministic, on the same seeds; give the baseline bundle as a second path to
measure it in the same run. Optional ``--params`` JSON runs every episode on that plant.

    python benchmarks/knob_goals.py BUNDLE [BASELINE_BUNDLE] [--episodes 50] [--seed 10000] [--params '{...}']
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from deploy.bundle import Policy, load_bundle
from sim.knob import KnobEnv
from sim.robots import get_robot
from sim.task import get_task


def goals_in_a_row(bundle_dir: str, episodes: int, seed: int, params: dict | None = None) -> list[int]:
    """Consecutive successes of each seeded episode (seeds ``seed .. seed + episodes - 1``)."""
    policy = Policy(load_bundle(bundle_dir))
    action = get_robot("knob").action
    env = KnobEnv(continuous_goals=True)
    out = []
    try:
        for k in range(episodes):
            policy.reset_state()
            obs, _ = env.reset(seed=seed + k, options={"params": params} if params else None)
            info: dict = {}
            for _ in range(get_task("knob").envs[0].max_episode_steps):  # the registered time limit: 400 steps
                obs, _, _, _, info = env.step(action.to_normalized(policy(obs)))
            out.append(int(info.get("consecutive_successes", 0)))
    finally:
        env.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", help="knob bundle folders (the first is measured, the rest are baselines)")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=10_000)
    ap.add_argument("--params", default=None, help="JSON object of plant parameters (default: nominal)")
    args = ap.parse_args()
    params = json.loads(args.params) if args.params else None
    print(f"{'bundle':<40}{'>= 1 goal':>10}{'>= 2':>8}{'>= 3':>8}{'mean':>7}{'time s':>8}")
    for path in args.bundles:
        t0 = time.perf_counter()
        n = np.array(goals_in_a_row(path, args.episodes, args.seed, params))
        shares = [100 * float(np.mean(n >= g)) for g in (1, 2, 3)]
        print(f"{path:<40}{shares[0]:>9.0f}%{shares[1]:>7.0f}%{shares[2]:>7.0f}%{n.mean():>7.2f}"
              f"{time.perf_counter() - t0:>8.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
