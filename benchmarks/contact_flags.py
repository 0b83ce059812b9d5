"""How well a MuJoCo contact switch (surface distance below a threshold) reproduces PyBullet's contact flags.

Runs the shipped bundle in PyBullet; after every control step it places the MuJoCo model in PyBullet's
configuration at the start of the last physics substep (where both engines' reported contacts were found) and
measures each foot's / fingertip's distance to the ground / knob with ``mj_geomDistance``. Prints, per threshold,
the fraction of (step, switch) pairs on which "distance < threshold" equals PyBullet's flag. The MuJoCo plants'
``CONTACT_SENSE_M`` is the best threshold of this table (docs/mujoco.md).

    python benchmarks/contact_flags.py [--robot biped] [--episodes 4] [--steps 600]
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

import sim
from deploy.bundle import Policy, load_bundle
from deploy.pretrained import bundle_path
from sim.robots import get_robot

THRESHOLDS_M = (0.0, 0.0003, 0.0005, 0.0007, 0.001, 0.002, 0.004, 0.005, 0.006, 0.008)


def distances_and_flags(robot: str, episodes: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(distance m, PyBullet flag) per control step and switch, along the shipped policy's PyBullet episodes."""
    policy, action = Policy(load_bundle(bundle_path(robot))), get_robot(robot).action
    env: Any = gym.make(sim.resolve_env_id(robot)).unwrapped
    plant = env._plant
    before_last: dict[str, Any] = {}
    substep = plant.substep

    def recording_substep(torques_nm: list[float]) -> None:
        before_last["state"] = plant.read_state()
        substep(torques_nm)

    plant.substep = recording_substep
    if robot == "biped":
        from sim.biped_mujoco import MujocoBiped

        twin: Any = MujocoBiped()
        twin.set_ground(None, 0.1, 1.0)
        pairs = [([g], [twin._plane]) for _, g in twin._foot_geoms]
        flag_idx = [8, 13]
    else:
        from sim.knob_mujoco import MujocoKnob

        twin = MujocoKnob()
        pairs = [([tip], twin._knob_geoms) for tip in twin._tips]
        flag_idx = [14, 15]
    m, d = twin.model, twin.data
    dist, flags = [], []
    for seed in range(20_000, 20_000 + episodes):
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(action.to_normalized(policy(obs)))
            s = before_last["state"]
            if robot == "biped":
                d.qpos[:] = [s.x, s.z, s.pitch, *s.q]
            else:
                d.qpos[twin._qpos_ids], d.qpos[twin._knob_qpos] = s.q, s.knob_q
            mujoco.mj_forward(m, d)
            for (g1s, g2s), i in zip(pairs, flag_idx, strict=True):
                dist.append(min(mujoco.mj_geomDistance(m, d, a, b, 0.05, None) for a in g1s for b in g2s))
                flags.append(bool(obs[i]))
            if terminated or truncated:
                break
    env.close()
    return np.array(dist), np.array(flags)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robot", default="biped", choices=("biped", "knob"))
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    dist, flags = distances_and_flags(args.robot, args.episodes, args.steps)
    print(f"contact_flags: {args.robot}, {args.episodes} episodes, {len(flags)} (step, switch) pairs, "
          f"PyBullet flag on in {flags.mean():.1%}")  # fmt: skip
    for t in THRESHOLDS_M:
        print(f"threshold {t * 1e3:4.1f} mm   agreement {np.mean((dist < t) == flags):.2%}")


if __name__ == "__main__":
    main()
