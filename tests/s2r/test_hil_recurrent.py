"""Lockstep HIL with a recurrent bundle (an LSTM policy exported with explicit state): the controller carries the
state over the real pty and starts it over at every new emulator episode (SENSOR mode ``EPISODE_START``), so the
torques equal the demo's sim replay (episode 0) and the direct play of every episode with the same ONNX policy —
0 N·m apart, as for MLPs."""

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
    # episode 0: the demo's sim replay (a fresh env, the same ONNX policy from its initial state)
    hil = [np.array([s["tau"] for s in steps if s["ep"] == ep], dtype=np.float32) for ep in ended]
    replay = replay_episode(bundle, "s2r/Biped-v0", len(hil[0]), SEED)
    assert len(replay.torque_nm) == len(hil[0]) and float(np.max(np.abs(hil[0] - replay.torque_nm))) == 0.0
    # every episode: the emulator's env played directly, episode i seeded SEED + i in the same env object (as the
    # emulator does), the policy's state reset at each episode start — bit-identical torques
    direct = _direct_episodes(bundle, [SEED + ep for ep in ended], reset_state=True)
    for ep, (h, d) in enumerate(zip(hil, direct, strict=True)):
        assert len(h) == len(d) and float(np.max(np.abs(h - d))) == 0.0, ep
    assert np.abs(np.concatenate(hil)).max() > 1.0  # the policy drove the motors
    # the memory matters: without the reset at a new episode (the last state carried over) the torques differ
    carried = _direct_episodes(bundle, [SEED + ep for ep in ended[:2]], reset_state=False)
    assert not np.array_equal(carried[1][: len(hil[1])], hil[1][: len(carried[1])])


def _direct_episodes(bundle, seeds: list[int], reset_state: bool) -> list[np.ndarray]:
    """Torques of seeded episodes played one after the other in one env by one ONNX policy (its state reset at
    each episode start, or not)."""
    import gymnasium as gym

    policy, env, out = Policy(load_bundle(bundle)), gym.make("s2r/Biped-v0"), []
    limits = get_robot("biped").action.limits_nm
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            if reset_state:
                policy.reset_state()
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
