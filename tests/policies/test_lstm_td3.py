"""LSTM-TD3: the history window math, the history sampler on hand-built episodes (episode starts, interleaved
sub-envs, ring overwrite), an update, exact save/load, and train → checkpoint → resume → eval through the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from policies.checkpoint import load_checkpoint, load_inference_policy
from policies.evaluate import evaluate
from policies.lstm_td3 import (
    HistoryReplayBuffer,
    LSTMTD3Agent,
    LSTMTD3Config,
    RecurrentInferencePolicy,
    empty_history,
    push_history,
)
from policies.normalizer import ObsNormalizer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread, as training runs TD3 updates: on a loaded 2-core box a second OpenMP thread made these
    tiny updates many times slower (BENCHMARKS.md, Learners)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


SMALL = LSTMTD3Config(history_len=3, mem_hidden=8, cur_hidden=8, hidden=(16,), learning_starts=20, batch_size=16,
                      buffer_size=500, normalize_obs=True)  # fmt: skip


def test_push_history_fills_then_slides():
    h = empty_history(2, 3, 1, 1)
    for t in range(5):
        h = push_history(*h, torch.tensor([[t], [10 + t]], dtype=torch.float32), torch.tensor([[-t], [-t]], dtype=torch.float32))
        if t == 1:
            assert h[0][:, :, 0].tolist() == [[0, 1, 0], [10, 11, 0]] and h[2].tolist() == [2, 2]
    assert h[0][:, :, 0].tolist() == [[2, 3, 4], [12, 13, 14]] and h[1][0, :, 0].tolist() == [-2, -3, -4]
    assert h[2].tolist() == [3, 3]


def _fill(buf: HistoryReplayBuffer, episodes: list[list[int]]) -> dict[int, tuple[int, int]]:
    """Two sub-envs stepping in lockstep; env ``e`` plays ``episodes[e]`` (lengths) one after the other. obs of
    each transition = a unique id; returns id → (env, step within its episode)."""
    where, last = {}, np.full(2, -1)
    queues = [[(k, s) for k, n in enumerate(eps) for s in range(n)] for eps in episodes]
    uid = 0
    for t in range(max(len(q) for q in queues)):
        rows = [(e, q[t]) for e, q in enumerate(queues) if t < len(q)]
        envs = np.array([e for e, _ in rows])
        ids = np.arange(uid, uid + len(rows), dtype=np.float32)
        uid += len(rows)
        for i, (e, (k, s)) in zip(ids, rows, strict=True):
            where[int(i)] = (e, k, s)  # type: ignore[assignment]
        ends = np.array([s == episodes[e][k] - 1 for e, (k, s) in rows])
        serials = buf.add_linked(ids[:, None], -ids[:, None], np.zeros(len(rows)), ids[:, None], ends, last[envs])
        last[envs] = np.where(ends, -1, serials)
    return where  # type: ignore[return-value]


def test_history_sampler_respects_episodes_envs_and_overwrites():
    buf = HistoryReplayBuffer(capacity=40, obs_dim=1, act_dim=1, history_len=4)
    where = _fill(buf, [[3, 9, 6], [12, 5]])  # 35 transitions, two envs interleaved
    idx = torch.arange(buf.size)
    h_obs, h_act, h_len = buf.history(idx)
    for i in range(buf.size):
        me = int(buf.obs[i, 0])
        env, ep, step = where[me]
        expected = [u for u, (e, k, s) in sorted(where.items()) if (e, k) == (env, ep) and step - 4 <= s < step]
        n = int(h_len[i])
        assert n == len(expected) == min(step, 4)
        assert h_obs[i, :n, 0].tolist() == expected and h_act[i, :n, 0].tolist() == [-u for u in expected]
        assert not h_obs[i, n:].any() and not h_act[i, n:].any()  # zero padding after the valid steps
    # wrap the ring: 10 more transitions overwrite the 10 oldest; a history stops at an overwritten slot
    _fill(buf, [[10], []])
    h_obs, _, h_len = buf.history(torch.arange(buf.size))
    live = set(buf.stamp.tolist())
    for i in range(buf.size):
        walked, cur = [], i
        while len(walked) < 4 and int(buf.prev[cur]) >= 0 and int(buf.prev[cur]) in live:
            cur = int(buf.prev[cur]) % buf.capacity
            walked.append(float(buf.obs[cur, 0]))
        assert int(h_len[i]) == len(walked) and h_obs[i, : len(walked), 0].tolist() == walked[::-1]


def _agent(seed=0):
    torch.manual_seed(seed + 100)
    return LSTMTD3Agent(SMALL, 3, 1, ObsNormalizer(3), seed=seed)


def _drive(agent, rng, steps=60):
    obs = rng.normal(size=(2, 3)).astype(np.float32)
    for t in range(steps):
        act = agent.act(obs)
        nxt = rng.normal(size=(2, 3)).astype(np.float32)
        agent.observe(obs, act, rng.normal(size=2), nxt, np.array([t % 7 == 6, False]), np.array([False, t % 11 == 10]))
        agent.normalizer.update(nxt)
        agent.update()
        obs = nxt
    return obs


def test_update_trains_actor_critic_and_memory():
    agent = _agent()
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    _drive(agent, np.random.default_rng(0))
    assert agent.n_updates > 20
    out = agent.train_step(*agent.buffer.sample(16, agent.gen))
    assert np.isfinite(out["loss/critic"])
    changed = {k for k, v in agent.actor.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("memory.lstm") for k in changed) and any(k.startswith("current") for k in changed)


def test_state_roundtrip_continues_identically():
    """A learner loaded from its saved state (and replay) acts and updates bit-identically."""
    rng = np.random.default_rng(1)
    a = _agent()
    obs = _drive(a, rng)
    buf = io.BytesIO()
    torch.save({"agent": a.state_dict(), "norm": a.normalizer.state_dict(), "replay": a.buffer.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = _agent(seed=7)
    b.load_state_dict(saved["agent"])
    b.normalizer.load_state_dict(saved["norm"])
    b.buffer.load_state_dict(saved["replay"])
    b.window, b.last_serial = a.window, a.last_serial  # the acting window is per episode (a resume starts new ones)
    outs = []
    for agent in (a, b):
        outs.append(([agent.act(obs) for _ in range(3)], agent.train_step(*agent.buffer.sample(16, agent.gen))))
    assert all(np.array_equal(x, y) for x, y in zip(outs[0][0], outs[1][0], strict=True)) and outs[0][1] == outs[1][1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("lstm") / "run"
    flags = ["--lstm-history-len", "3", "--lstm-mem-hidden", "8", "--lstm-cur-hidden", "8", "--td3-hidden", "16",
             "--td3-learning-starts", "100", "--td3-batch-size", "16", "--td3-buffer-size", "2000"]  # fmt: skip
    cmd = [sys.executable, "-m", "s2r", "train", "--env", "Pendulum-v1", "--algo", "lstm-td3", "--steps", "300",
           "--checkpoint-every", "200", "--eval-every", "200", "--eval-episodes", "1", "--no-tensorboard",
           "--run-dir", str(path), *flags]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return path


@pytest.mark.slow
def test_cli_trains_resumes_and_the_policy_is_stateful(run):
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == "lstm-td3" and cfg["algo_config"]["history_len"] == 3
    subprocess.run([sys.executable, "-m", "s2r", "train", "--resume", str(run), "--steps", "400"], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    ckpt, _ = load_checkpoint(run)
    assert ckpt["counters"]["global_step"] == 400 and ckpt["counters"]["resumes"] == 1
    replay = torch.load(run / "checkpoints" / "replay.pt", weights_only=True)
    assert replay["serial"] == 400 and int((replay["prev"] == -1).sum()) == 3  # 2 episodes + the resume's start
    policy = load_inference_policy(run)
    assert isinstance(policy, RecurrentInferencePolicy)
    with pytest.raises(TypeError, match="initial_state"):
        policy(torch.zeros(1, 3))
    assert len(evaluate(policy, episodes=1).returns) == 1


def test_lstm_flags_are_refused_for_other_algos(tmp_path):
    out = subprocess.run([sys.executable, "-m", "s2r", "train", "--env", "Pendulum-v1", "--algo", "td3",
                          "--lstm-history-len", "4", "--run-dir", str(tmp_path / "r")], capture_output=True, text=True)  # fmt: skip
    assert out.returncode != 0 and "--lstm-history-len does not apply to --algo td3" in out.stderr


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "s2r/Biped-v0", "s2r/Knob-v0", "BipedalWalker-v3"])
def test_presets_are_the_td3_presets_with_a_memory(env_id):
    from policies.lstm_td3 import lstm_td3_preset
    from policies.td3 import td3_preset

    cfg, td3 = lstm_td3_preset(env_id), td3_preset(env_id)
    assert isinstance(cfg, LSTMTD3Config) and cfg.history_len == 5 and cfg.mem_hidden == 128
    same = ("gamma", "buffer_size", "learning_starts", "normalize_obs", "batch_size", "policy_delay")
    assert all(getattr(cfg, k) == getattr(td3, k) for k in same)
