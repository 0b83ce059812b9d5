"""`s2r sweep`: seeds × hyper-parameters × DR/ADR configs from a spec file, each trial a run folder; a summary
table (mean ± 95 % CI across seeds) and multi-seed learning curves (see policies.sweep).

Run every trial of SPEC (YAML or JSON: base settings, seeds, named DR/ADR configs, a grid of hyper-parameters;
see policies/sweep.py) into OUT/trials/<group>/s<seed>/ (ordinary run folders), then write OUT/summary.md,
OUT/summary.csv and OUT/curves.png. Re-running continues unfinished trials.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from s2r.flags import from_args
from sim.config import option


@dataclass(frozen=True)
class SweepArgs:
    spec: str = option(help="the sweep: base settings, seeds, named DR/ADR configs, a grid (see policies/sweep.py)",
                       positional=True, metavar="SPEC.yaml")
    out: str | None = option(None, "sweep folder (default sweeps/<spec name>)")
    ray: str | None = option(None, "run the trials as Ray tasks (one CPU each) on the cluster this machine joined "
                             "(auto), at ADDRESS, or on a private cluster on this machine (local); default: one "
                             "after another here", const="auto", metavar="auto|ADDRESS|local")
    summary_only: bool = option(False, "only rebuild the table and plot from OUT")


HELP = "Multi-seed sweep: table (mean ± 95% CI) and learning curves"
CONFIGS = (SweepArgs,)


def run(ns: argparse.Namespace) -> int:
    args = from_args(SweepArgs, ns)
    from policies.sweep import load_spec, run_sweep, summarize

    spec = load_spec(args.spec)
    out = Path(args.out or f"sweeps/{spec.name}")
    if args.summary_only:
        if not out.is_dir():
            raise FileNotFoundError(f"{out} does not exist; run the sweep first (without --summary-only)")
        summary = summarize(spec, out)
    else:
        summary = run_sweep(spec, out, args.ray)
    print(Path(summary["table"]).read_text(), end="")
    print(f"wrote {summary['table']}, {summary['csv']}, {summary['plot']}")
    failed = [r for r in summary["rows"] if r["failed"]]
    return 1 if failed else 0
