"""Plot ADR ranges over training from a run's progress CSV (columns ``adr/<param>/low|high`` and ``adr/npd``)."""

from __future__ import annotations

import csv
import math
from typing import Any

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


def _si(x: float, _pos: object = None) -> str:
    """Tick label for a step count: 0, 250k, 1.5M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


def adr_figure(progress_csv: str) -> Any:
    """One panel per ADR parameter (its [low, high] band over training, the nominal value dashed) plus the
    entropy in nats/dim, with a legend; a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on the training box or CI
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    x_name, xs, ranges, npd = read_adr_columns(progress_csv)
    n = len(ranges) + 1
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.3 * rows + 0.9), squeeze=False, sharex=True)
    flat = axes.ravel()
    for ax, (name, (lows, highs)) in zip(flat, ranges.items(), strict=False):
        ax.fill_between(xs, lows, highs, alpha=0.35, step="post", color="C0")
        ax.plot(xs, highs, lw=1, drawstyle="steps-post", color="C1")
        ax.plot(xs, lows, lw=1, drawstyle="steps-post", color="C0")
        if lows and lows[0] == highs[0]:  # ADR starts from the nominal value
            ax.axhline(lows[0], color="0.3", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
    ax = flat[len(ranges)]
    ax.plot(xs, npd, color="k", lw=1.2)
    ax.set_title("ADR entropy (nats/dim)", fontsize=9)
    for ax in flat[n:]:
        ax.set_visible(False)
    for i, ax in enumerate(flat[:n]):
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # few, short labels: 0, 500k, 1M, 1.5M
        ax.xaxis.set_major_formatter(FuncFormatter(_si))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.tick_params(labelbottom=i + cols >= n)  # x labels on each column's lowest panel only
    fig.supxlabel("env steps" if x_name in ("global_step", "env_steps", "timesteps", "step") else x_name, fontsize=9)
    fig.legend(
        handles=[Patch(color="C0", alpha=0.35, label="sampled range [low, high]"),
                 Line2D([], [], color="C1", lw=1, label="upper bound"),
                 Line2D([], [], color="C0", lw=1, label="lower bound"),
                 Line2D([], [], color="0.3", lw=0.8, ls="--", label="nominal (where ADR started)"),
                 Line2D([], [], color="k", lw=1.2, label="entropy of the ranges")],
        loc="upper center", ncol=5, fontsize=8, frameon=False,
    )  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def plot_adr_ranges(progress_csv: str, out_png: str) -> None:
    """:func:`adr_figure` → PNG, written atomically."""

    save_png(adr_figure(progress_csv), out_png)


def save_png(fig: Any, out_png: str) -> None:
    """Write a matplotlib figure atomically (a reader never sees a half-written PNG) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_open(out_png, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
    finally:
        plt.close(fig)


def plot_stress(report: dict[str, Any], out_png: str) -> None:
    """``s2r stress``'s sweep: success rate against value, one panel per series, the cliff marked → PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from domain_rand.stress import box_line

    sweep = report["sweep"]
    n = max(len(sweep), 1)
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * max(cols, 3), 2.2 * rows + 0.4), squeeze=False)
    flat = axes.ravel()
    nominal_rate = report["nominal"]["success_rate"]
    for ax, (name, s) in zip(flat, sweep.items(), strict=False):
        xs, ys = [s["nominal"], *s["values"]], [nominal_rate, *s["success"]]
        if s["param"] == "encoder_resolution":  # nominal 0 = ideal encoder: no place on a log axis
            xs, ys = xs[1:], ys[1:]
        ax.plot(xs, [100 * y for y in ys], "o-", ms=3, lw=1.2)
        ax.axhline(80, color="grey", lw=0.8, ls=":")
        if s["cliff"] is not None:
            ax.axvline(s["cliff"], color="red", lw=1.2, ls="--")
            ax.set_title(f"{name}  cliff {s['cliff']:g}", fontsize=8, color="red")
        else:
            ax.set_title(f"{name}  no cliff", fontsize=8)
        if s["param"] == "encoder_resolution":
            ax.set_xscale("log")
        ax.set_ylim(-5, 105)
        ax.set_xlabel(s["unit"], fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in flat[len(sweep):]:
        ax.set_visible(False)
    box = report["reality_box"]
    fig.suptitle(
        f"{report['env_id']}: success (%) vs value, one series at a time ({report['episodes_per_point']} "
        f"episodes/point)\n{box_line(box)}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93 if rows == 1 else 0.96))
    save_png(fig, out_png)
