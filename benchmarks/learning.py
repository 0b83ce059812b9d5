"""Learning benchmark: train with a preset and report the env steps and wall time until the rolling mean
training return first reaches ``--threshold`` (and the final deterministic eval), or read an existing run dir.

Examples (run nice'd, one at a time, on the 2-core box):
    python benchmarks/learning.py --env biped --algo ppo --steps 1000000 --threshold 250
    python benchmarks/learning.py --env Pendulum-v1 --algo td3 --steps 20000 --threshold -200
    python benchmarks/learning.py --read runs/biped-ppo --threshold 250
The baseline to compare with is a published rl-zoo score (stated next to the result in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from policies.checkpoint import load_inference_policy
from policies.evaluate import evaluate
from policies.plotting import read_progress
from policies.train import TrainConfig, train


def first_crossing(run_dir: Path, threshold: float, key: str = "return_mean") -> tuple[float, float] | None:
    """(env steps, wall s) of the first progress row with ``key >= threshold``, or None."""
    cols = read_progress(run_dir / "progress.csv")
    for step, t, v in zip(cols["global_step"], cols["time_s"], cols.get(key, []), strict=False):
        if v >= threshold:
            return step, t
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="biped")
    ap.add_argument("--algo", default="ppo")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=0)
    ap.add_argument("--threshold", type=float, required=True)
    ap.add_argument("--key", default="return_mean", help="progress.csv column (e.g. success_rate)")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--read", default=None, metavar="RUN_DIR", help="analyse an existing run instead of training")
    ap.add_argument("--episodes", type=int, default=10, help="final deterministic eval episodes")
    args = ap.parse_args()

    if args.read:
        run_dir = Path(args.read)
    else:
        run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix=f"learn-{args.algo}-"))
        cfg = TrainConfig(env=args.env, algo=args.algo, steps=args.steps, seed=args.seed, num_envs=args.num_envs,
                          tensorboard=False, progress=True)  # fmt: skip
        train(cfg, run_dir)
    cols = read_progress(run_dir / "progress.csv")
    hit = first_crossing(run_dir, args.threshold, args.key)
    last = {k: v[-1] for k, v in cols.items()}
    print(f"run {run_dir}: {last['global_step']:.0f} steps in {last['time_s']:.0f} s, final rolling {args.key} "
          f"{last.get(args.key, float('nan')):.3g}")  # fmt: skip
    if hit:
        print(f"{args.key} >= {args.threshold:g} first at {hit[0]:.0f} env steps, {hit[1]:.0f} s ({hit[1] / 60:.1f} min)")
    else:
        print(f"{args.key} never reached {args.threshold:g}")
    s = evaluate(load_inference_policy(run_dir), episodes=args.episodes).summary()
    print("deterministic eval (best checkpoint): " + ", ".join(f"{k} {v:.3g}" for k, v in s.items()))


if __name__ == "__main__":
    main()
