"""`s2r plot`: learning curves of a run dir (plus ADR ranges), or plots of a controller telemetry recording.

RUN_DIR: learning curves (and ADR ranges) from progress.csv as PNGs in RUN_DIR/plots. A controller telemetry
file/folder: its plots via deploy.telemetry.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from s2r.flags import from_args
from sim.config import option


@dataclass(frozen=True)
class PlotArgs:
    path: str = option(help="a run folder (progress.csv) or a controller telemetry file/folder", positional=True,
                       metavar="RUN_DIR_OR_TELEMETRY")
    out: str | None = option(None, "output folder (default: <path>/plots or next to the file)", aliases=("-o",))


HELP = "Plot learning curves, ADR ranges, telemetry"
CONFIGS = (PlotArgs,)


def run(ns: argparse.Namespace) -> int:
    args = from_args(PlotArgs, ns)
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a run dir or a telemetry file")
    progress = path / "progress.csv" if path.is_dir() else path
    if progress.name != "progress.csv" or not progress.is_file():
        from deploy.telemetry import plot_telemetry

        out = Path(args.out) if args.out else (path if path.is_dir() else path.parent) / "plots"
        written = plot_telemetry(path, out)
    else:
        from policies.plotting import plot_learning_curves

        out = Path(args.out) if args.out else progress.parent / "plots"
        written = plot_learning_curves(progress, out)
        header = progress.read_text().split("\n", 1)[0]
        if "adr/" in header:
            from domain_rand.plotting import plot_adr_ranges

            plot_adr_ranges(str(progress), str(out / "adr_ranges.png"))
            written.append(out / "adr_ranges.png")
    for w in written or []:
        print(f"wrote {w}")
    return 0
