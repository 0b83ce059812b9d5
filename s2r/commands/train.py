"""`s2r train`: train a TD3 / DDPG / PPO policy (see policies.train); every hyper-parameter is a flag."""

from __future__ import annotations

import argparse
import dataclasses
import time
import typing

from policies.lstm_td3 import LSTMTD3Config
from policies.ppo import PPOConfig
from policies.td3 import TD3Config
from sim.errors import UserError

# hyper-parameter flags: --td3-<field> (also DDPG and LSTM-TD3), --lstm-<field> (LSTM-TD3's memory: the fields
# LSTMTD3Config adds to TD3Config) and --ppo-<field>, defaults from the (algo, env) preset
LSTM_FIELDS = tuple(f for f in dataclasses.fields(LSTMTD3Config) if f.name not in {g.name for g in dataclasses.fields(TD3Config)})
GROUPS = (("td3", TD3Config, "TD3/DDPG/LSTM-TD3"), ("lstm", LSTMTD3Config, "LSTM-TD3 memory"), ("ppo", PPOConfig, "PPO"))


def _group_fields(prefix: str, cls: type) -> tuple[dataclasses.Field, ...]:
    return LSTM_FIELDS if prefix == "lstm" else dataclasses.fields(cls)


def _prefix(algo: str, name: str) -> str:
    """The flag group of a config field for ``algo``."""
    if algo == "ppo":
        return "ppo"
    return "lstm" if any(f.name == name for f in LSTM_FIELDS) else "td3"


def _parse_value(text: str, default: object, type_hint: str) -> object:
    """Flag text → the field's type (tuples as ``400,300``, bools as true/false, optional floats as none)."""
    if "tuple" in type_hint:
        return tuple(int(v) for v in text.split(",") if v)
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise UserError(f"expected true or false, got '{text}'")
        return text.lower() in ("true", "1")
    if "None" in type_hint and text.lower() == "none":
        return None
    if isinstance(default, int) and "float" not in type_hint:
        return int(float(text))
    if isinstance(default, float) or "float" in type_hint:
        return float(text)
    return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="Train a TD3/PPO/DDPG policy",
        description="Train a TD3/PPO/DDPG policy into a run dir (config.json, progress.csv, tb/, checkpoints/). "
        "Hyper-parameters default to the preset for (algo, env); override any with --td3-*/--ppo-* flags.",
    )
    p.add_argument("--env", default="biped", help="biped, biped-rough, biped-hardcore, knob or a Gymnasium id")
    p.add_argument("--algo", default="td3", choices=("td3", "ddpg", "ppo", "lstm-td3"),
                   help="lstm-td3: TD3 with an LSTM memory of the last K (observation, action) pairs")
    p.add_argument("--steps", type=int, default=None, help="total env steps (default 1e6; with --resume: keep)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=0, help="sub-envs (0: preset; TD3 1, PPO several)")
    p.add_argument("--vec", default="auto", choices=("auto", "split", "subproc", "sync"), help="vector env kind")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="auto|ADDRESS|local",
                   help="step the envs in Ray actors: on the cluster this machine joined (auto, the default), "
                   "at a cluster ADDRESS, or on a private cluster on this machine (local); needs .[ray]")  # fmt: skip
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (1 is fastest here)")
    p.add_argument("--update-threads", type=int, default=0, help="torch threads for gradient updates (0: one per core for PPO, 1 for TD3/DDPG)")
    p.add_argument("--checkpoint-every", type=int, default=20_000, help="env steps between checkpoints")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="env steps between deterministic evaluations on the nominal plant; the best one is saved as "
                   "checkpoints/best.pt (default 50000; 0: none, eval/export then use latest.pt)")
    p.add_argument("--eval-episodes", type=int, default=None, metavar="N", help="episodes per evaluation (default 5)")
    p.add_argument("--run-dir", default=None, help="default runs/<env>-<algo>-s<seed>-<time>")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a run from its last checkpoint (its config.json; only --steps may change)")
    p.add_argument("--dr", default=None, metavar="PRESET_OR_JSON", help="fixed domain randomization")
    p.add_argument("--adr", action="store_true", help="automatic domain randomization")
    p.add_argument("--adr-config", default=None, metavar="FILE", help="ADR config JSON (implies --adr)")
    p.add_argument("--no-tensorboard", action="store_true")
    for prefix, cls, title in GROUPS:
        g = p.add_argument_group(f"{title} hyper-parameters (default: the env's preset; shown: generic default)")
        hints = {k: str(v) for k, v in typing.get_type_hints(cls).items()}
        for f in _group_fields(prefix, cls):
            optional = ("NAME" if "str" in hints[f.name] else "FLOAT") + "|none"
            g.add_argument(f"--{prefix}-{f.name.replace('_', '-')}", dest=f"{prefix}__{f.name}", default=None,
                           metavar=optional if f.default is None else type(f.default).__name__.upper(),
                           help=f"default {f.default}")  # fmt: skip
    p.set_defaults(func=run, parser=p)


