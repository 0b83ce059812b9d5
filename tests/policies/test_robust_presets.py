"""The reality-box training configs of policies/presets/robust/ (the shipped bundles' recipes) stay valid: each
parses into a TrainConfig through the CLI, its ADR file builds an ADR within the robot's hard limits, and its
env options build the training env."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain_rand import ADR, load_adr_config
from policies.hparams import PRESET_DIR
from policies.vec_env import make_env
from s2r.cli import build_parser
from s2r.commands.train import config_from_args

ROBUST = sorted((PRESET_DIR / "robust").glob("*ppo.yaml"))  # PPO and recurrent PPO (*_rppo.yaml)
# RL without an expert (issue #22): their own reward, `rl`
NOT_SMOOTH = {"knob_rl_ppo", "knob_rl_box_ppo", "knob_rl_dr_ppo"}
GROWN = {"knob_rl_grow_ppo"}  # ADR grows every adaptive parameter from its nominal value
NOMINAL = {"biped_upright_ppo"}  # a recipe's first stage, on the nominal plant: no ADR, no torque costs yet


@pytest.mark.parametrize("path", ROBUST, ids=lambda p: p.stem)
def test_robust_config_parses_and_builds(path: Path):
    args = build_parser().parse_args(["train", "--config", str(path)])
    cfg = config_from_args(args)
    assert cfg.env_options
    assert (cfg.adr and cfg.adr_config is not None) != (path.stem in NOMINAL)
    env = make_env(cfg.env, **cfg.training_env_kwargs())
    try:
        if path.stem in NOMINAL:
            return
        weights = env.unwrapped.reward_weights  # type: ignore[attr-defined]
        if path.stem not in NOT_SMOOTH:
            assert weights.actuation_on  # the smooth-torque terms are on in training
        adr = ADR(env.unwrapped.param_space, load_adr_config(cfg.adr_config))  # type: ignore[attr-defined]
        if path.stem in GROWN:
            assert all(adr.init_ranges[n][0] == adr.init_ranges[n][1] == adr.space[n].nominal for n in adr.adaptive)
        else:
            assert adr.entropy_npd() > -7.0  # initial ranges, not points
    finally:
        env.close()


@pytest.mark.parametrize("path", sorted((PRESET_DIR / "robust").glob("*_adr.json")), ids=lambda p: p.stem)
def test_every_adr_file_loads_for_its_robot(path: Path):
    """Every ADR file of the robust presets (those no config names too: a stage's variant, a feasibility check)
    builds an ADR over its robot's parameter space."""
    import sim  # noqa: F401

    env = make_env(path.stem.split("_")[0])
    try:
        ADR(env.unwrapped.param_space, load_adr_config(str(path)))  # type: ignore[attr-defined]
    finally:
        env.close()
