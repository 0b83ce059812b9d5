"""`s2r train`: Train a TD3/PPO/DDPG policy. Not implemented yet: issue #5)"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="Train a TD3/PPO/DDPG policy", description="Train a TD3/PPO/DDPG policy.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("s2r train: not implemented yet (issue #5)", file=sys.stderr)
    return 2
