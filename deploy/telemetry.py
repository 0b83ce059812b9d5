"""Controller telemetry: one CSV row per control step, written in batches outside the step's critical path.

File format (``s2r run --telemetry FILE``)::

    # s2r-telemetry v1 {"robot": "biped", "motors": [...], "torque_limits_nm": [...], "control_hz": 50.0, ...}
    t_s,step,sensor_seq,board_t_us,obs:hull_pitch,...,torque_nm:hip_left,...,infer_us,loop_us,faults,board_faults,state
    0.020113,0,17,1234567,...

``t_s`` is the host's monotonic clock since the run started; ``infer_us`` the onnxruntime call; ``loop_us`` the
time from the SENSOR frame being decoded to the TORQUE being written (observation build + inference + checks +
encode + write); ``faults`` the host fault bits (:class:`HostFault`), ``board_faults`` the board's bits from the
SENSOR, ``state`` the controller's safety state after the step (:data:`STATE_CODES`: 0 disarmed, 1 handshake,
2 arming, 3 running, 4 fault, 5 estop). Rows for watchdog events and for SENSOR frames that could not be trusted
have NaN observations and zero torque. ``pandas.read_csv(path, comment="#")``
or :func:`read_telemetry` reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import UserError
from sim.files import atomic_open, check_output_file


class HostFault:
    """Host-side fault bits in the telemetry ``faults`` column."""

    SENSOR_TIMEOUT = 1 << 0  # no SENSOR within the host watchdog timeout: zero torque, DISABLE sent
    NONFINITE_OBS = 1 << 1  # the observation held NaN/inf: zero torque commanded, policy not trusted
    NONFINITE_OUTPUT = 1 << 2  # the policy produced NaN/inf: zero torque commanded, never sent
    CLAMPED = 1 << 3  # a torque exceeded its limit and was clamped
    STALE_SKIPPED = 1 << 4  # older SENSOR frames were queued and skipped in favour of the newest
    REENABLED = 1 << 5  # ENABLE was sent on this step (start, recovery after a link loss, operator re-arm)
    IMPLAUSIBLE = 1 << 6  # the SENSOR had a value outside the robot's physical ranges or wrong channel counts
    LATCHED = 1 << 7  # the controller is in FAULT or ESTOP: zero torque, waiting for the operator

    NAMES = {1 << 0: "sensor_timeout", 1 << 1: "nonfinite_obs", 1 << 2: "nonfinite_output", 1 << 3: "clamped",
             1 << 4: "stale_skipped", 1 << 5: "reenabled", 1 << 6: "implausible", 1 << 7: "latched"}  # fmt: skip


STATE_CODES = {"disarmed": 0, "handshake": 1, "arming": 2, "running": 3, "fault": 4, "estop": 5}  # `state` column


MAGIC = "# s2r-telemetry v1 "
FLUSH_ROWS = 256


class TelemetryWriter:
    """Buffers rows in a preallocated float64 array; :meth:`flush` formats and appends them to the CSV.

    :meth:`record` is the only call in the control step (a row copy, no formatting, no I/O); the runtime calls
    :meth:`flush` after the step's TORQUE has been sent, when it would otherwise wait for the next frame.
    """

    def __init__(self, path: str | Path, obs_names: list[str], motor_names: list[str], meta: dict[str, Any]) -> None:
        self.path = Path(path)
        self.columns = [
            "t_s", "step", "sensor_seq", "board_t_us", *(f"obs:{n}" for n in obs_names),
            *(f"torque_nm:{m}" for m in motor_names), "infer_us", "loop_us", "faults", "board_faults", "state",
        ]  # fmt: skip
        self.n_obs, self.n_motors = len(obs_names), len(motor_names)
        self._buf = np.zeros((FLUSH_ROWS, len(self.columns)), dtype=np.float64)
        self._n = 0
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_output_file(self.path)  # a stream, not a rename: still never written through a symlink or a device
        self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._f.write(MAGIC + json.dumps(meta) + "\n" + ",".join(self.columns) + "\n")
        self._int_cols = [
            self.columns.index(c) for c in ("step", "sensor_seq", "board_t_us", "faults", "board_faults", "state")
        ]

    def record(
        self,
        t_s: float,
        step: int,
        sensor_seq: int,
        board_t_us: int,
        obs: np.ndarray | None,
        torque_nm: np.ndarray,
        infer_us: float,
        loop_us: float,
        faults: int,
        board_faults: int,
        state: int = 0,
    ) -> None:
        """Store one step's row (flushes by itself only when the buffer is full)."""
        if self._n == FLUSH_ROWS:
            self.flush()
        row = self._buf[self._n]
        row[0:4] = (t_s, step, sensor_seq, board_t_us)
        k = 4 + self.n_obs
        row[4:k] = np.nan if obs is None else obs
        row[k : k + self.n_motors] = torque_nm
        row[k + self.n_motors :] = (infer_us, loop_us, faults, board_faults, state)
        self._n += 1
        self.rows += 1

    def flush(self) -> None:
        """Format buffered rows and write them to the file."""
        if not self._n:
            return
        lines = []
        for row in self._buf[: self._n]:
            cells = [f"{v:.7g}" for v in row.tolist()]
            for i in self._int_cols:
                cells[i] = str(int(row[i]))
            lines.append(",".join(cells))
        self._f.write("\n".join(lines) + "\n")
        self._f.flush()
        self._n = 0

    def close(self) -> None:
        """Flush, fsync and close (a controller's log must survive the power being cut right after)."""
        if self._f.closed:
            return
        self.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def read_telemetry(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, {column: values}) of a telemetry CSV (or a folder holding ``telemetry.csv``, as `s2r hil`
    writes); ValueError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / "telemetry.csv"
    if not path.is_file():
        raise UserError(f"{path} does not exist; record one with `s2r run --telemetry FILE`")
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        header = f.readline().strip()
    if not first.startswith(MAGIC) or not header:
        raise UserError(f"{path} is not an s2r telemetry file (written by `s2r run --telemetry FILE`)")
    meta = json.loads(first[len(MAGIC) :])
    columns = header.split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=2, ndmin=2, dtype=np.float64)
    if data.size == 0:
        data = np.zeros((0, len(columns)))
    return meta, {c: data[:, i] for i, c in enumerate(columns)}


