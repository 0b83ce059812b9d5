"""The actuator and sensor models of issue #19: each effect does what its parameter says, alone and in the envs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the envs)
from sim.actuator import Backlash, Thermal, lag_gain, supply_fraction
from sim.motor import MotorModel, MotorParams
from sim.robots import BIPED_SPEC, KNOB_SPEC
from sim.sensors import DelayLine, Encoder, split_delay, spurious_returns

DT = 0.004


def _motor(**kw) -> MotorModel:
    m = MotorModel(BIPED_SPEC.action, DT, 5)
    m.reset(MotorParams(damping_nms_rad=0.0, friction_nm=0.0, **kw))
    return m


def test_torque_lag_is_first_order():
    m = _motor(torque_lag_s=0.02)
    m.command([10.0, 0.0, 0.0, 0.0])
    out = [m.torque([0.0] * 4)[0] for _ in range(5)]  # 20 ms = one time constant
    assert out[-1] == pytest.approx(10.0 * (1 - math.exp(-1.0)), rel=1e-9)
    assert all(a < b for a, b in zip(out, out[1:], strict=False))
    assert lag_gain(0.0, DT) == 1.0


def test_backlash_dead_time_on_reversal_matches_rotor_inertia():
    width, inertia, tau = 0.0175, 0.02, 10.0
    b = Backlash(width, [inertia], DT / 10)
    for _ in range(2000):  # settle against the + side
        b.transmit(0, tau)
    assert b.transmit(0, tau) == tau
    n = 0
    while b.transmit(0, -tau) == 0.0:
        n += 1
    expected = math.sqrt(2 * width * inertia / tau)  # cross the whole gap from rest
    assert n * DT / 10 == pytest.approx(expected, rel=0.05)


def test_thermal_derates_to_continuous_rating_and_recovers():
    th = Thermal([15.0] * 4, time_constant_s=1.0, period_s=0.02)
    for _ in range(200):  # 4 s at twice the continuous torque: θ → 4
        th.update([30.0] * 4)
    assert th.theta[0] > 1.0 and th.limits([30.0] * 4) == [15.0] * 4
    assert th.temperature_c[0] > 100.0
    for _ in range(500):
        th.update([0.0] * 4)
    assert th.limits([30.0] * 4) == [30.0] * 4


def test_motor_thermal_limit_only_below_ratio_one():
    m = _motor(continuous_torque_ratio=0.5, thermal_time_constant_s=1.0)
    for _ in range(300):
        m.command([30.0] * 4)
        for _ in range(5):
            m.torque([0.0] * 4)
    assert max(abs(t) for t in m.last_motor_nm) == pytest.approx(15.0)


def test_enable_ramp_scales_each_episodes_first_commands_as_the_controller_does():
    """Command k of an episode is clipped to the rated limit and scaled by k · period / ramp, then the firmware
    clamp applies (deploy.safety.safe_command, then the board); the next episode ramps again."""
    m = _motor(enable_ramp_s=0.1, torque_limit_scale=0.5)  # 5 control periods of 20 ms; firmware clamp 15 N·m
    for _episode in range(2):
        pending = []
        for _ in range(7):
            m.command([10.0, -40.0, 0.0, 30.0])
            pending.append(m._pending)
        assert [p[0] for p in pending] == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 10.0])
        assert [p[1] for p in pending] == pytest.approx([0.0, -6.0, -12.0, -15.0, -15.0, -15.0, -15.0])
        m.reset(m.params)
    plain = _motor()
    plain.command([10.0, -40.0, 0.0, 30.0])
    assert plain._pending == [10.0, -30.0, 0.0, 30.0]  # no ramp at the nominal 0 s


def test_the_knobs_last_action_is_the_ramped_command_the_motors_were_told():
    """With the enable ramp the knob's prev_action observation is the command after the ramp, as the controller
    builds it on the robot (deploy.runtime: prev_action = torque sent / limits)."""
    env = gym.make("s2r/Knob-v0")
    env.reset(seed=0, options={"params": {"enable_ramp": 0.1}})  # 5 control periods
    a = np.array([0.5, -1.0, 0.25, 1.0], dtype=np.float32)
    seen = [env.step(a)[0][16:20] for _ in range(7)]
    for k, prev in enumerate(seen):
        np.testing.assert_allclose(prev, a * min(1.0, k / 5), atol=1e-6)
    env.close()


def test_supply_sag_shrinks_the_torque_speed_curve():
    assert supply_fraction(0.0, [30.0] * 4, [30.0] * 4) == 1.0
    assert supply_fraction(0.2, [30.0] * 4, [30.0] * 4) == pytest.approx(0.8)
    m = _motor(supply_sag=0.2)
    m.command([30.0] * 4)
    m.torque([0.0] * 4)
    assert m.torque([0.0] * 4)[0] == pytest.approx(24.0)


def test_encoder_quantizes_and_estimates_speed_like_a_board():
    enc = Encoder(4096, 0.02)
    res = 2 * math.pi / 4096
    q, dq = enc.read([0.1, -0.1])
    assert dq == [0.0, 0.0] and all(abs(a / res - round(a / res)) < 1e-9 for a in q)
    q2, dq2 = enc.read([0.1 + 5.5 * res, -0.1])
    assert dq2[0] == pytest.approx((q2[0] - q[0]) / 0.02) and dq2[1] == 0.0


def test_delay_line_and_split():
    line: DelayLine[int] = DelayLine(2)
    assert [line.push(i) for i in range(5)] == [0, 0, 0, 1, 2]
    assert split_delay(0.02, 0.02, 5) == (1, 0)
    assert split_delay(0.012, 0.02, 5) == (0, 3)
    assert split_delay(0.028, 0.02, 5) == (1, 2)


def test_spurious_returns_are_short():
    r = np.full(1000, 2.0)
    out = spurious_returns(r, 0.1, np.random.default_rng(0))
    assert np.all(out <= r) and 50 < np.sum(out < r) < 150


def _episode(env_id: str, params: dict, steps: int = 60, seed: int = 3) -> tuple[np.ndarray, list[dict]]:
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=seed, options={"params": params})
    out, infos = [obs], []
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(rng.uniform(-0.3, 0.3, 4).astype(np.float32))
        out.append(obs)
        infos.append(info)
        if term or trunc:
            break
    env.close()
    return np.array(out), infos


@pytest.mark.parametrize("env_id", ["s2r/Biped-v0", "s2r/Knob-v0"])
def test_one_period_of_sensor_delay_shifts_observations_by_one_step(env_id):
    nominal, _ = _episode(env_id, {})
    delayed, _ = _episode(env_id, {"sensor_delay": 0.02})
    n = min(len(nominal), len(delayed))
    if env_id == "s2r/Knob-v0":  # the previous-action inputs are not sensor readings
        nominal, delayed = nominal[:, :16], delayed[:, :16]
    np.testing.assert_array_equal(delayed[1:n], nominal[: n - 1])


def test_encoder_resolution_in_the_env():
    obs, _ = _episode("s2r/Biped-v0", {"encoder_resolution": 1024})
    res = 2 * math.pi / 1024
    counts = obs[:, [4, 6, 9, 11]] / res
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)


def test_stochastic_effects_leave_np_random_alone():
    """Spurious returns and pushes draw from a child generator: the initial state and the existing noise stay."""
    base = {"encoder_noise": 0.01}
    nominal, _ = _episode("s2r/Biped-v0", base, steps=5)
    spurious, _ = _episode("s2r/Biped-v0", {**base, "lidar_spurious": 0.3, "push_force": 50.0}, steps=5)
    np.testing.assert_array_equal(nominal[0, :14], spurious[0, :14])  # same initial pose and readings
    assert not np.array_equal(nominal[:, 14:], spurious[:, 14:])


def test_push_moves_the_hull():
    from deploy.bundle import Policy, load_bundle
    from deploy.pretrained import bundle_path

    policy = Policy(load_bundle(bundle_path("biped")))
    env = gym.make("s2r/Biped-v0")
    xs = []
    for force in (0.0, 150.0):
        obs, _ = env.reset(seed=1, options={"params": {"push_force": force, "push_interval": 0.5}})
        for _ in range(150):  # 3 s: the first push comes after 1 s
            obs, _, term, _, info = env.step(BIPED_SPEC.action.to_normalized(policy(obs)))
            if term:
                break
        xs.append(info["distance_m"])
    env.close()
    assert xs[0] != xs[1]


def test_motor_temperature_in_info():
    _, infos = _episode("s2r/Knob-v0", {"continuous_torque_ratio": 0.2, "thermal_time_constant": 1.0})
    assert len(infos[-1]["motor_temp_c"]) == KNOB_SPEC.action.n and max(infos[-1]["motor_temp_c"]) > 25.0
