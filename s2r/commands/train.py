"""`s2r train`: train a TD3 / DDPG / PPO policy (see policies.train); every hyper-parameter is a flag.

Values come, lowest first, from the dataclass defaults, the (env, algo) preset (``policies/presets/*.yaml``), a
``--config FILE`` (YAML/JSON/TOML in the layout of a run's config.json) and the flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import typing
from typing import Any

from policies.hparams import PRESET_DIR, build, parse_value, preset_values, read_file
from policies.lstm_td3 import LSTMTD3Config
from policies.ppo import PPOConfig
from policies.recurrent_ppo import RecurrentPPOConfig
from policies.td3 import TD3Config
from policies.train import TrainConfig
from sim.engines import ENGINE_HELP, ENGINES
from sim.errors import UserError

# hyper-parameter flags: --td3-<field> (also DDPG and LSTM-TD3), --lstm-<field> (the memory fields LSTMTD3Config
# adds to TD3Config), --ppo-<field> (also recurrent PPO) and --rppo-<field> (the memory fields RecurrentPPOConfig
# adds to PPOConfig), defaults from the (algo, env) preset
GROUPS = (("td3", TD3Config, "TD3/DDPG/LSTM-TD3"), ("lstm", LSTMTD3Config, "LSTM-TD3 memory"),
          ("ppo", PPOConfig, "PPO/recurrent PPO"), ("rppo", RecurrentPPOConfig, "recurrent PPO memory"))  # fmt: skip
_TD3_NAMES = {f.name for f in dataclasses.fields(TD3Config)}
_PPO_NAMES = {f.name for f in dataclasses.fields(PPOConfig)}
LSTM_FIELDS = tuple(f for f in dataclasses.fields(LSTMTD3Config) if f.name not in _TD3_NAMES)
RPPO_FIELDS = tuple(f for f in dataclasses.fields(RecurrentPPOConfig) if f.name not in _PPO_NAMES)
PRESET_ALGO = {"td3": "td3", "lstm": "lstm-td3", "ppo": "ppo", "rppo": "rppo"}  # flag group → the presets it shows
# the flag groups each algorithm takes (any other group's flag is an error)
ALGO_GROUPS = {"td3": ("td3",), "ddpg": ("td3",), "lstm-td3": ("td3", "lstm"), "ppo": ("ppo",), "rppo": ("ppo", "rppo")}


def group_fields(prefix: str, cls: type) -> tuple[dataclasses.Field, ...]:
    """The fields a flag group has: the memory groups only those their algorithm adds to TD3 / PPO."""
    return LSTM_FIELDS if prefix == "lstm" else RPPO_FIELDS if prefix == "rppo" else dataclasses.fields(cls)


def flag_group(algo: str, name: str) -> str:
    """The flag group (prefix) of config field ``name`` for ``algo``."""
    if algo in ("ppo", "rppo"):
        return "ppo" if name in _PPO_NAMES else "rppo"
    return "lstm" if name not in _TD3_NAMES else "td3"
# TrainConfig fields that are flags of their own (--env, --num-envs...); their argparse default is None so a
# --config file's value is kept unless the flag is given
TRAIN_FLAGS = ("env", "engine", "algo", "steps", "seed", "num_envs", "vec", "ray", "torch_threads", "update_threads",
               "checkpoint_every", "eval_every", "eval_episodes", "video_every", "dr", "adr_config")  # fmt: skip


def _show(value: object) -> str:
    """A field value as it is typed on the command line."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "empty"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short_names() -> dict[str, str]:
    """Gymnasium id → the CLI's short name (``s2r/Knob-v0`` → ``knob``); other ids stay as they are."""
    from sim.task import env_variants

    return {v.gym_id: short for short, v in env_variants().items()}


def preset_help(prefix: str, cls: type) -> dict[str, str]:
    """Per field: "default D; preset V1: env, env; V2: env" — the presets that differ from the generic default."""
    short = _short_names()
    values = preset_values(PRESET_ALGO[prefix])
    order = [*short, *sorted(set(values) - set(short))]  # s2r robots first
    presets = {e: build(cls, values[e], e) for e in order if e in values}
    out = {}
    for f in group_fields(prefix, cls):
        groups: dict[str, list[str]] = {}
        for env_id, cfg in presets.items():
            value = getattr(cfg, f.name)
            if value != f.default:
                groups.setdefault(_show(value), []).append(short.get(env_id, env_id))
        text = f"default {_show(f.default)}"
        if groups:
            text += "; preset " + "; ".join(f"{v}: {', '.join(envs)}" for v, envs in groups.items())
        out[f.name] = text
    return out


