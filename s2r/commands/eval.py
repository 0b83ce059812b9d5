"""`s2r eval`: deterministic evaluation of a run or checkpoint, optionally on every held-out plant.

Evaluate a trained policy with deterministic actions: mean ± std return, success rate (knob), distance and falls
(biped). A run dir uses best.pt if training chose one by evaluation (--eval-every), else latest.pt; --checkpoint
picks another. The first line names the checkpoint used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from s2r.flags import from_args
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError
from sim.files import check_output_file

WHICH_HELP = ("which checkpoint of the run (default: best.pt if the run chose one by evaluation during training, "
              "--eval-every; else latest.pt), or a checkpoint file")  # fmt: skip


@dataclass(frozen=True)
class EvalConfig:
    path: str | None = option(None, "training run folder, checkpoint file or exported bundle folder (its ONNX "
                              "policy runs in onnxruntime, as on the robot)", positional=True, metavar="RUN_OR_CKPT")
    checkpoint: str = option("auto", WHICH_HELP, metavar="latest|best|previous|PATH")
    episodes: int = option(10, "deterministic episodes (per plant)", above=0)
    seed: int = option(10_000, "seed of the first episode (then +1 per episode)", low=0)
    gif: str | None = option(None, "record the first episode (.mp4 needs imageio-ffmpeg)", aliases=("--video",),
                             metavar="OUT.gif|OUT.mp4")
    plants: str | None = option(None, "evaluate on every plant of a suite (heldout)", metavar="SUITE")
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)

    def __post_init__(self) -> None:
        validate(self)


HELP = "Evaluate a policy"
CONFIGS = (EvalConfig,)


def _line(name: str, s: dict[str, float]) -> str:
    out = f"{name}: return {s['return_mean']:.1f} ± {s['return_std']:.1f} over {s['episodes']:.0f} episodes"
    if "success_rate" in s:
        out += f", success {100 * s['success_rate']:.0f}%"
    if "distance_m" in s:
        out += f", distance {s['distance_m']:.2f} m"
    if "falls" in s:
        out += f", falls {s['falls']:.0f}"
    return out


def _table(rows: dict[str, dict[str, float]]) -> str:
    keys = [k for k in ("return_mean", "return_std", "success_rate", "distance_m", "falls", "length_mean")
            if any(k in r for r in rows.values())]  # fmt: skip
    width = max(len("plant"), *(len(n) for n in rows))
    lines = ["plant".ljust(width) + "".join(f"{k:>14}" for k in keys)]
    for name, r in rows.items():
        lines.append(name.ljust(width) + "".join(f"{r[k]:>14.3g}" if k in r else f"{'-':>14}" for k in keys))
    return "\n".join(lines)


def _name(env_id: str, engine: str) -> str:
    return env_id if engine == DEFAULT_ENGINE else f"{env_id} ({engine})"


class _BundlePolicy:
    """An exported bundle behind the interface ``evaluate`` calls (a batch of raw observations → normalized
    actions), so a bundle is evaluated exactly as the controller runs it: onnxruntime, N·m out."""

    def __init__(self, path: str) -> None:
        from deploy.bundle import Policy, load_bundle
        from sim.robots import get_robot

        bundle = load_bundle(path)
        self._policy, self._action = Policy(bundle), get_robot(bundle.robot).action
        self.env_id, self.robot_id = bundle.manifest.get("env_id") or bundle.robot, bundle.robot

    def initial_state(self, batch: int = 1) -> tuple:
        """An episode starts: a bundle with memory goes back to its manifest's initial state (its state lives in
        the onnxruntime Policy, as on the controller, so there is nothing to pass around)."""
        self._policy.reset_state()
        return ()

    def __call__(self, obs: Any) -> Any:
        import torch

        return torch.as_tensor(self._action.to_normalized(self._policy(obs[0].numpy())))[None]


@contextmanager
def _bar(name: str, episodes: int) -> Iterator[Callable[[Any], None]]:
    """A tqdm bar on stderr for one plant's episodes (redrawn every few seconds when stderr is no terminal)."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    with tqdm(total=episodes, desc=name, unit="ep", file=sys.stderr, mininterval=0.1 if tty else 5.0,
              dynamic_ncols=True) as bar:  # fmt: skip

        def step(result: Any) -> None:
            bar.set_postfix_str(f"return {sum(result.returns) / len(result.returns):.1f}", refresh=False)
            bar.update(1)

        yield step


def run(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from policies.checkpoint import load_policy
    from policies.evaluate import evaluate

    args = from_args(EvalConfig, ns)
    if args.gif:
        from sim.video import check_video_path

        check_output_file(args.gif)
        check_video_path(args.gif)
    policy: Any
    if args.path is not None and (Path(args.path) / "manifest.json").is_file():
        policy, used = _BundlePolicy(args.path), f"bundle {args.path} (ONNX, onnxruntime)"
    else:
        policy, used = load_policy(args.path, args.checkpoint)
    print(f"evaluating {used}", flush=True)
    if args.plants is None:
        with _bar(policy.env_id, args.episodes) as step:
            result = evaluate(policy, args.episodes, args.seed, gif=args.gif, on_episode=step, engine=args.engine)
        print(_line(_name(policy.env_id, args.engine), result.summary()))
        if args.gif:
            print(f"wrote {args.gif}")
        return 0
    if policy.robot_id is None:
        raise UserError(f"--plants needs an s2r robot env; this policy was trained on {policy.env_id}")
    from domain_rand.plants import get_plants

    rows = {}
    for name, params in get_plants(policy.robot_id, args.plants).items():
        with _bar(name, args.episodes) as step:
            rows[name] = evaluate(policy, args.episodes, args.seed, params=params, on_episode=step,
                                  engine=args.engine).summary()  # fmt: skip
    print(f"{_name(policy.env_id, args.engine)}, {args.episodes} deterministic episodes per plant ({args.plants} suite)")
    print(_table(rows))
    return 0
