"""The controller runtime: run a bundle's policy against a motor board over a serial link.

Per SENSOR frame from the board::

    SENSOR ─► sim.spec.SensorFrame ─► RobotSpec.build_obs (the simulator's own function, manifest order)
           ─► onnxruntime (1 thread, preallocated buffers) ─► finite check, clamp to ±limit ─► TORQUE(sensor_seq)

Safety: what may reach the board is decided by the pure state machine :class:`deploy.safety.HostSafety`
(DISARMED → HANDSHAKE → ARMING → RUNNING, latched FAULT and ESTOP; docs/protocol.md §6.2); this module is the
shell that feeds it frames and time and carries out its decisions:

* the board must identify as the bundle's robot (protocol major, robot, motors, joint/contact counts, lidar
  angles, aux channels, control rate; IDENT fields finite and sane) or the motors are never enabled;
* every SENSOR is checked for channel counts, NaN/inf and physical plausibility (:class:`deploy.safety.
  SensorBounds`, from the RobotSpec); a bad one gets a zero-torque command and is counted, ``fault_frames`` in a
  row (or more than the budget) latch FAULT: DISABLE until the operator re-arms (SIGUSR1, or ``r`` + Enter when
  stdin is a terminal). A SENSOR or STATUS showing the board's E-stop latches ESTOP the same way;
* after ENABLE the policy torque ramps in over ``ramp_ms``;
* no SENSOR within ``watchdog_ms`` → DISABLE (the board zeroes the torques), then keep saying HELLO until the
  board answers, re-check its IDENT and ENABLE again (a link loss is not latched: the board's watchdog made the
  motors safe, and a latched board fault or E-stop still blocks the re-arm);
* a non-finite policy output → a zero-torque command and a logged fault; the bad value is never sent. Finite
  torques are clamped to the smaller of the manifest's and the board's limits;
* a policy with memory (its bundle's ``model.state``) carries its state from step to step
  (:func:`policy_step`); the state goes back to the manifest's initial state on every ENABLE and on every SENSOR
  whose mode has ``EPISODE_START`` (the emulator reset its plant: the previous action goes back to zeros too,
  as in the simulator), and a non-finite
  state is a fault like a non-finite output: the state is reset and the step commands zero torque;
* a PING from the board is answered with PONG;
* SIGINT/SIGTERM → DISABLE, flush the telemetry, return normally (``s2r run`` exits 0).

Only the newest SENSOR is acted on: if several are queued (the host was late), the older ones are skipped.
In lockstep mode (the emulator) a TORQUE whose SENSOR does not come back within two control periods is re-sent,
as docs/protocol.md §6 asks.
"""

from __future__ import annotations

import math
import os
import select
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from deploy.bundle import Bundle, Policy
from deploy.safety import LATCHED, Decision, HostSafety, HostState, SafetyConfig, SensorBounds, safe_command
from deploy.telemetry import STATE_CODES, HostFault, TelemetryWriter
from firmware_bridge import protocol as p
from firmware_bridge.link import DEFAULT_BAUD, Link
from sim.config import option, validate
from sim.errors import UserError
from sim.params import ENABLE_RAMP_S
from sim.robots import get_robot


def policy_step(policy: Policy, obs: np.ndarray) -> tuple[np.ndarray, bool]:
    """Run the policy on one observation; returns (torque in N·m, whether its state is still finite). With a
    non-finite state the state is reset to the manifest's initial one and the torque must not be used (it is
    computed from, or next to, the bad state); a feed-forward policy's state is always fine."""
    raw = policy(obs)
    if policy.stateful and not policy.state_finite():
        policy.reset_state()
        return raw, False
    return raw, True


