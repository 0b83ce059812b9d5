"""Firmware emulator: the simulator plays the motor board on a serial port (docs/protocol.md §6).

The board answers HELLO with the IDENT derived from the env's ``RobotSpec``, streams SENSOR frames built from
``env.unwrapped.sensor_frame()``, applies TORQUE commands through ``env.unwrapped.step_torque`` after clamping them
to the board limits (``RobotSpec.action.limits_nm`` × the plant's ``torque_limit_scale``; the env's motor model
clamps again), holds them until the next one and trips the watchdog (zero torque, latched fault, disarmed) when no
command arrives for ``watchdog_ms``. What reaches the motors is decided by the board's safety state machine,
:class:`firmware_bridge.board_state.Board` (refuses ENABLE before HELLO, latches the watchdog and the E-stop); this
module is the shell around it: frames, wall time, physics, logs. :meth:`Emulator.set_estop` (``s2r emulate``:
SIGUSR1 presses, SIGUSR2 releases) plays the E-stop input.

* real-time mode: physics advances one control period per wall-clock period, SENSOR streamed each period;
* lockstep mode: physics advances one period per TORQUE answering the latest SENSOR (PX4-style), so a HIL run
  is deterministic and can run faster than real time; duplicates re-send the latest SENSOR (safe retransmit).

Everything that a HIL report needs (per-step torques, joints, lidar, rewards, episodes, latencies, watchdog
trips, commands that were non-finite or over the limit) goes to an optional JSON-lines log, flushed per line so
a killed emulator still leaves a readable log.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

import gymnasium as gym
import numpy as np

import sim
from firmware_bridge import protocol as p
from firmware_bridge.board_state import Board
from firmware_bridge.link import Link
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError
from sim.params import ParamSpace
from sim.spec import RobotSpec, SensorFrame


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulated board behaves (the flags of ``s2r emulate``)."""

    env: str = option("biped", "env short name (biped, biped-rough, biped-hardcore, knob) or Gymnasium id",
                      flag="--robot")
    plant: str = option("nominal", "held-out physics variant (domain_rand.plants; nominal: nominal physics)")
    seed: int = option(0, "episode i resets the env with seed + i (the seeds a direct evaluation uses)", low=0)
    lockstep: bool = option(False, "one control period per TORQUE instead of the wall clock (deterministic HIL)")
    watchdog_ms: int = option(100, "zero torque after this long without TORQUE while enabled, ms (a u16 in IDENT)",
                              low=1, high=65535)
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)
    ramp_ms: float = option(0.0, "after ENABLE the board's torque clamp ramps from 0 to the limits over this long, ms",
                            low=0, high=10_000)
    fw_version: tuple[int, int, int] = option((0, 1, 0), "the emulated firmware's version", cli=False)

    def __post_init__(self) -> None:
        validate(self)


def plant_params(robot_id: str, plant: str) -> dict[str, float]:
    """Physical parameters of the named held-out plant (``nominal`` → {})."""
    if plant == "nominal":
        return {}
    from domain_rand.plants import get_plants  # lazy: the board needs domain_rand only for --plant

    plants = get_plants(robot_id, "heldout")
    if plant not in plants:
        raise UserError(f"unknown plant '{plant}' for {robot_id}; choose one of {', '.join(plants)}")
    return plants[plant]


def make_plant(cfg: EmulatorConfig) -> gym.Env:
    """The simulated robot the board drives (its physics construction, in one place): env ``cfg.env`` in the
    physics engine ``cfg.engine``."""
    from sim.engines import env_kwargs

    return gym.make(sim.resolve_env_id(cfg.env), **env_kwargs(cfg.env, cfg.engine))


