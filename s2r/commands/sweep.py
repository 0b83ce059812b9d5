"""`s2r sweep`: seeds × hyper-parameters × DR/ADR configs from a spec file, each trial a run folder; a summary
table (mean ± 95 % CI across seeds) and multi-seed learning curves (see policies.sweep)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="Multi-seed sweep: table (mean ± 95%% CI) and learning curves",
        description="Run every trial of SPEC (YAML or JSON: base settings, seeds, named DR/ADR configs, a grid of "
        "hyper-parameters; see policies/sweep.py) into OUT/trials/<group>/s<seed>/ (ordinary run folders), then "
        "write OUT/summary.md, OUT/summary.csv and OUT/curves.png. Re-running continues unfinished trials.",
    )
    p.add_argument("spec", metavar="SPEC.yaml")
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<spec name>)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="auto|ADDRESS|local",
                   help="run the trials as Ray tasks (one CPU each) on the cluster this machine joined (auto), at "
                   "ADDRESS, or on a private cluster on this machine (local); default: one after another here")  # fmt: skip
    p.add_argument("--summary-only", action="store_true", help="only rebuild the table and plot from OUT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
