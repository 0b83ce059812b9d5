"""Plot ADR ranges over training from a run's progress CSV (columns ``adr/<param>/low|high`` and ``adr/npd``)."""

from __future__ import annotations

import csv
import math

from sim.errors import UserError
from sim.files import atomic_open

X_COLUMNS = ("env_steps", "global_step", "step", "timesteps", "update")  # first one present is the x axis


def read_adr_columns(
    progress_csv: str,
) -> tuple[str, list[float], dict[str, tuple[list[float], list[float]]], list[float]]:
    """(x label, x values, {param: (lows, highs)}, npd) from a progress CSV; rows without ADR values are skipped."""
    with open(progress_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0]) if rows else []
    params = [c[len("adr/") : -len("/low")] for c in header if c.startswith("adr/") and c.endswith("/low")]
    if not params:
        raise UserError(f"{progress_csv} has no adr/<param>/low columns; was this run trained with --adr?")
    x_name = next((c for c in X_COLUMNS if c in header), "row")
    rows = [r for r in rows if r.get(f"adr/{params[0]}/low") not in (None, "")]
    xs = [float(r[x_name]) if x_name != "row" else float(i) for i, r in enumerate(rows)]
    ranges = {
        p: ([float(r[f"adr/{p}/low"]) for r in rows], [float(r[f"adr/{p}/high"]) for r in rows])
        for p in params
    }
    npd = [float(r["adr/npd"]) if r.get("adr/npd") not in (None, "") else math.nan for r in rows]
    return x_name, xs, ranges, npd


def plot_adr_ranges(progress_csv: str, out_png: str) -> None:
    """One panel per ADR parameter (its [low, high] band over training) plus the entropy in nats/dim → PNG."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on the training box or CI
    import matplotlib.pyplot as plt

    x_name, xs, ranges, npd = read_adr_columns(progress_csv)
    n = len(ranges) + 1
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    flat = axes.ravel()
    for ax, (name, (lows, highs)) in zip(flat, ranges.items(), strict=False):
        ax.fill_between(xs, lows, highs, alpha=0.35, step="post")
        ax.plot(xs, lows, lw=1, drawstyle="steps-post")
        ax.plot(xs, highs, lw=1, drawstyle="steps-post")
        ax.set_title(name, fontsize=9)
    ax = flat[len(ranges)]
    ax.plot(xs, npd, color="k", lw=1.2)
    ax.set_title("ADR entropy (nats/dim)", fontsize=9)
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax in flat[:n]:
        ax.tick_params(labelsize=7)
        ax.set_xlabel(x_name, fontsize=8)
    fig.tight_layout()
    try:
        with atomic_open(out_png, "wb") as f:  # a reader never sees a half-written PNG
            fig.savefig(f, format="png", dpi=110)
    finally:
        plt.close(fig)
