"""Hardware-in-the-loop harness: emulator and controller runtime as separate processes joined by a real pty.

::

    s2r emulate ──pty A──► [FaultProxy: drop / corrupt / delay / disconnect] ──pty B──► s2r run --bundle B

The harness starts ``s2r emulate`` (the board), optionally a :class:`FaultProxy` between two ptys (both ports
stay open during a simulated disconnect, as with a cable fault), and ``s2r run`` (the host). When the run ends it
reads the emulator's JSON-lines log and the runtime's JSON summary and builds the report: task outcome, control
rate, sensor→command latency, link errors, watchdog trips and the **safety assertions**:

* no non-finite and no over-limit torque ever reached the board;
* every watchdog trip came within the timeout (+ ``slack_ms``) of the last command;
* after a disconnect the board was at zero torque within the watchdog timeout, and control resumed after the
  link came back.
"""

from __future__ import annotations

import collections
import heapq
import json
import random
import select
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.link import open_port, open_pty
from s2r.spawn import emulate_argv, run_argv
from sim.errors import UserError
from sim.files import atomic_open


@dataclass(frozen=True)
class FaultSpec:
    """Link faults injected between board and host (both directions)."""

    drop: float = 0.0  # probability that a frame is lost
    corrupt: float = 0.0  # probability per byte of a flipped bit
    delay_ms: float = 0.0  # extra one-way latency per frame, ms
    disconnect_at: float | None = None  # start of a link outage, s after the host's first frame
    disconnect_s: float = 1.0  # outage length, s

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """``"drop=0.01,corrupt=0.001,delay_ms=5,disconnect_at=5"`` → FaultSpec (ValueError on bad input)."""
        if not text:
            return cls()
        names = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for item in text.split(","):
            key, sep, val = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise UserError(f"bad fault '{item}'; use key=value with keys {', '.join(sorted(names))}")
            try:
                values[key] = float(val)
            except ValueError:
                raise UserError(f"fault '{key}' needs a number, got '{val}'") from None
            if not np.isfinite(values[key]) or values[key] < 0:
                raise UserError(f"fault '{key}' must be a finite number ≥ 0, got {val}")
        spec = cls(**values)
        if spec.drop > 1 or spec.corrupt > 1:
            raise UserError("fault probabilities drop and corrupt must be ≤ 1")
        return spec

    @property
    def active(self) -> bool:
        return bool(self.drop or self.corrupt or self.delay_ms or self.disconnect_at is not None)


class FaultProxy:
    """Relays frames between the board's pty (opened as a client) and a new pty for the host, with faults."""

    def __init__(self, board_path: str, faults: FaultSpec, seed: int = 0) -> None:
        self.faults = faults
        self.board = open_port(board_path)
        self.host, self.host_path = open_pty()
        self.rng = random.Random(seed)
        self.counts = {"frames": 0, "dropped": 0, "corrupted": 0, "disconnect_dropped": 0}
        self.t0 = time.monotonic()
        self.outage: tuple[float, float] | None = None  # set when the host sends its first frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _mangle(self, frame: bytes, now: float) -> bytes | None:
        self.counts["frames"] += 1
        if self.outage and self.outage[0] <= now < self.outage[1]:
            self.counts["disconnect_dropped"] += 1
            return None
        if self.rng.random() < self.faults.drop:
            self.counts["dropped"] += 1
            return None
        if self.faults.corrupt:
            b = bytearray(frame)
            for i in range(len(b) - 1):  # the delimiter is left alone: framing faults are drops
                if self.rng.random() < self.faults.corrupt:
                    b[i] ^= 1 << self.rng.randrange(8)
                    self.counts["corrupted"] += 1
            frame = bytes(b)
        return frame

    def _run(self) -> None:
        ends = {self.board.fileno(): (self.board, self.host), self.host.fileno(): (self.host, self.board)}
        partial = {fd: b"" for fd in ends}
        queue: list[tuple[float, int, int, bytes]] = []  # (due, order, destination fd, bytes)
        order = 0
        delay = self.faults.delay_ms / 1000.0
        while not self._stop.is_set():
            timeout = 0.01 if not queue else max(0.0, min(0.01, queue[0][0] - time.monotonic()))
            ready, _, _ = select.select(list(ends), [], [], timeout)
            now = time.monotonic()
            for fd in ready:
                src, dst = ends[fd]
                if src is self.host and self.outage is None and self.faults.disconnect_at is not None:
                    start = now + self.faults.disconnect_at  # outage times count from the host's first frame
                    self.outage = (start, start + self.faults.disconnect_s)
                data = src.read(4096)
                *frames, partial[fd] = (partial[fd] + data).split(b"\x00")
                for f in frames:
                    out = self._mangle(f + b"\x00", now)
                    if out is not None:
                        heapq.heappush(queue, (now + delay, order, dst.fileno(), out))
                        order += 1
            while queue and queue[0][0] <= time.monotonic():
                _, _, fd, out = heapq.heappop(queue)
                ends[fd][0].write(out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.board.close()
        self.host.close()


@dataclass(frozen=True)
class HilConfig:
    """One HIL run (``s2r hil`` flags)."""

    bundle: str
    duration_s: float = 10.0  # controller run time, wall clock, s
    max_steps: int | None = None  # or stop the controller after this many control steps
    lockstep: bool = False
    faults: FaultSpec = FaultSpec()
    plant: str = "nominal"
    env: str | None = None  # emulator env (default: the bundle's env)
    engine: str = "pybullet"  # physics engine of the emulated plant: pybullet or mujoco (sim.engines)
    seed: int = 0
    watchdog_ms: int = 100  # board watchdog
    host_watchdog_ms: float = 100.0  # controller: no SENSOR for this long → DISABLE and re-handshake
    slack_ms: float = 30.0  # allowed lateness of a watchdog trip (scheduling on a loaded box)
    out_dir: str = "hil_out"  # logs, plots
    plots: bool = True


def _read_port_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """Wait for the emulator's ``port: PATH`` line."""
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if r:
            line = proc.stdout.readline()
            if line.startswith("port: "):
                return line.split(" ", 1)[1].strip()
            if not line:
                break
    proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    raise UserError(f"emulator did not start within {timeout_s:g} s: {err.strip()[-300:] or 'no output'}")


def _drain(stream: Any, keep: collections.deque) -> threading.Thread:
    """Read a child's pipe to EOF in the background (keeping the last lines for error messages), so a chatty
    child can never block on a full pipe buffer during a long run."""

    def pump() -> None:
        for line in stream:
            keep.append(line)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def _wait_until_quiet(log: Path, quiet_s: float = 0.2, max_s: float = 2.0) -> None:
    """Wait until the emulator's log has not grown for ``quiet_s`` (at most ``max_s``)."""
    deadline = time.monotonic() + max_s
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = log.stat().st_size if log.exists() else 0
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.02)