def plot_telemetry(path: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw torques, joint angles and speeds over time and latency histograms; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, cols = read_telemetry(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = cols["t_s"]
    red = (HostFault.SENSOR_TIMEOUT | HostFault.NONFINITE_OUTPUT | HostFault.NONFINITE_OBS | HostFault.IMPLAUSIBLE
           | HostFault.LATCHED)  # fmt: skip
    fault_t = t[cols["faults"].astype(np.int64) & red != 0]
    groups = {
        "torque (N·m)": [c for c in cols if c.startswith("torque_nm:")],
        "joint angle (rad)": [c for c in cols if c.startswith("obs:") and c.endswith("_angle")],
        "joint speed (rad/s)": [c for c in cols if c.startswith("obs:") and c.endswith("_speed")],
    }
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 8), sharex=True)
    for ax, (label, names) in zip(axes, groups.items(), strict=True):
        for c in names:
            ax.plot(t, cols[c], lw=0.8, label=c.split(":", 1)[1])
        for ft in fault_t[:200]:
            ax.axvline(ft, color="red", alpha=0.2, lw=0.5)
        ax.set_ylabel(label)
        if names:
            ax.legend(fontsize=6, ncol=4, loc="upper right")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"{meta.get('robot', '?')} controller telemetry ({len(t)} steps; red: faults)")
    paths = [out / "telemetry_signals.png"]
    with atomic_open(paths[0], "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for c in ("infer_us", "loop_us"):
        v = cols[c][np.isfinite(cols[c]) & (cols[c] > 0)]
        if v.size:
            ax.hist(v, bins=60, alpha=0.6, label=f"{c}: p50 {np.percentile(v, 50):.0f}, p99 {np.percentile(v, 99):.0f}")
    ax.set_xlabel("µs")
    ax.set_ylabel("steps")
    ax.legend()
    ax.set_title("inference and loop latency")
    paths.append(out / "telemetry_latency.png")
    with atomic_open(paths[1], "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return paths
