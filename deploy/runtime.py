"""The controller runtime: run a bundle's policy against a motor board over a serial link.

Per SENSOR frame from the board::

    SENSOR ─► sim.spec.SensorFrame ─► RobotSpec.build_obs (the simulator's own function, manifest order)
           ─► onnxruntime (1 thread, preallocated buffers) ─► finite check, clamp to ±limit ─► TORQUE(sensor_seq)

Safety, in the order it is checked:

* the board must identify as the bundle's robot (protocol major, robot, motors, joint/contact counts, lidar
  angles, aux channels, control rate) or the motors are never enabled;
* no SENSOR within ``watchdog_s`` → DISABLE (the board zeroes the torques), then keep saying HELLO until the
  board answers, re-check its IDENT and ENABLE again;
* a non-finite observation or policy output → a zero-torque command and a logged fault; the bad value is never
  sent. Finite torques are clamped to the smaller of the manifest's and the board's limits;
* SIGINT/SIGTERM → DISABLE, flush the telemetry, return normally (``s2r run`` exits 0).

Only the newest SENSOR is acted on: if several are queued (the host was late), the older ones are skipped.
In lockstep mode (the emulator) a TORQUE whose SENSOR does not come back within two control periods is re-sent,
as docs/protocol.md §6 asks.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.bundle import Bundle, Policy
from deploy.telemetry import HostFault, TelemetryWriter
from firmware_bridge import protocol as p
from firmware_bridge.link import DEFAULT_BAUD, Link
from sim.errors import UserError
from sim.robots import get_robot


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run the controller (``s2r run`` flags)."""

    port: str  # device path or pyserial URL: /dev/ttyUSB0, /dev/pts/N, socket://host:port
    baud: int = DEFAULT_BAUD
    watchdog_s: float = 0.1  # no SENSOR for this long → DISABLE and try to recover, s
    max_steps: int | None = None  # stop after this many control steps
    duration_s: float | None = None  # stop after this long, s
    telemetry: Path | None = None  # CSV telemetry file (deploy.telemetry)
    handshake_timeout_s: float = 5.0  # HELLO → IDENT at start-up (HELLO re-sent every 0.25 s), s
    status_period_s: float = 1.0  # one status line per period on stderr, s
    quiet: bool = False  # no status lines


class _Stop:
    """Set by SIGINT/SIGTERM; the loop checks it at least every watchdog period."""

    def __init__(self) -> None:
        self.signum = 0

    def __call__(self, signum: int, _frame: Any) -> None:
        self.signum = signum