# flags that --resume accepts: the run keeps everything else from its config.json, so any other flag given with
# --resume would be silently ignored; refuse it instead
RESUME_FLAGS = {"resume", "steps", "func", "parser", "command"}


def refuse_flags_on_resume(args: argparse.Namespace) -> None:
    """One-line error naming the first flag given with --resume that the run would not use."""
    for action in args.parser._actions:
        if action.dest in RESUME_FLAGS or action.dest == "help":
            continue
        if getattr(args, action.dest, action.default) != action.default:
            flag = max(action.option_strings, key=len)
            raise UserError(f"{flag} does not apply to --resume: a resumed run keeps its config.json (only --steps, "
                            "the new total, may change); start a new --run-dir to change it")  # fmt: skip


def refuse_other_algo_flags(args: argparse.Namespace, algo: str) -> None:
    """--ppo-* flags with --algo td3/ddpg (or --td3-* with ppo, --lstm-* with anything but lstm-td3) are an error,
    not silently dropped."""
    others = ("td3", "lstm") if algo == "ppo" else ("ppo",) if algo == "lstm-td3" else ("ppo", "lstm")
    for key, value in vars(args).items():
        if key.split("__")[0] in others and "__" in key and value is not None:
            raise UserError(f"--{key.replace('__', '-').replace('_', '-')} does not apply to --algo {algo}")


def _algo_config(args: argparse.Namespace, base: TD3Config | PPOConfig) -> TD3Config | PPOConfig:
    other = "td3" if isinstance(base, PPOConfig) else "ppo"
    hints = {k: str(v) for k, v in typing.get_type_hints(type(base)).items()}
    changes: dict[str, typing.Any] = {}
    for f in dataclasses.fields(base):
        prefix = _prefix(args.algo, f.name)
        if getattr(args, f"{other}__{f.name}", None) is not None and getattr(args, f"{prefix}__{f.name}") is None:
            raise UserError(f"--{other}-{f.name.replace('_', '-')} does not apply to --algo {args.algo}")
        text = getattr(args, f"{prefix}__{f.name}")
        if text is not None:
            try:
                changes[f.name] = _parse_value(text, f.default, hints[f.name])
            except ValueError as exc:
                raise UserError(f"--{prefix}-{f.name.replace('_', '-')}: {exc}") from None
    return dataclasses.replace(base, **changes)


def run(args: argparse.Namespace) -> int:
    from policies.train import TrainConfig, resume_config, train

    if args.resume:
        refuse_flags_on_resume(args)
        cfg = resume_config(args.resume, args.steps)
        summary = train(cfg, args.resume, resume=True)
    else:
        refuse_other_algo_flags(args, args.algo)
        evals = {k: getattr(args, k) for k in ("eval_every", "eval_episodes") if getattr(args, k) is not None}
        cfg = TrainConfig(
            env=args.env, algo=args.algo, steps=TrainConfig.steps if args.steps is None else args.steps,
            seed=args.seed, num_envs=args.num_envs, **evals,
            vec=args.vec, ray=args.ray, torch_threads=args.torch_threads, update_threads=args.update_threads,
            checkpoint_every=args.checkpoint_every,
            dr=args.dr, adr=args.adr or args.adr_config is not None, adr_config=args.adr_config,
            tensorboard=not args.no_tensorboard,
        )  # fmt: skip
        preset = cfg.resolved().algo_config
        assert preset is not None
        cfg = dataclasses.replace(cfg, algo_config=_algo_config(args, preset))
        run_dir = args.run_dir or f"runs/{args.env.replace('/', '_')}-{args.algo}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        summary = train(cfg, run_dir)
    line = f"done: {summary['run_dir']} at step {summary['global_step']}"
    if "return_mean" in summary:
        line += f", mean return {summary['return_mean']:.1f} over the last {cfg.stats_window} episodes"
    print(line)
    return 0
