"""Vector envs: subprocess workers (several envs each) match in-process envs step for step; per-env reset
options reach the right sub-env; a worker's exception surfaces as a one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from policies.vec_env import SubprocVecEnv, SyncVecEnv, make_env


def test_subproc_matches_sync_and_resets_one_env_with_options():
    sub, sync = SubprocVecEnv("biped", 3, n_workers=2), SyncVecEnv("biped", 3)  # workers own 1 and 2 envs
    try:
        assert sub.bounds == [0, 2, 3] or sub.bounds == [0, 1, 3]
        for i in range(3):
            assert np.array_equal(sub.reset_one(i, seed=i)[0], sync.reset_one(i, seed=i)[0])
        rng = np.random.default_rng(0)
        for _ in range(5):
            a = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
            for x, y in zip(sub.step(a)[:4], sync.step(a)[:4], strict=True):
                assert np.array_equal(x, y)
        _, info = sub.reset_one(2, seed=7, options={"params": {"motor_strength": 0.5}})
        assert info["params"]["motor_strength"] == 0.5
        with pytest.raises(RuntimeError, match="NaN"):
            sub.step(np.full((3, 4), np.nan, dtype=np.float32))
    finally:
        sub.close()
        sync.close()


def test_make_env_maps_other_action_bounds_to_unit_box():
    env = make_env("Pendulum-v1")  # ±2 N·m natively
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    with pytest.raises(ValueError, match="continuous Box"):
        make_env("CartPole-v1")