DEFAULT_RAMP_MS = ENABLE_RAMP_S * 1000.0  # torque ramp after ENABLE on a real-time board, ms (--ramp-ms)


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run the controller (the flags of ``s2r run``)."""

    port: str = option(help="serial device or pyserial URL: /dev/ttyUSB0, /dev/pts/N, socket://host:port",
                       metavar="URL")
    baud: int = option(DEFAULT_BAUD, "baud rate of a real UART", low=1, high=100_000_000)
    watchdog_ms: float = option(100.0, "no SENSOR for this long → DISABLE the motors and try to recover, ms",
                                low=1, high=60_000)
    max_steps: int | None = option(None, "stop after this many control steps", above=0, metavar="N")
    duration_s: float | None = option(None, "stop after this long, s", above=0, flag="--duration", metavar="S")
    telemetry: Path | None = option(None, "per-step CSV log (draw it with `s2r plot FILE`)", metavar="FILE")
    handshake_timeout_s: float = option(5.0, "wait this long for IDENT at start-up (HELLO re-sent every 0.25 s), s",
                                        low=1e-3, high=3600, flag="--handshake-timeout", metavar="S")
    status_period_s: float = option(1.0, "one status line per period on stderr, s", low=1e-3, high=3600, cli=False)
    quiet: bool = option(False, "no status line every second")
    ramp_ms: float | None = option(None, f"torque ramp after each ENABLE, ms (default: {DEFAULT_RAMP_MS:g} on a "
                                   "real-time board, 0 on a lockstep emulator, whose HIL torques must match the "
                                   "simulator's step for step; training sees it as the enable_ramp parameter)",
                                   low=0, high=10_000, metavar="MS")
    fault_frames: int = option(3, "this many untrustworthy SENSOR frames in a row latch FAULT (deploy.safety)",
                               low=1, high=1000, metavar="N")

    def __post_init__(self) -> None:
        validate(self)


class _Stop:
    """Set by SIGINT/SIGTERM; the loop checks it at least every watchdog period."""

    def __init__(self) -> None:
        self.signum = 0

    def __call__(self, signum: int, _frame: Any) -> None:
        self.signum = signum


class _Rearm:
    """The operator's re-arm: SIGUSR1, or a line ``r`` on stdin when stdin is a terminal."""

    def __init__(self) -> None:
        self.requested = False
        try:
            self.tty_fd: int | None = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        except (OSError, ValueError):
            self.tty_fd = None

    def __call__(self, _signum: int, _frame: Any) -> None:
        self.requested = True

    def poll(self) -> bool:
        """True (once) if the operator asked to re-arm since the last call."""
        if self.tty_fd is not None and select.select([self.tty_fd], [], [], 0)[0]:
            try:
                line = os.read(self.tty_fd, 256).decode(errors="replace").strip().lower()
            except OSError:
                line = ""
            if line in ("r", "rearm"):
                self.requested = True
        asked, self.requested = self.requested, False
        return asked


