"""What memory buys on the biped: MLP PPO vs recurrent PPO, MLP TD3 vs LSTM-TD3, same randomization and seed.

Trains each arm with ``policies.train.train`` under one fixed DR (``memory_latency_dr.json`` beside this script:
actuation latency 0–40 ms and sensor delay 0–20 ms, one control period; every other parameter nominal), from
scratch, each with its algorithm's preset (the off-policy arms with the changes ``ARMS`` lists). Then runs
``s2r stress`` (``domain_rand.stress``) on each final checkpoint with the latency and sensor-delay sweeps and the
reality box, and prints success per latency (0 = nominal), at one period of sensor delay and over the box, with
each arm's mean over the 0–40 ms sweep as a ratio against the first arm measured in the same run. Arms may differ
in steps (a reused run keeps its own; the output says each). Writes ``stress_<arm>.json`` and ``results.json`` to
``--out``.

    nice -n 5 python benchmarks/memory_latency.py [--arms mlp,rppo] [--steps 1000000] [--seed 0]
        [--episodes 10] [--plants 50] [--out runs/memory]

Finished runs in ``--out/<arm>`` are reused (delete the folder to retrain). The CLI twin of arm ``mlp`` is
``s2r train --env biped --algo ppo --dr benchmarks/memory_latency_dr.json --steps N --seed S`` (``rppo``:
``--algo rppo``; ``td3``: ``--algo td3 --td3-updates-per-step 0.25 --td3-batch-size 128``; ``lstm-td3``: the same
with ``--algo lstm-td3 --lstm-mem-hidden 64 --lstm-cur-hidden 64``). Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

from domain_rand.stress import StressConfig, run_stress
from policies.train import TrainConfig, train
from sim.files import atomic_write
from sim.robots import BIPED_SPEC

DR_FILE = Path(__file__).with_name("memory_latency_dr.json")
# arm → (algo, changes to its preset). The off-policy arms take one update per 4 env steps on batches of 128 and
# LSTM-TD3 a 64-unit memory: with its preset (128 units, an update per step) it trains too slowly on 2 cores
# for any budget of walking (BENCHMARKS.md, session 11)
TD3_BUDGET = {"updates_per_step": 0.25, "batch_size": 128}
ARMS: dict[str, tuple[str, dict]] = {
    "mlp": ("ppo", {}),
    "rppo": ("rppo", {}),
    "td3": ("td3", TD3_BUDGET),
    "lstm-td3": ("lstm-td3", {**TD3_BUDGET, "mem_hidden": 64, "cur_hidden": 64}),
}
SWEEPS = ("action_latency", "sensor_delay")
PERIOD_S = BIPED_SPEC.control_period_s  # one period of sensor delay (a value of the stress sweep)
LATENCY_MAX_S = 0.04  # the sweep: 0–40 ms


def train_arms(arms: list[str], out: Path, args: argparse.Namespace) -> dict[str, float]:
    """Train each arm not already finished in ``out``; returns the wall seconds of those trained now."""
    wall: dict[str, float] = {}
    for arm in arms:
        run_dir = out / arm
        if (run_dir / "checkpoints" / "latest.pt").exists():
            print(f"[memory] reusing {run_dir}", file=sys.stderr)
            continue
        algo, changes = ARMS[arm]
        cfg = TrainConfig(env="biped", algo=algo, steps=args.steps, seed=args.seed, dr=str(DR_FILE),
                          update_threads=1, tensorboard=False, progress=False).resolved()  # fmt: skip
        cfg = dataclasses.replace(cfg, algo_config=dataclasses.replace(cfg.algo_config, **changes))
        t0 = time.monotonic()
        summary = train(cfg, run_dir)
        wall[arm] = time.monotonic() - t0
        print(f"[memory] trained {arm}: {summary}", file=sys.stderr)
    return wall


def final_step(run_dir: Path) -> int:
    """The env steps a run trained for: the last row of its progress.csv (a resumed run's own total)."""
    with open(run_dir / "progress.csv", newline="") as f:
        return int(float(list(csv.DictReader(f))[-1]["global_step"]))


def arm_row(report: dict) -> dict:
    """Success at each latency (0 = the nominal plant), at one period of sensor delay, and over the box."""
    nominal = report["nominal"]["success_rate"]
    lat = report["sweep"]["action_latency"]
    delay = report["sweep"]["sensor_delay"]
    by_latency = {0.0: nominal, **dict(zip(lat["values"], lat["success"], strict=True))}
    box = report["reality_box"]
    return {
        "by_latency_s": by_latency,
        "mean_0_40ms": float(np.mean([s for v, s in by_latency.items() if v <= LATENCY_MAX_S + 1e-9])),
        "sensor_delay_one_period": dict(zip(delay["values"], delay["success"], strict=True))[PERIOD_S],
        "box": box["success_rate"],
        "box_wilson95": box["wilson95"],
        "torque_metrics": report["nominal"]["torque_metrics"],
    }


def format_table(rows: dict[str, dict]) -> str:
    lats = sorted(next(iter(rows.values()))["by_latency_s"])
    base = rows[next(iter(rows))]["mean_0_40ms"]
    head = ("| arm | " + " | ".join(f"{v * 1000:g} ms" for v in lats)
            + " | mean 0–40 ms (× first arm) | sensor delay 20 ms | reality box (95 % CI) |")  # fmt: skip
    lines = [head, "| --- |" + " ---: |" * (len(lats) + 3)]
    for arm, r in rows.items():
        ratio = f"×{r['mean_0_40ms'] / base:.2f}" if base else "no ratio: the first arm is at 0"
        lo, hi = r["box_wilson95"]
        lines.append(f"| {arm} | " + " | ".join(f"{r['by_latency_s'][v]:.0%}" for v in lats)
                     + f" | {r['mean_0_40ms']:.0%} ({ratio}) | {r['sensor_delay_one_period']:.0%}"
                     + f" | {r['box']:.0%} ({lo:.0%}–{hi:.0%}) |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", default="mlp,rppo", help=f"comma list of {', '.join(ARMS)}; the first is the baseline")
    ap.add_argument("--steps", type=int, default=1_000_000, help="env steps per arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=10, help="`s2r stress` episodes per sweep value")
    ap.add_argument("--plants", type=int, default=50, help="`s2r stress` reality-box plants per arm")
    ap.add_argument("--workers", type=int, default=0, help="stress worker processes (0: one per core)")
    ap.add_argument("--out", default="runs/memory")
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or not arms:
        ap.error(f"--arms: unknown {', '.join(unknown) or '(none given)'}; use a comma list of {', '.join(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wall = train_arms(arms, out, args)

    from s2r.commands.stress import run_policy

    cfg = StressConfig(args.episodes, args.plants, args.seed, args.workers, SWEEPS)
    rows: dict[str, dict] = {}
    for arm in arms:
        ckpt = out / arm / "checkpoints" / "latest.pt"  # the final policy: 'best' is picked on the nominal plant
        report = run_stress("biped", functools.partial(run_policy, str(ckpt)), cfg)
        atomic_write(out / f"stress_{arm}.json", json.dumps(report, indent=2) + "\n")
        rows[arm] = arm_row(report)
        print(f"[memory] stressed {arm}: {report['wall_s']:.0f} s", file=sys.stderr)
    table = format_table(rows)
    steps = {arm: final_step(out / arm) for arm in arms}
    print(f"success = the biped's stress success; {args.episodes} episodes per sweep value, {args.plants} box plants; "
          f"env steps {steps}, seed {args.seed}, DR {DR_FILE.name}")  # fmt: skip
    print(table)
    rows_out = {a: {**r, "by_latency_s": {str(k): v for k, v in r["by_latency_s"].items()}} for a, r in rows.items()}
    results = {"args": vars(args), "steps": steps, "train_wall_s": wall, "rows": rows_out}
    atomic_write(out / "results.json", json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
