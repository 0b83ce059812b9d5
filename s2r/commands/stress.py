"""`s2r stress`: the robustness report to read before touching hardware (domain_rand/stress.py does the work).

Run a bundle (onnxruntime, no torch needed) or a training run through a one-at-a-time sweep of every physical
parameter from nominal outward (the cliff: first value with success < 80 %), N random plants from the robot's
reality box (success rate with a Wilson 95 % CI) and torque-signal metrics on the nominal plant. Seeded, common
random numbers across parameters, all cores. Writes JSON and a PNG.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domain_rand.stress import StressConfig, format_report, run_stress
from s2r.flags import from_args
from sim.config import option
from sim.errors import UserError
from sim.files import atomic_write, check_output_file


@dataclass(frozen=True)
class StressArgs:
    target: str = option(help="bundle folder (manifest.json) or run folder / checkpoint", positional=True,
                         metavar="BUNDLE_OR_RUN")
    robot: str | None = option(None, "expected robot (biped, knob); default: the target's")
    json: str | None = option(None, "report file (default: stress_out/<robot>.json)", metavar="F")
    plot: str | None = option(None, "success-vs-value PNG (default: stress_out/<robot>.png)", metavar="F")


HELP = "Robustness report: parameter sweeps, cliffs, random real-robot plants, torque metrics"
CONFIGS = (StressArgs, StressConfig)


# policy factories: module-level, so the process pool can pickle them; each worker builds its own policy
class _StatefulPolicy:
    """``obs → normalized action`` with ``reset_state()``: what ``domain_rand.evaluate.run_episode`` calls at
    every episode start (a policy with memory or an action filter must not carry state across episodes)."""

    def __init__(self, act: Any, reset: Any) -> None:
        self._act, self.reset_state = act, reset

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self._act(obs)


def bundle_policy(bundle_dir: str) -> Any:
    """The bundle's ONNX policy as ``obs → normalized action`` (what the board's torques are, over the limit)."""
    from deploy.bundle import Policy, load_bundle
    from sim.robots import get_robot

    bundle = load_bundle(bundle_dir)
    policy, action = Policy(bundle), get_robot(bundle.robot).action
    return _StatefulPolicy(lambda obs: action.to_normalized(policy(obs)), policy.reset_state)


def run_policy(path: str) -> Any:
    """A run folder's (or checkpoint's) policy, in torch, as ``obs → normalized action``."""
    import torch

    from policies.checkpoint import load_inference_policy
    from policies.evaluate import policy_initial_state, policy_step

    torch.set_num_threads(1)
    policy = load_inference_policy(path)
    state = [policy_initial_state(policy)]

    def act(obs: np.ndarray) -> np.ndarray:
        action, state[0] = policy_step(policy, obs, state[0])
        return action

    def reset() -> None:
        state[0] = policy_initial_state(policy)

    return _StatefulPolicy(act, reset)


def _target(path: str) -> tuple[str, str, Any, str | None]:
    """(robot, env id, policy factory, input-gain problem) of a bundle or run."""
    if (Path(path) / "manifest.json").is_file():
        from deploy.bundle import bundle_obs_std, load_bundle
        from deploy.manifest import input_gain_problem
        from sim.robots import get_robot

        bundle = load_bundle(path)
        std = bundle_obs_std(path)
        problem = input_gain_problem(std, get_robot(bundle.robot)) if std is not None else None
        return bundle.robot, bundle.manifest["env_id"], functools.partial(bundle_policy, path), problem
    if not Path(path).exists():
        raise UserError(f"'{path}' is neither a bundle folder nor a run folder/checkpoint")
    from policies.checkpoint import load_policy

    policy, used = load_policy(path)
    print(f"stressing {used}", file=sys.stderr, flush=True)  # which checkpoint of a run (best.pt or latest.pt)
    if policy.robot_id is None:
        raise UserError(f"s2r stress needs an s2r robot policy; {path} was trained on {policy.env_id}")
    return policy.robot_id, policy.env_id, functools.partial(run_policy, path), None


def _terminal() -> bool:
    """stderr is a terminal with a width (a pty nobody sized, as some CI runners give, has 0 columns)."""
    try:
        return sys.stderr.isatty() and os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):  # no file descriptor (a captured stream), or not a terminal
        return False


BAR = "stress [{bar}] {n_fmt}/{total_fmt} episodes, {elapsed} elapsed, ~{remaining} left"


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """``progress(done, total)`` for run_stress: a tqdm bar on stderr on a terminal (shown from the first
    episode on, timed from the start); else (CI logs, pipes, an unsized pty) the same text as a plain line at
    each tenth of the episodes, with no carriage returns."""
    from tqdm import tqdm

    t0, tenths = time.monotonic(), -1
    bar = tqdm(file=sys.stderr, bar_format=BAR, dynamic_ncols=True, delay=0.1) if _terminal() else None

    def show(done: int, total: int) -> None:
        nonlocal tenths
        if bar is not None:
            bar.total = total  # known once run_stress has planned its episodes
            bar.update(done - bar.n)
        elif 10 * done // total > tenths:
            tenths = 10 * done // total
            line = tqdm.format_meter(done, total, time.monotonic() - t0, bar_format=BAR, ascii=True, ncols=80)
            print(line, file=sys.stderr, flush=True)

    try:
        yield show
    finally:
        if bar is not None:
            bar.close()


def run(ns: argparse.Namespace) -> int:
    from domain_rand.plotting import plot_stress

    args, cfg = from_args(StressArgs, ns), from_args(StressConfig, ns)
    robot, env_id, factory, gain_problem = _target(args.target)
    if args.robot is not None and args.robot != robot:
        raise UserError(f"{args.target} is a {robot} policy, not {args.robot}")
    json_path = Path(args.json or f"stress_out/{robot}.json")
    plot_path = Path(args.plot or f"stress_out/{robot}.png")
    check_output_file(json_path)
    check_output_file(plot_path)
    with _progress() as progress:
        report = run_stress(env_id, factory, cfg, progress=progress)
    report["target"] = str(args.target)
    report["input_gain_problem"] = gain_problem
    json_path.parent.mkdir(parents=True, exist_ok=True)
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(json_path, json.dumps(report, indent=2) + "\n")
    plot_stress(report, str(plot_path))
    print(format_report(report))
    if gain_problem:
        print(f"input gain: {gain_problem} (export would refuse this bundle's normalizer)")
    print(f"wrote {json_path} and {plot_path}")
    return 0
