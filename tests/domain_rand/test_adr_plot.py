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
