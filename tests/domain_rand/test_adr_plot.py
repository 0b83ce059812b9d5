"""The ADR-range plot reads a run's progress CSV and writes a PNG atomically."""

from __future__ import annotations

import csv

import pytest

from domain_rand.plotting import plot_adr_ranges, read_adr_columns


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_plot_adr_ranges_writes_a_png(tmp_path):
    rows = [
        {
            "env_steps": 1000 * i,
            "return": 1.0,
            "adr/friction/low": 1.0 - 0.05 * i,
            "adr/friction/high": 1.0 + 0.1 * i,
            "adr/latency/low": 0.0,
            "adr/latency/high": 0.004 * i,
            "adr/npd": -3.0 + 0.2 * i,
        }
        for i in range(6)
    ]
    src = tmp_path / "progress.csv"
    write_csv(src, rows)
    x_name, xs, ranges, npd = read_adr_columns(str(src))
    assert x_name == "env_steps" and xs[-1] == 5000.0
    assert list(ranges) == ["friction", "latency"]
    assert ranges["friction"][1][-1] == pytest.approx(1.5) and npd[0] == -3.0
    out = tmp_path / "adr_ranges.png"
    plot_adr_ranges(str(src), str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob("tmp*"))  # no temp left over


def test_plot_without_adr_columns_is_a_clear_error(tmp_path):
    src = tmp_path / "progress.csv"
    write_csv(src, [{"env_steps": 1, "return": 2.0}])
    with pytest.raises(ValueError, match="trained with --adr"):
        plot_adr_ranges(str(src), str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def _shown_ticks(axis) -> list:
    """The tick labels drawn: visible, non-empty, inside the view (matplotlib also keeps some outside it)."""
    lo, hi = sorted(axis.get_view_interval())
    return [t.label1 for t in axis.get_major_ticks()
            if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi]  # fmt: skip


def _texts_overlap(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts (tick labels, titles, axis labels, legend) whose drawn boxes overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += _shown_ticks(ax.xaxis) + _shown_ticks(ax.yaxis)
        texts += [t for t in (ax.title, ax.xaxis.label, ax.yaxis.label, ax.xaxis.get_offset_text()) if t.get_text()]
    texts += [t for leg in fig.legends for t in leg.get_texts()]
    texts += [t for t in (fig._supxlabel,) if t is not None]
    boxes = [(t.get_text(), t.get_window_extent(renderer).padded(-1)) for t in texts]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if ba.overlaps(bb)]


def test_adr_figure_is_readable(tmp_path):
    """A biped-sized run (9 parameters, 1.5M steps): a legend names the band and lines, step ticks are short
    (500k, 1M) and no two labels overlap."""
    from domain_rand.plotting import adr_figure

    names = ["ground_friction", "hull_mass_scale", "leg_mass_scale", "motor_strength", "action_latency",
             "encoder_noise", "encoder_bias", "imu_noise", "lidar_dropout"]  # fmt: skip
    rows = []
    for i in range(300):
        row = {"global_step": 5003 * i, "return_mean": 1.0}
        for k, name in enumerate(names):
            row[f"adr/{name}/low"] = 1.0 - 0.0011 * i * (k % 3)
            row[f"adr/{name}/high"] = 1.0 + 0.0013 * i * (k + 1)
        rows.append({**row, "adr/npd": -7.0 + 0.02 * i})
    src = tmp_path / "progress.csv"
    write_csv(src, rows)
    fig = adr_figure(str(src))
    assert fig.legends and {t.get_text() for t in fig.legends[0].get_texts()} >= {
        "sampled range [low, high]", "upper bound", "lower bound"}  # fmt: skip
    labels = [t.get_text() for t in _shown_ticks(fig.axes[len(names)].xaxis)]
    assert labels and all(len(x) <= 4 for x in labels), labels  # 0, 500k, 1M, 1.5M
    assert _texts_overlap(fig) == []
