"""The Ray vector env on a real local Ray cluster (2 CPUs, started here): it steps like in-process envs, an env's
exception keeps its type, an actor killed mid-episode is restarted and replayed exactly, and PPO and TD3 trained
through it give the same progress rows as ``--vec sync``, also when an actor is killed mid-run."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from policies.ppo import PPOConfig  # noqa: E402
from policies.ray_vec import RayVecEnv  # noqa: E402
from policies.td3 import TD3Config  # noqa: E402
from policies.train import TrainConfig, train  # noqa: E402
from policies.vec_env import SyncVecEnv  # noqa: E402


def test_steps_like_sync_and_an_actor_killed_mid_episode_is_replayed_exactly(ray_cluster, caplog):
    """Env 0 in this process, envs 1-2 and 3-4 in two actors: seeded resets with physical parameters and random
    steps match in-process envs bit for bit, before and after actor 1's process is SIGKILLed mid-episode."""
    n = 5
    rv, sync = RayVecEnv("biped", n, address="local", n_actors=2, local_envs=1), SyncVecEnv("biped", n)
    try:
        assert rv.bounds == [1, 3, 5]
        for i in range(n):
            opts = {"params": {"motor_strength": 0.8 + 0.05 * i}}
            o, info = rv.reset_one(i, seed=i, options=opts)
            assert np.array_equal(o, sync.reset_one(i, seed=i, options=opts)[0])
            assert info["params"]["motor_strength"] == pytest.approx(0.8 + 0.05 * i)
        rng = np.random.default_rng(0)
        for t in range(60):
            if t == 30:
                os.kill(ray.get(rv.actors[1].pid.remote()), signal.SIGKILL)
            a = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
            got, want = rv.step(a), sync.step(a)
            for x, y in zip(got[:4], want[:4], strict=True):
                assert np.array_equal(x, y), t
            for i in np.flatnonzero(got[2] | got[3]):  # unseeded resets: the env's own RNG, also after a replay
                assert np.array_equal(rv.reset_one(int(i))[0], sync.reset_one(int(i))[0])
        assert rv.restarts == 1 and rv.deaths == [0, 1]
        assert "replayed" in caplog.text
        with pytest.raises(ValueError, match="NaN"):  # the env's own exception type, from the actor
            rv.step(np.full((n, 4), np.nan, dtype=np.float32))
    finally:
        rv.close()
        sync.close()


def test_info_keys_travel_every_step_from_the_actors(ray_cluster):
    """``info_keys=("privileged",)`` (an asymmetric critic's input): every step's info holds the key, from the local
    env and the actor's alike, equal to the in-process envs'."""
    kw = {"privileged": True}  # the envs report it only when asked
    rv = RayVecEnv("knob", 2, env_kwargs=kw, address="local", n_actors=1, local_envs=1, info_keys=("privileged",))
    sync = SyncVecEnv("knob", 2, env_kwargs=kw, info_keys=("privileged",))
    try:
        for i in range(2):
            assert np.array_equal(rv.reset_one(i, seed=i)[1]["privileged"], sync.reset_one(i, seed=i)[1]["privileged"])
        for _ in range(3):
            a = np.full((2, 4), 0.3, np.float32)
            got, want = rv.step(a)[4], sync.step(a)[4]
            assert all(np.array_equal(g["privileged"], w["privileged"]) for g, w in zip(got, want, strict=True))
    finally:
        rv.close()
        sync.close()


def test_an_actor_error_keeps_its_type_and_traceback(ray_cluster, caplog):
    from gymnasium.error import ResetNeeded

    rv = RayVecEnv("Pendulum-v1", 2, address="local", n_actors=1, local_envs=0)
    try:
        with caplog.at_level(logging.ERROR, logger="policies.vec_env"), pytest.raises(ResetNeeded):
            rv.step(np.zeros((2, 1), dtype=np.float32))  # stepping before reset
        assert "Ray env actor 0 raised ResetNeeded" in caplog.text and "wrappers/common.py" in caplog.text
    finally:
        rv.close()
    with pytest.raises(TypeError, match="no_such_kwarg"):  # an env the actor cannot build: no restart loop
        RayVecEnv("Pendulum-v1", 1, {"no_such_kwarg": 1}, address="local")


