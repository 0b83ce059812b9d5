"""Learning from a scripted expert: the BC loss, the DAgger warm start and BC term composed with PPOAgent by
make_agent, ignored inputs, state round trip, and the knob's expert wired through `s2r train`."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pytest
import torch

import sim
from policies.agent import make_agent
from policies.checkpoint import load_checkpoint
from policies.imitation import BCTerm, DAggerWarmStart, bc_loss, first_linear, obs_indices
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig, ppo_preset
from policies.train import TrainConfig, train
from sim.robots import KNOB_SPEC


def toy_expert(obs: np.ndarray) -> np.ndarray:
    """A smooth expert of the first two inputs; input 2 is a distractor the actor is told to ignore."""
    return np.clip(np.array([0.5 * obs[0] - 0.8 * obs[1]], dtype=np.float32), -1.0, 1.0)


TOY = PPOConfig(n_steps=16, batch_size=32, n_epochs=2, hidden=(32, 32), expert="toy", imitation_steps=3000,
                imitation_expert_steps=1000, imitation_iter_steps=1000, imitation_epochs=20, bc_coef=5.0,
                actor_ignores=(2,), log_std_init=-2.0)  # fmt: skip


def _agent(cfg: PPOConfig = TOY, seed: int = 3) -> DAggerWarmStart:
    torch.manual_seed(seed)
    agent = make_agent(cfg, 3, 1, ObsNormalizer(3), num_envs=4, total_steps=10_000, seed=seed, expert=toy_expert)
    assert isinstance(agent, DAggerWarmStart) and isinstance(agent.agent, PPOAgent)
    assert [type(t) for t in agent.agent.extra_losses] == [BCTerm]  # bc_coef > 0: the BC term is plugged in
    return agent


def _drive(agent: DAggerWarmStart, rng: np.random.Generator, steps: int) -> list[dict]:
    """Feed random observations (no env: the agent's bookkeeping is what is tested); returns update outputs.
    At every step ``update_due`` (what the training loop gives the update threads by) says whether ``update``
    trains."""
    outs = []
    obs = rng.normal(size=(4, 3)).astype(np.float32)
    for _ in range(steps // 4):
        expert_drives = agent.phase == "expert"
        act = agent.act(obs)
        if expert_drives:
            assert np.array_equal(act, np.stack([toy_expert(o) for o in obs]))  # the expert drives first
        nxt = rng.normal(size=(4, 3)).astype(np.float32)
        agent.observe(obs, act, -np.abs(act[:, 0]), nxt, np.zeros(4, bool), np.zeros(4, bool))
        agent.agent.normalizer.update(nxt)
        due = agent.update_due
        out = agent.update()
        assert (out is not None) == due
        if out:
            outs.append(out)
        obs = nxt
    return outs


def _policy_error(agent: DAggerWarmStart, obs: np.ndarray) -> float:
    """Mean absolute difference of the deterministic policy to the expert."""
    mean = agent.act(obs, deterministic=True)
    return float(np.abs(mean - np.stack([toy_expert(o) for o in obs])).mean())


def test_bc_loss_matches_hand_computed():
    mean = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    target = torch.tensor([[0.0, -1.0], [1.0, 0.5]])
    # squared errors 0.25, 0, 1, 0.25 → mean 0.375
    assert bc_loss(mean, target).item() == pytest.approx(0.375)


def test_dagger_fits_the_expert_and_the_ignored_input_has_no_effect():
    agent = _agent()
    rng = np.random.default_rng(0)
    test_obs = rng.normal(size=(500, 3)).astype(np.float32)
    before = _policy_error(agent, test_obs)
    outs = _drive(agent, rng, TOY.imitation_steps)
    assert [k for o in outs for k in o] == ["loss/imitation"] * 3  # a refit every 1000 steps, the last one longer
    assert agent.dagger is None and not agent.imitating  # the data is dropped once PPO takes over
    assert agent.agent.t == 0  # no PPO rollout was collected during the warm start
    assert agent.phase == "learn" and agent.agent.steps_seen == TOY.imitation_steps  # the steps count for PPO's LR
    # PPO fine-tunes a policy fitted to these input statistics: they must not drift under it
    norm = agent.agent.normalizer
    assert norm.frozen
    mean = norm.mean.copy()
    norm.update(np.full((8, 3), 50.0))
    assert np.array_equal(norm.mean, mean)
    resumed = _agent(seed=4)
    resumed.load_state_dict(agent.state_dict())
    assert resumed.agent.normalizer.frozen and resumed.dagger is None
    after = _policy_error(agent, test_obs)
    assert after < 0.05 and before > 0.3
    w = first_linear(agent.actor.net).weight
    assert torch.count_nonzero(w[:, 2]) == 0 and torch.count_nonzero(w[:, :2]) > 0
    shifted = test_obs.copy()
    shifted[:, 2] += 100.0
    with torch.no_grad():
        a = agent.actor.deterministic(torch.as_tensor(norm(test_obs)))
        b = agent.actor.deterministic(torch.as_tensor(norm(shifted)))
    assert torch.equal(a, b)


def test_ppo_with_bc_term_keeps_the_ignored_columns_zero_and_logs_bc():
    agent = _agent()
    rng = np.random.default_rng(1)
    _drive(agent, rng, TOY.imitation_steps)
    outs = _drive(agent, rng, 4 * TOY.n_steps * 10)  # ten PPO updates
    assert len(outs) == 10 and all("loss/bc" in o and "loss/policy" in o for o in outs)
    assert torch.count_nonzero(first_linear(agent.actor.net).weight[:, 2]) == 0
    # the BC term (weight 5) holds the policy near the expert while PPO chases a reward it can't explain
    assert _policy_error(agent, rng.normal(size=(500, 3)).astype(np.float32)) < 0.1


def test_state_roundtrip_mid_dagger_continues_identically():
    rng = np.random.default_rng(2)
    a = _agent()
    _drive(a, rng, 1600)  # in the learner-driven part of the warm start, between refits
    assert a.imitating and a.dagger is not None and a.dagger.size == 1600
    buf = io.BytesIO()
    torch.save({"agent": a.state_dict(), "norm": a.agent.normalizer.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = _agent(seed=9)
    b.load_state_dict(saved["agent"])
    b.agent.normalizer.load_state_dict(saved["norm"])
    assert b.dagger is not None and b.dagger.size == 1600 and b.next_fit == a.next_fit
    assert not b.agent.normalizer.frozen  # still collecting: the statistics follow the data
    outs = [_drive(agent, np.random.default_rng(7), 800) for agent in (a, b)]
    assert outs[0] == outs[1] and len(outs[0]) == 1
    for pa, pb in zip(a.actor.parameters(), b.actor.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_config_and_lookup_errors_name_the_fix():
    with pytest.raises(ValueError, match="--ppo-expert"):
        PPOConfig(bc_coef=1.0)
    with pytest.raises(ValueError, match="gaussian"):
        PPOConfig(expert="knob_gait", distribution="beta")
    with pytest.raises(ValueError, match="config names expert"):
        make_agent(TOY, 3, 1, ObsNormalizer(3), num_envs=4, total_steps=100)
    with pytest.raises(ValueError, match=r"index 5 is not an observation index in \[0, 3\)"):
        make_agent(dataclasses.replace(TOY, actor_ignores=(5,)), 3, 1, ObsNormalizer(3), 4, 100, expert=toy_expert)
    with pytest.raises(ValueError, match=r"no scripted expert 'knob_gait' for biped; experts: \(none\)"):
        sim.get_expert("knob_gait", "biped")
    with pytest.raises(ValueError, match="no scripted expert 'nope'"):
        sim.get_expert("nope", "knob")


def test_knob_training_with_the_gait_expert(tmp_path):
    """The knob's preset path end to end at toy scale: the expert drives (and solves) the first episodes, DAgger
    refits, PPO with the BC term takes over, and the checkpoint's actor ignores the previous-action inputs."""
    preset = ppo_preset("s2r/Knob-v0")
    assert preset.expert == "knob_gait" and preset.actor_ignores[0] == "prev_action_finger0_base"
    names = [f.name for f in KNOB_SPEC.obs_fields]
    assert obs_indices(preset.actor_ignores, names, 20) == (16, 17, 18, 19)  # the names resolve to the layout
    assert obs_indices((16, "17", "knob_sin"), names, 20) == (16, 17, 8)  # integers of older configs still load
    with pytest.raises(ValueError, match="no observation field 'prev_action'; fields: finger0_base_angle"):
        obs_indices(("prev_action",), names, 20)
    cfg = dataclasses.replace(preset, imitation_steps=2400, imitation_expert_steps=1600, imitation_iter_steps=800,
                              imitation_epochs=2, n_steps=50)  # fmt: skip
    summary = train(TrainConfig(env="knob", algo="ppo", steps=2800, vec="sync", num_envs=8, tensorboard=False,
                                progress=False, algo_config=cfg), tmp_path / "run")  # fmt: skip
    assert summary["global_step"] == 2800
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    expert_rows = [r for r in rows if float(r["global_step"]) <= 1600 and r["success_rate"]]
    assert expert_rows and all(float(r["success_rate"]) == 1.0 for r in expert_rows)  # the expert's episodes
    assert any(r["loss/imitation"] for r in rows) and rows[-1]["loss/bc"]
    ckpt, _ = load_checkpoint(tmp_path / "run")
    w = ckpt["actor"]["net.0.weight"]
    assert torch.count_nonzero(w[:, 16:20]) == 0 and torch.count_nonzero(w[:, :16]) > 0
