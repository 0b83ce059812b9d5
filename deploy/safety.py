"""The controller's safety state machine and sensor plausibility checks, pure: event + time in, decision out.

:class:`HostSafety` decides, for every event the runtime (``deploy/runtime.py``) sees, what may go to the board:
which control message (ENABLE / DISABLE) and how much of the policy's torque (``Decision.torque_scale``: 0 is a
zero-torque command, ``None`` no command at all). It does no I/O and reads no clock; every event carries ``now_s``
(the host's monotonic clock, s), so hypothesis drives it with a fake clock (``tests/deploy/test_safety.py``).
The table (also in docs/protocol.md §6.2)::

    state      event                                       → state      sends
    DISARMED   start                                       → HANDSHAKE  HELLO (the runtime's handshake)
    HANDSHAKE  good SENSOR, board not in E-stop            → ARMING     ENABLE; torque ramps 0 → 1 over ramp_ms
    ARMING     ramp done, STATUS answering ENABLE had ENABLED → RUNNING
    ARMING/RUNNING  no SENSOR for link_timeout_ms          → HANDSHAKE  zero TORQUE, DISABLE (re-arms when the
                                                                        link is back: the board's watchdog has
                                                                        zeroed the motors meanwhile)
    ARMING/RUNNING  SENSOR: board watchdog tripped         → ARMING     ENABLE (our commands were lost: same)
    ARMING/RUNNING  SENSOR: board disarmed by itself       → FAULT      DISABLE
    ARMING     ENABLE not confirmed within confirm_ms, twice → FAULT    DISABLE
    any but DISARMED  bad SENSOR × max_consecutive_bad, or
               > bad_budget bad SENSORs in bad_window      → FAULT      DISABLE
    any but DISARMED  SENSOR or STATUS with ESTOP          → ESTOP      DISABLE
    FAULT/ESTOP  operator re-arm                           → ARMING     ENABLE (the board refuses it, and we go
                                                                        back to ESTOP, while its E-stop input is
                                                                        still pressed)
    any        stop (SIGINT/SIGTERM, end of run)           → DISARMED   DISABLE

FAULT and ESTOP are left only by :meth:`HostSafety.rearm`, which the runtime calls on an operator action
(SIGUSR1, or ``r`` + Enter on a terminal). A *bad* SENSOR is one that cannot be trusted: wrong channel counts,
a NaN/inf, or a value outside the robot's physical ranges (:class:`SensorBounds`, derived from the RobotSpec).
An isolated bad SENSOR is answered with a zero-torque command and counted; more than the budget is a FAULT.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from firmware_bridge.protocol import Fault, Mode, Sensor
from sim.errors import UserError
from sim.params import ENABLE_RAMP_S
from sim.spec import RobotSpec, SensorLayout

_le = operator.le  # NaN compares False, so it fails both checks

# physical ranges a sensor can report (beyond them a reading is a glitch, not the robot)
JOINT_MARGIN_RAD = 0.5  # encoder reading beyond the joint's mechanical range (overshoot, encoder bias)
JOINT_SPEED_FACTOR = 4.0  # joint speed bound = this × the motor's no-load speed (a falling limb is driven)
PITCH_LIMIT_RAD = math.pi  # the IMU reports pitch wrapped to ±π
PITCH_RATE_LIMIT_RAD_S = 35.0  # 2000 °/s: the largest full scale of common MEMS gyros
VELOCITY_LIMIT_MPS = 20.0  # state-estimator velocity
LIDAR_MARGIN = 1.01  # lidar reading ≤ this × the announced maximum range
AUX_LIMITS = {"rad": 1e3, "rad/s": 1e2}  # per aux unit; other units are only required to be finite


class HostState(str, Enum):
    """States of the controller (docs/protocol.md §6.2)."""

    DISARMED = "disarmed"  # not connected, or stopped
    HANDSHAKE = "handshake"  # (re)connecting: arms at the next good SENSOR
    ARMING = "arming"  # ENABLE sent, torque ramping in
    RUNNING = "running"  # full policy torque
    FAULT = "fault"  # latched: motors disabled until the operator re-arms
    ESTOP = "estop"  # latched: the board reported its E-stop; disabled until the operator re-arms


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of :class:`HostSafety`, filled from ``RuntimeConfig`` (times in ms, as every config's)."""

    link_timeout_ms: float = 100.0  # no SENSOR for this long → DISABLE (--watchdog-ms)
    ramp_ms: float = ENABLE_RAMP_S * 1000.0  # torque ramps from 0 to the policy's over this long after ENABLE, ms
    max_consecutive_bad: int = 3  # this many bad SENSORs in a row → FAULT (--fault-frames)
    bad_budget: int = 10  # more bad SENSORs than this within bad_window frames → FAULT
    bad_window: int = 100  # frames (2 s at 50 Hz)
    confirm_ms: float = 500.0  # the board must confirm ENABLE (ENABLED bit) within this long; one retry

    def __post_init__(self) -> None:
        for name in ("link_timeout_ms", "confirm_ms"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v <= 60_000):
                raise UserError(f"{name} must be finite and in (0, 60000] ms, got {v!r}")
        if not (math.isfinite(self.ramp_ms) and 0 <= self.ramp_ms <= 10_000):
            raise UserError(f"ramp_ms must be finite and in [0, 10000] ms, got {self.ramp_ms!r}")
        if not 1 <= self.max_consecutive_bad <= 1000 or not 0 <= self.bad_budget < self.bad_window:
            raise UserError("need 1 ≤ max_consecutive_bad ≤ 1000 and 0 ≤ bad_budget < bad_window")


