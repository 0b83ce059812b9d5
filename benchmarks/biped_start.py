"""Start stalls: how many seeded nominal episodes a biped bundle never walks off from. A deterministic policy can
settle, after its first step, into a double-support stance it holds for the whole episode (a fixed point of the
closed loop: an exploring policy is shaken out of it in training, so training's returns never show it). An
episode stalls when the robot has not fallen and has walked under ``--min-distance`` after ``--seconds``.

Each bundle runs through the controller's ``deploy.bundle.Policy`` (onnxruntime; the state of a bundle with one
is reset at every episode start), deterministic, on the nominal plant, seeds ``--seed`` on (``s2r eval`` starts
at 10000); give a baseline bundle as a second path to measure it on the same seeds.

    python benchmarks/biped_start.py BUNDLE [BASELINE_BUNDLE] [--episodes 200] [--seed 10000] [--workers 2]
        [--enable-ramp 0.5]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import gymnasium as gym

import sim  # noqa: F401  (registers the envs)
from domain_rand.evaluate import run_episode
from s2r.commands.stress import bundle_policy
from sim.robots import BIPED_SPEC


def outcomes(bundle_dir: str, seeds: list[int], seconds: float, min_distance_m: float, ramp_s: float) -> list[str]:
    """'stall', 'fall' or 'walk' for each seed's first ``seconds`` on the nominal plant, with the controller's
    torque ramp over ``ramp_s`` at the start (the ``enable_ramp`` parameter; 0: none)."""
    policy = bundle_policy(bundle_dir)  # as `s2r stress` runs a bundle: obs -> normalized action, state reset per episode
    env = gym.make("s2r/Biped-v0")
    try:
        params = {"enable_ramp": ramp_s} if ramp_s else None
        episodes = [run_episode(env, policy, seed, params, max_steps=int(seconds * BIPED_SPEC.control_hz))
                    for seed in seeds]  # fmt: skip
    finally:
        env.close()
    return ["fall" if ep.fell else "stall" if ep.metrics["distance_m"] < min_distance_m else "walk" for ep in episodes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", nargs="+", help="bundle folders (the first is measured, a second is the baseline)")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=10_000, help="seed of the first episode (then +1 per episode)")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long an episode runs before it is judged, s")
    ap.add_argument("--min-distance", type=float, default=1.0, help="walked less than this (m): a stall")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--enable-ramp", type=float, default=0.0, metavar="S",
                    help="the controller's torque ramp at the start, s (0.5 on a real-time board; 0: none, lockstep)")
    args = ap.parse_args()
    if args.episodes < 1 or args.workers < 1:
        ap.error("--episodes and --workers must be at least 1")
    seeds = list(range(args.seed, args.seed + args.episodes))
    chunks = [seeds[i :: args.workers] for i in range(args.workers)]
    stalls = {}
    for bundle in args.bundles:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            parts = pool.map(outcomes, [bundle] * len(chunks), chunks, [args.seconds] * len(chunks),
                             [args.min_distance] * len(chunks), [args.enable_ramp] * len(chunks))  # fmt: skip
            results = dict(zip([s for c in chunks for s in c], [r for p in parts for r in p], strict=True))
        stalled = sorted(s for s, r in results.items() if r == "stall")
        falls = sum(r == "fall" for r in results.values())
        stalls[bundle] = len(stalled)
        print(f"{bundle}: {len(stalled)} of {len(seeds)} episodes stall (seeds {stalled[:10]}"
              f"{' ...' if len(stalled) > 10 else ''}), {falls} fall in the first {args.seconds:g} s, enable ramp "
              f"{args.enable_ramp:g} s "
              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    if len(args.bundles) > 1:
        first, base = args.bundles[0], args.bundles[1]
        print(f"stalls: {stalls[first]} vs the baseline's {stalls[base]} on the same {len(seeds)} seeds")


if __name__ == "__main__":
    main()