def register(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="Train a TD3/PPO/DDPG policy",
        description="Train a TD3/PPO/DDPG policy into a run dir (config.json, progress.csv, tb/, checkpoints/). "
        "Hyper-parameters default to the preset for (algo, env), listed with each flag below; a --config file "
        "overrides the preset, and the flags given override the file.",
        epilog=f"Presets: {PRESET_DIR}/<env>_<algo>.yaml (each one is a valid --config file). A --config file holds "
        "TrainConfig fields at the top level and TD3Config/PPOConfig fields under algo_config, like a run's "
        "config.json (also a valid --config file).",
    )
    p.add_argument("--config", metavar="FILE", default=None,
                   help="hyper-parameter file (.yaml, .json, .toml): any TrainConfig field, algo fields under "
                   "algo_config; flags given override it")  # fmt: skip
    p.add_argument("--env", default=None, help=f"biped, biped-rough, biped-hardcore, knob or a Gymnasium id (default {d.env})")
    p.add_argument("--algo", default=None, choices=tuple(ALGO_GROUPS),
                   help="lstm-td3: TD3 with an LSTM memory of the last K (observation, action) pairs; rppo: PPO with "
                   f"an LSTM policy and critic trained on sequences (default {d.algo})")  # fmt: skip
    p.add_argument("--steps", type=int, default=None, help=f"total env steps (default {d.steps}; with --resume: keep)")
    p.add_argument("--seed", type=int, default=None, help=f"(default {d.seed})")
    p.add_argument("--num-envs", type=int, default=None, help="sub-envs (default: the preset's; TD3 1, PPO several)")
    p.add_argument("--vec", default=None, choices=("auto", "split", "subproc", "sync"), help=f"vector env kind (default {d.vec})")
    p.add_argument("--engine", default=None, choices=ENGINES, help=f"{ENGINE_HELP} (default {d.engine})")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="auto|ADDRESS|local",
                   help="step the envs in Ray actors: on the cluster this machine joined (auto, the default), "
                   "at a cluster ADDRESS, or on a private cluster on this machine (local); needs .[ray]")  # fmt: skip
    p.add_argument("--torch-threads", type=int, default=None, help=f"torch intra-op threads (default {d.torch_threads}, the fastest here)")
    p.add_argument("--update-threads", type=int, default=None, help="torch threads for gradient updates (default 0: one per core for PPO, 1 for TD3/DDPG)")
    p.add_argument("--checkpoint-every", type=int, default=None, help=f"env steps between checkpoints (default {d.checkpoint_every})")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="env steps between deterministic evaluations on the nominal plant; the best one is saved as "
                   f"checkpoints/best.pt (default {d.eval_every}; 0: none, eval/export then use latest.pt)")
    p.add_argument("--eval-episodes", type=int, default=None, metavar="N", help=f"episodes per evaluation (default {d.eval_episodes})")
    p.add_argument("--video-every", type=int, default=None, metavar="N",
                   help="every N env steps, record a deterministic episode of the current policy to "
                   "RUN/videos/step_NNNNNNNNN.mp4 (.gif without imageio-ffmpeg) and TensorBoard (default 0: never)")
    p.add_argument("--run-dir", default=None, help="default runs/<env>-<algo>-s<seed>-<time>")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a run from its last checkpoint (its config.json; only --steps may change)")
    p.add_argument("--dr", default=None, metavar="PRESET_OR_JSON", help="fixed domain randomization")
    p.add_argument("--adr", action="store_true", help="automatic domain randomization")
    p.add_argument("--adr-config", default=None, metavar="FILE", help="ADR config JSON (implies --adr)")
    p.add_argument("--no-tensorboard", action="store_true")  # fmt: skip
    for prefix, cls, title in GROUPS:
        g = p.add_argument_group(
            f"{title} hyper-parameters",
            "Default: the (env, algo) preset; each flag lists the generic default and the presets that differ."
            + (" --algo ddpg uses the TD3 preset with n_critics 1, target_noise 0, policy_delay 1." if prefix == "td3" else ""),
        )  # fmt: skip
        hints = {k: str(v) for k, v in typing.get_type_hints(cls).items()}
        helps = preset_help(prefix, cls)
        for f in group_fields(prefix, cls):
            optional = ("NAME" if "str" in hints[f.name] else "FLOAT") + "|none"
            g.add_argument(f"--{prefix}-{f.name.replace('_', '-')}", dest=f"{prefix}__{f.name}", default=None,
                           metavar=optional if f.default is None else type(f.default).__name__.upper(),
                           help=helps[f.name])  # fmt: skip
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
    """--ppo-* flags with --algo td3/ddpg (or --td3-* with ppo, --lstm-* with anything but lstm-td3, --rppo-* with
    anything but rppo) are an error, not silently dropped."""
    own = ALGO_GROUPS[algo]
    for key, value in vars(args).items():
        if "__" in key and key.split("__")[0] not in own and value is not None:
            raise UserError(f"--{key.replace('__', '-').replace('_', '-')} does not apply to --algo {algo}")