class Controller:
    """One session with a board: handshake, enable, control loop, safe shutdown. See the module docstring."""

    def __init__(self, bundle: Bundle, config: RuntimeConfig, link: Link | None = None) -> None:
        self.bundle, self.config = bundle, config
        self.spec = get_robot(bundle.robot)  # the manifest was validated against this spec when loaded
        self.policy = Policy(bundle)
        self.link = link
        self.ident: p.Ident | None = None
        self.layout = self.spec.sensors  # replaced by the layout the board announces
        self.limits_nm = bundle.limits_nm()
        self.zero = np.zeros(self.spec.action.n, dtype=np.float32)
        self.prev_action = np.zeros(self.spec.action.n, dtype=np.float32)
        self.stop = _Stop()
        self.enabled = False
        self.counts = {name: 0 for name in HostFault.NAMES.values()}
        self.duplicate_sensors = 0  # lockstep: re-sent SENSORs answered with the previous command
        self.steps = 0
        self.infer_us: deque[float] = deque(maxlen=100_000)  # µs, the most recent steps
        self.loop_us: deque[float] = deque(maxlen=100_000)
        self.telemetry: TelemetryWriter | None = None

    # ----------------------------------------------------------------------------------------- set-up
    def connect(self) -> p.Ident:
        """Open the port and handshake; refuse a board that does not match the bundle (ValueError)."""
        if self.link is None:
            self.link = Link.open(self.config.port, self.config.baud)
        timeout_s = self.config.handshake_timeout_s
        ident = self.link.handshake(None, timeout_s=timeout_s, tries=max(3, math.ceil(timeout_s / 0.25)))
        self._check_ident(ident)
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
        self.limits_nm = np.minimum(self.bundle.limits_nm(), np.asarray(ident.torque_limits_nm, dtype=np.float32))

    # ------------------------------------------------------------------------------------------- loop
    def run(self) -> dict[str, Any]:
        """Handshake, enable and control until a stop condition; always ends with DISABLE. Returns a summary."""
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGINT, signal.SIGTERM)}
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
        cfg, link = self.config, self.link
        period_s = 1.0 / float(self.bundle.manifest["control_hz"])
        lockstep = bool(self.ident.mode & p.Mode.LOCKSTEP)
        self.t0 = time.monotonic()
        end = self.t0 + cfg.duration_s if cfg.duration_s is not None else float("inf")
        last_sensor = last_hello = lost_since = next_status = self.t0
        next_status += cfg.status_period_s
        last_cmd: p.Torque | None = None
        lost = False
        while not self.stop.signum and time.monotonic() < end:
            if cfg.max_steps is not None and self.steps >= cfg.max_steps:
                break
            now = time.monotonic()
            wait = min(last_sensor + cfg.watchdog_s, end) - now
            if lockstep and last_cmd is not None and not lost:
                wait = min(wait, 2 * period_s)
            frame = link.recv(max(0.0, wait))
            if frame is None:
                now = time.monotonic()
                if now - last_sensor >= cfg.watchdog_s:
                    if not lost:  # first timeout of an outage: make the motors safe once
                        lost, lost_since = True, last_sensor
                        self._fault(HostFault.SENSOR_TIMEOUT, f"no SENSOR for {cfg.watchdog_s * 1e3:.0f} ms")
                        self._record(now, None, None, self.zero, 0.0, 0.0, HostFault.SENSOR_TIMEOUT)
                        self._disable()
                    if now - last_hello >= cfg.watchdog_s:  # keep knocking until the board answers
                        link.send(p.Hello())
                        last_hello = now
                elif lockstep and last_cmd is not None:
                    link.send(last_cmd)  # a TORQUE or its SENSOR was lost: the board re-steps idempotently
                continue
            msg = frame.msg
            if isinstance(msg, p.Ident):
                self._check_ident(msg)  # a different board after a reconnect → ValueError, never enabled
                continue
            if not isinstance(msg, p.Sensor):
                continue
            faults = 0
            while True:  # act on the newest SENSOR only
                newer = link.recv(0.0)
                if newer is None:
                    break
                if isinstance(newer.msg, p.Sensor):
                    frame, msg, faults = newer, newer.msg, HostFault.STALE_SKIPPED
                elif isinstance(newer.msg, p.Ident):
                    self._check_ident(newer.msg)
            if lockstep and not lost and last_cmd is not None and frame.seq == last_cmd.sensor_seq:
                # the board re-sent a SENSOR we already answered (our retransmit crossed its reply): answer with
                # the same command; stepping again would double-count the step and, for the knob, overwrite
                # prev_action and break parity with the simulator. Not after an outage: the motors were disabled
                # then, and the re-enable path below must run.
                link.send(last_cmd)
                self.duplicate_sensors += 1
                last_sensor = time.monotonic()  # the link is alive
                continue
            t_rx = time.monotonic_ns()
            last_sensor = time.monotonic()
            if lost or not (msg.mode & p.Mode.ENABLED) or (msg.faults & p.Fault.WATCHDOG):
                if lost and not self.config.quiet:
                    print(f"s2r run: link back after {last_sensor - lost_since:.2f} s, re-enabling", file=sys.stderr)
                lost = False
                link.send(p.Enable())
                self.enabled = True
                faults |= HostFault.REENABLED
            last_cmd = self._step(frame, msg, t_rx, faults)
            if self.telemetry is not None and last_sensor >= next_status - 0.5 * cfg.status_period_s:
                self.telemetry.flush()  # after the TORQUE went out: formatting costs the idle time only
            if last_sensor >= next_status:
                self._status_line(last_sensor)
                next_status = last_sensor + cfg.status_period_s

    def _step(self, frame: p.Frame, msg: p.Sensor, t_rx_ns: int, faults: int) -> p.Torque:
        """One control step: observation, inference, checks, TORQUE. Returns the command sent."""
        assert self.link is not None and self.ident is not None
        obs = self.spec.build_obs(p.sensor_to_frame(msg, self.layout), self.prev_action)
        infer_us = 0.0
        if not np.isfinite(obs).all():
            torque, faults = self.zero, faults | HostFault.NONFINITE_OBS
            self._fault(HostFault.NONFINITE_OBS, "non-finite observation; commanding 0 N·m")
        else:
            t = time.perf_counter_ns()
            raw = self.policy(obs)
            infer_us = (time.perf_counter_ns() - t) * 1e-3
            if not np.isfinite(raw).all():
                torque, faults = self.zero, faults | HostFault.NONFINITE_OUTPUT
                self._fault(HostFault.NONFINITE_OUTPUT, "policy output NaN/inf; commanding 0 N·m")
            else:
                torque = np.clip(raw, -self.limits_nm, self.limits_nm)
                if np.any(torque != raw):
                    faults |= HostFault.CLAMPED
                    self.counts["clamped"] += 1
        cmd = p.Torque(sensor_seq=frame.seq, torque_nm=tuple(torque.tolist()))
        self.link.send(cmd)
        loop_us = (time.monotonic_ns() - t_rx_ns) * 1e-3
        self.prev_action = self.spec.action.to_normalized(torque)  # what the motors were actually told
        self.steps += 1
        self.infer_us.append(infer_us)
        self.loop_us.append(loop_us)
        if faults & HostFault.STALE_SKIPPED:
            self.counts["stale_skipped"] += 1
        self._record(time.monotonic(), frame, msg, torque, infer_us, loop_us, faults, obs)
        return cmd

    # ------------------------------------------------------------------------------------- helpers
    def _disable(self) -> None:
        assert self.link is not None
        self.link.send(p.Torque(sensor_seq=0, torque_nm=tuple(self.zero.tolist())))
        self.link.send(p.Disable())
        self.enabled = False

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
                infer_us, loop_us, faults, msg.faults if msg else 0,
            )  # fmt: skip

    def _open_telemetry(self, path: Path) -> TelemetryWriter:
        m = self.bundle.manifest
        meta = {
            "robot": m["robot"], "control_hz": m["control_hz"], "model_sha256": self.bundle.sha256,
            "torque_limits_nm": self.limits_nm.tolist(), "port": self.config.port,
        }  # fmt: skip
        return TelemetryWriter(path, [f.name for f in self.spec.obs_fields], list(self.spec.action.names), meta)

    def _status_line(self, now: float) -> None:
        if self.config.quiet:
            return
        faults = " ".join(f"{k}={v}" for k, v in self.counts.items() if v) or "none"
        print(
            f"s2r run: t={now - self.t0:6.1f}s steps={self.steps} infer p50 {self._pct(self.infer_us, 50):.0f}µs "
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
            "faults": dict(self.counts),
            "duplicate_sensors": self.duplicate_sensors,
            "infer_us_p50": float(np.percentile(self.infer_us, 50)) if self.infer_us else None,
            "loop_us_p99": float(np.percentile(self.loop_us, 99)) if self.loop_us else None,
            "stopped_by_signal": signal.Signals(self.stop.signum).name if self.stop.signum else None,
            "link": self.link.stats() if self.link is not None else {},
        }