class Controller:
    """One session with a board: handshake, enable, control loop, safe shutdown. See the module docstring."""

    def __init__(self, bundle: Bundle, config: RuntimeConfig, link: Link | None = None) -> None:
        self.bundle, self.config = bundle, config
        self.spec = get_robot(bundle.robot)  # the manifest was validated against this spec when loaded
        self.policy = Policy(bundle)
        self.link = link
        self.ident: p.Ident | None = None
        self.layout = self.spec.sensors  # replaced by the layout the board announces
        self.bounds = SensorBounds.from_spec(self.spec, self.layout)
        self.limits_nm = bundle.limits_nm()
        self.zero = np.zeros(self.spec.action.n, dtype=np.float32)
        self._spec_limits_nm = self.spec.action.limits_nm  # float32; the normalisation of prev_action
        self.prev_action = np.zeros(self.spec.action.n, dtype=np.float32)
        self.stop = _Stop()
        self.rearm = _Rearm()
        self.safety = HostSafety(SafetyConfig(link_timeout_ms=config.watchdog_ms, max_consecutive_bad=config.fault_frames))
        self.counts = {name: 0 for name in HostFault.NAMES.values()}
        self.end_state = HostState.DISARMED
        self.duplicate_sensors = 0  # lockstep: re-sent SENSORs answered with the previous command
        self.steps = 0
        self.infer_us: deque[float] = deque(maxlen=100_000)  # µs, the most recent steps
        self.loop_us: deque[float] = deque(maxlen=100_000)
        self.telemetry: TelemetryWriter | None = None

    @property
    def enabled(self) -> bool:
        """The controller has armed the board (ARMING or RUNNING)."""
        return self.safety.state in (HostState.ARMING, HostState.RUNNING)

    # ----------------------------------------------------------------------------------------- set-up
    def connect(self) -> p.Ident:
        """Open the port and handshake; refuse a board that does not match the bundle (ValueError)."""
        if self.link is None:
            self.link = Link.open(self.config.port, self.config.baud)
        timeout_s = self.config.handshake_timeout_s
        ident = self.link.handshake(None, timeout_s=timeout_s, tries=max(3, math.ceil(timeout_s / 0.25)))
        self._check_ident(ident)
        ramp_ms = self.config.ramp_ms
        if ramp_ms is None:
            ramp_ms = 0.0 if ident.mode & p.Mode.LOCKSTEP else DEFAULT_RAMP_MS
        self.safety = HostSafety(replace(self.safety.config, ramp_ms=ramp_ms))
        return ident

    def _check_ident(self, ident: p.Ident) -> None:
        try:
            p.check_ident(ident, self.spec)
        except ValueError as exc:
            raise UserError(f"{exc}; the bundle is for '{self.bundle.robot}', motors stay disabled") from None
        rate = float(self.bundle.manifest["control_hz"])
        if abs(ident.sensor_rate_hz - rate) > 1e-3 * rate:
            raise UserError(
                f"board samples at {ident.sensor_rate_hz:g} Hz, the policy was trained at {rate:g} Hz; "
                "motors stay disabled"
            )
        self.ident, self.layout = ident, ident.layout()
        self.bounds = SensorBounds.from_spec(self.spec, self.layout)
        self.limits_nm = np.minimum(self.bundle.limits_nm(), np.asarray(ident.torque_limits_nm, dtype=np.float32))

    # ------------------------------------------------------------------------------------------- loop
    def run(self) -> dict[str, Any]:
        """Handshake, enable and control until a stop condition; always ends with DISABLE. Returns a summary."""
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGINT, signal.SIGTERM)}
        old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self.rearm)
        try:
            self.connect()
            if self.config.telemetry is not None:
                self.telemetry = self._open_telemetry(self.config.telemetry)
            self._loop()
        finally:
            self._shutdown()
            for s, h in old.items():
                signal.signal(s, h)
        return self.summary()

    def _loop(self) -> None:
        assert self.link is not None and self.ident is not None
        cfg, link, safety = self.config, self.link, self.safety
        period_s = 1.0 / float(self.bundle.manifest["control_hz"])
        watchdog_s = cfg.watchdog_ms * 1e-3
        lockstep = bool(self.ident.mode & p.Mode.LOCKSTEP)
        self.t0 = time.monotonic()
        end = self.t0 + cfg.duration_s if cfg.duration_s is not None else float("inf")
        last_hello = next_status = self.t0
        next_status += cfg.status_period_s
        last_cmd: p.Torque | None = None
        safety.start(self.t0)
        while not self.stop.signum and time.monotonic() < end:
            if cfg.max_steps is not None and self.steps >= cfg.max_steps:
                break
            if (self.rearm.requested or self.rearm.tty_fd is not None) and self.rearm.poll():
                # every request is consumed now: one made while nothing was latched must not clear a later latch
                self._apply(safety.rearm(time.monotonic()))
            now = time.monotonic()
            lost = now - safety.last_sensor_s >= watchdog_s
            if lost:  # knocking: wake for the next HELLO (and to see a re-arm request)
                wait = min(last_hello + watchdog_s, end) - now
            else:
                wait = min(safety.last_sensor_s + watchdog_s, end) - now
                if lockstep and last_cmd is not None:
                    wait = min(wait, 2 * period_s)
            frame = link.recv(max(1e-3 if lost else 0.0, wait))
            if frame is None:
                now = time.monotonic()
                d = safety.tick(now)
                if d.send:  # first timeout of an outage: make the motors safe once
                    self._fault(HostFault.SENSOR_TIMEOUT, f"no SENSOR for {cfg.watchdog_ms:.0f} ms")
                    self._record(now, None, None, self.zero, 0.0, 0.0, HostFault.SENSOR_TIMEOUT)
                    self._apply(d, zero_torque=True)
                if now - safety.last_sensor_s >= watchdog_s:
                    if now - last_hello >= watchdog_s:  # keep knocking until the board answers
                        link.send(p.Hello())
                        last_hello = now
                elif lockstep and last_cmd is not None:
                    link.send(last_cmd)  # a TORQUE or its SENSOR was lost: the board re-steps idempotently
                continue
            if not isinstance(frame.msg, p.Sensor):
                self._other(frame)  # IDENT re-check, STATUS, PING
                continue
            faults = 0
            while True:  # act on the newest of the SENSORs queued back to back
                newer = link.recv(0.0)
                if newer is None:
                    break
                if not isinstance(newer.msg, p.Sensor):
                    link.unread(newer)  # e.g. a STATUS: handled after this SENSOR, in the order they were sent
                    break
                frame, faults = newer, HostFault.STALE_SKIPPED
            msg = cast(p.Sensor, frame.msg)
            if (lockstep and last_cmd is not None and frame.seq == last_cmd.sensor_seq
                    and safety.state is not HostState.HANDSHAKE):  # fmt: skip
                # the board re-sent a SENSOR we already answered (our retransmit crossed its reply): answer with
                # the same command; stepping again would double-count the step and, for the knob, overwrite
                # prev_action and break parity with the simulator. Not after an outage: the motors were disabled
                # then, and the re-enable path must run.
                link.send(last_cmd)
                self.duplicate_sensors += 1
                safety.last_sensor_s = time.monotonic()  # the link is alive
                continue
            was_lost = safety.state is HostState.HANDSHAKE and self.steps > 0
            last_cmd = self._step(frame, msg, time.monotonic_ns(), faults)
            if was_lost and self.enabled and not cfg.quiet:
                print("s2r run: link back, re-enabled", file=sys.stderr)
            t = safety.last_sensor_s
            if self.telemetry is not None and t >= next_status - 0.5 * cfg.status_period_s:
                self.telemetry.flush()  # after the TORQUE went out: formatting costs the idle time only
            if t >= next_status:
                self._status_line(t)
                next_status = t + cfg.status_period_s

    def _other(self, frame: p.Frame) -> None:
        """Any frame but SENSOR: a re-sent IDENT is re-checked, STATUS goes to the safety logic, PING is answered."""
        assert self.link is not None
        msg = frame.msg
        if isinstance(msg, p.Ident):
            self._check_ident(msg)  # a different board after a reconnect → ValueError, never enabled
        elif isinstance(msg, p.Status):
            self._apply(self.safety.status(time.monotonic(), msg.faults, msg.mode), zero_torque=True)
        elif isinstance(msg, p.Ping):
            self.link.send(p.Pong(msg.nonce, msg.t_ns, (time.monotonic_ns() // 1000) & 0xFFFFFFFFFFFFFFFF))

    def _step(self, frame: p.Frame, msg: p.Sensor, t_rx_ns: int, faults: int) -> p.Torque | None:
        """One control step: plausibility, safety decision, inference, checks, TORQUE. Returns the command sent."""
        assert self.link is not None and self.ident is not None
        obs: np.ndarray | None = None
        try:
            sensor_frame = p.sensor_to_frame(msg, self.layout)
        except ValueError as exc:  # wrong channel counts: a glitched frame, not the end of the run
            problem: str | None = str(exc)
        else:
            problem = self.bounds.check(msg)
            if problem is None:
                if msg.mode & p.Mode.EPISODE_START:  # the simulator's previous action is zeros after a reset
                    self.prev_action = np.zeros_like(self.prev_action)
                obs = self.spec.build_obs(sensor_frame, self.prev_action)
                if not np.isfinite(obs).all():
                    problem = "non-finite observation"
        if problem is not None:
            nonfinite = problem.startswith("non-finite") or problem.endswith(("nan", "inf"))  # SensorBounds.check
            bit = HostFault.NONFINITE_OBS if nonfinite else HostFault.IMPLAUSIBLE
            faults |= bit
            self._fault(bit, f"{problem}; commanding 0 N·m")
            obs = None
        d = self.safety.sensor(time.monotonic(), msg.faults, msg.mode, problem)
        if d.send or d.note:
            faults |= self._apply(d)
        if d.torque_scale is None:
            return None
        infer_us = 0.0
        torque = self.zero
        if obs is not None and d.torque_scale > 0.0:
            t = time.perf_counter_ns()
            if msg.mode & p.Mode.EPISODE_START:  # a new episode on the emulator: memory starts over, as in the sim
                self.policy.reset_state()
            raw, state_ok = policy_step(self.policy, obs)
            infer_us = (time.perf_counter_ns() - t) * 1e-3
            torque, nonfinite_out, clamped = safe_command(raw, self.limits_nm, d.torque_scale)
            if not state_ok:
                torque = self.zero
                faults |= HostFault.NONFINITE_OUTPUT
                self._fault(HostFault.NONFINITE_OUTPUT, "policy state NaN/inf; state reset, commanding 0 N·m")
            elif nonfinite_out:
                faults |= HostFault.NONFINITE_OUTPUT
                self._fault(HostFault.NONFINITE_OUTPUT, "policy output NaN/inf; commanding 0 N·m")
            elif clamped:
                faults |= HostFault.CLAMPED
                self.counts["clamped"] += 1
        if self.safety.state in LATCHED:
            faults |= HostFault.LATCHED
        cmd = p.Torque(sensor_seq=frame.seq, torque_nm=tuple(torque.tolist()))
        self.link.send(cmd)
        loop_us = (time.monotonic_ns() - t_rx_ns) * 1e-3
        # what the motors were actually told: = spec.action.to_normalized(torque), bit for bit, with the limits
        # array built once and without np.clip's Python wrapper (tests/deploy/test_safety.py checks the equality)
        self.prev_action = np.minimum(np.maximum(torque / self._spec_limits_nm, -1.0), 1.0)
        self.steps += 1
        self.infer_us.append(infer_us)
        self.loop_us.append(loop_us)
        if faults & HostFault.STALE_SKIPPED:
            self.counts["stale_skipped"] += 1
        self._record(time.monotonic(), frame, msg, torque, infer_us, loop_us, faults, obs)
        return cmd

    def _apply(self, d: Decision, zero_torque: bool = False) -> int:
        """Send a decision's control messages (and, with ``zero_torque``, a zero TORQUE first); log its note.
        Returns the telemetry bits it implies."""
        assert self.link is not None
        bits = 0
        if d.send and zero_torque and "DISABLE" in d.send:
            self.link.send(p.Torque(sensor_seq=0, torque_nm=tuple(self.zero.tolist())))
        for name in d.send:
            if name == "ENABLE":
                self.policy.reset_state()  # a policy with memory starts over: the motors were off
                self.link.send(p.Enable())
                self.counts["reenabled"] += 1
                bits |= HostFault.REENABLED
            else:
                self.link.send(p.Disable())
        if d.note:  # state changes are printed even with --quiet: the operator must see them
            print(f"s2r run: {d.note}", file=sys.stderr, flush=True)
        return bits

    # ------------------------------------------------------------------------------------- helpers
    def _disable(self) -> None:
        assert self.link is not None
        if self.safety.state is not HostState.DISARMED:
            self.end_state = self.safety.state
        self.safety.stop(time.monotonic())
        self.link.send(p.Torque(sensor_seq=0, torque_nm=tuple(self.zero.tolist())))
        self.link.send(p.Disable())

    def _shutdown(self) -> None:
        """DISABLE (twice: a single lost frame must not leave the motors armed), flush and close telemetry."""
        try:
            if self.link is not None and self.ident is not None:
                self._disable()
                self.link.recv_msg(p.Status, 0.1)  # the board's acknowledgement, best effort
                self.link.send(p.Disable())
        except OSError as exc:
            print(f"s2r run: could not send DISABLE: {exc}", file=sys.stderr)
        finally:
            if self.telemetry is not None:
                self.telemetry.close()
            if self.link is not None:
                self.link.close()

    def _fault(self, bit: int, text: str) -> None:
        name = HostFault.NAMES[bit]
        self.counts[name] += 1
        if self.counts[name] <= 3 or self.counts[name] % 100 == 0:  # log, but do not flood at 50 Hz
            print(f"s2r run: fault {name} (#{self.counts[name]}): {text}", file=sys.stderr)

    def _record(self, t: float, frame, msg, torque, infer_us, loop_us, faults, obs=None) -> None:
        if self.telemetry is not None:
            self.telemetry.record(
                t - self.t0, self.steps, frame.seq if frame else -1, msg.t_us if msg else -1, obs, torque,
                infer_us, loop_us, faults, msg.faults if msg else 0, STATE_CODES[self.safety.state.value],
            )  # fmt: skip

    def _open_telemetry(self, path: Path) -> TelemetryWriter:
        m = self.bundle.manifest
        meta = {
            "robot": m["robot"], "control_hz": m["control_hz"], "model_sha256": self.bundle.sha256,
            "torque_limits_nm": self.limits_nm.tolist(), "port": self.config.port, "states": STATE_CODES,
            "ramp_ms": self.safety.config.ramp_ms,
        }  # fmt: skip
        return TelemetryWriter(path, [f.name for f in self.spec.obs_fields], list(self.spec.action.names), meta)

    def _status_line(self, now: float) -> None:
        if self.config.quiet:
            return
        faults = " ".join(f"{k}={v}" for k, v in self.counts.items() if v) or "none"
        print(
            f"s2r run: t={now - self.t0:6.1f}s {self.safety.state.value} steps={self.steps} infer p50 {self._pct(self.infer_us, 50):.0f}µs "
            f"loop p99 {self._pct(self.loop_us, 99):.0f}µs faults: {faults}",
            file=sys.stderr,
            flush=True,
        )

    @staticmethod
    def _pct(values: deque[float], q: float) -> float:
        recent = [values[i] for i in range(max(0, len(values) - 500), len(values))]
        return float(np.percentile(recent, q)) if recent else float("nan")

    def summary(self) -> dict[str, Any]:
        """Steps, fault counts, latency percentiles and the link counters."""
        return {
            "steps": self.steps,
            "state": self.end_state.value,  # the state when the run ended (before the final DISABLE)
            "reason": self.safety.reason if self.end_state in LATCHED else "",
            "safety": dict(self.safety.counts),
            "faults": dict(self.counts),
            "duplicate_sensors": self.duplicate_sensors,
            "infer_us_p50": float(np.percentile(self.infer_us, 50)) if self.infer_us else None,
            "loop_us_p99": float(np.percentile(self.loop_us, 99)) if self.loop_us else None,
            "stopped_by_signal": signal.Signals(self.stop.signum).name if self.stop.signum else None,
            "link": self.link.stats() if self.link is not None else {},
        }
