"""`s2r flash`: install a bundle into a controller's model store (A/B slots), show its status, roll back.

Flash a bundle into the inactive slot of a model store, verify it (sha256, onnxruntime self-test) and switch to
it atomically; the previous model stays for --rollback.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from s2r.flags import from_args
from sim.config import option
from sim.errors import UserError


@dataclass(frozen=True)
class FlashArgs:
    store: str = option(help="the controller's model directory", metavar="DIR")
    bundle: str | None = option(None, "bundle folder made by `s2r export`", positional=True, metavar="BUNDLE")
    init_robot: str | None = option(None, "record the store's robot profile (biped or knob)", metavar="ROBOT")
    status: bool = option(False, "print the active slot and both slots' models")
    rollback: bool = option(False, "switch back to the previous model")
    json: bool = option(False, "--status as JSON")

    def __post_init__(self) -> None:
        actions = [bool(self.bundle), self.rollback, self.status]
        if sum(actions) > 1:
            raise UserError("give one of BUNDLE, --rollback or --status")
        if sum(actions) == 0 and not self.init_robot:
            raise UserError("nothing to do: give a BUNDLE to flash, --status, --rollback or --init-robot ROBOT")


HELP = "Flash a bundle into a model store with A/B slots"
CONFIGS = (FlashArgs,)


def run(ns: argparse.Namespace) -> int:
    from deploy.store import ModelStore

    args = from_args(FlashArgs, ns)
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
