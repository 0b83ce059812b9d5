"""Ray actors that act on their own (policies.ray_rollouts), on a real local Ray cluster (2 CPUs, started here):
PPO rollout segments give ``--vec sync``'s progress rows bit for bit (normalizer off) and still learn with a
running normalizer; asynchronous TD3 learns Pendulum, checkpoints and resumes; in both modes an actor whose
process is killed mid-run is restarted and the run goes on with its rollout / replay buffer intact."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from policies.plotting import read_progress  # noqa: E402
from policies.ppo import PPOConfig  # noqa: E402
from policies.td3 import TD3Config  # noqa: E402
from policies.train import TrainConfig, train  # noqa: E402
from sim.errors import UserError  # noqa: E402

PPO_SMALL = PPOConfig(n_steps=64, batch_size=64, n_epochs=2, hidden=(16, 16), num_envs=4, normalize_obs=False)
PPO_KEYS = ("global_step", "episodes", "return_mean", "distance_m", "loss/policy", "loss/value", "adr/npd")


def test_ray_mode_needs_ray_and_the_right_algo():
    with pytest.raises(UserError, match="--ray-mode segments needs --ray"):
        TrainConfig(algo="ppo", ray_mode="segments")
    with pytest.raises(UserError, match="--ray-mode async is for td3 and ddpg, not ppo"):
        TrainConfig(algo="ppo", ray="local", ray_mode="async")
    with pytest.raises(UserError, match="--ray-mode must be one of lockstep, segments, async, got 'fast'"):
        TrainConfig(ray="local", ray_mode="fast")


@pytest.mark.slow
def test_ppo_segments_match_sync_and_survive_a_killed_actor(ray_cluster, tmp_path, caplog, same_progress,
                                                             kill_an_actor_when):  # fmt: skip
    """PPO + ADR on the biped, 4 envs (2 in the driver, 2 in the actor), normalizer off: the same progress rows as
    --vec sync, bit for bit; then the same run with the actor's process SIGKILLed after the first update."""
    cfg = TrainConfig(env="biped", algo="ppo", steps=64 * 4 * 4, num_envs=4, vec="sync", adr=True, seed=3,
                      tensorboard=False, progress=False, update_threads=1, algo_config=PPO_SMALL)  # fmt: skip
    seg = dataclasses.replace(cfg, vec="auto", ray="local", ray_mode="segments")
    train(cfg, tmp_path / "sync")
    train(seg, tmp_path / "seg")
    same_progress(tmp_path / "sync", tmp_path / "seg", PPO_KEYS)
    killed: list[int] = []
    thread = kill_an_actor_when("RolloutShard", tmp_path / "killed" / "progress.csv", 2, killed)  # header + row 1
    with caplog.at_level(logging.WARNING, logger="policies.ray_vec"):
        summary = train(seg, tmp_path / "killed")
    thread.join()
    assert killed, "the actor's process was not found"
    assert summary["global_step"] == cfg.steps
    assert "restarted; its envs replayed" in caplog.text
    same_progress(tmp_path / "sync", tmp_path / "killed", PPO_KEYS)  # no transition lost, invented or changed


@pytest.mark.slow
def test_ppo_segments_with_a_running_normalizer_learn_like_sync(ray_cluster, tmp_path):
    """With the normalizer on, the actors act on the rollout start's statistics, so the numbers differ from --vec
    sync (policies.ray_rollouts): over 3 seeds of PPO on InvertedPendulum-v5 (8k steps), every segments run
    learns (random actions keep the pole up 6 steps on average, 34 at most in 800 episodes) and the mean final
    return is within the seed spread of sync's; the normalizer saw the same number of observations."""
    pc = PPOConfig(n_steps=256, batch_size=256, n_epochs=10, lr=1e-3, hidden=(32, 32), num_envs=4, gamma=0.98,
                   normalize_reward=False)  # fmt: skip
    returns: dict[str, list[float]] = {"sync": [], "seg": []}
    for seed in range(3):
        cfg = TrainConfig(env="InvertedPendulum-v5", algo="ppo", steps=8192, num_envs=4, vec="sync", seed=seed,
                          eval_every=0, update_threads=1, tensorboard=False, progress=False, algo_config=pc)  # fmt: skip
        for name, c in (("sync", cfg), ("seg", dataclasses.replace(cfg, vec="auto", ray="local", ray_mode="segments"))):
            returns[name].append(train(c, tmp_path / f"{name}{seed}")["return_mean"])
        counts = [torch.load(tmp_path / f"{n}{seed}" / "checkpoints" / "latest.pt", weights_only=False)["normalizer"]
                  ["count"] for n in ("sync", "seg")]  # fmt: skip
        assert counts == [4 + 8192] * 2
    assert min(returns["seg"]) > 25, returns
    spread = max(np.std(returns["sync"]), np.std(returns["seg"]), 10.0)
    assert abs(np.mean(returns["seg"]) - np.mean(returns["sync"])) < 2 * spread, returns


