"""`s2r export`: export a checkpoint to a verified ONNX bundle (policy.onnx + manifest.json + self-test data).

Export a checkpoint to an ONNX bundle: raw observations in, motor torques (N·m) out, with the normalizer and
action scaling folded in; parity with torch is checked before anything is written. A run dir uses best.pt if
training chose one by evaluation (--eval-every), else latest.pt; --checkpoint picks another. The first line names
the checkpoint used.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from deploy.export import N_RANDOM, export_bundle, verify_bundle
from s2r.commands.eval import WHICH_HELP
from s2r.flags import from_args
from sim.config import option, validate
from sim.errors import UserError
from sim.files import check_output_dir


@dataclass(frozen=True)
class ExportConfig:
    path: str | None = option(None, "training run folder or checkpoint file", positional=True, metavar="RUN_OR_CKPT")
    checkpoint: str = option("auto", WHICH_HELP, metavar="latest|best|previous|PATH")
    out: str | None = option(None, "bundle folder to write (required unless --verify)", aliases=("-o",),
                             metavar="BUNDLE_DIR")
    verify: str | None = option(None, "re-check parity of an existing bundle (default: the -o folder) against the "
                                "checkpoint", const="", metavar="BUNDLE_DIR")
    n_random: int = option(N_RANDOM, "random observations for the parity check", low=N_RANDOM,
                           hint="the parity requirement")
    seed: int = option(0, "seed of the recording rollout and random observations", low=0)

    def __post_init__(self) -> None:
        validate(self)
        if self.out is None and not self.verify:
            raise UserError("give the bundle folder with -o BUNDLE_DIR (or --verify BUNDLE_DIR to check one)")


HELP = "Export a checkpoint to an ONNX bundle"
CONFIGS = (ExportConfig,)


def run(ns: argparse.Namespace) -> int:
    from policies.checkpoint import load_policy

    args = from_args(ExportConfig, ns)
    if args.out is not None:
        check_output_dir(args.out)
    policy, used = load_policy(args.path, args.checkpoint)
    print(f"exporting {used}", flush=True)
    if args.out is not None:
        m = export_bundle(policy, args.out, n_random=args.n_random, seed=args.seed)
        p = m["parity"]
        print(
            f"exported {m['robot']} policy to {args.out}: sha256 {m['model']['sha256'][:12]}, parity "
            f"{p['max_abs_diff']:.2g} of the torque limit ({p['max_abs_diff_nm']:.2g} N·m) over "
            f"{p['n_random']} random + {p['n_recorded']} recorded observations"
        )
    if args.verify is not None:
        target = args.verify or args.out
        r = verify_bundle(policy, target, n_random=args.n_random, seed=args.seed + 1)
        print(f"verified {target}: parity {r['max_abs_diff']:.2g} of the torque limit ({r['max_abs_diff_nm']:.2g} N·m)")
    return 0
