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
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.link import open_port, open_pty
from s2r.spawn import emulate_argv, run_argv
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError
from sim.files import atomic_open
from sim.task import get_task


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
        return cls(**values)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise UserError(f"fault '{f.name}' must be a finite number ≥ 0, got {value}")
        if self.drop > 1 or self.corrupt > 1:
            raise UserError("fault probabilities drop and corrupt must be ≤ 1")

    def format(self) -> str:
        """The text :meth:`parse` reads back: the fields that differ from the defaults."""
        default = FaultSpec()
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                        if getattr(self, f.name) != getattr(default, f.name))  # fmt: skip

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


DEFAULT_DURATION_S = 10.0  # controller run time without duration_s or max_steps, s


@dataclass(frozen=True)
class HilConfig:
    """One HIL run (the flags of ``s2r hil``)."""

    bundle: str = option(help="exported policy bundle (s2r export)", metavar="DIR")
    duration_s: float | None = option(None, "controller run time, wall clock, s (default 10; with --max-steps: as "
                                      "long as those steps take)", above=0, flag="--duration", metavar="S")
    max_steps: int | None = option(None, "stop the controller after N control steps", above=0, metavar="N")
    lockstep: bool = option(False, "the emulator advances one control period per command")
    faults: FaultSpec = option(FaultSpec(), "link faults, e.g. drop=0.01,corrupt=0.001,delay_ms=5,disconnect_at=5",
                               flag="--fault", metavar="SPEC", parse=FaultSpec.parse, show=FaultSpec.format)
    plant: str = option("nominal", "held-out physics variant for the emulator (domain_rand.plants)")
    env: str | None = option(None, "emulator env (default: the bundle's env)", cli=False)
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)
    seed: int = option(0, "emulator episode seed (episode i: seed + i)", low=0)
    watchdog_ms: int = option(100, "board watchdog: zero torque after this long without TORQUE, ms", low=1,
                              high=65535)
    host_watchdog_ms: float = option(100.0, "controller: no SENSOR for this long → DISABLE and re-handshake, ms",
                                     low=1, high=60_000, cli=False)
    slack_ms: float = option(30.0, "allowed lateness of a watchdog trip (scheduling on a loaded box), ms", low=0,
                             cli=False)
    out_dir: str = option("hil_out", "logs and plots", flag="--out", metavar="DIR")
    plots: bool = option(True, "PNG plots of the run (--no-plots: none)")

    def __post_init__(self) -> None:
        validate(self)

    def run_time_s(self, control_hz: float) -> float:
        """The controller's run time: ``duration_s``, else 10 s, or as long as ``max_steps`` take on a slow box."""
        if self.duration_s is not None:
            return self.duration_s
        return DEFAULT_DURATION_S if self.max_steps is None else max(DEFAULT_DURATION_S, 20 * self.max_steps / control_hz)


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
    duration_s = cfg.run_time_s(float(bundle.manifest["control_hz"]))
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
        controller = RuntimeConfig(port=host_path, watchdog_ms=cfg.host_watchdog_ms,
                                   max_steps=cfg.max_steps or None, duration_s=duration_s,
                                   telemetry=out / "telemetry.csv", quiet=True)  # fmt: skip
        run_cmd = run_argv(controller, cfg.bundle)
        t_start = time.monotonic()
        ctl = subprocess.run(run_cmd, capture_output=True, text=True, timeout=duration_s + 120)
        ctl_end_s = time.monotonic()  # the emulator logs time.monotonic() too: one clock for both processes
        wall_s = ctl_end_s - t_start
    finally:
        if emu.poll() is None:
            # let the board apply the controller's last TORQUE and DISABLE (a real-time board's log never goes
            # quiet: it steps on its own clock, so a few periods are enough)
            _wait_until_quiet(emu_log, max_s=2.0 if cfg.lockstep else 0.2)
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
    report = build_report(records, host, cfg, proxy, wall_s, until_s=ctl_end_s)
    if cfg.plots:
        report["plot"] = str(plot_run(records, out / "hil.png"))
    return report