PPO_SMALL = PPOConfig(n_steps=64, batch_size=64, n_epochs=2, hidden=(16, 16), num_envs=4)
TD3_SMALL = TD3Config(learning_starts=150, batch_size=32, buffer_size=5_000, hidden=(16, 16), normalize_obs=True)


@pytest.mark.slow
def test_ppo_and_td3_through_ray_local_match_sync(ray_cluster, tmp_path, same_progress):
    """Same seed, same progress rows (returns, episodes, ADR ranges, losses) as all envs in this process."""
    ppo = TrainConfig(env="biped", algo="ppo", steps=512, num_envs=4, vec="sync", adr=True, seed=3,
                      tensorboard=False, progress=False, update_threads=1, algo_config=PPO_SMALL)  # fmt: skip
    td3 = TrainConfig(env="biped", algo="td3", steps=400, num_envs=1, vec="sync", log_every=100, seed=1,
                      tensorboard=False, progress=False, algo_config=TD3_SMALL)  # fmt: skip
    for name, cfg in (("ppo", ppo), ("td3", td3)):
        train(cfg, tmp_path / f"{name}-sync")
        train(dataclasses.replace(cfg, vec="auto", ray="local"), tmp_path / f"{name}-ray")
    same_progress(tmp_path / "ppo-sync", tmp_path / "ppo-ray",
                   ("global_step", "episodes", "return_mean", "distance_m", "loss/policy", "adr/npd"))  # fmt: skip
    same_progress(tmp_path / "td3-sync", tmp_path / "td3-ray", ("global_step", "episodes", "return_mean", "loss/critic"))
    assert ray.is_initialized()  # the run used this test's cluster and left it running


@pytest.mark.slow
def test_training_goes_on_when_an_actor_is_killed_mid_run(ray_cluster, tmp_path, caplog, same_progress,
                                                           kill_an_actor_when):  # fmt: skip
    """A thread SIGKILLs an env actor's process after the first PPO update; Ray restarts it, the run finishes,
    and its progress rows are those of an uninterrupted in-process run: no transition lost or invented."""
    cfg = TrainConfig(env="biped", algo="ppo", steps=64 * 4 * 8, num_envs=4, vec="sync", seed=5,
                      tensorboard=False, progress=False, update_threads=1, algo_config=PPO_SMALL)  # fmt: skip
    killed: list[int] = []
    thread = kill_an_actor_when("EnvShard", tmp_path / "ray" / "progress.csv", 2, killed)  # header + first row
    with caplog.at_level(logging.WARNING, logger="policies.ray_vec"):
        summary = train(dataclasses.replace(cfg, vec="auto", ray="local"), tmp_path / "ray")
    thread.join()
    assert killed, "the env actor's process was not found"
    assert summary["global_step"] == cfg.steps
    assert "restarted; its envs replayed" in caplog.text
    train(cfg, tmp_path / "sync")
    same_progress(tmp_path / "sync", tmp_path / "ray", ("global_step", "episodes", "return_mean", "loss/policy"))


def test_controller_and_train_imports_do_not_load_ray():
    """Ray is optional: `s2r run`, deploy and a non-Ray training import none of it."""
    code = ("import sys; from s2r.cli import build_parser; build_parser('run'); build_parser('train'); "
            "import deploy, policies.train, policies.vec_env; print('ray' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_unreachable_or_malformed_address_is_a_one_line_error():
    from policies.ray_vec import _check_reachable

    with pytest.raises(ValueError, match="cannot reach a Ray cluster at 127.0.0.1:1.*ray start --head"):
        _check_reachable("127.0.0.1:1")
    with pytest.raises(ValueError, match="HOST:PORT"):
        _check_reachable("nonsense")
