"""`s2r flash`: install a bundle into a controller's model store (A/B slots), show its status, roll back."""

from __future__ import annotations

import argparse
import json

from sim.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash",
        help="Flash a bundle into a model store with A/B slots",
        description="Flash a bundle into the inactive slot of a model store, verify it (sha256, onnxruntime "
        "self-test) and switch to it atomically; the previous model stays for --rollback.",
    )
    p.add_argument("bundle", metavar="BUNDLE", nargs="?", help="bundle folder made by `s2r export`")
    p.add_argument("--store", required=True, metavar="DIR", help="the controller's model directory")
    p.add_argument("--init-robot", metavar="ROBOT", help="record the store's robot profile (biped or knob)")
    p.add_argument("--status", action="store_true", help="print the active slot and both slots' models")
    p.add_argument("--rollback", action="store_true", help="switch back to the previous model")
    p.add_argument("--json", action="store_true", help="--status as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploy.store import ModelStore

    actions = [bool(args.bundle), args.rollback, args.status]
    if sum(actions) > 1:
        raise UserError("give one of BUNDLE, --rollback or --status")
    if sum(actions) == 0 and not args.init_robot:
        raise UserError("nothing to do: give a BUNDLE to flash, --status, --rollback or --init-robot ROBOT")
    store = ModelStore(args.store)
    if args.init_robot:
        store.init_robot(args.init_robot)
        print(f"store {args.store}: robot {args.init_robot}")
    if args.bundle:
        slot = store.flash(args.bundle)
        print(f"flashed {args.bundle} into slot {slot} of {args.store}; active: {slot}")
    elif args.rollback:
        slot = store.rollback()
        print(f"rolled back {args.store}; active: {slot}")
    elif args.status:
        if not store.root.is_dir():
            raise UserError(f"no model store at '{args.store}'; create one with `s2r flash BUNDLE --store DIR`")
        st = store.status()
        if args.json:
            print(json.dumps(st, indent=2))
            return 0
        print(f"store {st['store']}: robot {st['robot']}, active slot {st['active']}")
        for slot, info in st["slots"].items():
            if info["state"] in ("active", "previous"):
                print(
                    f"  {slot} {info['state']:8s} {info['robot']} sha256 {info['sha256'][:12]} "
                    f"created {info['created_utc']} commit {info['git_commit']}"
                )
            else:
                print(f"  {slot} {info['state']:8s} {info.get('error', '')}")
    return 0
