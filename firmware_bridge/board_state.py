"""The motor board's safety state machine (docs/protocol.md §6), pure: event + time in, new state + outputs out.

This is the part of the firmware that decides what reaches the motors. It does no I/O and reads no clock: every
event carries ``now_s`` (the board's monotonic clock, s), so tests drive it with a fake clock and the emulator
(``firmware_bridge/emulator.py``) is a thin shell that feeds it frames and wall time. A C firmware implements the
same table::

    state      event                         → state      outputs / notes
    DISARMED   HELLO                         → HANDSHAKE  IDENT
    DISARMED   ENABLE                        → DISARMED   STATUS with REFUSED (no session yet)
    HANDSHAKE  ENABLE                        → ARMING     STATUS; torque limit ramps 0 → full over ramp_s
    ARMING     ramp_s elapsed                → RUNNING
    ARMING/RUNNING  DISABLE                  → HANDSHAKE  zero torque, STATUS
    ARMING/RUNNING  no valid TORQUE for watchdog_s → FAULT  zero torque, WATCHDOG latched, STATUS
    FAULT      ENABLE                        → ARMING     WATCHDOG cleared
    any        E-stop input pressed          → ESTOP      zero torque, ESTOP latched, STATUS
    ESTOP      ENABLE, input released        → ARMING     ESTOP cleared
    ESTOP      ENABLE, input still pressed   → ESTOP      STATUS with REFUSED

DISABLE never clears a latch; HELLO never arms. A TORQUE is applied only in ARMING and RUNNING, clamped to
±limit × ramp fraction. A TORQUE with the wrong motor count (BAD_COMMAND) or holding any non-finite value
(NONFINITE: every motor goes to 0 N·m) does not feed the watchdog, so a host that sends only those is disarmed
within ``watchdog_s``. The shell calls :meth:`Board.tick` before every event and whenever it wakes up, so a command
that arrives after the deadline finds the watchdog already tripped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from firmware_bridge.protocol import Fault, Mode


class BoardState(str, Enum):
    """States of the board (docs/protocol.md §6)."""

    DISARMED = "disarmed"  # booted, no HELLO yet: ENABLE is refused
    HANDSHAKE = "handshake"  # HELLO answered, motors off, waiting for ENABLE
    ARMING = "arming"  # enabled, torque limit ramping in
    RUNNING = "running"  # enabled, full torque limit
    FAULT = "fault"  # watchdog tripped: motors off until ENABLE
    ESTOP = "estop"  # E-stop pressed: motors off until released and ENABLE


ARMED = (BoardState.ARMING, BoardState.RUNNING)
_LATCHED_BITS = Fault.WATCHDOG | Fault.ESTOP
_COMMAND_BITS = Fault.CLAMP | Fault.NONFINITE | Fault.BAD_COMMAND


@dataclass
class Board:
    """The board's safety logic for ``len(limits_nm)`` motors. Every method takes the board clock ``now_s``."""

    limits_nm: tuple[float, ...]  # the board's clamp per motor, N·m
    watchdog_s: float = 0.1  # no valid TORQUE for this long while armed → FAULT
    ramp_s: float = 0.0  # after ENABLE the clamp grows linearly from 0 to limits_nm over this long, s
    state: BoardState = BoardState.DISARMED
    faults: int = 0  # Fault bits: the latched ones plus those of the last TORQUE / ENABLE
    estop_input: bool = False  # the E-stop input right now (pressed = True)
    session: bool = False  # a valid HELLO has been received since boot
    held_nm: tuple[float, ...] = ()  # the torque the motors apply now, N·m
    cmd_seq: int = 0  # header seq of the last TORQUE applied
    last_cmd_s: float = 0.0  # when the watchdog was last fed
    enabled_s: float = 0.0  # when the last accepted ENABLE arrived
    counters: dict[str, int] = field(
        default_factory=lambda: {"watchdog_trips": 0, "clamped": 0, "refused": 0, "nonfinite": 0, "bad_commands": 0}
    )

    def __post_init__(self) -> None:
        self.zero = (0.0,) * len(self.limits_nm)
        self.held_nm = self.zero

    @property
    def armed(self) -> bool:
        return self.state in ARMED

    def mode_bits(self) -> int:
        """The Mode bits this board reports (ENABLED while armed; LOCKSTEP is the shell's)."""
        return Mode.ENABLED if self.state in ARMED else 0

    # ------------------------------------------------------------------------------------------ events
    def hello(self, now_s: float) -> None:
        """A valid HELLO: open the session (never arms)."""
        self.session = True
        if self.state is BoardState.DISARMED:
            self.state = BoardState.HANDSHAKE

    def enable(self, now_s: float) -> bool:
        """ENABLE: arm unless no session or the E-stop input is active. Returns whether it armed."""
        self.faults &= ~(Fault.REFUSED | _COMMAND_BITS)
        if not self.session or self.estop_input:
            self.faults |= Fault.REFUSED
            self.counters["refused"] += 1
            return False
        self.faults &= ~_LATCHED_BITS
        self.state = BoardState.ARMING if self.ramp_s > 0 else BoardState.RUNNING
        self.enabled_s = self.last_cmd_s = now_s
        self.held_nm = self.zero
        return True

    def disable(self, now_s: float) -> None:
        """DISABLE: zero torque, disarm; latched faults stay."""
        if self.state in ARMED:
            self.state = BoardState.HANDSHAKE if self.session else BoardState.DISARMED
        self.held_nm = self.zero

    def estop(self, pressed: bool, now_s: float) -> bool:
        """The E-stop input changed. Returns True when a latched fault was raised (the board sends STATUS)."""
        self.estop_input = pressed
        if not pressed or self.state is BoardState.ESTOP and self.faults & Fault.ESTOP:
            return False
        self.state = BoardState.ESTOP
        self.faults |= Fault.ESTOP
        self.held_nm = self.zero
        return True

    def ramp_fraction(self, now_s: float) -> float:
        """Fraction of the torque limit allowed now: 0 unless armed; ramps 0 → 1 over ``ramp_s`` in ARMING."""
        if self.state is BoardState.RUNNING:
            return 1.0
        if self.state is not BoardState.ARMING:
            return 0.0
        return min(1.0, max(0.0, (now_s - self.enabled_s) / self.ramp_s))

    def torque(self, seq: int, torque_nm: tuple[float, ...], now_s: float) -> bool:
        """A TORQUE command. Returns whether it was valid (right count, all finite): such a command feeds the
        watchdog; it moves the motors only while armed."""
        self.faults &= ~_COMMAND_BITS
        if len(torque_nm) != len(self.limits_nm):
            self.faults |= Fault.BAD_COMMAND
            self.counters["bad_commands"] += 1
            return False
        if not all(map(math.isfinite, torque_nm)):  # any NaN payload or ±inf, whatever its bit pattern
            self.faults |= Fault.NONFINITE
            self.counters["nonfinite"] += 1
            self.held_nm = self.zero
            return False
        self.last_cmd_s = now_s
        armed = self.state in ARMED
        scale = self.ramp_fraction(now_s) if armed else 1.0  # disarmed: ignored, CLAMP judged on the full limits
        out = []
        for t, lim in zip(torque_nm, self.limits_nm, strict=True):
            cap = lim * scale
            c = -cap if t < -cap else cap if t > cap else t
            out.append(c)
        clipped = out != list(torque_nm)
        if clipped:
            self.faults |= Fault.CLAMP
            self.counters["clamped"] += 1
        if armed:
            self.held_nm = tuple(out)
            self.cmd_seq = seq
        return True

    def keepalive(self, now_s: float) -> None:
        """A valid command the shell does not apply (a lockstep duplicate, docs/protocol.md §6) feeds the watchdog."""
        self.last_cmd_s = now_s

    def tick(self, now_s: float) -> bool:
        """Time passes: trip the watchdog, finish the ramp. Returns True when the watchdog tripped now."""
        if self.state is BoardState.ARMING and now_s - self.enabled_s >= self.ramp_s:
            self.state = BoardState.RUNNING
        if self.state in ARMED and now_s - self.last_cmd_s > self.watchdog_s:
            self.state = BoardState.FAULT
            self.faults |= Fault.WATCHDOG
            self.held_nm = self.zero
            self.counters["watchdog_trips"] += 1
            return True
        return False

    def watchdog_deadline(self) -> float | None:
        """Board time at which the watchdog trips if no valid TORQUE arrives first (None when disarmed)."""
        return self.last_cmd_s + self.watchdog_s if self.state in ARMED else None
