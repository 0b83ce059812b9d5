"""The controller's safety state machine (deploy/safety.py) driven by hypothesis with a fake clock, plus its
plausibility bounds and the command clamp."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from deploy.safety import (
    ARMED,
    LATCHED,
    Decision,
    HostSafety,
    HostState,
    SafetyConfig,
    SensorBounds,
    safe_command,
)
from firmware_bridge import protocol as p
from sim.motor import MotorModel, MotorParams
from sim.params import ENABLE_RAMP_S
from sim.robots import BIPED_SPEC, KNOB_SPEC

LIMITS = BIPED_SPEC.action.limits_nm
FAULT_BITS = st.sampled_from([0, p.Fault.WATCHDOG, p.Fault.ESTOP, p.Fault.ESTOP | p.Fault.REFUSED, p.Fault.REFUSED,
                              p.Fault.CLAMP, p.Fault.CRC])  # fmt: skip
MODES = st.sampled_from([0, p.Mode.ENABLED])
PROBLEMS = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(["imu_pitch_rad is nan", "joint out of range"]))
RAW = st.lists(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(-100, 100, width=32)),
    min_size=4, max_size=4,
)  # fmt: skip


class HostMachine(RuleBasedStateMachine):
    """Random events: SENSORs good and bad (NaN, implausible), board E-stop / watchdog / refusal bits, STATUS,
    link loss (time passing with no SENSOR), operator re-arm, stop. After every step the invariants hold."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = SafetyConfig(link_timeout_ms=100.0, ramp_ms=500.0, max_consecutive_bad=3, bad_budget=10, bad_window=100)
        self.h = HostSafety(self.cfg)
        self.now = 0.0
        self.h.start(self.now)
        self.latched_without_rearm: HostState | None = None  # the model of the latch
        self.last: Decision = Decision()
        self.prev_state = self.h.state

    def _event(self, d: Decision, rearm: bool = False) -> None:
        if "ENABLE" in d.send:
            assert rearm or self.prev_state in (HostState.HANDSHAKE, *ARMED), (self.prev_state, d)
        if rearm:
            self.latched_without_rearm = None
        if self.h.state in LATCHED:
            self.latched_without_rearm = self.latched_without_rearm or self.h.state
        self.last = d
        self.prev_state = self.h.state

    @rule(dt=st.floats(0.0, 0.3))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.prev_state = self.h.state
        self._event(self.h.tick(self.now))

    @rule(dt=st.floats(0.0, 0.03), faults=FAULT_BITS, mode=MODES, problem=PROBLEMS)
    def sensor(self, dt: float, faults: int, mode: int, problem: str | None) -> None:
        self.now += dt
        self.prev_state = self.h.state
        self._event(self.h.tick(self.now))
        d = self.h.sensor(self.now, faults, mode, problem)
        if problem is not None or faults & p.Fault.ESTOP:
            assert "ENABLE" not in d.send  # never arm on a frame that cannot be trusted or shows the E-stop
        if faults & p.Fault.ESTOP and self.h.state is not HostState.DISARMED:
            assert self.h.state in (HostState.ESTOP, HostState.ARMING)  # ARMING: only while awaiting the answer
            assert not d.torque_scale
        self._event(d)

    @rule(faults=FAULT_BITS, mode=MODES)
    def status(self, faults: int, mode: int) -> None:
        self.prev_state = self.h.state
        self._event(self.h.status(self.now, faults, mode))
        if faults & p.Fault.ESTOP and self.h.state is not HostState.DISARMED:
            assert self.h.state is HostState.ESTOP

    @rule()
    def operator_rearms(self) -> None:
        self.prev_state = self.h.state
        self._event(self.h.rearm(self.now), rearm=True)

    @precondition(lambda self: self.h.state is not HostState.DISARMED)
    @rule()
    def stop_and_restart(self) -> None:
        d = self.h.stop(self.now)
        assert d.send == ("DISABLE",) and self.h.state is HostState.DISARMED and not d.torque_scale
        self.h.start(self.now)
        self.latched_without_rearm = None
        self.prev_state, self.last = self.h.state, d

    @rule(raw=RAW)
    def command(self, raw: list[float]) -> None:
        """What the runtime would send for this policy output now: finite, within limits, within the ramp."""
        scale = self.h.ramp_fraction(self.now)
        torque, _, _ = safe_command(np.asarray(raw, dtype=np.float32), LIMITS, scale)
        assert torque.dtype == np.float32 and np.all(np.isfinite(torque))
        assert np.all(np.abs(torque) <= LIMITS * scale + 1e-6)

    @invariant()
    def no_torque_unless_armed(self) -> None:
        if self.h.state not in ARMED:
            assert self.h.ramp_fraction(self.now) == 0.0
            assert not self.last.torque_scale
        if self.h.state is HostState.ARMING:
            assert self.h.ramp_fraction(self.now) <= max(0.0, (self.now - self.h.enabled_s) / 0.5) + 1e-9

    @invariant()
    def latch_holds_until_the_operator_acts(self) -> None:
        if self.latched_without_rearm is not None:
            assert self.h.state in LATCHED  # FAULT may become ESTOP, never anything unlatched
            if self.latched_without_rearm is HostState.ESTOP:
                assert self.h.state is HostState.ESTOP

    @invariant()
    def link_watchdog_on_time(self) -> None:
        if self.now - self.h.last_sensor_s >= self.cfg.link_timeout_ms * 1e-3:
            self.h.tick(self.now)  # (idempotent) the runtime ticks whenever recv times out
            assert self.h.state not in ARMED


