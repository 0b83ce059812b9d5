"""Vector envs: subprocess workers (several envs each) and the split env (some in this process, the rest in a
worker) match in-process envs step for step; per-env reset options reach the right sub-env; a worker's exception
keeps its type, message and traceback; training on split envs gives the same progress as on in-process envs."""

from __future__ import annotations

import numpy as np
import pytest

from policies.vec_env import SubprocVecEnv, SyncVecEnv, make_env


def _assert_steps_like_sync(venv, sync: SyncVecEnv, n: int, seed: int) -> None:
    """Seeded resets and 5 random steps give bit-identical observations, rewards and end flags."""
    for i in range(n):
        assert np.array_equal(venv.reset_one(i, seed=i)[0], sync.reset_one(i, seed=i)[0])
    rng = np.random.default_rng(seed)
    for _ in range(5):
        a = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        for x, y in zip(venv.step(a)[:4], sync.step(a)[:4], strict=True):
            assert np.array_equal(x, y)


def test_subproc_matches_sync_and_resets_one_env_with_options():
    sub, sync = SubprocVecEnv("biped", 3, n_workers=2), SyncVecEnv("biped", 3)  # workers own 1 and 2 envs
    try:
        assert sub.bounds == [0, 2, 3] or sub.bounds == [0, 1, 3]
        _assert_steps_like_sync(sub, sync, 3, seed=0)
        _, info = sub.reset_one(2, seed=7, options={"params": {"motor_strength": 0.5}})
        assert info["params"]["motor_strength"] == 0.5
        with pytest.raises(ValueError, match="NaN"):  # the env's own type, as a local env raises it
            sub.step(np.full((3, 4), np.nan, dtype=np.float32))
    finally:
        sub.close()
        sync.close()


def test_worker_errors_keep_their_type_message_and_traceback(caplog):
    """A real worker process whose env raises: the parent logs the worker's traceback and raises the same
    exception type (Gymnasium's ResetNeeded, not a generic error); an env that cannot be built is the same."""
    import logging

    from gymnasium.error import ResetNeeded

    sub = SubprocVecEnv("Pendulum-v1", 2, n_workers=1)
    try:
        with caplog.at_level(logging.ERROR, logger="policies.vec_env"), pytest.raises(ResetNeeded) as err:
            sub.step(np.zeros((2, 1), dtype=np.float32))  # stepping before reset: order_enforcing raises
        assert type(err.value) is ResetNeeded and "reset" in str(err.value)
        trace = caplog.text
        assert "vector-env worker 0 raised ResetNeeded" in trace
        assert "gymnasium/wrappers/common.py" in trace  # the wrapper that raised, in the worker's process
        assert "Traceback (most recent call last)" in trace
    finally:
        sub.close()
    with pytest.raises(TypeError, match="no_such_kwarg"):
        SubprocVecEnv("Pendulum-v1", 2, env_kwargs={"no_such_kwarg": 1}, n_workers=1)


def test_make_env_maps_other_action_bounds_to_unit_box():
    env = make_env("Pendulum-v1")  # ±2 N·m natively
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    with pytest.raises(ValueError, match="continuous Box"):
        make_env("CartPole-v1")


def test_split_steps_local_and_worker_envs_like_sync():
    """Envs 0-1 step in this process, 2-4 in one worker: the same numbers as all in-process; resets reach the
    right env on either side; a bad action in a local env raises and leaves the workers usable."""
    split, sync = SubprocVecEnv("biped", 5, n_workers=1, local_envs=2), SyncVecEnv("biped", 5)
    try:
        assert split.bounds == [2, 5] and len(split.local) == 2
        assert split.unwrapped is not None and split.unwrapped.robot_spec.robot_id == "biped"
        _assert_steps_like_sync(split, sync, 5, seed=1)
        for i in (1, 3):
            _, info = split.reset_one(i, seed=7, options={"params": {"motor_strength": 0.5}})
            assert info["params"]["motor_strength"] == 0.5
        bad = np.zeros((5, 4), dtype=np.float32)
        bad[0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            split.step(bad)
        obs = split.step(np.zeros((5, 4), dtype=np.float32))[0]  # the worker's reply to the bad step was drained
        assert obs.shape == (5, sync.observation_space.shape[0]) and np.isfinite(obs).all()
    finally:
        split.close()
        sync.close()


def test_split_needs_a_worker_env():
    with pytest.raises(ValueError, match="local_envs"):
        SubprocVecEnv("biped", 2, local_envs=2)


def test_training_on_split_envs_matches_sync_and_restores_threads(tmp_path):
    """The split vector env changes where envs step, not what is learned: the same seed gives the same progress
    rows as all-in-process envs. Updates may use more threads; acting goes back to ``torch_threads``."""
    import dataclasses
    import os

    import torch

    from policies.plotting import read_progress
    from policies.ppo import PPOConfig
    from policies.train import TrainConfig, train

    algo = PPOConfig(n_steps=64, batch_size=64, n_epochs=2, hidden=(16, 16), num_envs=3)
    cfg = TrainConfig(env="biped", algo="ppo", steps=384, num_envs=3, vec="sync", update_threads=2,
                      tensorboard=False, progress=False, algo_config=algo)  # fmt: skip
    assert dataclasses.replace(cfg, update_threads=0).resolved().update_threads == (os.cpu_count() or 1)
    train(cfg, tmp_path / "sync")
    train(dataclasses.replace(cfg, vec="split"), tmp_path / "split")
    assert torch.get_num_threads() == 1
    rows = [read_progress(tmp_path / d / "progress.csv") for d in ("sync", "split")]
    for key in ("global_step", "episodes", "return_mean", "distance_m"):
        assert rows[0][key] == rows[1][key], key
