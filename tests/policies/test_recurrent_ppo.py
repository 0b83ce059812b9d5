"""Recurrent PPO: sequence math (chunks, unrolls with episode resets), the rollout's stored states reproduce the
acting policy, it learns a task that needs memory where PPO cannot, exact save/load, CLI train → resume → export
with whole-episode parity."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from deploy.bundle import Policy, load_bundle
from deploy.export import export_bundle
from policies.checkpoint import load_checkpoint, load_inference_policy
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig
from policies.recurrent_ppo import (
    RecurrentNet,
    RecurrentPPOAgent,
    RecurrentPPOConfig,
    RecurrentPPOPolicy,
    _chunks,
    rppo_preset,
)
from sim.errors import UserError


def test_chunks_cut_each_env_into_consecutive_steps():
    x = torch.arange(12).reshape(6, 2)  # x[t, n] = 2t + n
    c = _chunks(x, 3)  # [L=3, K=4]: chunk k = j·N + n holds steps 3j..3j+2 of env n
    assert c.shape == (3, 4)
    assert c[:, 0].tolist() == [0, 2, 4] and c[:, 1].tolist() == [1, 3, 5]
    assert c[:, 2].tolist() == [6, 8, 10] and c[:, 3].tolist() == [7, 9, 11]


def test_unroll_equals_stepping_with_the_state_zeroed_at_episode_starts():
    torch.manual_seed(0)
    net = RecurrentNet(3, 2, 8, (8,), "tanh", out_gain=1.0)
    L, B = 10, 4
    x = torch.randn(L, B, 3)
    starts = torch.zeros(L, B)
    starts[3, 1] = starts[7, 2] = starts[7, 0] = 1.0
    h0, c0 = torch.randn(B, 8), torch.randn(B, 8)
    with torch.no_grad():
        got = net.unroll(x, starts, (h0, c0))
        state, want = (h0, c0), []
        for t in range(L):
            if t:
                keep = (1 - starts[t])[:, None]
                state = (state[0] * keep, state[1] * keep)
            y, state = net.step(x[t], state)
            want.append(y)
    assert torch.allclose(got, torch.stack(want), atol=1e-6)
    with torch.no_grad():  # the memory matters: without the resets the outputs differ after them
        assert not torch.allclose(got, net.unroll(x, torch.zeros(L, B), (h0, c0)), atol=1e-4)


def _agent(seed: int = 0, **kw) -> RecurrentPPOAgent:
    torch.manual_seed(seed)
    cfg = RecurrentPPOConfig(**{"n_steps": 16, "batch_size": 16, "n_epochs": 2, "seq_len": 4, "lstm_hidden": 8,
                                "hidden": (8,), **kw})  # fmt: skip
    return RecurrentPPOAgent(cfg, 3, 2, ObsNormalizer(3), num_envs=2, total_steps=10_000, seed=5)


def _drive(agent, rng, steps: int, obs=None):
    obs = rng.normal(size=(2, 3)).astype(np.float32) if obs is None else obs
    outs = []
    for _ in range(steps):
        act = agent.act(obs)
        nxt = rng.normal(size=(2, 3)).astype(np.float32)
        end = rng.random(2) < 0.15
        agent.observe(obs, act, rng.normal(size=2), nxt, end & (rng.random(2) < 0.5), end)
        agent.normalizer.update(nxt)
        outs.append(agent.update())
        obs = nxt
    return obs, [o for o in outs if o]


def test_stored_states_reproduce_the_acting_policy_and_memory_resets_at_episode_ends():
    """Recomputing the rollout from each chunk's stored initial state (with the resets) gives back the
    log-probabilities and values recorded while acting: the states are stored and reset correctly."""
    agent = _agent()
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, 3)).astype(np.float32)
    for _ in range(16):
        act = agent.act(obs)
        end = np.array([False, rng.random() < 0.3])
        agent.observe(obs, act, np.zeros(2), obs, np.zeros(2, bool), end)
        if end[1]:
            assert agent.starts.tolist() == [0.0, 1.0] and float(agent.actor_state[0][1].abs().sum()) == 0.0
    b, L = agent.buf, agent.cfg.seq_len
    assert b["start"][0].tolist() == [1.0, 1.0] and b["start"][1:, 1].sum() == b["end"][:-1, 1].sum()
    with torch.no_grad():
        mean = agent.actor.body.unroll(_chunks(b["obs"], L), _chunks(b["start"], L),
                                       (_chunks(b["actor_h"], L)[0], _chunks(b["actor_c"], L)[0]))  # fmt: skip
        logp, _ = agent.actor.log_prob_entropy(mean, _chunks(b["raw_act"], L))
        v = agent.critic.unroll(_chunks(b["critic_obs"], L), _chunks(b["start"], L),
                                (_chunks(b["critic_h"], L)[0], _chunks(b["critic_c"], L)[0]))[..., 0]  # fmt: skip
    assert torch.allclose(logp, _chunks(b["logp"], L), atol=1e-5)
    assert torch.allclose(v, _chunks(b["value"], L), atol=1e-5)


def test_state_roundtrip_continues_identically():
    """A learner loaded from its saved state, memory of the episodes in progress included, acts and updates
    bit-identically (a resumed run then starts new episodes: reset_memory)."""
    rng = np.random.default_rng(1)
    a = _agent()
    obs, _ = _drive(a, rng, 40)
    while a.t:
        obs, _ = _drive(a, rng, 1, obs)
    assert float(a.actor_state[0].abs().sum()) > 0
    buf = io.BytesIO()
    torch.save({"agent": a.state_dict(), "norm": a.normalizer.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = _agent(seed=9)
    b.load_state_dict(saved["agent"])
    b.normalizer.load_state_dict(saved["norm"])
    torch_rng, results = torch.get_rng_state(), []
    for agent in (a, b):
        torch.set_rng_state(torch_rng)
        results.append(_drive(agent, np.random.default_rng(2), 16, obs))
    assert results[0][0].tolist() == results[1][0].tolist() and results[0][1] == results[1][1]
    b.reset_memory()
    assert float(b.actor_state[0].abs().sum()) == 0.0 and b.starts.tolist() == [1.0, 1.0]


class CueEnv(gym.Env):
    """A cue (±1) visible in the first observation only; every step pays +1 when the action's sign matches it and
    −1 otherwise, for ``LENGTH - 1`` steps. Without memory the best expected return is 1 (the first action sees
    the cue, the others are coin flips); with it, ``LENGTH - 1``."""

    LENGTH = 4
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = float(self.np_random.choice([-1.0, 1.0])), 0
        return np.array([self.cue, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(np.sign(action[0]) == self.cue) * 2.0 - 1.0
        return np.zeros(2, np.float32), reward, False, self.t >= self.LENGTH - 1, {}


def _train_on_cue(agent, steps: int, n: int = 8) -> float:
    envs = [CueEnv() for _ in range(n)]
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)])
    returns, ep = [], np.zeros(n)
    for _ in range(steps // n):
        act = agent.act(obs)
        out = [e.step(a) for e, a in zip(envs, act, strict=True)]
        nxt = np.stack([o[0] for o in out])
        rew, trunc = np.array([o[1] for o in out]), np.array([o[3] for o in out])
        agent.observe(obs, act, rew, nxt, np.zeros(n, bool), trunc)
        agent.update()
        ep += rew
        for i in np.flatnonzero(trunc):
            returns.append(ep[i])
            ep[i] = 0.0
            nxt[i] = envs[i].reset()[0]
        obs = nxt
    return float(np.mean(returns[-40:]))


@pytest.mark.slow
def test_learns_a_task_that_needs_memory_where_ppo_cannot():
    common = {"n_steps": 32, "batch_size": 64, "n_epochs": 4, "lr": 3e-3, "normalize_obs": False,
              "normalize_reward": False, "gamma": 0.9, "hidden": (16,)}  # fmt: skip
    torch.manual_seed(0)
    rppo = RecurrentPPOAgent(RecurrentPPOConfig(**common, seq_len=8, lstm_hidden=16), 2, 1, ObsNormalizer(2),
                             num_envs=8, total_steps=4096, seed=0)  # fmt: skip
    torch.manual_seed(0)
    ppo = PPOAgent(PPOConfig(**common), 2, 1, ObsNormalizer(2), num_envs=8, total_steps=4096, seed=0)
    r_rppo, r_ppo = _train_on_cue(rppo, 4096), _train_on_cue(ppo, 4096)
    assert r_rppo > 2.5, r_rppo  # of 3; without memory at best 1
    assert r_ppo < 2.0, r_ppo


def test_actor_ignores_keeps_an_input_out_of_the_actor_through_updates_and_a_warm_start():
    """``actor_ignores`` (e.g. the biped's lidar rays) zeroes the actor LSTM's input weights on those inputs and
    keeps them zero through PPO updates and after a warm start loads weights that use them: the actor's output
    does not depend on them, while the critic still reads them."""
    agent = _agent(actor_ignores=(2,))
    w = agent.actor.body.lstm.weight_ih_l0.detach()  # a view: it follows the updates
    assert float(w[:, 2].abs().sum()) == 0.0 and float(w[:, :2].abs().sum()) > 0
    _drive(agent, np.random.default_rng(1), 16)
    assert agent.n_updates == 1 and float(w[:, 2].abs().sum()) == 0.0
    with torch.no_grad():
        w[:, 2] = 1.0  # what loading a policy that saw the input does
    agent.mask_ignored_inputs()
    x = torch.zeros(1, 3)
    state = (torch.zeros(1, 8), torch.zeros(1, 8))
    with torch.no_grad():
        y0, _ = agent.actor.body.step(x, state)
        y1, _ = agent.actor.body.step(x + torch.tensor([0.0, 0.0, 5.0]), state)
        v0, _ = agent.critic.step(x, state)
        v1, _ = agent.critic.step(x + torch.tensor([0.0, 0.0, 5.0]), state)
    assert torch.equal(y0, y1) and not torch.equal(v0, v1)
    with pytest.raises(UserError, match="not an observation index"):
        _agent(actor_ignores=(7,))


def test_init_log_std_sets_a_fine_tunes_exploration_and_needs_a_warm_start():
    """--init-log-std: a fine-tune's exploration is set after the warm start (a run's checkpoint carries its own);
    without --init-policy, or for TD3, it is a user error."""
    from policies.train import TrainConfig
    from policies.warm_start import set_log_std

    agent = _agent()
    set_log_std(agent.actor, -3.0)
    assert torch.equal(agent.actor.log_std.detach(), torch.full((2,), -3.0))
    for bad in ({"algo": "rppo"}, {"algo": "td3", "init_policy": "runs/x"}):
        with pytest.raises(UserError, match="--init-log-std"):
            TrainConfig(env="Pendulum-v1", init_log_std=-3.0, **bad)


def test_config_and_presets():
    with pytest.raises(UserError, match="multiple of --rppo-seq-len"):
        RecurrentPPOConfig(n_steps=100, seq_len=32)
    with pytest.raises(UserError, match="gaussian"):
        RecurrentPPOConfig(n_steps=64, seq_len=32, distribution="beta")
    for env_id in ("s2r/Biped-v0", "s2r/Knob-v0", "Pendulum-v1", "s2r/BipedRough-v0", "MountainCarContinuous-v0"):
        cfg = rppo_preset(env_id)
        assert cfg.n_steps % cfg.seq_len == 0 and cfg.expert is None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("rppo") / "run"
    cmd = [sys.executable, "-m", "s2r", "train", "--env", "biped", "--algo", "rppo", "--steps", "256",
           "--num-envs", "2", "--vec", "sync", "--ppo-n-steps", "64", "--rppo-seq-len", "16", "--rppo-lstm-hidden",
           "16", "--ppo-hidden", "16", "--ppo-n-epochs", "2", "--checkpoint-every", "128", "--eval-every", "256",
           "--eval-episodes", "1", "--no-tensorboard", "--run-dir", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return path


@pytest.mark.slow
def test_cli_trains_resumes_and_exports_with_whole_episode_parity(run, tmp_path):
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == "rppo" and cfg["algo_config"]["lstm_hidden"] == 16 and cfg["algo_config"]["seq_len"] == 16
    subprocess.run([sys.executable, "-m", "s2r", "train", "--resume", str(run), "--steps", "384"], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    ckpt, _ = load_checkpoint(run)
    assert ckpt["counters"]["global_step"] == 384 and ckpt["counters"]["resumes"] == 1
    assert ckpt["agent"]["counters"]["n_updates"] == 3 and ckpt["actor_arch"]["kind"] == "rppo"
    policy = load_inference_policy(run)
    assert isinstance(policy, RecurrentPPOPolicy)
    with pytest.raises(TypeError, match="initial_state"):
        policy(torch.zeros(1, 24))
    manifest = export_bundle(policy, tmp_path / "bundle", n_random=300)
    state = manifest["model"]["state"]
    assert [s["input"] for s in state] == ["lstm_h", "lstm_c"] and state[0]["initial"] == [0.0] * 16
    assert manifest["parity"]["episodes"] >= 1 and manifest["parity"]["max_abs_diff"] < 1e-4
    assert [i.name for i in Policy(load_bundle(tmp_path / "bundle")).session.get_inputs()] == ["obs", "lstm_h", "lstm_c"]


def test_rppo_flags_are_refused_for_other_algos(tmp_path):
    out = subprocess.run([sys.executable, "-m", "s2r", "train", "--env", "Pendulum-v1", "--algo", "ppo",
                          "--rppo-seq-len", "8", "--run-dir", str(tmp_path / "r")], capture_output=True, text=True)  # fmt: skip
    assert out.returncode != 0 and "--rppo-seq-len does not apply to --algo ppo" in out.stderr