@dataclass(frozen=True)
class Decision:
    """What the runtime sends for one event, in this order: ``send`` (control messages), then a TORQUE of the
    policy's clamped torque × ``torque_scale`` (0 → all zero; None → no TORQUE)."""

    send: tuple[str, ...] = ()  # "ENABLE", "DISABLE"
    torque_scale: float | None = None
    note: str | None = None  # a line for the operator (state changes, refusals)


_NOTHING = Decision()
_FULL = Decision((), 1.0)
ARMED = (HostState.ARMING, HostState.RUNNING)
LATCHED = (HostState.FAULT, HostState.ESTOP)


@dataclass
class HostSafety:
    """The controller's safety state. Methods are events; each returns the :class:`Decision` to carry out."""

    config: SafetyConfig = field(default_factory=SafetyConfig)
    state: HostState = HostState.DISARMED
    reason: str = ""  # why the state is FAULT / ESTOP
    enabled_s: float = 0.0  # when ENABLE was sent
    confirmed: bool = False  # the STATUS answering that ENABLE reported ENABLED
    retried: bool = False  # ENABLE was re-sent once for lack of confirmation
    last_sensor_s: float = 0.0
    consecutive_bad: int = 0
    frames: int = 0  # SENSORs seen (good and bad)
    counts: dict[str, int] = field(
        default_factory=lambda: {"bad_frames": 0, "faults": 0, "estops": 0, "rearms": 0, "reenabled": 0}
    )

    def __post_init__(self) -> None:
        self._bad_at: deque[int] = deque(maxlen=self.config.bad_budget + 1)  # frame numbers of recent bad frames

    # --------------------------------------------------------------------------------------------- events
    def start(self, now_s: float) -> Decision:
        """The runtime connected (IDENT accepted): arm at the next good SENSOR."""
        self.state, self.last_sensor_s = HostState.HANDSHAKE, now_s
        return _NOTHING

    def sensor(self, now_s: float, board_faults: int, board_mode: int, problem: str | None) -> Decision:
        """A SENSOR arrived; ``problem`` says why it cannot be trusted (None: good)."""
        self.last_sensor_s = now_s
        self.frames += 1
        st = self.state
        if st is HostState.RUNNING and problem is None and board_mode & Mode.ENABLED and not board_faults & Fault.ESTOP:
            self.consecutive_bad = 0
            return _FULL  # the normal path
        if st is HostState.DISARMED:
            return _NOTHING
        enabled = bool(board_mode & Mode.ENABLED)
        if board_faults & Fault.ESTOP:
            if enabled or st is not HostState.ARMING or self.confirmed or now_s - self.enabled_s > self.config.confirm_ms * 1e-3:
                return self._latch(HostState.ESTOP, "the board reports its E-stop", enabled)
            return Decision((), 0.0)  # may predate our ENABLE (operator re-arm): its STATUS answer decides
        if problem is not None:
            if self._count_bad() and st not in LATCHED:
                return self._latch(HostState.FAULT, f"bad SENSOR frames ({problem})", enabled)
            return Decision(("DISABLE",) if enabled and st not in ARMED else (), 0.0, None)
        self.consecutive_bad = 0
        if st in LATCHED:
            return Decision(("DISABLE",) if enabled else (), 0.0)
        if st is HostState.HANDSHAKE:
            return self._arm(now_s, "ENABLE")
        # ARMING or RUNNING. Only the STATUS answering ENABLE confirms it: a SENSOR showing ENABLED may have been
        # sampled before an earlier DISABLE reached the board; every SENSOR after that STATUS is newer than it.
        if enabled:
            pass
        elif self.confirmed:
            if board_faults & Fault.WATCHDOG:  # our commands stopped reaching it: re-arm as after a link loss
                self.counts["reenabled"] += 1
                return self._arm(now_s, "the board's watchdog tripped: re-enabling")
            return self._latch(HostState.FAULT, "the board disarmed without a watchdog trip or E-stop", False)
        elif now_s - self.enabled_s > self.config.confirm_ms * 1e-3:
            if self.retried:
                return self._latch(HostState.FAULT, "the board did not confirm ENABLE", False)
            self.retried = True
            self.enabled_s = now_s
            return Decision(("ENABLE",), 0.0, "no confirmation of ENABLE yet: sending it again")
        scale = self.ramp_fraction(now_s)
        if st is HostState.ARMING and scale >= 1.0 and self.confirmed:
            self.state = HostState.RUNNING
        return Decision((), scale)

    def status(self, now_s: float, board_faults: int, board_mode: int) -> Decision:
        """A STATUS arrived (the board's answer to ENABLE / DISABLE, or a latched fault it raised)."""
        if self.state is HostState.DISARMED:
            return _NOTHING
        if board_faults & Fault.ESTOP:
            why = "the E-stop input is still active: release it, then re-arm" if board_faults & Fault.REFUSED else (
                "the board reports its E-stop")  # fmt: skip
            return self._latch(HostState.ESTOP, why, bool(board_mode & Mode.ENABLED))
        if self.state is HostState.ARMING and not self.confirmed:
            if board_mode & Mode.ENABLED:
                self.confirmed = True
                if self.ramp_fraction(now_s) >= 1.0:
                    self.state = HostState.RUNNING
            elif board_faults & Fault.REFUSED:
                return self._latch(HostState.FAULT, "the board refused ENABLE", False)
        return _NOTHING

    def tick(self, now_s: float) -> Decision:
        """Time passed without a SENSOR: after ``link_timeout_ms`` the link is lost (armed → HANDSHAKE)."""
        if self.state in ARMED and now_s - self.last_sensor_s >= self.config.link_timeout_ms * 1e-3:
            self.state = HostState.HANDSHAKE
            return Decision(("DISABLE",), 0.0, "link lost: motors disabled; re-arming when the board answers")
        return _NOTHING

    def rearm(self, now_s: float) -> Decision:
        """Operator action: leave FAULT / ESTOP by sending ENABLE (ignored in any other state)."""
        if self.state not in LATCHED:
            return Decision(note=f"re-arm ignored: state is {self.state.value}, nothing latched")
        self.counts["rearms"] += 1
        self.consecutive_bad = 0
        self._bad_at.clear()
        return self._arm(now_s, "operator re-arm")

    def stop(self, now_s: float) -> Decision:
        """End of the run (signal, limits reached): disarm."""
        was = self.state
        self.state = HostState.DISARMED
        return Decision(("DISABLE",) if was is not HostState.DISARMED else (), None)

    # -------------------------------------------------------------------------------------------- helpers
    def ramp_fraction(self, now_s: float) -> float:
        """Fraction of the policy torque allowed now: 1 in RUNNING, 0 → 1 over ``ramp_ms`` in ARMING, else 0."""
        if self.state is HostState.RUNNING:
            return 1.0
        if self.state is not HostState.ARMING:
            return 0.0
        if self.config.ramp_ms <= 0:
            return 1.0
        return min(1.0, max(0.0, (now_s - self.enabled_s) / (self.config.ramp_ms * 1e-3)))

    def _arm(self, now_s: float, note: str) -> Decision:
        self.state, self.enabled_s, self.confirmed, self.retried = HostState.ARMING, now_s, False, False
        self.reason = ""
        return Decision(("ENABLE",), self.ramp_fraction(now_s), note)

    def _latch(self, state: HostState, why: str, board_enabled: bool) -> Decision:
        first = self.state is not state
        self.state, self.reason = state, why
        if first:
            self.counts["estops" if state is HostState.ESTOP else "faults"] += 1
        # DISABLE on entry, and again whenever the board still reports itself armed
        send = ("DISABLE",) if first or board_enabled else ()
        note = f"{state.value.upper()}: {why}; motors disabled until the operator re-arms" if first else None
        return Decision(send, 0.0, note)

    def _count_bad(self) -> bool:
        """Count one bad SENSOR; True when that exceeds the budget."""
        self.counts["bad_frames"] += 1
        self.consecutive_bad += 1
        self._bad_at.append(self.frames)
        over_budget = len(self._bad_at) > self.config.bad_budget and self.frames - self._bad_at[0] < self.config.bad_window
        return self.consecutive_bad >= self.config.max_consecutive_bad or over_budget