def run_hil(cfg: HilConfig) -> dict[str, Any]:
    """Run emulator + controller, return the report (see :func:`build_report`)."""
    from deploy.bundle import load_bundle  # the bundle names the robot and env
    from deploy.runtime import RuntimeConfig
    from firmware_bridge.emulator import EmulatorConfig

    bundle = load_bundle(cfg.bundle)
    env = cfg.env or bundle.manifest.get("env_id") or bundle.robot
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    emu_log = out / "emulator.jsonl"
    board = EmulatorConfig(env=env, plant=cfg.plant, seed=cfg.seed, lockstep=cfg.lockstep,
                           watchdog_ms=cfg.watchdog_ms, engine=cfg.engine)  # fmt: skip
    emu_cmd = emulate_argv(board, log=emu_log)
    emu = subprocess.Popen(emu_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proxy = None
    try:
        board_path = _read_port_line(emu, 60.0)
        emu_tail: collections.deque[str] = collections.deque(maxlen=50)
        _drain(emu.stdout, emu_tail)
        _drain(emu.stderr, emu_tail)
        host_path = board_path
        if cfg.faults.active:
            proxy = FaultProxy(board_path, cfg.faults, cfg.seed)
            host_path = proxy.host_path
        controller = RuntimeConfig(port=host_path, watchdog_s=cfg.host_watchdog_ms * 1e-3,
                                   max_steps=cfg.max_steps or None, duration_s=cfg.duration_s,
                                   telemetry=out / "telemetry.csv", quiet=True)  # fmt: skip
        run_cmd = run_argv(controller, cfg.bundle)
        t_start = time.monotonic()
        ctl = subprocess.run(run_cmd, capture_output=True, text=True, timeout=cfg.duration_s + 120)
        wall_s = time.monotonic() - t_start
    finally:
        if emu.poll() is None:
            _wait_until_quiet(emu_log)  # let the board apply the controller's last TORQUE and DISABLE
        if proxy is not None:
            proxy.close()
        if emu.poll() is None:
            emu.send_signal(signal.SIGTERM)
            try:
                emu.wait(30)
            except subprocess.TimeoutExpired:
                emu.kill()
    if ctl.returncode != 0:
        raise UserError(f"controller exited {ctl.returncode}: {ctl.stderr.strip()[-300:]}")
    host = json.loads(ctl.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for line in emu_log.read_text().splitlines() if line.strip()]
    report = build_report(records, host, cfg, proxy, wall_s)
    if cfg.plots:
        report["plot"] = str(plot_run(records, out / "hil.png"))
    return report


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def build_report(
    records: list[dict[str, Any]],
    host: dict[str, Any],
    cfg: HilConfig,
    proxy: FaultProxy | None,
    wall_s: float,
) -> dict[str, Any]:
    """Outcome, timing, link and safety figures from the emulator log and the controller's summary."""
    steps = [r for r in records if r["ev"] == "step"]
    episodes = [r for r in records if r["ev"] == "episode"]
    trips = [r for r in records if r["ev"] == "watchdog"]
    summary = next((r for r in records if r["ev"] == "summary"), None)
    if summary is None:
        raise UserError("the emulator log has no summary line: the emulator did not shut down cleanly")
    lat = summary["latency_ms"]
    t = [s["t"] for s in steps]
    rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0
    partial = summary["partial_episode"]
    rets = [e["ret"] for e in episodes] + ([partial["ret"]] if partial["length"] else [])
    safety: dict[str, Any] = {
        "nonfinite_commands": summary["nonfinite_commands"],
        "overlimit_commands": summary["overlimit_commands"],
        "watchdog_late": sum(g > cfg.watchdog_ms + cfg.slack_ms for g in summary["watchdog_gap_ms"]),
    }
    ok = (
        safety["nonfinite_commands"] == 0
        and safety["overlimit_commands"] == 0
        and safety["watchdog_late"] == 0
    )
    outage = proxy.outage if proxy is not None else None
    if outage is not None and (not t or outage[0] > t[-1]):
        # the run ended before the link was cut: nothing was tested, which is not a safety failure either
        safety.update(disconnect_at_s=cfg.faults.disconnect_at, disconnect_reached=False)
    elif proxy is not None and outage is not None:
        start, end = outage
        # frames already queued in the proxy still arrive up to delay_ms after the outage starts
        limit = (cfg.watchdog_ms + cfg.faults.delay_ms + cfg.slack_ms) / 1000.0
        trip = next((w for w in trips if w["t"] >= start - cfg.watchdog_ms / 1000.0), None)
        zero_in = None if trip is None else trip["t"] - start
        resumed = any(s["t"] > end and s["en"] and any(s["tau"]) for s in steps)
        safety.update(
            disconnect_at_s=cfg.faults.disconnect_at,
            zero_torque_after_s=zero_in,
            resumed_after_reconnect=resumed,
            disconnect_reached=True,
        )
        ok = ok and zero_in is not None and zero_in <= limit and resumed
    safety["ok"] = bool(ok)
    link = summary["link"]
    hl = host.get("link", {})
    return {
        "robot": summary["robot"], "plant": summary["plant"], "engine": cfg.engine, "lockstep": summary["lockstep"],
        "seed": cfg.seed,
        "faults": asdict(cfg.faults), "wall_s": round(wall_s, 3), "steps": len(steps),
        "episodes": [{k: e[k] for k in ("ret", "length", "fell", "distance_m", "is_success")} for e in episodes],
        "return_mean": float(np.mean(rets)) if rets else None,
        "distance_m": [e["distance_m"] for e in episodes],
        "falls": sum(e["fell"] for e in episodes),
        "successes": sum(e["is_success"] for e in episodes),
        "partial_episode": partial,
        "control_rate_hz": round(rate, 2), "control_hz_target": summary["control_hz"],
        "latency_ms": {"p50": _pct(lat, 50), "p99": _pct(lat, 99), "max": max(lat) if lat else None},
        "deadline_misses": summary["deadline_misses"],
        "crc_errors": {"board_rx": link["crc_errors"], "host_rx": hl.get("crc_errors", 0)},
        "resyncs": {"board_rx": link["resyncs"], "host_rx": hl.get("resyncs", 0)},
        "seq_gaps": {"board_rx": link["seq_gaps"], "host_rx": hl.get("seq_gaps", 0)},
        "watchdog_trips": summary["watchdog_trips"], "watchdog_gap_ms": summary["watchdog_gap_ms"],
        "lockstep_resends": summary["resends"],
        "proxy": proxy.counts if proxy is not None else None,
        "host": {k: host.get(k) for k in ("steps", "faults", "infer_us_p50", "loop_us_p99")},
        "safety": safety,
    }  # fmt: skip


def plot_run(records: list[dict[str, Any]], path: Path) -> Path:
    """Torques, joint angles, lidar and the latency histogram of a run, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if r["ev"] == "step"]
    summary = next(r for r in records if r["ev"] == "summary")
    t = np.array([s["t"] for s in steps]) - (steps[0]["t"] if steps else 0.0)
    fig, ax = plt.subplots(2, 2, figsize=(12, 7))
    for name, a, key in (("applied torque, N·m", ax[0, 0], "tau"), ("joint angle, rad", ax[0, 1], "q")):
        if steps:
            a.plot(t, np.array([s[key] for s in steps]), lw=0.8)
        a.set(title=name, xlabel="time, s")
    lidar = np.array([s["lidar"] for s in steps]) if steps else np.zeros((0, 0))
    if lidar.size:
        im = ax[1, 0].imshow(
            lidar.T, aspect="auto", origin="lower", extent=(0, t[-1] if len(t) else 1, 0, lidar.shape[1])
        )
        fig.colorbar(im, ax=ax[1, 0], label="range, m")
    ax[1, 0].set(
        title="lidar rays" if lidar.size else "lidar (no rays on this robot)", xlabel="time, s", ylabel="ray"
    )
    ax[1, 1].hist(summary["latency_ms"] or [0.0], bins=50)
    ax[1, 1].set(title="sensor → command latency at the board", xlabel="ms", ylabel="count")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return path
