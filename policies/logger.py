"""Run logging: progress.csv (header grows when new columns appear), TensorBoard, and a live progress display
(tqdm bar on a terminal, plain periodic lines otherwise)."""

from __future__ import annotations

import collections
import csv
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sim.files import atomic_open


class CsvLog:
    """Append rows of scalars to a CSV; a new key rewrites the file with the wider header (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fields: list[str] = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f), [])

    def truncate_after(self, global_step: int) -> None:
        """Drop rows logged after ``global_step`` (a killed run logged past its last checkpoint)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if _num(r.get("global_step")) <= global_step]
        self._rewrite(rows)

    def write(self, row: dict[str, float | str]) -> None:
        new = [k for k in row if k not in self.fields]
        if new:
            rows: list[dict] = []
            if self.path.exists():
                with open(self.path, newline="") as f:
                    rows = list(csv.DictReader(f))
            self.fields += new
            self._rewrite(rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({k: _fmt(row.get(k)) for k in self.fields})

    def _rewrite(self, rows: list[dict]) -> None:
        with atomic_open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows({k: r.get(k, "") for k in self.fields} for r in rows)


def _num(x: str | None) -> float:
    try:
        return float(x) if x not in (None, "") else math.inf
    except ValueError:
        return math.inf


def _fmt(x: float | str | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.6g}" if isinstance(x, float) else str(x)


class TensorBoard:
    """Thin wrapper so a missing/broken tensorboard install degrades to no events instead of a crash."""

    def __init__(self, log_dir: Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("s2r: warning: tensorboard not installed; no event files", file=sys.stderr)
                return
            self.writer = SummaryWriter(str(log_dir))

    def write(self, row: dict[str, float | str], step: int) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            # numbers only: progress.csv also has text columns (the training phase)
            if k != "global_step" and isinstance(v, int | float) and math.isfinite(v):
                self.writer.add_scalar(k, v, step)

    def frames(self, tag: str, frames: list, step: int, note: str, count: int = 4) -> None:
        """``count`` frames spread over a recorded episode as images, and ``note`` (the video's path) as text:
        TensorBoard's own video panel needs moviepy, which s2r does not depend on."""
        if self.writer is None or not frames:
            return
        import numpy as np

        picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
        self.writer.add_images(tag, np.stack([frames[i] for i in picks]), step, dataformats="NHWC")
        self.writer.add_text(f"{tag}/file", note, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class RecentRate:
    """Steps per second over about the last ``window_s`` seconds, from (time, step) samples taken at least
    ``sample_s`` apart: an ETA from it follows a run that slows down (an imitation warm-up at thousands of steps
    per second, then PPO at hundreds), where the mean since the start would promise a finish long gone."""

    def __init__(self, window_s: float = 30.0, sample_s: float = 1.0) -> None:
        self.window_s, self.sample_s = window_s, sample_s
        self.samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, t: float, step: int) -> None:
        if self.samples and t - self.samples[-1][0] < self.sample_s:
            return
        self.samples.append((t, step))
        while len(self.samples) > 2 and t - self.samples[1][0] >= self.window_s:
            self.samples.popleft()  # keep one sample at or beyond the window's start

    def rate(self) -> float:
        """Steps per second between the oldest kept sample and the newest; 0 before two samples."""
        if len(self.samples) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self.samples[0], self.samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0


class Progress:
    """tqdm bar when stderr is a terminal; else one plain line every ``every_s`` seconds. Both estimate the
    remaining time from the recent rate (tqdm's exponential smoothing; :class:`RecentRate` for the lines)."""

    def __init__(self, total: int, start: int, every_s: float = 10.0, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.total, self.last_step, self.every_s, self.enabled, self.clock = total, start, every_s, enabled, clock
        self.last_print = self.clock()
        self.recent = RecentRate(window_s=max(3 * every_s, 10.0))
        self.recent.add(self.last_print, start)
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, smoothing=0.05)

    def update(self, step: int, stats: Callable[[], str]) -> None:
        """Advance to ``step``; ``stats()`` (the postfix text) is called only when something is shown, since
        the training loop calls this every vector step."""
        if not self.enabled:
            return
        now = self.clock()
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            if now - self.last_print >= self.bar.mininterval:
                self.last_print = now
                self.bar.set_postfix_str(stats(), refresh=False)
        else:
            self.recent.add(now, step)
            if now - self.last_print >= self.every_s:
                self.last_print = now
                rate = self.recent.rate()
                eta = (self.total - step) / rate if rate > 0 else math.inf
                print(f"step {step}/{self.total} ({100 * step / self.total:.0f}%) | {rate:.0f} steps/s | {stats()} "
                      f"| ETA {_hms(eta)}", file=sys.stderr, flush=True)  # fmt: skip
        self.last_step = step

    def note(self, text: str) -> None:
        """A line of its own (above the bar on a terminal): a phase change, a long pause about to start."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(f"s2r: {text}", file=sys.stderr)
        else:
            print(f"s2r: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
