"""The MuJoCo biped's compiled substep loop (``sim/_mjloop.c``) against the pure-Python loop it replaces: the same
torques and the same episodes, bit for bit. Skipped where the C extension did not build (the install then runs
the Python loop alone)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim  # noqa: F401  (registers the envs)
from sim.motor import MotorModel, MotorParams
from sim.robots import BIPED_SPEC

pytest.importorskip("sim._mjloop", reason="the C substep loop did not build here (no C compiler at install time)")


def _usable() -> bool:
    """The extension is built here; is it also meant to run (the MuJoCo major version its prototypes were checked
    against, not switched off)?"""
    import os

    import mujoco

    from sim._mujoco import _LOOP_CHECKED_MAJOR

    major = int(mujoco.__version__.split(".")[0])
    return major in _LOOP_CHECKED_MAJOR and os.environ.get("S2R_MJLOOP", "").lower() != "python"


pytestmark = pytest.mark.skipif(not _usable(), reason="MuJoCo version without checked prototypes, or S2R_MJLOOP=python")


def _python_loop(env: gym.Env) -> gym.Env:
    env.unwrapped._plant._loop = None  # type: ignore[attr-defined]  # the pure-Python loop, as without the build
    return env


def test_the_compiled_loop_is_used_where_it_built():
    """Built and meant to run, it runs: finding MuJoCo's functions did not fail silently."""
    env = gym.make("s2r/Biped-v0", engine="mujoco")
    try:
        assert env.unwrapped._plant._loop is not None  # type: ignore[attr-defined]
    finally:
        env.close()


finite = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)


@settings(max_examples=200, deadline=None)
@given(
    cmd=st.lists(st.one_of(st.floats(-45.0, 45.0), st.sampled_from([0.0, -0.0, 30.0, -30.0])), min_size=4, max_size=4),
    vel=st.lists(st.one_of(st.floats(-30.0, 30.0), st.sampled_from([0.0, -0.0, 14.0, -14.0, 1e-300])),
                 min_size=4, max_size=4),
    strength=st.floats(0.3, 1.5),
    damping=st.floats(0.0, 0.5),
    friction=st.floats(0.0, 0.5),
)
def test_one_substep_applies_the_python_motor_models_torques_bit_for_bit(cmd, vel, strength, damping, friction):
    """Random commands (beyond the limits too), speeds (both signs of zero, the no-load speed) and motors."""
    env = gym.make("s2r/Biped-v0", engine="mujoco")
    try:
        env.reset(seed=0)
        plant = env.unwrapped._plant  # type: ignore[attr-defined]
        motor = MotorModel(BIPED_SPEC.action, 0.004, 5)
        motor.reset(MotorParams(strength=strength, damping_nms_rad=damping, friction_nm=friction))
        motor.command(cmd)
        plant.data.qvel[3:7] = vel
        want = motor.torque(list(vel))
        want_motor = motor.last_motor_nm
        plant.motor_substeps(motor, list(vel), 1)  # the compiled loop writes qfrc_applied, then steps
        assert plant.data.qfrc_applied[3:7].tolist() == want
        assert motor.last_applied_nm == want and motor.last_motor_nm == want_motor
    finally:
        env.close()


CASES = {
    "flat": ("s2r/Biped-v0", None),
    "latency-strength": ("s2r/Biped-v0", {"action_latency": 0.012, "motor_strength": 0.8, "ground_friction": 0.6}),
    "rough-jitter-noise": ("s2r/BipedRough-v0", {"control_jitter": 0.002, "encoder_noise": 0.01, "lidar_noise": 0.05}),
    "hardcore-thermal": ("s2r/BipedHardcore-v0", {"continuous_torque_ratio": 0.4, "thermal_time_constant": 2.0,
                                                  "joint_damping": 0.2, "joint_friction": 0.3}),
}


def _episodes(env: gym.Env, params: dict[str, float] | None) -> list:
    """Two seeded episodes of random actions, each followed by fresh nominal ones until 120 steps."""
    rng = np.random.default_rng(11)
    out = []
    for seed in (1, 2):
        out.append(env.reset(seed=seed, options={"params": params} if params else None))
        for _ in range(120):
            step = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            out.append(step)
            if step[2] or step[3]:
                out.append(env.reset())
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_seeded_episodes_are_bit_identical_with_the_compiled_and_the_python_loop(case):
    from gymnasium.utils.env_checker import data_equivalence

    env_id, params = CASES[case]  # the episodes after the first end reset to the nominal motors: set_motor again
    compiled, python = gym.make(env_id, engine="mujoco"), _python_loop(gym.make(env_id, engine="mujoco"))
    try:
        assert data_equivalence(_episodes(compiled, params), _episodes(python, params), exact=True)
    finally:
        compiled.close()
        python.close()