# ------------------------------------------------------------------------------------------- plausibility
@dataclass(frozen=True)
class SensorBounds:
    """Physical ranges of every float in a SENSOR, derived from the RobotSpec and the board's announced layout."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def from_spec(cls, spec: RobotSpec, layout: SensorLayout) -> SensorBounds:
        motors = spec.action.motors
        if layout.n_joints != len(motors):
            raise UserError(f"{spec.robot_id}: {layout.n_joints} joints but {len(motors)} motors")
        rows: list[tuple[str, float, float]] = [
            ("imu_pitch_rad", -PITCH_LIMIT_RAD, PITCH_LIMIT_RAD),
            ("imu_pitch_rate_rad_s", -PITCH_RATE_LIMIT_RAD_S, PITCH_RATE_LIMIT_RAD_S),
            ("vx_mps", -VELOCITY_LIMIT_MPS, VELOCITY_LIMIT_MPS),
            ("vz_mps", -VELOCITY_LIMIT_MPS, VELOCITY_LIMIT_MPS),
        ]
        rows += [(f"{m.name}_rad", m.joint_low_rad - JOINT_MARGIN_RAD, m.joint_high_rad + JOINT_MARGIN_RAD)
                 for m in motors]  # fmt: skip
        rows += [(f"{m.name}_rad_s", -JOINT_SPEED_FACTOR * m.no_load_speed_rad_s,
                  JOINT_SPEED_FACTOR * m.no_load_speed_rad_s) for m in motors]  # fmt: skip
        rows += [(f"lidar_{i}_m", 0.0, layout.lidar_max_range_m * LIDAR_MARGIN)
                 for i in range(len(layout.lidar_angles_rad))]  # fmt: skip
        rows += [(n, -AUX_LIMITS.get(u, math.inf), AUX_LIMITS.get(u, math.inf))
                 for n, u in zip(layout.aux_names, layout.aux_units, strict=True)]  # fmt: skip
        names, low, high = zip(*rows, strict=True)
        return cls(names, low, high)

    def check(self, msg: Sensor) -> str | None:
        """None if every value is finite and in range, else a short description of the first that is not."""
        values = (msg.imu_pitch_rad, msg.imu_pitch_rate_rad_s, *msg.vel_mps, *msg.joint_pos_rad,
                  *msg.joint_vel_rad_s, *msg.lidar_m, *msg.aux)  # fmt: skip
        if len(values) != len(self.low):
            return f"{len(values)} sensor values, the IDENT announced {len(self.low)}"
        if all(map(_le, self.low, values)) and all(map(_le, values, self.high)):  # the normal path: loops in C
            return None
        for v, lo, hi, name in zip(values, self.low, self.high, self.names, strict=True):
            if not lo <= v <= hi:  # NaN fails both comparisons
                if not math.isfinite(v):
                    return f"{name} is {v}"
                return f"{name} = {v:.6g} outside [{lo:.6g}, {hi:.6g}]"
        return None


def safe_command(raw_nm: np.ndarray, limits_nm: np.ndarray, scale: float) -> tuple[np.ndarray, bool, bool]:
    """Policy output → the torque to send: (torque N·m float32, was non-finite, was clamped).

    Non-finite anywhere → all zero. Otherwise clamp to ±limits, then scale by the ramp fraction in [0, 1]."""
    if not np.isfinite(raw_nm).all():
        return np.zeros_like(limits_nm), True, False
    # = np.clip(raw_nm, -limits_nm, limits_nm) for finite input, bit for bit, without np.clip's Python wrapper
    torque = np.minimum(np.maximum(raw_nm, -limits_nm), limits_nm)
    clamped = bool((torque != raw_nm).any())
    if scale < 1.0:
        torque = (torque * np.float32(max(0.0, scale))).astype(np.float32)
    return torque, False, clamped
