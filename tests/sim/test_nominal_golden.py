"""Bit-identical episodes at nominal: the actuator/sensor models of issue #19 change nothing until a parameter
leaves its nominal value.

The digests were recorded on main *before* those models existed (commit a93bfa3), with the code below: a
sha256 over every observation, reward and applied torque of seeded episodes. A digest that changes means that
today's nominal physics, or the order of the random draws of the existing parameters, changed — every trained
policy and shipped bundle would then see a different simulator. Digests are platform-specific (float rounding of
the physics engine), like the rest of the seeded-determinism tests.
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from deploy.bundle import Policy, load_bundle
from deploy.pretrained import bundle_path
from sim.robots import get_robot

# the parameters that existed before issue #19, away from nominal: their random draws must keep their order
OLD_BIPED = {"action_latency": 0.012, "control_jitter": 0.002, "encoder_noise": 0.004, "encoder_bias": 0.01,
             "imu_noise": 0.01, "velocity_noise": 0.02, "lidar_noise": 0.01, "lidar_dropout": 0.1,
             "hull_mass_scale": 1.1, "leg_mass_scale": 0.9, "terrain_roughness": 0.01}  # fmt: skip
OLD_KNOB = {"action_latency": 0.012, "control_jitter": 0.002, "encoder_noise": 0.004, "knob_encoder_noise": 0.01,
            "finger_mass_scale": 1.2, "knob_friction": 0.03}  # fmt: skip


def random_digest(env_id: str, params: dict[str, float], episodes: int = 3, steps: int = 300, seed: int = 7) -> str:
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k, options={"params": params})
        h.update(np.asarray(obs, dtype=np.float32).tobytes())
        for _ in range(steps):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            h.update(np.asarray(obs, dtype=np.float32).tobytes())
            h.update(np.float64(reward).tobytes())
            h.update(np.asarray(info["applied_torque_nm"], dtype=np.float32).tobytes())
            if terminated or truncated:
                break
    env.close()
    return h.hexdigest()


def bundle_digest(robot: str, env_id: str, seed: int, params: dict[str, float] | None = None) -> str:
    """The shipped bundle's torques in a seeded episode (what the board would receive)."""
    policy = Policy(load_bundle(bundle_path(robot)))
    action = get_robot(robot).action
    env = gym.make(env_id)
    h = hashlib.sha256()
    obs, _ = env.reset(seed=seed, options={"params": params or {}})
    done = False
    while not done:
        torque = policy(obs)
        h.update(np.asarray(torque, dtype=np.float32).tobytes())
        obs, reward, terminated, truncated, _ = env.step(action.to_normalized(torque))
        h.update(np.asarray(obs, dtype=np.float32).tobytes())
        h.update(np.float64(reward).tobytes())
        done = terminated or truncated
    env.close()
    return h.hexdigest()


GOLDEN = {  # recorded on main at a93bfa3, before the issue #19 models
    # re-recorded each time the shipped biped bundle was replaced by a reality-box policy (issue #20, docs/pretrained.md)
    "biped_bundle_nominal": "e972666bd54c1182a18a6af0a7caee295657a919676f71c4142e17a48462c32a",
    # re-recorded with the reused-env contact fix (sim/biped.py Version History)
    "biped_random_nominal": "5a7972a613968e8a0fad4387c83d9d36b68f08103787e09fbf4421d2250e958c",
    # episodes on a heightfield (OLD_BIPED has roughness), re-recorded with the triangle-edge contact fix
    # (sim/biped.py Version History); old_params also earlier, with the reused-env contact fix
    "biped_random_old_params": "04e893dd757caf8e52b4a06f60c1eab57d3c12f4cd369a0cdac64333ed8238f8",
    "biped_rough_random_nominal": "cdfae48be0f0333f97ce04060761698b8815f7c0f3995d7a287c0395b85a4667",
    # re-recorded each time the shipped knob bundle was replaced by a reality-box policy (issue #20, docs/pretrained.md)
    "knob_bundle_nominal": "816ffde4c85342634e0ed4211dc4d7b5953241bee46af194d031aa037e582f36",
    "knob_random_nominal": "72475d2e63b29d69e68c80d3632aceab0bade188f6d7ceacd2e8c9bbbae2753e",
    "knob_random_old_params": "d0946d3cd39635ccba8605679ca0544e60a37715a112824da725acea4b27b8ad",
}

CASES = {
    "biped_random_nominal": lambda: random_digest("s2r/Biped-v0", {}),
    "biped_random_old_params": lambda: random_digest("s2r/Biped-v0", OLD_BIPED),
    "biped_rough_random_nominal": lambda: random_digest("s2r/BipedRough-v0", {}),
    "knob_random_nominal": lambda: random_digest("s2r/Knob-v0", {}),
    "knob_random_old_params": lambda: random_digest("s2r/Knob-v0", OLD_KNOB),
    "biped_bundle_nominal": lambda: bundle_digest("biped", "s2r/Biped-v0", 20_000),
    "knob_bundle_nominal": lambda: bundle_digest("knob", "s2r/Knob-v0", 20_000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nominal_episodes_are_bit_identical(case):
    assert CASES[case]() == GOLDEN[case]
