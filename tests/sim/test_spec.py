"""Robot specs, action scaling and clamps, the parameter table and the motor model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.motor import MotorModel, MotorParams
from sim.params import ParamSpace, PhysParam
from sim.robots import BIPED_SPEC, KNOB_SPEC, get_robot, wrap_angle
from sim.spec import SensorFrame

floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


@given(st.lists(floats, min_size=4, max_size=4))
def test_clamp_never_exceeds_limits_and_kills_non_finite(values):
    spec = BIPED_SPEC.action
    t = spec.clamp_torque_nm(np.array(values, dtype=np.float32))
    assert t.shape == (4,) and np.all(np.isfinite(t))
    assert np.all(np.abs(t) <= spec.limits_nm)
    for v, out in zip(values, t, strict=True):
        if not np.isfinite(v):
            assert out == 0.0


@given(st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4))
def test_action_scaling_is_clip_times_limit(values):
    spec = BIPED_SPEC.action
    t = spec.to_torque_nm(np.array(values))
    np.testing.assert_allclose(t, np.clip(values, -1, 1) * spec.limits_nm, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(spec.to_normalized(t), np.clip(values, -1, 1), atol=1e-6)


def test_action_errors_are_clear():
    with pytest.raises(ValueError, match="shape"):
        BIPED_SPEC.action.to_torque_nm(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        BIPED_SPEC.action.to_torque_nm(np.array([0, 0, np.inf, 0]))
    assert np.all(BIPED_SPEC.action.clamp_torque_nm(np.zeros(7)) == 0)  # wrong shape → zero torque, no raise


def test_check_obs():
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 24\)"):
        BIPED_SPEC.check_obs(np.zeros(23))
    with pytest.raises(ValueError, match="NaN"):
        BIPED_SPEC.check_obs(np.full(24, np.nan))
    assert BIPED_SPEC.check_obs(np.zeros((5, 24))).dtype == np.float32


def test_get_robot():
    assert get_robot("knob") is KNOB_SPEC
    with pytest.raises(ValueError, match="known robots: biped, knob"):
        get_robot("quadruped")


def test_knob_obs_builder_layout():
    frame = SensorFrame(
        joint_pos_rad=np.arange(4, dtype=np.float32), joint_vel_rad_s=np.arange(4, 8, dtype=np.float32),
        contacts=np.array([1, 0], dtype=np.float32), aux=np.array([0.5, -1.0, 0.5 + 3.0], dtype=np.float32),
    )
    obs = KNOB_SPEC.build_obs(frame, np.array([0.1, 0.2, 0.3, 0.4]))
    assert obs.shape == (KNOB_SPEC.obs_dim,) == (20,)
    names = [f.name for f in KNOB_SPEC.obs_fields]
    assert obs[names.index("angle_error")] == pytest.approx(3.0, abs=1e-6)
    assert obs[names.index("knob_speed")] == -1.0
    np.testing.assert_allclose(obs[-4:], [0.1, 0.2, 0.3, 0.4])


@given(st.floats(-100, 100))
def test_wrap_angle_range(x):
    w = float(wrap_angle(x))
    assert -np.pi <= w < np.pi
    assert np.isclose(np.sin(w), np.sin(x), atol=1e-6) and np.isclose(np.cos(w), np.cos(x), atol=1e-6)


def test_param_space_validation():
    space = ParamSpace("toy", (PhysParam("mass_scale", "x", 1.0, 0.5, 2.0, "m", True),))
    assert space.validate(None) == {"mass_scale": 1.0}
    assert space.validate({"mass_scale": 2}) == {"mass_scale": 2.0}
    with pytest.raises(ValueError, match="unknown physical parameter 'mas'"):
        space.validate({"mas": 1.0})
    with pytest.raises(ValueError, match=r"outside its hard limits \[0.5, 2\]"):
        space.validate({"mass_scale": 0.1})
    with pytest.raises(ValueError, match="must be a number"):
        space.validate({"mass_scale": "heavy"})
    with pytest.raises(ValueError, match="nominal"):
        PhysParam("bad", "x", 3.0, 0.0, 1.0, "")
    with pytest.raises(ValueError, match="log-scale"):
        PhysParam("bad", "x", 0.0, 0.0, 1.0, "", True)


def test_motor_latency_delays_torque_by_substeps():
    m = MotorModel(BIPED_SPEC.action, substep_s=0.004)
    m.reset(MotorParams(latency_s=0.012, damping_nms_rad=0.0, friction_nm=0.0))
    m.command(np.full(4, 10.0))
    out = [m.torque([0.0] * 4)[0] for _ in range(5)]
    assert out == [0.0, 0.0, 0.0, 10.0, 10.0]


def test_motor_torque_speed_curve_and_strength():
    m = MotorModel(BIPED_SPEC.action, substep_s=0.004)
    m.reset(MotorParams(strength=0.5, damping_nms_rad=0.0, friction_nm=0.0))
    m.command(np.full(4, 30.0))
    # driving at half the no-load speed: half of the (halved) stall torque; braking: the full halved stall torque
    tau = m.torque([7.0, -7.0, 0.0, 14.0])
    np.testing.assert_allclose(tau, [7.5, 15.0, 15.0, 0.0])
    m.reset(MotorParams(torque_limit_scale=0.5, damping_nms_rad=0.0, friction_nm=0.0))
    m.command(np.full(4, 100.0))
    assert m.torque([0.0] * 4)[0] == 15.0  # firmware clamp at 50 % of 30 N·m
