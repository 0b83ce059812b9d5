"""`s2r export`: export a checkpoint to a verified ONNX bundle (policy.onnx + manifest.json + self-test data)."""

from __future__ import annotations

import argparse

from sim.errors import UserError, require_positive
from sim.files import check_output_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="Export a checkpoint to an ONNX bundle",
        description="Export a checkpoint to an ONNX bundle: raw observations in, motor torques (N·m) out, with "
        "the normalizer and action scaling folded in; parity with torch is checked before anything is written. "
        "A run dir uses best.pt if training chose one by evaluation (--eval-every), else latest.pt; --checkpoint "
        "picks another. The first line names the checkpoint used.",
    )
    p.add_argument("checkpoint", metavar="RUN_OR_CKPT", nargs="?", help="training run folder or checkpoint file")
    p.add_argument("--checkpoint", dest="which", default="auto", metavar="latest|best|previous|PATH",
                   help="which checkpoint of the run (default: best.pt if the run chose one by evaluation during "
                   "training, --eval-every; else latest.pt), or a checkpoint file")
    p.add_argument("-o", "--out", metavar="BUNDLE_DIR", help="bundle folder to write (required unless --verify)")
    p.add_argument(
        "--verify",
        metavar="BUNDLE_DIR",
        nargs="?",
        const="",
        help="re-check parity of an existing bundle (default: the -o folder) against the checkpoint",
    )
    p.add_argument("--n-random", type=int, default=10_000, help="random observations for the parity check")
    p.add_argument("--seed", type=int, default=0, help="seed of the recording rollout and random observations")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploy.export import N_RANDOM, export_bundle, verify_bundle
    from policies.checkpoint import load_policy

    if args.n_random < N_RANDOM:
        raise UserError(f"--n-random must be at least {N_RANDOM} (the parity requirement), got {args.n_random}")
    if args.out is None and not args.verify:
        raise UserError("give the bundle folder with -o BUNDLE_DIR (or --verify BUNDLE_DIR to check one)")
    require_positive("--seed", args.seed, allow_zero=True)
    if args.out is not None:
        check_output_dir(args.out)
    policy, used = load_policy(args.checkpoint, args.which)
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