def controller_window(
    steps: list[dict[str, Any]], episodes: list[dict[str, Any]], partial: dict[str, Any], until_s: float | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The steps, finished episodes and partial episode of the time the controller ran (``until_s``, None: all).

    A real-time board steps its physics on its own clock, so after the controller has stopped (and disabled the
    motors) it goes on stepping an unpowered robot until it is shut down; the falls there are not the policy's.
    An episode counts if its last step came before ``until_s``; the first one that did not becomes the partial
    episode, cut at ``until_s``. A lockstep board steps only on commands, so nothing is cut there."""
    if until_s is None or not steps or steps[-1]["t"] <= until_s:
        return steps, episodes, partial
    kept = [s for s in steps if s["t"] <= until_s]
    end_t: dict[int, float] = {}
    for s in steps:
        end_t[s["ep"]] = s["t"]
    done = [e for e in episodes if end_t.get(e["ep"], until_s + 1.0) <= until_s]
    ep = done[-1]["ep"] + 1 if done else steps[0]["ep"]
    rest = [s for s in kept if s["ep"] == ep]
    return kept, done, {"ep": ep, "ret": float(sum(s["r"] for s in rest)), "length": len(rest)}


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def build_report(
    records: list[dict[str, Any]],
    host: dict[str, Any],
    cfg: HilConfig,
    proxy: FaultProxy | None,
    wall_s: float,
    until_s: float | None = None,
) -> dict[str, Any]:
    """Outcome, timing, link and safety figures from the emulator log and the controller's summary. ``until_s``:
    when the controller stopped (``time.monotonic()``); the outcome counts only what happened before it."""
    trips = [r for r in records if r["ev"] == "watchdog"]
    summary = next((r for r in records if r["ev"] == "summary"), None)
    if summary is None:
        raise UserError("the emulator log has no summary line: the emulator did not shut down cleanly")
    all_steps = [r for r in records if r["ev"] == "step"]
    steps, episodes, partial = controller_window(
        all_steps, [r for r in records if r["ev"] == "episode"], summary["partial_episode"], until_s
    )
    lat = summary["latency_ms"]
    task = get_task(summary["robot"])
    t = [s["t"] for s in steps]
    rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0
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
        "steps_after_stop": len(all_steps) - len(steps),
        "episodes": [{k: e[k] for k in ("ret", "length", "metrics")} for e in episodes],
        "return_mean": float(np.mean(rets)) if rets else None,
        # the mean of every task metric over the finished episodes (info["metrics"], see sim.task)
        "metrics": {k: float(np.mean([e["metrics"].get(k, np.nan) for e in episodes]))
                    for k in (episodes[0]["metrics"] if episodes else {})},
        "falls": sum(bool(e["metrics"].get(task.failure)) for e in episodes) if task.failure else 0,
        "successes": sum(bool(e["metrics"].get("success")) for e in episodes),
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


# ------------------------------------------------------------------------------------------------- output
def _opt(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _columns(robot: str) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
    """(header, cell) pairs of the report table; the outcome columns are the robot's task metrics: successes,
    failures (falls) if the task can fail, the mean performance if it is another metric (the biped's distance)."""
    task = get_task(robot)
    outcome: list[tuple[str, Callable[[dict[str, Any]], str]]] = [("successes", lambda r: str(r["successes"]))]
    if task.failure is not None:
        outcome.append(("falls", lambda r: str(r["falls"])))
    perf = task.performance
    if perf not in ("success", task.failure):
        outcome.append((perf, lambda r: _opt(r["metrics"].get(perf), ".2f")))
    return [
        ("steps", lambda r: str(r["steps"])),
        ("episodes", lambda r: str(len(r["episodes"]) + bool(r["partial_episode"]["length"]))),
        ("return/ep", lambda r: _opt(r["return_mean"])),
        *outcome,
        ("rate Hz", lambda r: f"{r['control_rate_hz']:.0f}"),
        ("latency p50/p99 ms", lambda r: f"{_opt(r['latency_ms']['p50'])}/{_opt(r['latency_ms']['p99'])}"),
        ("watchdog", lambda r: str(r["watchdog_trips"])),
        ("CRC err", lambda r: str(r["crc_errors"]["board_rx"] + r["crc_errors"]["host_rx"])),
        ("safety", lambda r: "OK" if r["safety"]["ok"] else "FAILED"),
    ]


def format_table(runs: dict[str, dict[str, Any]]) -> str:
    """One row per HIL report (keyed by plant): the table that ``s2r hil`` and ``s2r demo`` print."""
    cols = _columns(next(iter(runs.values()))["robot"])
    rows = [["plant", *(h for h, _ in cols)]] + [[name, *(c(run) for _, c in cols)] for name, run in runs.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    )


def format_report(r: dict[str, Any]) -> str:
    """What ``s2r hil`` prints: the run, the table row, link details and the safety checks in words."""
    f, s, lat = r["faults"], r["safety"], r["latency_ms"]
    injected = [f"{k}={v:g}" for k, v in f.items() if k != "disconnect_s" and v] + (
        [f"disconnect_s={f['disconnect_s']:g}"] if f.get("disconnect_at") is not None else []
    )
    counts = {k: r[k]["board_rx"] + r[k]["host_rx"] for k in ("crc_errors", "resyncs", "seq_gaps")}
    safety = (
        f"safety {'OK' if s['ok'] else 'FAILED'}: {s['nonfinite_commands']} non-finite and {s['overlimit_commands']} "
        f"over-limit torque commands reached the board, {s['watchdog_late']} late watchdog trips"
    )
    if s.get("disconnect_reached") is False:
        safety += f"; the run ended before the link cut at {s['disconnect_at_s']:g} s (not tested)"
    elif "disconnect_at_s" in s:
        zero = s["zero_torque_after_s"]
        safety += (
            f"; link cut at {s['disconnect_at_s']:g} s: zero torque "
            + ("never" if zero is None else f"{1000 * zero:.0f} ms later")
            + f", control {'resumed' if s['resumed_after_reconnect'] else 'did NOT resume'} after reconnect"
        )
    lines = [
        f"HIL {r['robot']}, {r.get('engine', 'pybullet')}, {'lockstep' if r['lockstep'] else 'real-time'}, seed "
        f"{r['seed']}, faults "
        f"{', '.join(injected) or 'none'}: {r['steps']} steps (control rate target {r['control_hz_target']:g} Hz) "
        f"in {r['wall_s']:.1f} s" + (f" ({r['stopped_by']})" if r.get("stopped_by") else "")
        + (f"; {r['steps_after_stop']} board steps after the controller stopped (motors off) not counted"
           if r.get("steps_after_stop") else ""),
        format_table({r["plant"]: r}),
        f"latency max {_opt(lat['max'])} ms, deadline misses {r['deadline_misses']}; link (board + host side): "
        f"CRC errors {counts['crc_errors']}, resyncs {counts['resyncs']}, sequence gaps {counts['seq_gaps']}, "
        f"lockstep resends {r['lockstep_resends']}",
        safety,
    ]
    if r.get("plot"):
        lines.append(f"plot: {r['plot']}")
    return "\n".join(lines)


def per_joint_panels(fig: Any, ax: Any, t: np.ndarray, values: np.ndarray, joints: tuple[str, ...] | list[str],
                     title: str, xlabel: str) -> list[Any]:
    """Replace ``ax`` by one thin panel per joint (shared time axis): square-wave torques of several joints
    drawn on one axis hide each other."""
    cell = ax.get_subplotspec().subgridspec(len(joints), 1, hspace=0.1)
    ax.remove()
    panels: list[Any] = []
    for i, name in enumerate(joints):
        a = fig.add_subplot(cell[i], sharex=panels[0] if panels else None)
        a.plot(t, values[:, i], lw=0.8, color=f"C{i}")
        a.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
        if i < len(joints) - 1:
            a.tick_params(labelbottom=False)
        panels.append(a)
    panels[0].set_title(title)
    panels[-1].set_xlabel(xlabel)
    return panels


def plot_run(records: list[dict[str, Any]], path: Path) -> Path:
    """:func:`run_figure` → PNG, written atomically."""
    import matplotlib.pyplot as plt

    fig = run_figure(records)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return path


def run_figure(records: list[dict[str, Any]]) -> Any:
    """Torques and joint angles (one line per named joint), lidar (robots that have one) and the latency
    histogram of a run, as one PNG. Lockstep runs are drawn against robot time (step × control period), since
    their wall time says only how fast the two processes took turns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.robots import get_robot

    steps = [r for r in records if r["ev"] == "step"]
    summary = next(r for r in records if r["ev"] == "summary")
    joints = get_robot(summary["robot"]).action.names
    if summary["lockstep"]:
        t, t_label = np.arange(len(steps)) / float(summary["control_hz"]), "robot time, s"
    else:
        t = np.array([s["t"] for s in steps]) - (steps[0]["t"] if steps else 0.0)
        t_label = "time since the first step, s"
    lidar = np.array([s["lidar"] for s in steps]) if steps else np.zeros((0, 0))
    fig, axes = plt.subplots(2, 2, figsize=(12, 7)) if lidar.size else plt.subplots(1, 3, figsize=(16, 4))
    ax = list(axes.ravel())
    tau = np.array([s["tau"] for s in steps]).reshape(len(steps), len(joints))
    per_joint_panels(fig, ax[0], t, tau, joints, f"applied torque, N·m — plant {summary['plant']}", t_label)
    if steps:
        lines = ax[1].plot(t, np.array([s["q"] for s in steps]), lw=0.8)
        ax[1].legend(lines, joints, fontsize=7, loc="upper right")
    ax[1].set(title=f"joint angle, rad — plant {summary['plant']}", xlabel=t_label)
    if lidar.size:
        im = ax[2].imshow(lidar.T, aspect="auto", origin="lower", extent=(0, t[-1] if len(t) else 1, 0, lidar.shape[1]))
        fig.colorbar(im, ax=ax[2], label="range, m")
        ax[2].set(title="lidar rays", xlabel=t_label, ylabel="ray")
    ax[-1].hist(summary["latency_ms"] or [0.0], bins=50)
    ax[-1].set(title="sensor → command latency at the board", xlabel="ms", ylabel="count")
    fig.suptitle(f"HIL {summary['robot']}, {'lockstep' if summary['lockstep'] else 'real-time'}")
    fig.tight_layout()
    return fig
