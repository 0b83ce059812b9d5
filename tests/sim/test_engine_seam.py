"""Seeded episodes are bit-identical across refactors of the engine seam (``sim/*_pybullet.py``,
``sim/*_mujoco.py``) and of the shared env code (motor model, observation, the speed work of issue #21).

The PyBullet digests were recorded on the code before the seam existed (commit a93bfa3), the MuJoCo ones on the
twin before its speed work (commit d61319e). A change here means the physics or the shared env code changed what
an episode produces: a deliberate physics change bumps the env id (bundles pin it, STYLE.md §13) and then these
digests; an accidental one is a bug.
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)

# nominal and perturbed physics, both terrains with a heightfield, noise, latency and control jitter
CASES = {
    "biped-flat": ("s2r/Biped-v0", None, 200),
    "biped-rough-dr": (
        "s2r/BipedRough-v0",
        {"ground_friction": 0.6, "hull_mass_scale": 1.3, "leg_mass_scale": 0.8, "action_latency": 0.02,
         "control_jitter": 0.002, "encoder_noise": 0.01, "imu_noise": 0.01, "lidar_dropout": 0.2,
         "lidar_noise": 0.05, "velocity_noise": 0.05, "terrain_roughness": 0.03},
        150,
    ),
    "biped-hardcore": ("s2r/BipedHardcore-v0", None, 150),
    "knob": ("s2r/Knob-v0", None, 200),
    "knob-dr": (
        "s2r/Knob-v0",
        {"knob_friction": 0.05, "knob_damping": 0.02, "knob_inertia_scale": 2.0, "fingertip_friction": 0.5,
         "finger_mass_scale": 1.5, "action_latency": 0.02, "control_jitter": 0.002, "encoder_noise": 0.01,
         "knob_encoder_noise": 0.01, "joint_damping": 0.1},
        150,
    ),
}  # fmt: skip

# the three biped digests re-recorded when a reused PyBullet env stopped reporting the previous episode's last
# contacts in its first observation after reset (sim/biped.py Version History); a fresh env's episodes are unchanged.
# rough and hardcore re-recorded again with the heightfield's triangle-edge contact fix (same Version History)
DIGESTS = {
    "biped-flat": "1198e0dd93c20758b9593ee1c10991d67957d0c344364d73403d4adda7d4febb",
    "biped-rough-dr": "46d96cb09a88571bdea3b51d90e4a9d59d1a358dacc357cae683934925bfda6f",
    "biped-hardcore": "93a8d1de3cb9735068ca24bb5b5fda4b479c1a4e194b71a87dd02dda2ffaf97a",
    "knob": "e4d5e5265d591ba6bc40cf56b250a1736512ad562b2e8f301248b8642f2dce16",
    "knob-dr": "fde7aff80a2a1711f4671c1fd398d082e084016d888c139ee750efa68e2025c2",
}


MUJOCO_DIGESTS = {
    # rough and hardcore re-recorded when the heightfield joined the collision mid-phase (the robot had fallen
    # through it: docs/mujoco.md, sim/biped.py Version History); flat and knob unchanged
    "biped-flat": "1383a31f7ba1e3715f7050e9d496c2711180e068b9664e3ade3e78240f18cc55",
    "biped-rough-dr": "438244ac6e7368bb8a931c82432afcb69598bee867334b7b2b9d53735b27e01a",
    "biped-hardcore": "0530c5cdb30d0028b69d699250bb7982a45ba112ff7062dc7fea598bebd48980",
    "knob": "1b1cc4a760226074a58cae6efaeadb47db4f727028960ba18218e6bbf1a626db",
    "knob-dr": "865ef8eaf231239e445a66d644f146748eeee3346b97f356bb240f02bcb0704d",
}


def episode_digest(env_id: str, params: dict[str, float] | None, steps: int, engine: str = "pybullet") -> str:
    """sha256 of every observation, reward, termination flag and info metric of two seeded episodes."""
    env = gym.make(env_id, engine=engine)
    rng = np.random.default_rng(7)
    h = hashlib.sha256()
    try:
        for seed in (3, 4):  # the second reset reuses the client: exercises the cached ground and masses
            obs, _ = env.reset(seed=seed, options={"params": params} if params else None)
            h.update(obs.tobytes())
            for _ in range(steps):
                obs, reward, term, trunc, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
                h.update(obs.tobytes())
                metrics = [reward, float(term), float(trunc), info.get("distance_m", 0.0),
                           info.get("angle_error_rad", 0.0), *info["applied_torque_nm"].tolist()]  # fmt: skip
                h.update(np.array(metrics, dtype=np.float64).tobytes())
                if term or trunc:
                    obs, _ = env.reset()
                    h.update(obs.tobytes())
    finally:
        env.close()
    return h.hexdigest()


@pytest.mark.parametrize("case", list(CASES))
def test_pybullet_episode_is_bit_identical(case):
    assert episode_digest(*CASES[case]) == DIGESTS[case]


@pytest.mark.parametrize("case", list(CASES))
def test_mujoco_episode_is_bit_identical(case):
    assert episode_digest(*CASES[case], engine="mujoco") == MUJOCO_DIGESTS[case]
