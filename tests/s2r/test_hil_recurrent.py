"""Lockstep HIL with a recurrent bundle (an LSTM policy exported with explicit state): the controller carries the
state over the real pty and starts it over at every new emulator episode (SENSOR mode ``EPISODE_START``), so the
torques equal the demo's sim replay of each episode with the same ONNX policy — 0 N·m apart, as for MLPs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deploy.bundle import Policy, load_bundle
from deploy.export import export_bundle, random_observations
from policies.recurrent_ppo import RecurrentGaussianActor, RecurrentPPOPolicy
from s2r.demo import replay_episode
from s2r.hil import HilConfig, run_hil
from sim.robots import get_robot

SEED = 3


def _rppo_policy() -> RecurrentPPOPolicy:
    """A small untrained recurrent policy whose torques are large enough to make the biped fall within a second
    or two (several short episodes in one HIL run)."""
    spec = get_robot("biped")
    torch.manual_seed(0)
    actor = RecurrentGaussianActor(spec.obs_dim, spec.action.n, 16, (16,), "tanh")
    with torch.no_grad():
        actor.body.head[-1].weight.mul_(300.0)
    arch = {"kind": "rppo", "obs_dim": spec.obs_dim, "act_dim": spec.action.n, "hidden": [16], "activation": "tanh",
            "lstm_hidden": 16}  # fmt: skip
    meta = {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": spec.obs_dim, "act_dim": spec.action.n,
            "actor_arch": arch, "config": {"algo": "rppo"}}  # fmt: skip
    return RecurrentPPOPolicy(actor, np.zeros(spec.obs_dim), np.ones(spec.obs_dim), 10.0, 1e-8, meta,
                              spec.obs_resolution).eval()  # fmt: skip


@pytest.mark.slow
def test_lockstep_hil_of_a_recurrent_bundle_equals_the_sim_replay_of_every_episode(tmp_path):
    spec = get_robot("biped")
    bundle = tmp_path / "bundle"
    export_bundle(_rppo_policy(), bundle, recorded_obs=random_observations(spec, 64, 1), n_random=200)
    assert [s["input"] for s in load_bundle(bundle).manifest["model"]["state"]] == ["lstm_h", "lstm_c"]
    n = 150
    report = run_hil(HilConfig(bundle=str(bundle), lockstep=True, max_steps=n, duration_s=120.0, seed=SEED,
                               watchdog_ms=2000, host_watchdog_ms=2000.0, out_dir=str(tmp_path / "hil"),
                               plots=False))  # fmt: skip
    assert report["steps"] == n and report["watchdog_trips"] == 0
    records = [json.loads(x) for x in (tmp_path / "hil" / "emulator.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["ev"] == "step"]
    ended = [r["ep"] for r in records if r["ev"] == "episode"]
    assert len(ended) >= 2, "the run should span several episodes to show the state starting over"
    deltas = []
    for ep in ended:
        hil_tau = np.array([s["tau"] for s in steps if s["ep"] == ep], dtype=np.float32)
        replay = replay_episode(bundle, "s2r/Biped-v0", len(hil_tau), SEED + ep)  # the demo's sim replay
        assert len(replay.torque_nm) == len(hil_tau)
        deltas.append(float(np.max(np.abs(hil_tau - replay.torque_nm))))
    assert max(deltas) == 0.0, deltas  # bit-identical torques, every episode
    assert np.abs(np.concatenate([[s["tau"] for s in steps]])).max() > 1.0  # the policy drove the motors
    # the memory matters: without the reset at the new episode (episode 0's final state carried into episode 1)
    # the torques differ from HIL's
    second = np.array([s["tau"] for s in steps if s["ep"] == ended[1]], dtype=np.float32)
    carried = _episodes_without_reset(bundle, [SEED + ended[0], SEED + ended[1]])
    assert not np.array_equal(carried[1][: len(second)], second)


def _episodes_without_reset(bundle, seeds: list[int]) -> list[np.ndarray]:
    """Torques of seeded episodes played one after the other by one ONNX policy whose state is never reset."""
    import gymnasium as gym

    policy, env, out = Policy(load_bundle(bundle)), gym.make("s2r/Biped-v0"), []
    limits = get_robot("biped").action.limits_nm
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            torques, done = [], False
            while not done:
                tau = np.clip(policy(obs).copy(), -limits, limits)
                obs, _, term, trunc, _ = env.unwrapped.step_torque(tau)  # type: ignore[attr-defined]
                torques.append(tau)
                done = term or trunc
            out.append(np.array(torques, dtype=np.float32))
    finally:
        env.close()
    return out
