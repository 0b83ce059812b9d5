"""Checkpoints: save → load → identical actions; corrupt files; exact resume of counters, RNGs and updates."""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil

import numpy as np
import pytest
import torch

from policies.agent import make_agent
from policies.checkpoint import load_checkpoint, load_inference_policy, read_checkpoint, save_checkpoint
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig
from policies.td3 import TD3Agent, TD3Config
from policies.train import TrainConfig, train

SMALL_TD3 = TD3Config(hidden=(16, 16), learning_starts=100, batch_size=32, buffer_size=2000, normalize_obs=True)


def _tiny_run(tmp_path, steps=400, **kw):
    cfg = TrainConfig(env="Pendulum-v1", algo="td3", steps=steps, vec="sync", checkpoint_every=200, log_every=100,
                      tensorboard=False, progress=False, algo_config=SMALL_TD3, **kw)  # fmt: skip
    train(cfg, tmp_path / "run")
    return cfg, tmp_path / "run"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("ckpt"))


def test_saved_policy_acts_like_the_trained_agent(run_dir):
    cfg, path = run_dir
    ckpt, _ = load_checkpoint(path)
    norm = ObsNormalizer(3)
    norm.load_state_dict(ckpt["normalizer"])
    assert norm.count > 0  # the normalizer was trained and saved
    agent = TD3Agent(SMALL_TD3, 3, 1, norm)
    agent.load_state_dict(ckpt["agent"])
    policy = load_inference_policy(path / "checkpoints" / "latest.pt")
    obs = np.random.default_rng(0).normal(0, 2, (64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = agent.actor(torch.as_tensor(norm(obs))).numpy()
    assert np.allclose(policy(torch.as_tensor(obs)).numpy(), expected, atol=1e-5)
    assert policy.env_id == "Pendulum-v1" and policy.robot_id is None
    assert (policy.obs_dim, policy.act_dim) == (3, 1) and policy.config["algo"] == "td3"


def test_inference_policy_exports_to_onnx_with_identical_outputs(run_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    policy = load_inference_policy(run_dir[1])
    obs = np.random.default_rng(1).normal(0, 3, (100, 3)).astype(np.float32)
    torch.onnx.export(policy, torch.zeros(1, 3), tmp_path / "p.onnx", input_names=["obs"], dynamo=False,
                      dynamic_axes={"obs": {0: "batch"}})  # fmt: skip
    out = ort.InferenceSession(str(tmp_path / "p.onnx")).run(None, {"obs": obs})[0]
    assert np.allclose(out, policy(torch.as_tensor(obs)).numpy(), atol=1e-5)


def test_corrupt_latest_falls_back_to_previous(run_dir, tmp_path, capsys):
    path = tmp_path / "run"
    shutil.copytree(run_dir[1], path)
    latest = path / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated, as a disk-full write would leave it
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_checkpoint(latest)
    ckpt, used = load_checkpoint(path)
    assert used.name == "previous.pt" and ckpt["counters"]["global_step"] == 200
    assert "trying previous.pt" in capsys.readouterr().err
    (path / "checkpoints" / "previous.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no usable checkpoint"):
        load_checkpoint(path)


def test_atomic_save_leaves_no_temp_files(tmp_path):
    for step in range(3):
        save_checkpoint({"x": torch.ones(3) * step}, tmp_path, best=step == 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "latest.pt", "previous.pt"]
    assert read_checkpoint(tmp_path / "previous.pt")["x"][0] == 1.0


@pytest.mark.parametrize("algo", ["td3", "ppo", "ppo-caps"])
def test_agent_state_roundtrip_continues_identically(algo):
    """Load a saved learner into a fresh one: the next actions and the next update are bit-identical."""
    rng = np.random.default_rng(0)

    def make():
        torch.manual_seed(123)  # different init than the source agent: load must overwrite everything
        norm = ObsNormalizer(3)
        if algo == "td3":
            return TD3Agent(dataclasses.replace(SMALL_TD3, learning_starts=10), 3, 1, norm, seed=5)
        cfg = PPOConfig(n_steps=16, batch_size=8, hidden=(16, 16))
        if algo == "ppo-caps":  # the CAPS term draws its spatial noise from the checkpointed generator
            cfg = dataclasses.replace(cfg, caps_temporal=0.5, caps_spatial=0.5)
            return make_agent(cfg, 3, 1, norm, 2, 1000, seed=5)
        return PPOAgent(cfg, 3, 1, norm, num_envs=2, total_steps=1000, seed=5)

    torch.manual_seed(0)
    a = make()
    obs = rng.normal(size=(2, 3)).astype(np.float32)
    for _ in range(40):  # fill and train a little
        act = a.act(obs)
        nxt = rng.normal(size=(2, 3)).astype(np.float32)
        a.observe(obs, act, rng.normal(size=2), nxt, np.zeros(2, bool), np.zeros(2, bool))
        a.normalizer.update(nxt)
        a.update()
        obs = nxt
    while algo != "td3" and a.t:  # PPO checkpoints between rollouts
        a.observe(obs, a.act(obs), np.zeros(2), obs, np.zeros(2, bool), np.zeros(2, bool))
        a.update()
    buf = io.BytesIO()  # through bytes, as a checkpoint goes: no tensors shared between a and b
    extra = {"replay": a.buffer.state_dict()} if algo == "td3" else {}
    torch.save({"agent": a.state_dict(), "norm": a.normalizer.state_dict(), **extra}, buf)
    torch_rng = torch.get_rng_state()
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = make()
    b.load_state_dict(saved["agent"])
    b.normalizer.load_state_dict(saved["norm"])
    if algo == "td3":
        b.buffer.load_state_dict(saved["replay"])
    results = []
    for agent in (a, b):
        torch.set_rng_state(torch_rng)
        acts = [agent.act(obs) for _ in range(3)]
        if algo == "td3":
            out = agent.train_step(*agent.buffer.sample(32, agent.gen))
        else:
            for _ in range(16):
                agent.observe(obs, agent.act(obs), np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool))
            out = agent.update()
        results.append((acts, out))
    (acts_a, out_a), (acts_b, out_b) = results
    assert all(np.array_equal(x, y) for x, y in zip(acts_a, acts_b, strict=True))
    assert out_a == out_b


def test_resume_continues_counters_and_drops_rows_past_the_checkpoint(run_dir, tmp_path):
    cfg, src = run_dir
    path = tmp_path / "run"
    shutil.copytree(src, path)
    with open(path / "progress.csv", "a") as f:  # a killed run logged past its last checkpoint
        f.write("999999,1,1,1,1,1,1\n")
    ckpt0, _ = load_checkpoint(path)
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, path)  # a fresh run must not overwrite an existing one
    train(dataclasses.replace(cfg, steps=600), path, resume=True)
    ckpt, _ = load_checkpoint(path)
    c = ckpt["counters"]
    assert c["global_step"] == 600 and c["resumes"] == 1
    assert ckpt["agent"]["counters"]["steps_seen"] == 600  # replay warm-up not repeated
    assert ckpt["agent"]["counters"]["n_updates"] > ckpt0["agent"]["counters"]["n_updates"]
    assert ckpt["episode_stats"]["episodes"] == 3  # 600 steps / 200-step episodes, counted across the resume
    with open(path / "progress.csv") as f:
        steps = [int(float(r["global_step"])) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == 600 and 999999 not in steps


def test_td3_update_threads_default_to_one_and_are_used_only_for_updates(tmp_path, monkeypatch):
    """TD3 keeps 1 thread unless asked (a second one slows it on a shared box); an explicit count is set for
    each gradient step only, and acting goes back to ``torch_threads``."""
    assert TrainConfig(env="biped", algo="td3").resolved().update_threads == 1
    assert TrainConfig(env="biped", algo="ddpg", update_threads=2).resolved().update_threads == 2
    seen: list[tuple[str, int]] = []
    act, step = TD3Agent.act, TD3Agent.train_step
    monkeypatch.setattr(TD3Agent, "act", lambda self, obs: seen.append(("act", torch.get_num_threads())) or act(self, obs))
    monkeypatch.setattr(TD3Agent, "train_step",
                        lambda self, *b: seen.append(("update", torch.get_num_threads())) or step(self, *b))  # fmt: skip
    _tiny_run(tmp_path, steps=150, update_threads=2)
    assert {("act", 1), ("update", 2)} == set(seen) and seen.count(("update", 2)) == 150 - SMALL_TD3.learning_starts + 1
    assert torch.get_num_threads() == 1
