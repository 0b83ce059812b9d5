"""What a biped bundle's gait asks of the floor and the joints: the friction it demands, how fast its feet slide,
how far the hull leans and how long a hip rests on its joint stop, on one plant; and how far it walks when the
floor's friction drops to ``--low-friction``.

Friction demand is the required coefficient of friction of gait biomechanics: at each contact point of a foot
with the ground, |tangential force| / normal force (PyBullet's contact forces of the control step's last substep;
points pressing under 1 N left out). A point at the ratio μ of its floor slides; a gait whose force sits above 0.4 cannot
stand on a floor of friction 0.4. The figures are force-weighted shares over every control step of the
episodes. Each bundle runs through the controller's ``deploy.bundle.Policy`` (onnxruntime), deterministic, on the
same seeds; give a baseline bundle as a second path to measure it in the same run.

    python benchmarks/biped_gait.py BUNDLE [BASELINE_BUNDLE] [--episodes 3] [--low-friction 0.4] [--params '{...}']
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from deploy.bundle import Policy, load_bundle
from sim.biped import FOOT_LINKS, BipedEnv, foot_slip_mps
from sim.robots import get_robot

AT_STOP_RAD = 0.02  # a hip within this of its joint limit rests on the stop
MIN_NORMAL_N = 1.0  # contact points pressing less than this are left out of the friction demand


def gait_figures(bundle_dir: str, episodes: int, seed: int, params: dict[str, float]) -> dict[str, float]:
    """The figures of the module docstring over ``episodes`` seeded episodes of the course on plant ``params``."""
    policy, action = Policy(load_bundle(bundle_dir)), get_robot("biped").action
    motors = action.motors
    hips = [i for i, m in enumerate(motors) if m.name.startswith("hip")]  # indices into the state's joints
    env = BipedEnv()
    ratios, weights, slips, pitches, at_stop, distances = [], [], [], [], 0, []
    steps = 0
    try:
        for k in range(episodes):
            policy.reset_state()
            obs, _ = env.reset(seed=seed + k, options={"params": params})
            plant: Any = env._plant
            info: dict = {}
            for _ in range(1600):  # the registered time limit
                obs, _, terminated, _, info = env.step(action.to_normalized(policy(obs)))
                state, steps = env._state, steps + 1  # the state this step ended in
                for link, normal_n, tangential_n in plant.ground_contact_forces():
                    if link in FOOT_LINKS and normal_n >= MIN_NORMAL_N:
                        ratios.append(tangential_n / normal_n)
                        weights.append(normal_n)
                slips += [abs(foot_slip_mps(state, i)) for i, f in enumerate(FOOT_LINKS) if f in state.contact_links]
                pitches.append(abs(state.pitch))
                at_stop += any(state.q[i] >= motors[i].joint_high_rad - AT_STOP_RAD
                               or state.q[i] <= motors[i].joint_low_rad + AT_STOP_RAD for i in hips)  # fmt: skip
                if terminated:
                    break
            distances.append(float(info["distance_m"]))
    finally:
        env.close()
    r, w = np.array(ratios), np.array(weights)
    return {
        "distance_m": float(np.mean(distances)),
        "demand_median": float(np.median(r)) if r.size else 0.0,
        "force_above_0.4_pct": 100.0 * float(w[r > 0.4].sum() / w.sum()) if r.size else 0.0,
        "force_above_0.6_pct": 100.0 * float(w[r > 0.6].sum() / w.sum()) if r.size else 0.0,
        "slip_mps": float(np.mean(slips)) if slips else 0.0,
        "pitch_rad": float(np.mean(pitches)),
        "hip_at_stop_pct": 100.0 * at_stop / max(steps, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("baseline", nargs="?")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20_000)
    ap.add_argument("--low-friction", type=float, default=0.4, help="the slippery floor's friction coefficient")
    ap.add_argument("--params", default="{}", help="plant parameters (JSON) of every episode")
    args = ap.parse_args()
    params = json.loads(args.params)
    rows = {}
    for path in filter(None, (args.bundle, args.baseline)):
        figs = gait_figures(path, args.episodes, args.seed, params)
        slippery = gait_figures(path, args.episodes, args.seed, {**params, "ground_friction": args.low_friction})
        figs[f"distance_at_{args.low_friction:g}_m"] = slippery["distance_m"]
        rows[path] = figs
        print(path, " ".join(f"{k} {v:.3g}" for k, v in figs.items()))
    if args.baseline:
        a, b = rows[args.bundle], rows[args.baseline]
        print("ratio bundle/baseline:", " ".join(f"{k} {a[k] / b[k]:.2f}" for k in a if b[k]))


if __name__ == "__main__":
    main()
