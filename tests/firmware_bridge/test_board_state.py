"""The board's safety state machine (firmware_bridge/board_state.py) driven by hypothesis with a fake clock."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from firmware_bridge import protocol as p
from firmware_bridge.board_state import ARMED, Board, BoardState

LIMITS = (30.0, 30.0, 20.0, 0.6)
VALUE = st.one_of(
    st.floats(-50, 50), st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -0.0, 30.000002]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)  # fmt: skip
COMMAND = st.one_of(st.lists(VALUE, min_size=4, max_size=4), st.lists(VALUE, min_size=0, max_size=6))


class BoardMachine(RuleBasedStateMachine):
    """Random events: HELLO, ENABLE, DISABLE, TORQUE (good, NaN/inf, over the limit, wrong count), the E-stop
    pressed and released, time passing (link loss). The shell's rule: tick(now) before every event."""

    def __init__(self) -> None:
        super().__init__()
        self.b = Board(LIMITS, watchdog_s=0.1, ramp_s=0.2)
        self.now = 0.0
        self.hello_seen = False
        self.estop_latched = False  # the model: pressed since the last accepted ENABLE

    def _tick(self, dt: float) -> None:
        self.now += dt
        self.b.tick(self.now)

    @rule(dt=st.floats(0, 0.05))
    def hello(self, dt: float) -> None:
        self._tick(dt)
        self.b.hello(self.now)
        self.hello_seen = True
        assert not (self.b.armed and self.b.state is BoardState.HANDSHAKE)

    @rule(dt=st.floats(0, 0.05))
    def enable(self, dt: float) -> None:
        self._tick(dt)
        armed = self.b.enable(self.now)
        if not self.hello_seen or self.b.estop_input:
            assert not armed and self.b.faults & p.Fault.REFUSED  # before HELLO / while pressed: refused
        else:
            assert armed and self.b.state in ARMED and not self.b.faults & (p.Fault.WATCHDOG | p.Fault.ESTOP)
            self.estop_latched = False

    @rule(dt=st.floats(0, 0.05))
    def disable(self, dt: float) -> None:
        self._tick(dt)
        self.b.disable(self.now)
        assert not self.b.armed and all(t == 0.0 for t in self.b.held_nm)

    @rule(dt=st.floats(0, 0.05), cmd=COMMAND, seq=st.integers(0, 0xFFFF))
    def torque(self, dt: float, cmd: list[float], seq: int) -> None:
        self._tick(dt)
        fed_before = self.b.last_cmd_s
        ok = self.b.torque(seq, tuple(cmd), self.now)
        valid = len(cmd) == len(LIMITS) and all(map(math.isfinite, cmd))
        assert ok == valid
        if not valid:
            assert self.b.last_cmd_s == fed_before  # a bad command never feeds the watchdog
            if len(cmd) == len(LIMITS):
                assert self.b.faults & p.Fault.NONFINITE and all(t == 0.0 for t in self.b.held_nm)
            else:
                assert self.b.faults & p.Fault.BAD_COMMAND
        else:
            frac = self.b.ramp_fraction(self.now) if self.b.armed else 1.0  # disarmed: judged on the full limits
            over = any(abs(c) > lim * frac for c, lim in zip(cmd, LIMITS, strict=True))
            assert bool(self.b.faults & p.Fault.CLAMP) == over  # CLAMP exactly when the board clamped

    @rule(dt=st.floats(0, 0.05), pressed=st.booleans())
    def estop(self, dt: float, pressed: bool) -> None:
        self._tick(dt)
        self.b.estop(pressed, self.now)
        if pressed:
            self.estop_latched = True

    @rule(dt=st.floats(0, 0.5))
    def time_passes(self, dt: float) -> None:
        self._tick(dt)

    @invariant()
    def no_torque_unless_armed(self) -> None:
        held = self.b.held_nm
        assert len(held) == len(LIMITS) and all(map(math.isfinite, held))
        if not self.b.armed:
            assert all(t == 0.0 for t in held)
        frac = self.b.ramp_fraction(self.now)
        assert all(abs(t) <= lim * frac + 1e-9 for t, lim in zip(held, LIMITS, strict=True))

    @invariant()
    def estop_latched_until_enable_after_release(self) -> None:
        if self.estop_latched:
            assert self.b.state is BoardState.ESTOP and self.b.faults & p.Fault.ESTOP and not self.b.armed

    @invariant()
    def watchdog_on_time(self) -> None:
        if self.b.armed:
            assert self.now - self.b.last_cmd_s <= self.b.watchdog_s

    @invariant()
    def mode_bit_matches(self) -> None:
        assert bool(self.b.mode_bits() & p.Mode.ENABLED) == self.b.armed
        if not self.hello_seen:
            assert self.b.state in (BoardState.DISARMED, BoardState.ESTOP)


TestBoardStateMachine = BoardMachine.TestCase
TestBoardStateMachine.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_enable_before_hello_is_refused():
    """Issue #16 item 4: the emulator armed on ENABLE before any HELLO."""
    b = Board(LIMITS)
    assert not b.enable(0.0) and b.state is BoardState.DISARMED and b.faults & p.Fault.REFUSED
    b.torque(1, (5.0, 5.0, 5.0, 0.5), 0.01)
    assert b.held_nm == (0.0,) * 4
    b.hello(0.02)
    assert b.enable(0.03) and b.state is BoardState.RUNNING and not b.faults & p.Fault.REFUSED


def test_ramp_limits_the_clamp_after_enable():
    b = Board(LIMITS, watchdog_s=1.0, ramp_s=0.2)
    b.hello(0.0)
    b.enable(0.0)
    b.torque(1, (30.0, -30.0, 20.0, 0.6), 0.05)
    assert b.state is BoardState.ARMING and b.held_nm == (7.5, -7.5, 5.0, 0.15) and b.faults & p.Fault.CLAMP
    b.tick(0.2)
    b.torque(2, (30.0, -30.0, 20.0, 0.6), 0.2)
    assert b.state is BoardState.RUNNING and b.held_nm == (30.0, -30.0, 20.0, 0.6)