TD3_PENDULUM = TD3Config(gamma=0.98, learning_starts=500, batch_size=64, buffer_size=20_000, hidden=(64, 64),
                         lr_actor=2e-3, lr_critic=2e-3, tau=0.01)  # fmt: skip


def _pendulum_transitions_are_real(replay: dict, num_envs: int) -> None:
    """Every stored transition is one Pendulum-v1 step of the action stored with it (reward and dynamics from
    Gymnasium's equations), and each env's transitions chain: next_obs of one is obs of the next, within the
    200-step episodes. A lost, repeated, invented or misplaced transition breaks one of these."""
    obs, act, rew, nxt = (replay[k].double().numpy() for k in ("obs", "act", "rew", "next_obs"))
    th, thdot, u = np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2], 2.0 * act[:, 0]  # actions in [-1, 1] → ±2 N·m
    cost = ((th + np.pi) % (2 * np.pi) - np.pi) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
    np.testing.assert_allclose(rew, -cost, atol=1e-4)
    new_thdot = np.clip(thdot + (3 * 10.0 / 2 * np.sin(th) + 3.0 * u) * 0.05, -8, 8)
    np.testing.assert_allclose(nxt[:, 2], new_thdot, atol=1e-4)
    rows = np.arange(len(obs) - num_envs)
    chained = (rows // num_envs + 1) % 200 != 0  # the vector step after is not an episode's first
    np.testing.assert_array_equal(nxt[rows[chained]], obs[rows[chained] + num_envs])


@pytest.mark.slow
def test_async_td3_learns_pendulum_checkpoints_and_resumes(ray_cluster, tmp_path):
    """6000 env steps of asynchronous TD3 (2 envs in an actor, weights every 50 steps): the last episodes' mean
    return beats -600, which uniformly random actions never reach (about -1200 ± 300 per episode); the run
    folder is a normal one and --resume continues it."""
    from policies.train import resume_config

    cfg = TrainConfig(env="Pendulum-v1", algo="td3", steps=6000, num_envs=2, seed=0, log_every=1000, eval_every=0,
                      stats_window=6, checkpoint_every=2000, tensorboard=False, progress=False, ray="local",
                      ray_mode="async", ray_sync_every=50, algo_config=TD3_PENDULUM)  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    assert summary["global_step"] == 6000
    assert summary["return_mean"] > -600, summary
    replay = torch.load(tmp_path / "run" / "checkpoints" / "replay.pt", weights_only=True)
    assert len(replay["rew"]) == 6000
    _pendulum_transitions_are_real(replay, 2)
    resumed = train(resume_config(tmp_path / "run", steps=6400), tmp_path / "run", resume=True)
    assert resumed["global_step"] == 6400
    rows = read_progress(tmp_path / "run" / "progress.csv")
    assert rows["global_step"][-1] == 6400 and rows["global_step"][:6] == [1000.0 * k for k in range(1, 7)]


@pytest.mark.slow
def test_async_td3_goes_on_when_an_actor_is_killed(ray_cluster, tmp_path, caplog, kill_an_actor_when):
    """The actor's process is SIGKILLed after the first progress row; Ray restarts it, its envs are replayed to
    the last consumed step, and every transition in the replay buffer is still a real Pendulum step, chained."""
    cfg = TrainConfig(env="Pendulum-v1", algo="td3", steps=2000, num_envs=2, seed=1, log_every=400, eval_every=0,
                      tensorboard=False, progress=False, ray="local", ray_mode="async", ray_sync_every=50,
                      algo_config=dataclasses.replace(TD3_PENDULUM, updates_per_step=0.25))  # fmt: skip
    killed: list[int] = []
    thread = kill_an_actor_when("RolloutShard", tmp_path / "run" / "progress.csv", 2, killed)
    with caplog.at_level(logging.WARNING, logger="policies.ray_vec"):
        summary = train(cfg, tmp_path / "run")
    thread.join()
    assert killed and summary["global_step"] == 2000
    assert "restarted; its envs replayed" in caplog.text
    replay = torch.load(tmp_path / "run" / "checkpoints" / "replay.pt", weights_only=True)
    assert len(replay["rew"]) == 2000
    _pendulum_transitions_are_real(replay, 2)