TestHostStateMachine = HostMachine.TestCase
TestHostStateMachine.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _arm(h: HostSafety, now: float = 0.0) -> None:
    h.start(now)
    assert h.sensor(now, 0, 0, None).send == ("ENABLE",)
    h.status(now, 0, p.Mode.ENABLED)


def test_estop_latches_and_release_alone_never_rearms():
    """Issue #16 item 1: the host used to ENABLE on every disarmed SENSOR, ignoring the E-stop."""
    h = HostSafety(SafetyConfig(ramp_ms=0.0))
    _arm(h)
    assert h.sensor(0.02, 0, p.Mode.ENABLED, None).torque_scale == 1.0 and h.state is HostState.RUNNING
    d = h.sensor(0.04, p.Fault.ESTOP, 0, None)
    assert h.state is HostState.ESTOP and d.send == ("DISABLE",) and d.torque_scale == 0.0
    for k in range(500):  # E-stop released: the board's input is clear but its ESTOP bit stays latched or not
        d = h.sensor(0.06 + 0.02 * k, p.Fault.ESTOP if k < 5 else 0, 0, None)
        assert h.state is HostState.ESTOP and "ENABLE" not in d.send and d.torque_scale == 0.0
    d = h.rearm(20.0)
    assert d.send == ("ENABLE",) and h.state is HostState.ARMING
    h.status(20.0, 0, p.Mode.ENABLED)
    assert h.sensor(20.02, 0, p.Mode.ENABLED, None).torque_scale == 1.0 and h.state is HostState.RUNNING


def test_rearm_refused_while_the_estop_is_still_pressed():
    h = HostSafety(SafetyConfig(ramp_ms=0.0))
    _arm(h)
    h.sensor(0.02, p.Fault.ESTOP, 0, None)
    h.rearm(1.0)
    assert h.sensor(1.01, p.Fault.ESTOP, 0, None).torque_scale == 0.0  # may predate the ENABLE: wait
    d = h.status(1.02, p.Fault.ESTOP | p.Fault.REFUSED, 0)  # the board's answer: still pressed
    assert h.state is HostState.ESTOP and "release it" in h.reason and d.note


@pytest.mark.parametrize("problem", ["imu_pitch_rad is nan", "imu_pitch_rad = 100 outside [-3.14, 3.14]"])
def test_bad_frames_fault_after_three_in_a_row(problem):
    """Issue #16 items 2 and 3: NaN or implausible SENSORs used to be answered with 0 N·m forever (motors armed)."""
    h = HostSafety(SafetyConfig(ramp_ms=0.0))
    _arm(h)
    for k in range(2):
        d = h.sensor(0.02 * (k + 1), 0, p.Mode.ENABLED, problem)
        assert d.torque_scale == 0.0 and not d.send and h.state is HostState.RUNNING
    d = h.sensor(0.06, 0, p.Mode.ENABLED, problem)
    assert h.state is HostState.FAULT and d.send == ("DISABLE",) and problem in h.reason
    for k in range(50):  # good frames again: stays latched
        assert h.sensor(0.08 + 0.02 * k, 0, 0, None).torque_scale == 0.0 and h.state is HostState.FAULT


def test_isolated_bad_frames_are_tolerated_within_the_budget():
    """Issue #16 item 6: one glitched frame used to end the run. Budget: ≤ 10 bad frames per 100."""
    h = HostSafety(SafetyConfig(ramp_ms=0.0, bad_budget=10, bad_window=100))
    _arm(h)
    t = 0.0
    for k in range(1000):  # one bad frame in 10: 10 per 100, within the budget
        t += 0.02
        h.sensor(t, 0, p.Mode.ENABLED, "lidar count" if k % 10 == 0 else None)
    assert h.state is HostState.RUNNING and h.counts["bad_frames"] == 100
    for k in range(30):  # one in 2: 15 per 30 frames, over the budget, never 3 in a row
        t += 0.02
        h.sensor(t, 0, p.Mode.ENABLED, "lidar count" if k % 2 == 0 else None)
    assert h.state is HostState.FAULT


def test_link_loss_disables_and_rearms_with_a_fresh_ramp():
    h = HostSafety(SafetyConfig(link_timeout_ms=100.0, ramp_ms=500.0))
    _arm(h)
    assert h.sensor(0.25, 0, p.Mode.ENABLED, None).torque_scale == pytest.approx(0.5)
    assert h.tick(0.34) == Decision()
    d = h.tick(0.36)
    assert d.send == ("DISABLE",) and h.state is HostState.HANDSHAKE
    d = h.sensor(2.0, p.Fault.WATCHDOG, 0, None)  # the board is back, its watchdog latched meanwhile
    assert d.send == ("ENABLE",) and d.torque_scale == 0.0 and h.state is HostState.ARMING


