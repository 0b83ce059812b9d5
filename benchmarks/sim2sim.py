"""Sim-to-sim transfer: the shipped bundles (trained in PyBullet) run unchanged in the MuJoCo twin.

Each bundle's ONNX policy runs through the controller runtime's ``deploy.bundle.Policy`` (onnxruntime, raw sensor
units in, N·m out), deterministically, on the same seeded episodes in both engines: the PyBullet row is the
baseline measured in the same run. Success: the biped walks the whole 20 m course without falling
(``info["is_success"]``); the knob is turned to within 0.1 rad of its goal and held. ``--plants heldout`` adds
every held-out plant of ``domain_rand.plants`` in both engines. ``--ablate-contact-sensing`` adds a MuJoCo row
whose contact switches read only touching contacts (no sensing distance: see docs/mujoco.md).

    python benchmarks/sim2sim.py [--robots biped,knob] [--episodes 20] [--seed 20000] [--plants heldout]
        [--ablate-contact-sensing]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator

import gymnasium as gym
import numpy as np

import sim
from deploy.bundle import Policy, load_bundle
from deploy.pretrained import bundle_path
from sim.engines import env_kwargs
from sim.robots import get_robot

TARGETS = {"biped": 0.8, "knob": 0.8}  # success rate of the shipped bundle in MuJoCo, nominal plant


def run_episodes(robot: str, engine: str, episodes: int, seed: int, params: dict | None = None) -> dict[str, float]:
    """Deterministic episodes of the shipped bundle: success rate, mean return, mean distance (biped)."""
    policy = Policy(load_bundle(bundle_path(robot)))
    action = get_robot(robot).action
    env_id = sim.resolve_env_id(robot)
    env = gym.make(env_id, **env_kwargs(env_id, engine))
    ok, rets, dist = [], [], []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k, options={"params": params} if params else None)
            done, ret, info = False, 0.0, {}
            while not done:
                obs, r, term, trunc, info = env.step(action.to_normalized(policy(obs)))
                ret, done = ret + float(r), term or trunc
            ok.append(bool(info.get("is_success")))
            rets.append(ret)
            dist.append(float(info.get("distance_m", np.nan)))
    finally:
        env.close()
    return {"success": float(np.mean(ok)), "return": float(np.mean(rets)), "distance_m": float(np.mean(dist))}


@contextlib.contextmanager
def touching_only() -> Iterator[None]:
    """MuJoCo contact switches that read only touching contacts (sensing distance 0) for the duration."""
    import sim.biped_mujoco as biped
    import sim.knob_mujoco as knob

    saved = biped.CONTACT_SENSE_M, knob.CONTACT_SENSE_M
    biped.CONTACT_SENSE_M = knob.CONTACT_SENSE_M = 0.0
    try:
        yield
    finally:
        biped.CONTACT_SENSE_M, knob.CONTACT_SENSE_M = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robots", default="biped,knob")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20_000)
    ap.add_argument("--plants", default=None, help="also every plant of this suite (heldout)")
    ap.add_argument("--ablate-contact-sensing", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    print(f"sim2sim: shipped bundles, {args.episodes} deterministic episodes per row, seeds {args.seed}+")
    print(f"{'robot':<6} {'plant':<18} {'engine':<22} {'success':>8} {'return':>8} {'dist m':>7}")
    for robot in [r for r in args.robots.split(",") if r]:
        plants: dict[str, dict] = {"nominal": {}}
        if args.plants:
            from domain_rand.plants import get_plants

            plants.update({k: v for k, v in get_plants(robot, args.plants).items() if k != "nominal"})
        for plant, params in plants.items():
            rows = [("pybullet", "pybullet", contextlib.nullcontext()), ("mujoco", "mujoco", contextlib.nullcontext())]
            if args.ablate_contact_sensing and plant == "nominal":
                rows.append(("mujoco, touch-only flags", "mujoco", touching_only()))
            for label, engine, ctx in rows:
                with ctx:
                    s = run_episodes(robot, engine, args.episodes, args.seed, params)
                target = f"  (target >= {TARGETS[robot]:.0%})" if plant == "nominal" and label == "mujoco" else ""
                print(f"{robot:<6} {plant:<18} {label:<22} {s['success']:>8.0%} {s['return']:>8.1f} "
                      f"{s['distance_m']:>7.2f}{target}", flush=True)  # fmt: skip
    print(f"{time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
