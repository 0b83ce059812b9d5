"""Control steps per second per core of s2r's envs, in PyBullet and in MuJoCo, next to gymnasium's
BipedalWalker-v3 (Box2D).

Same run, same random policy, episodes reset as they end (resets count: they are part of training throughput).
Runs are interleaved and the best of ``--repeats`` is kept for each env, so a noisy neighbour hurts both alike.

    python benchmarks/sim_speed.py [--steps 4000] [--repeats 3] [--envs biped,biped-mujoco,knob-mujoco]
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np

import sim

BASELINE = "BipedalWalker-v3"
# short name → (gym id, physics engine); each entry is compared against BipedalWalker-v3
ENVS = {
    "biped": ("s2r/Biped-v0", "pybullet"),
    "biped-rough": ("s2r/BipedRough-v0", "pybullet"),
    "biped-hardcore": ("s2r/BipedHardcore-v0", "pybullet"),
    "knob": ("s2r/Knob-v0", "pybullet"),
    "biped-mujoco": ("s2r/Biped-v0", "mujoco"),
    "biped-hardcore-mujoco": ("s2r/BipedHardcore-v0", "mujoco"),
    "knob-mujoco": ("s2r/Knob-v0", "mujoco"),
}
TARGETS = {"biped": 0.8, "knob": 0.8, "biped-mujoco": 3.0}  # goals (BENCHMARKS.md); the others carry none


def steps_per_s(env_id: str, steps: int, seed: int = 0, engine: str = "pybullet") -> float:
    """Random-action control steps per second of one env in this process (one core)."""
    from sim.engines import env_kwargs

    env = gym.make(env_id, **(env_kwargs(env_id, engine) if env_id != BASELINE else {}))
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=seed)
    t0 = time.process_time()  # CPU time of this process: steps per core-second, robust to busy neighbours
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    dt = time.process_time() - t0
    env.close()
    return steps / dt


def plant_share(env_id: str, engine: str, steps: int, seed: int = 0) -> float:
    """Fraction of a random-action run's CPU time spent inside the engine's plant (physics and its reads); the
    rest is the engine-independent env code (motor model, noise, observation, reward) and gymnasium."""
    from sim.engines import env_kwargs

    env = gym.make(env_id, **env_kwargs(env_id, engine))
    plant, inside = env.unwrapped._plant, [0.0]
    for name in ("substep", "motor_speeds", "read_state", "lidar", "reset_joints", "set_ground", "set_mass_scales",
                 "reset_state", "apply_params", "set_goal_marker", "set_substep"):  # fmt: skip
        method = getattr(plant, name, None)
        if method is not None:

            def timed(*a, _m=method, **k):
                t = time.process_time()
                try:
                    return _m(*a, **k)
                finally:
                    inside[0] += time.process_time() - t

            setattr(plant, name, timed)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    t0 = time.process_time()
    for a in rng.uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32):
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    total = time.process_time() - t0
    env.close()
    return inside[0] / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--envs", default=",".join(ENVS), help=f"comma list of {', '.join(ENVS)}")
    ap.add_argument("--breakdown", action="store_true", help="also the share of CPU time inside the physics plant")
    args = ap.parse_args()
    names = [n for n in args.envs.split(",") if n]
    runs = {BASELINE: (BASELINE, "pybullet"), **{n: ENVS.get(n) or (sim.resolve_env_id(n), "pybullet") for n in names}}
    best = {k: 0.0 for k in runs}
    for r in range(args.repeats):
        for name, (env_id, engine) in runs.items():
            best[name] = max(best[name], steps_per_s(env_id, args.steps, seed=r, engine=engine))
    base = best[BASELINE]
    print(f"sim_speed: {args.steps} random-action steps x best of {args.repeats}, 1 process, {os.cpu_count()} cores")
    print(f"{'env':<24} {'engine':<9} {'steps/s':>9} {'ratio vs ' + BASELINE:>28}")
    print(f"{BASELINE:<24} {'box2d':<9} {base:>9.0f} {1.0:>28.2f}")
    for name in names:
        env_id, engine = runs[name]
        target = f"(target >= {TARGETS[name]:.2f})" if name in TARGETS else "(no target)"
        print(f"{env_id:<24} {engine:<9} {best[name]:>9.0f} {best[name] / base:>28.2f}   {target}  [{name}]")
    if any(runs[n][1] == "mujoco" for n in names):
        from sim._mujoco import loop_backend

        print(f"MuJoCo biped substep loop and sensor reads: {loop_backend()} (S2R_MJLOOP=python forces Python)")
    if args.breakdown:  # timing wrappers add their own cost: a separate run, not the figures above
        for name in names:
            env_id, engine = runs[name]
            if env_id.startswith("s2r/"):
                share = plant_share(env_id, engine, args.steps)
                print(f"{name:<24} physics plant {share:.0%} of CPU time, env code and gymnasium {1 - share:.0%}")

if __name__ == "__main__":
    main()