class BoardSim(Protocol):
    """What the board needs from ``env.unwrapped`` of an s2r env (``sim.BipedEnv``, ``sim.KnobEnv``)."""

    robot_spec: RobotSpec
    param_space: ParamSpace

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any: ...

    def step_torque(self, torque_nm: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One control period with motor torques in N·m: (obs, reward, terminated, truncated, info)."""
        ...

    def sensor_frame(self) -> SensorFrame: ...


class Emulator:
    """One emulated motor board on one byte port. Call :meth:`serve` to run it."""

    def __init__(self, cfg: EmulatorConfig, port, log: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.env = make_plant(cfg)
        # gym.make returns a plain gym.Env; only an s2r env (any in sim/) has the board surface
        self.sim = cast(BoardSim, self.env.unwrapped)
        self.spec = self.sim.robot_spec
        self.max_steps = self.env.spec.max_episode_steps if self.env.spec else None
        self.params = plant_params(self.spec.robot_id, cfg.plant)
        scale = self.sim.param_space.validate(self.params)["torque_limit_scale"]
        self.limits_nm = (self.spec.action.limits_nm * np.float32(scale)).astype(np.float32)
        self.ident = p.ident_from_spec(
            self.spec,
            watchdog_ms=cfg.watchdog_ms,
            mode=p.Mode.LOCKSTEP if cfg.lockstep else 0,
            fw_version=cfg.fw_version,
            torque_limit_scale=float(scale),
        )
        self.link = Link(port)
        self.log = log
        self.period_s = self.spec.control_period_s
        self.watchdog_s = cfg.watchdog_ms / 1000.0
        self.t0 = time.monotonic()
        # board state: the safety state machine decides what reaches the motors
        self.board = Board(tuple(self.limits_nm.tolist()), self.watchdog_s, cfg.ramp_ms / 1000.0)
        self._estop_request: bool | None = None  # set by set_estop (another thread, a signal handler)
        # fault injection (HIL scenarios, tests): each SENSOR message passes through it before it is encoded,
        # as a glitching sensor or a corrupting firmware would alter it
        self.sensor_fault: Callable[[p.Sensor], p.Sensor] | None = None
        self.pong_rtt_ms: list[float] = []  # round trips of PINGs this board sent (send_ping), ms
        self.session = False  # a HELLO has been received
        self.last_sensor: tuple[int, bytes] | None = None  # (seq, wire bytes) for lockstep re-sends
        self._last_sensor_status: tuple[int, int] = (0, 0)  # (faults, mode) that SENSOR reported
        self._sent_at: OrderedDict[int, float] = OrderedDict()  # SENSOR seq → wall time sent
        self._crc_seen = 0
        self._cmd_latency_s: float | None = None
        # counters for the report
        self.c = {
            "steps": 0, "commands": 0, "nonfinite_commands": 0, "overlimit_commands": 0, "bad_commands": 0,
            "clamped": 0, "watchdog_trips": 0, "deadline_misses": 0, "resends": 0, "overruns": 0,
            "refused_enables": 0, "estop_presses": 0,
        }  # fmt: skip
        self.latency_ms: list[float] = []
        self.watchdog_gap_ms: list[float] = []
        # episode state
        self.episode = 0
        self.ep_return = 0.0
        self.ep_len = 0
        self.last_info: dict[str, Any] = {}
        self.sim.reset(seed=cfg.seed, options={"params": self.params})
        self._episode_start = True  # the next SENSOR is an episode's first: its mode carries EPISODE_START

    # ------------------------------------------------------------------------------------ board state
    @property
    def enabled(self) -> bool:
        """Motors armed (ARMING or RUNNING)."""
        return self.board.armed

    @property
    def held_nm(self) -> np.ndarray:
        """Torque applied now, N·m, float32."""
        return np.asarray(self.board.held_nm, dtype=np.float32)

    @property
    def faults(self) -> int:
        return self.board.faults

    def set_estop(self, pressed: bool) -> None:
        """Press (True) or release (False) the E-stop input; the serve loop applies it within 20 ms.
        Safe to call from another thread or a signal handler."""
        self._estop_request = pressed

    # ------------------------------------------------------------------------------------------ io
    def _now_us(self) -> int:
        return int((time.monotonic() - self.t0) * 1e6)

    def _log(self, **rec: Any) -> None:
        if self.log is not None:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()

    def _status(self) -> p.Status:
        s = self.link.decoder.stats
        return p.Status(
            self.board.faults, self._mode(), s.crc_errors + s.length_errors, s.resyncs, s.seq_gaps,
            self.board.counters["watchdog_trips"], s.unknown_types, self.board.counters["clamped"],
        )  # fmt: skip

    def _mode(self) -> int:
        return self.board.mode_bits() | (p.Mode.LOCKSTEP if self.cfg.lockstep else 0)

    def send_sensor(self) -> None:
        """Sample the simulator's sensors and send one SENSOR frame."""
        s = self.link.decoder.stats
        bad_rx = s.crc_errors + s.length_errors  # the CRC bit covers CRC, COBS and length errors
        faults = self.board.faults | (p.Fault.CRC if bad_rx != self._crc_seen else 0)
        self._crc_seen = bad_rx
        msg = p.frame_to_sensor(
            self.sim.sensor_frame(), t_us=self._now_us(), cmd_seq=self.board.cmd_seq, faults=faults,
            mode=self._mode() | (p.Mode.EPISODE_START if self._episode_start else 0), torque_nm=self.board.held_nm,
        )  # fmt: skip
        self._episode_start = False
        if self.sensor_fault is not None:
            msg = self.sensor_fault(msg)
        seq = self.link._tx_seq
        wire = p.encode(msg, seq)
        self.link.send_wire(wire)
        self.last_sensor = (seq, wire)
        self._last_sensor_status = (self.board.faults, self._mode())
        self._sent_at[seq] = time.monotonic()
        while len(self._sent_at) > 256:
            self._sent_at.popitem(last=False)

    # ------------------------------------------------------------------------------------- physics
    def step(self) -> None:
        """Advance the physics one control period with the held torque; handle episode ends."""
        held = self.held_nm
        _, reward, terminated, truncated, info = self.sim.step_torque(held)
        self.c["steps"] += 1
        self.ep_return += reward
        self.ep_len += 1
        self.last_info = info
        if self.max_steps is not None and self.ep_len >= self.max_steps:
            truncated = True
        f = self.sim.sensor_frame()
        self._log(
            ev="step", t=round(time.monotonic(), 6), ep=self.episode, k=self.ep_len, r=reward,
            tau=held.tolist(), q=np.asarray(f.joint_pos_rad).tolist(), lidar=np.asarray(f.lidar_m).tolist(),
            lat_ms=None if self._cmd_latency_s is None else round(self._cmd_latency_s * 1e3, 4), en=self.enabled,
        )  # fmt: skip
        self._cmd_latency_s = None
        if terminated or truncated:
            self._end_episode(terminated, truncated)

    def _end_episode(self, terminated: bool, truncated: bool) -> None:
        info = self.last_info
        self._log(
            ev="episode", ep=self.episode, ret=self.ep_return, length=self.ep_len, terminated=terminated,
            truncated=truncated, metrics={k: float(v) for k, v in info.get("metrics", {}).items()},
        )  # fmt: skip
        self.episode += 1
        self.ep_return, self.ep_len = 0.0, 0
        self.sim.reset(seed=self.cfg.seed + self.episode, options={"params": self.params})
        self._episode_start = True

    # ------------------------------------------------------------------------------------ messages
    def handle(self, frame: p.Frame) -> None:
        """React to one received frame."""
        msg, now = frame.msg, time.monotonic()
        self.check_watchdog(now)  # a command that arrives after the deadline finds the watchdog tripped
        if isinstance(msg, p.Torque):
            self._torque(frame.seq, msg, now)
        elif isinstance(msg, p.Hello):
            self.board.hello(now)
            self.link.send(self.ident)
            first = not self.session
            self.session = True
            if self.cfg.lockstep:
                # an unchanged state is re-sent as the same frame: a host that knocked several times during an
                # outage would otherwise answer each new copy as a step the board never took
                if self.last_sensor is not None and self._last_sensor_status == (self.board.faults, self._mode()):
                    self.link.send_wire(self.last_sensor[1], new=False)
                else:
                    self.send_sensor()
            elif first:
                self._next_tick = now + self.period_s
        elif isinstance(msg, p.Enable):
            armed = self.board.enable(now)
            self.c["refused_enables"] += not armed
            self._log(ev="enable" if armed else "enable_refused", t=round(now, 6), state=self.board.state.value)
            self.link.send(self._status())
        elif isinstance(msg, p.Disable):
            self.board.disable(now)
            self.link.send(self._status())
        elif isinstance(msg, p.GetStatus):
            self.link.send(self._status())
        elif isinstance(msg, p.Ping):
            self.link.send(p.Pong(msg.nonce, msg.t_ns, self._now_us()))
        elif isinstance(msg, p.Pong):
            self.pong_rtt_ms.append((time.monotonic_ns() - msg.t_ns) * 1e-6)

    def send_ping(self, nonce: int = 0) -> None:
        """Probe the host's latency: PING now, the PONG's round trip lands in :attr:`pong_rtt_ms`."""
        self.link.send(p.Ping(nonce & 0xFFFFFFFF, time.monotonic_ns()))

    def _torque(self, seq: int, msg: p.Torque, now: float) -> None:
        c = self.c
        c["commands"] += 1
        raw = msg.torque_nm
        sent = self._sent_at.pop(msg.sensor_seq, None)
        if sent is not None:
            lat = now - sent
            self._cmd_latency_s = lat
            self.latency_ms.append(lat * 1e3)
            c["deadline_misses"] += int(lat > self.period_s)
        if len(raw) != len(self.board.limits_nm):
            self.board.torque(seq, raw, now)  # BAD_COMMAND: ignored, does not feed the watchdog
            c["bad_commands"] += 1
            self.link.send(self._status())  # tell the host (in lockstep nothing else would answer)
            return
        # the report's safety figures: what the host sent, before the board's clamp
        if not all(map(math.isfinite, raw)):
            c["nonfinite_commands"] += 1
        elif any(abs(t) > lim * (1 + 1e-6) for t, lim in zip(raw, self.board.limits_nm, strict=True)):
            c["overlimit_commands"] += 1
        if self.cfg.lockstep and (self.last_sensor is None or msg.sensor_seq != self.last_sensor[0]):
            c["resends"] += 1  # duplicate or stale command: re-send the latest SENSOR, change nothing
            if all(map(math.isfinite, raw)):
                self.board.keepalive(now)
            if self.last_sensor is not None:
                self.link.send_wire(self.last_sensor[1], new=False)
            return
        self.board.torque(seq, raw, now)
        if self.cfg.lockstep:  # a NaN command steps too, with every motor at 0 N·m
            self.step()
            self.send_sensor()

    def _disarm(self) -> None:
        self.board.disable(time.monotonic())

    def _apply_estop(self, now: float) -> None:
        pressed, self._estop_request = self._estop_request, None
        if pressed is None or pressed == self.board.estop_input:
            return
        raised = self.board.estop(pressed, now)
        self.c["estop_presses"] += pressed
        self._log(ev="estop", t=round(now, 6), pressed=pressed)
        if raised:
            self.link.send(self._status())

    def check_watchdog(self, now: float) -> None:
        """Zero torque, latch the fault and disarm if the last command is older than the timeout."""
        gap = now - self.board.last_cmd_s
        if self.board.tick(now):
            self.c["watchdog_trips"] += 1
            self.watchdog_gap_ms.append(gap * 1e3)
            self._log(ev="watchdog", t=round(now, 6), gap_ms=round(gap * 1e3, 3))
            self.link.send(self._status())

    # ---------------------------------------------------------------------------------------- loop
    def serve(self, duration_s: float | None = None, should_stop=lambda: False) -> dict[str, Any]:
        """Run the board until ``duration_s`` elapses or ``should_stop()``; always ends with motors off."""
        end = None if duration_s is None else time.monotonic() + duration_s
        self._next_tick = time.monotonic() + self.period_s
        try:
            while not should_stop() and (end is None or time.monotonic() < end):
                now = time.monotonic()
                if self._estop_request is not None:
                    self._apply_estop(now)
                wait = 0.02
                deadline = self.board.watchdog_deadline()
                if deadline is not None:
                    wait = min(wait, deadline - now + 2e-4)
                if self.session and not self.cfg.lockstep:
                    wait = min(wait, self._next_tick - now)
                frame = self.link.recv(max(wait, 0.0))
                if frame is not None:
                    self.handle(frame)
                now = time.monotonic()
                self.check_watchdog(now)
                if self.session and not self.cfg.lockstep and now >= self._next_tick:
                    self.step()
                    self.send_sensor()
                    self._next_tick += self.period_s
                    if now - self._next_tick > 5 * self.period_s:  # fell far behind (stalled box): re-anchor
                        self.c["overruns"] += 1
                        self._next_tick = now + self.period_s
        finally:
            self._disarm()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Counters of this run (also logged as the last JSON line by :func:`run_emulator`)."""
        self.c["clamped"] = self.board.counters["clamped"]
        return {
            **self.c,
            "state": self.board.state.value,
            "episodes_completed": self.episode,
            "partial_episode": {"ep": self.episode, "ret": self.ep_return, "length": self.ep_len},
            "link": self.link.stats(),
            "latency_ms": [round(x, 4) for x in self.latency_ms],
            "watchdog_gap_ms": self.watchdog_gap_ms,
            "watchdog_ms": self.cfg.watchdog_ms,
            "control_hz": self.spec.control_hz,
            "limits_nm": self.limits_nm.tolist(),
            "lockstep": self.cfg.lockstep,
            "robot": self.spec.robot_id,
            "plant": self.cfg.plant,
            "seed": self.cfg.seed,
            "elapsed_s": time.monotonic() - self.t0,
        }

    def close(self) -> None:
        self.env.close()
