"""Learning-curve PNGs from a run's progress.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from sim.errors import UserError
from sim.files import atomic_open


def read_progress(progress_csv: str | Path) -> dict[str, list[float]]:
    """Columns of progress.csv as float lists (empty cells → NaN)."""
    path = Path(progress_csv)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is this a run dir written by `s2r train`?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserError(f"{path} has no rows yet; train longer before plotting")
    return {k: [_float(r.get(k)) for r in rows] for k in rows[0] if k != "phase"}  # phase: text


def _float(text: str | None) -> float:
    return float(text) if text not in (None, "") else math.nan


def read_phases(progress_csv: str | Path) -> list[tuple[float, str]]:
    """(first logged step, phase) at each change of progress.csv's ``phase`` column; [] for runs without it."""
    with open(progress_csv, newline="") as f:
        rows = [(r.get("global_step"), r.get("phase")) for r in csv.DictReader(f)]
    out: list[tuple[float, str]] = []
    for step, phase in rows:
        if phase and step and (not out or out[-1][1] != phase):
            out.append((float(step), phase))
    return out


# warm-up phases, shaded in the curves: whose episodes the numbers there are (policies.agent.PHASES)
PHASE_SHADES = {"random": ("0.6", "warm-up: random actions"), "expert": ("tab:orange", "imitation: the expert acts"),
                "dagger": ("tab:green", "imitation: DAgger, the policy acts"),
                "dagger-fit": ("tab:green", "imitation: DAgger, the policy acts")}  # fmt: skip


def _shade_phases(ax, phases: list[tuple[float, str]], x_end: float, legend: bool) -> None:
    """Shade the steps each warm-up phase covered (logged rows: a span starts at the first row of its phase)."""
    labelled = set()
    for (start, phase), nxt in zip(phases, [*phases[1:], (x_end, "")], strict=True):
        if phase in PHASE_SHADES:
            color, label = PHASE_SHADES[phase]
            ax.axvspan(start, nxt[0], color=color, alpha=0.15, lw=0,
                       label=None if label in labelled else label)  # fmt: skip
            labelled.add(label)
    if legend and labelled:
        ax.legend(fontsize=7, loc="best")


# one figure per group: (file name, title, columns that go in it)
FIGURES = (
    ("return.png", "Episode return (rolling mean ± std)", ("return_mean",)),
    ("task.png", "Task metrics", ("success_rate", "distance_m", "fall_rate", "length_mean")),
    ("losses.png", "Losses and diagnostics", ("loss/critic", "loss/actor", "q/mean", "loss/policy", "loss/value",
                                               "entropy", "approx_kl", "clip_frac", "explained_var", "std")),
    ("speed.png", "Throughput", ("steps_per_s",)),
)  # fmt: skip


def plot_learning_curves(progress_csv: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the PNGs of :data:`FIGURES` that have data; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = read_progress(progress_csv)
    phases = read_phases(progress_csv)
    x = np.asarray(cols["global_step"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, title, keys in FIGURES:
        present = [k for k in keys if k in cols and not all(math.isnan(v) for v in cols[k])]
        if not present:
            continue
        fig, axes = plt.subplots(len(present), 1, figsize=(7, 2.2 * len(present) + 0.6), sharex=True, squeeze=False)
        for ax, key in zip(axes[:, 0], present, strict=True):
            y = np.asarray(cols[key])
            ax.plot(x, y, lw=1.2)
            if key == "return_mean" and "return_std" in cols:
                s = np.asarray(cols["return_std"])
                ax.fill_between(x, y - s, y + s, alpha=0.2)
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
            _shade_phases(ax, phases, float(x[-1]), legend=ax is axes[0, 0])
        axes[-1, 0].set_xlabel("env steps")
        fig.suptitle(title)
        fig.tight_layout()
        path = out_dir / name
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)
        written.append(path)
    return written