def test_board_disarming_by_itself_is_a_fault_and_unconfirmed_enable_retries_once():
    h = HostSafety(SafetyConfig(ramp_ms=0.0, confirm_ms=500.0))
    _arm(h)
    h.sensor(0.02, 0, 0, None)
    assert h.state is HostState.FAULT and "disarmed" in h.reason
    h = HostSafety(SafetyConfig(ramp_ms=0.0, confirm_ms=500.0))
    h.start(0.0)
    h.sensor(0.0, 0, 0, None)  # ENABLE sent, never confirmed
    assert h.sensor(0.4, 0, 0, None).send == ()
    assert h.sensor(0.6, 0, 0, None).send == ("ENABLE",)  # one retry
    h.sensor(1.2, 0, 0, None)
    assert h.state is HostState.FAULT and "did not confirm" in h.reason


@settings(max_examples=50, deadline=None)
@given(raws=st.lists(st.lists(st.floats(-60, 60, width=32), min_size=4, max_size=4), min_size=30, max_size=30))
def test_the_simulators_enable_ramp_is_the_controllers(raws):
    """The robot's ramp (HostSafety + safe_command at SENSORs one control period apart from ENABLE) gives the
    torques the simulator's `enable_ramp` parameter applies (sim.motor), command for command: training can run
    what runs on the robot."""
    period_s = BIPED_SPEC.control_period_s
    h = HostSafety(SafetyConfig())  # the default ramp: sim.params.ENABLE_RAMP_S
    _arm(h)
    motor = MotorModel(BIPED_SPEC.action, period_s / 5, 5)
    motor.reset(MotorParams(enable_ramp_s=ENABLE_RAMP_S))
    for k, raw in enumerate(raws):
        scale = h.sensor(k * period_s, 0, p.Mode.ENABLED, None).torque_scale
        host, _, _ = safe_command(np.asarray(raw, dtype=np.float32), LIMITS, scale)
        motor.command(raw)
        np.testing.assert_allclose(motor._pending, host, rtol=1e-5, atol=1e-4)
    assert h.state is HostState.RUNNING  # the 30 periods outlast the ramp


def test_bounds_come_from_the_robot_spec():
    b = SensorBounds.from_spec(BIPED_SPEC, BIPED_SPEC.sensors)
    lo, hi = dict(zip(b.names, b.low, strict=True)), dict(zip(b.names, b.high, strict=True))
    assert hi["knee_left_rad"] == pytest.approx(0.5) and lo["hip_left_rad"] == pytest.approx(-1.7)
    assert hi["hip_left_rad_s"] == pytest.approx(56.0) and hi["lidar_9_m"] == pytest.approx(2.525)
    assert hi["imu_pitch_rad"] == pytest.approx(math.pi)
    k = SensorBounds.from_spec(KNOB_SPEC, KNOB_SPEC.sensors)
    assert "knob_angle" in k.names and not any(n.startswith("lidar") for n in k.names)


@settings(max_examples=200, deadline=None)
@given(raw=RAW, scale=st.floats(0, 1))
def test_safe_command_is_finite_and_within_the_limits(raw, scale):
    torque, nonfinite, clamped = safe_command(np.asarray(raw, dtype=np.float32), LIMITS, scale)
    assert np.all(np.isfinite(torque)) and np.all(np.abs(torque) <= LIMITS * scale + 1e-6)
    assert nonfinite == (not np.all(np.isfinite(raw)))
    if nonfinite:
        assert np.all(torque == 0)


def test_safety_config_refuses_nonsense():
    for bad in ({"link_timeout_ms": math.inf}, {"link_timeout_ms": 0.0}, {"ramp_ms": math.nan}, {"confirm_ms": -1.0},
                {"max_consecutive_bad": 0}, {"bad_budget": 100}):  # fmt: skip
        with pytest.raises(ValueError):
            SafetyConfig(**bad)


@settings(max_examples=300, deadline=None)
@given(raw=st.lists(st.floats(-1e6, 1e6, width=32), min_size=4, max_size=4))
def test_fast_clamps_equal_numpy_clip_bit_for_bit(raw):
    """safe_command and the runtime's prev_action use minimum/maximum instead of np.clip: same bits."""
    x = np.asarray(raw, dtype=np.float32)
    torque, _, clamped = safe_command(x, LIMITS, 1.0)
    ref = np.clip(x, -LIMITS, LIMITS)
    assert torque.dtype == ref.dtype == np.float32 and torque.tobytes() == ref.tobytes()
    assert clamped == bool(np.any(ref != x))
    prev = np.minimum(np.maximum(torque / BIPED_SPEC.action.limits_nm, -1.0), 1.0)
    ref_prev = BIPED_SPEC.action.to_normalized(torque)
    assert prev.dtype == ref_prev.dtype and prev.tobytes() == ref_prev.tobytes()
