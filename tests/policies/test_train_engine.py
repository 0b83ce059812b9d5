"""`s2r train --engine mujoco`: the training envs and the evaluations that choose best.pt run in the MuJoCo twin."""

from __future__ import annotations

import json

import pytest

from policies.train import TrainConfig, train
from sim.errors import UserError


def test_training_runs_in_the_chosen_engine(tmp_path):
    cfg = TrainConfig(env="knob", algo="td3", engine="mujoco", steps=300, num_envs=1, vec="sync", eval_every=300,
                      eval_episodes=1, tensorboard=False, progress=False, save_replay=False)  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    assert summary["global_step"] == 300
    assert json.loads((tmp_path / "run" / "config.json").read_text())["engine"] == "mujoco"


def test_engine_is_checked():
    with pytest.raises(UserError, match="--engine must be one of pybullet, mujoco, got .ode."):
        TrainConfig(engine="ode")
    with pytest.raises(UserError, match="--engine mujoco needs an s2r env"):
        TrainConfig(env="Pendulum-v1", engine="mujoco")