def _algo_flags(args: argparse.Namespace, algo: str, base: TD3Config | PPOConfig) -> TD3Config | PPOConfig:
    """``base`` with the --td3-*/--ppo-* flags given for ``algo``; the other algorithm's flags are an error."""
    refuse_other_algo_flags(args, algo)
    hints = {k: str(v) for k, v in typing.get_type_hints(type(base)).items()}
    changes: dict[str, typing.Any] = {}
    for f in dataclasses.fields(base):
        prefix = flag_group(algo, f.name)
        text = getattr(args, f"{prefix}__{f.name}")
        if text is not None:
            try:
                changes[f.name] = parse_value(text, f.default, hints[f.name])
            except ValueError as exc:
                raise UserError(f"--{prefix}-{f.name.replace('_', '-')}: {exc}") from None
    return dataclasses.replace(base, **changes)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig: dataclass defaults < (env, algo) preset < --config file < flags given."""
    file: dict[str, Any] = read_file(args.config) if args.config else {}
    file_algo = file.pop("algo_config", None)
    if file_algo is not None and not isinstance(file_algo, dict):
        raise UserError(f"{args.config}: algo_config must be a mapping of {'/'.join(c.__name__ for _, c, _ in GROUPS)} fields")
    cfg = build(TrainConfig, file, str(args.config)) if args.config else TrainConfig()
    given = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    if args.adr or args.adr_config is not None:
        given["adr"] = True
    if args.no_tensorboard:
        given["tensorboard"] = False
    cfg = dataclasses.replace(cfg, **given, algo_config=None)
    refuse_other_algo_flags(args, cfg.algo)
    preset = cfg.resolved().algo_config
    assert preset is not None
    algo_cfg = preset
    if file_algo:
        if "algo" in file and "algo" in given and file["algo"] != given["algo"]:
            raise UserError(f"{args.config} holds {file['algo']} hyper-parameters (algo_config); --algo {given['algo']} "
                             "cannot use them: drop --algo or the file's algo_config")  # fmt: skip
        algo_cfg = build(type(preset), file_algo, f"{args.config}: algo_config", base=preset)
    return dataclasses.replace(cfg, algo_config=_algo_flags(args, cfg.algo, algo_cfg))


def run(args: argparse.Namespace) -> int:
    from policies.train import resume_config, train

    if args.resume:
        refuse_flags_on_resume(args)
        cfg = resume_config(args.resume, args.steps)
        summary = train(cfg, args.resume, resume=True)
    else:
        cfg = config_from_args(args)
        run_dir = args.run_dir or f"runs/{cfg.env.replace('/', '_')}-{cfg.algo}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        summary = train(cfg, run_dir)
    line = f"done: {summary['run_dir']} at step {summary['global_step']}"
    if "return_mean" in summary:
        line += f", mean return {summary['return_mean']:.1f} over the last {cfg.stats_window} episodes"
    print(line)
    return 0
