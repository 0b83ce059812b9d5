"""`s2r train`: train a TD3 / DDPG / PPO policy (see policies.train); every hyper-parameter is a flag.

Train a TD3/PPO/DDPG policy into a run dir (config.json, progress.csv, tb/, checkpoints/). Hyper-parameters
default to the preset for (algo, env), listed with each flag below; a --config file overrides the preset, and the
flags given override the file.

Values come, lowest first, from the dataclass defaults, the (env, algo) preset (``policies/presets/*.yaml``), a
``--config FILE`` (YAML/JSON/TOML in the layout of a run's config.json) and the flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import typing
from dataclasses import dataclass
from typing import Any

from policies.hparams import PRESET_DIR, build, parse_value, preset_values, read_file
from policies.lstm_td3 import LSTMTD3Config
from policies.ppo import PPOConfig
from policies.recurrent_ppo import RecurrentPPOConfig
from policies.td3 import TD3Config
from policies.train import TrainConfig
from s2r.flags import add_flags
from s2r.flags import given as flags_given
from sim.config import flag_of, option, spec_of
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


@dataclass(frozen=True)
class TrainArgs:
    """The flags of ``s2r train`` that are not TrainConfig fields."""

    config: str | None = option(None, "hyper-parameter file (.yaml, .json, .toml): any TrainConfig field, algo "
                                "fields under algo_config; flags given override it", metavar="FILE")
    run_dir: str | None = option(None, "the run folder (default runs/<env>-<algo>-s<seed>-<time>)")
    resume: str | None = option(None, "continue a run from its last checkpoint (its config.json; only --steps may "
                                "change)", metavar="RUN_DIR")


HELP = "Train a TD3/PPO/DDPG policy"
EPILOG = (f"Presets: {PRESET_DIR}/<env>_<algo>.yaml (each one is a valid --config file). A --config file holds "
          "TrainConfig fields at the top level and TD3Config/PPOConfig fields under algo_config, like a run's "
          "config.json (also a valid --config file).")  # fmt: skip
CONFIGS = (TrainArgs,)


def extend(p: argparse.ArgumentParser) -> None:
    """TrainConfig's flags (default None: a --config file's value stays unless the flag is given), then one group
    of hyper-parameter flags per algorithm, each showing the generic default and the presets that differ."""
    add_flags(p, TrainConfig, optional=True)
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
            spec = spec_of(f)
            assert spec is not None and flag_of(f) == f"--{prefix}-{f.name.replace('_', '-')}", f.name
            g.add_argument(flag_of(f), dest=f"{prefix}__{f.name}", default=None,
                           metavar=optional if f.default is None else type(f.default).__name__.upper(),
                           help=f"{spec.help} ({helps[f.name]})")  # fmt: skip


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
    given = flags_given(TrainConfig, args)
    if given.get("adr_config") is not None:
        given["adr"] = True
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
