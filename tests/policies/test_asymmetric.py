"""Asymmetric actor-critic: the envs' documented privileged state, its way through the vector envs and the training
loop, critics that read it and actors that never do, and an export that holds the actor alone."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import onnx
import pytest
import torch

import sim
from deploy.export import export_bundle
from policies.checkpoint import load_inference_policy
from policies.lstm_td3 import LSTMTD3Agent, LSTMTD3Config
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig
from policies.td3 import TD3Agent, TD3Config
from policies.train import TrainConfig, train
from policies.vec_env import SubprocVecEnv, SyncVecEnv
from sim.knob import KnobEnv
from sim.params import param_fields
from sim.spec import ObsField
from sim.tasks.biped import BIPED_PRIVILEGED_FIELDS
from sim.tasks.knob import KNOB_PRIVILEGED_FIELDS


@pytest.mark.parametrize(("name", "state_fields"), [("biped", BIPED_PRIVILEGED_FIELDS), ("knob", KNOB_PRIVILEGED_FIELDS)])
def test_privileged_state_follows_its_documented_layout(name, state_fields):
    env = gym.make(sim.resolve_env_id(name), privileged=True)
    try:
        fields = env.unwrapped.privileged_fields  # type: ignore[attr-defined]
        assert fields == state_fields + param_fields(env.unwrapped.param_space)  # type: ignore[attr-defined]
        assert len({f.name for f in fields}) == len(fields) and all(isinstance(f, ObsField) for f in fields)
        assert all(f.unit and f.resolution > 0 for f in fields)
        params = {"motor_strength": 0.7, "encoder_bias": 0.1}
        obs, info = env.reset(seed=3, options={"params": params})
        rows = [info["privileged"]]
        for _ in range(20):
            obs, *_, info = env.step(env.action_space.sample())
            rows.append(info["privileged"])
        priv = np.stack(rows)
        assert priv.dtype == np.float32 and priv.shape == (21, len(fields)) and np.isfinite(priv).all()
        names = [f.name for f in fields]
        tail = priv[:, len(state_fields):]  # the episode's physical parameters, constant over the episode
        assert np.all(tail == tail[0])
        assert tail[0, names.index("param_motor_strength") - len(state_fields)] == np.float32(0.7)
        # the encoders read the angle + 0.1 rad of bias; the privileged angle is the true one
        q_obs = obs[4] if name == "biped" else obs[0]
        q_true = priv[-1, names.index("true_hip_left_angle" if name == "biped" else "true_finger0_base_angle")]
        assert q_obs == pytest.approx(q_true + 0.1, abs=1e-5)
    finally:
        env.close()


def test_biped_privileged_velocity_is_the_exact_one_the_sensor_noises():
    env = gym.make("s2r/Biped-v0", privileged=True)
    names = [f.name for f in env.unwrapped.privileged_fields]  # type: ignore[attr-defined]
    try:
        for noise in (0.0, 0.3):
            obs, info = env.reset(seed=0, options={"params": {"velocity_noise": noise}})
            for _ in range(10):
                obs, *_, info = env.step(np.zeros(4, np.float32))
            exact = info["privileged"][names.index("true_vx")]
            assert (obs[2] == exact) == (noise == 0.0)
    finally:
        env.close()


@pytest.mark.parametrize("kind", ["sync", "subproc"])
def test_vector_envs_pass_the_privileged_state_every_step(kind):
    kw = {"privileged": True}
    make = {"sync": lambda keys: SyncVecEnv("knob", 2, env_kwargs=kw, info_keys=keys),
            "subproc": lambda keys: SubprocVecEnv("knob", 2, env_kwargs=kw, n_workers=1, local_envs=1,
                                                  info_keys=keys)}[kind]  # fmt: skip
    with_keys, plain = make(("privileged",)), make(())
    try:
        for venv in (with_keys, plain):
            for i in range(2):
                venv.reset_one(i, seed=i)
        for _ in range(3):
            a = np.zeros((2, 4), np.float32)
            *_, infos = with_keys.step(a)
            *_, bare = plain.step(a)
            assert all(set(info) == {"privileged"} and info["privileged"].shape == (len(KnobEnv.privileged_fields),)
                       for info in infos)  # fmt: skip
            assert bare == [None, None]  # without keys, infos still travel only at episode ends
    finally:
        with_keys.close()
        plain.close()


OBS, ACT, PRIV = 5, 2, 6
FLOOR = np.full(PRIV, 0.01)


def _agents():
    td3 = TD3Config(hidden=(16, 16), batch_size=8, buffer_size=200, learning_starts=8, privileged_critic=True)
    lstm = LSTMTD3Config(hidden=(16,), batch_size=8, buffer_size=200, learning_starts=8, history_len=3,
                         mem_hidden=8, cur_hidden=8, privileged_critic=True)  # fmt: skip
    ppo = PPOConfig(n_steps=8, batch_size=8, n_epochs=2, hidden=(16, 16), privileged_critic=True)
    return {
        "td3": lambda: TD3Agent(td3, OBS, ACT, ObsNormalizer(OBS), seed=1, privileged_floor=FLOOR),
        "lstm-td3": lambda: LSTMTD3Agent(lstm, OBS, ACT, ObsNormalizer(OBS), seed=1, privileged_floor=FLOOR),
        "ppo": lambda: PPOAgent(ppo, OBS, ACT, ObsNormalizer(OBS), 2, 1000, seed=1, privileged_floor=FLOOR),
    }


def _first_linear_in(module: torch.nn.Module) -> list[int]:
    return [m.in_features for m in module.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("algo", ["td3", "lstm-td3", "ppo"])
def test_the_critic_reads_the_privileged_state_and_the_actor_does_not(algo):
    agent = _agents()[algo]()
    critic = agent.critic if algo == "ppo" else agent.critics[0]
    width = OBS + PRIV + (0 if algo == "ppo" else ACT)  # the critic's input layer (its memory branch excepted)
    assert width in _first_linear_in(critic)
    assert not {OBS + PRIV, OBS + PRIV + ACT} & set(_first_linear_in(agent.actor))
    rng = np.random.default_rng(0)
    obs, priv = rng.normal(size=(2, OBS)).astype(np.float32), rng.normal(100, 50, (2, PRIV)).astype(np.float32)
    with pytest.raises(ValueError, match="privileged"):
        agent.observe(obs, agent.act(obs), np.zeros(2), obs, np.zeros(2, bool), np.zeros(2, bool))
    agent = _agents()[algo]()
    outs = []
    for _ in range(24):
        act = agent.act(obs)
        nxt, nxt_priv = rng.normal(size=(2, OBS)).astype(np.float32), rng.normal(100, 50, (2, PRIV)).astype(np.float32)
        agent.observe(obs, act, rng.normal(size=2), nxt, np.zeros(2, bool), np.zeros(2, bool), priv, nxt_priv)
        outs.append(agent.update())
        obs, priv = nxt, nxt_priv
    assert any(o for o in outs)
    assert agent.priv_norm.mean == pytest.approx(np.full(PRIV, 100.0), abs=30)  # its own statistics
    state = agent.state_dict()
    assert state["priv_norm"]["count"] == agent.priv_norm.count
    fresh = _agents()[algo]()
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.priv_norm.mean, agent.priv_norm.mean)


def test_a_privileged_critic_needs_an_env_that_has_privileged_state():
    from sim.errors import UserError

    with pytest.raises(UserError, match="info\\['privileged'\\]"):
        TD3Agent(TD3Config(privileged_critic=True), OBS, ACT, ObsNormalizer(OBS), privileged_floor=None)


@pytest.fixture(scope="module")
def asymmetric_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("asym")
    ppo = PPOConfig(n_steps=64, batch_size=64, n_epochs=2, hidden=(32, 32), num_envs=2, privileged_critic=True)
    lstm = LSTMTD3Config(hidden=(32,), batch_size=16, buffer_size=2000, learning_starts=100, history_len=3,
                         mem_hidden=16, cur_hidden=16, normalize_obs=True, privileged_critic=True)  # fmt: skip
    runs = {}
    for algo, cfg, n in (("ppo", ppo, 2), ("lstm-td3", lstm, 1)):
        tc = TrainConfig(env="biped", algo=algo, steps=256 if algo == "ppo" else 200, num_envs=n, vec="sync",
                         eval_every=0, checkpoint_every=10_000, tensorboard=False, progress=False, algo_config=cfg)  # fmt: skip
        train(tc, root / algo)
        runs[algo] = root / algo
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "lstm-td3"])
def test_an_asymmetric_checkpoint_exports_the_actor_alone(asymmetric_runs, algo, tmp_path):
    """The ONNX graph takes the observation (and a memory's state) only, and its weights are the actor's: every
    actor weight is in it, no critic weight is, and its size is the actor's plus the normalizer and limits."""
    ckpt = torch.load(asymmetric_runs[algo] / "checkpoints" / "latest.pt", weights_only=False)
    critic_state = ckpt["agent"]["critic"] if algo == "ppo" else ckpt["agent"]["critics"]
    from sim.biped import BipedEnv

    n_priv = len(BipedEnv.privileged_fields)
    assert any(v.ndim == 2 and v.shape[1] == 24 + n_priv + (4 if algo != "ppo" else 0) for v in critic_state.values())
    policy = load_inference_policy(asymmetric_runs[algo])
    export_bundle(policy, tmp_path / "bundle", n_random=200)
    graph = onnx.load(str(tmp_path / "bundle" / "policy.onnx")).graph
    inputs = [i.name for i in graph.input]
    assert inputs == (["obs"] if algo == "ppo" else ["obs", "hist_obs", "hist_act", "hist_len"])
    weights = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    sizes = sorted(w.size for w in weights)
    actor = [p.detach().numpy() for p in policy.actor.parameters()]
    if algo == "ppo":
        actor = [p for p in actor if p.ndim]  # (log_std is not part of the deterministic policy)
    n_actor = sum(p.size for p in actor)
    assert n_actor <= sum(sizes) <= n_actor + 2 * 24 + 4 + 64

    def contains(ws: list[np.ndarray], x: np.ndarray) -> bool:
        return any(w.size == x.size and (np.allclose(w.reshape(-1), x.reshape(-1)) or
                   np.allclose(w.T.reshape(-1), x.reshape(-1))) for w in ws)  # fmt: skip

    big = [w for w in weights if w.size > 64]
    assert all(contains(big, p) for p in actor if p.size > 64 and p.ndim == 2 and algo == "ppo")
    critic_w = [v.numpy() for k, v in critic_state.items() if v.ndim == 2]
    assert not any(contains(big, w) for w in critic_w)


def test_train_refuses_a_privileged_critic_on_an_env_without_privileged_state(tmp_path):
    from sim.errors import UserError

    cfg = TrainConfig(env="Pendulum-v1", algo="td3", steps=100, tensorboard=False, progress=False,
                      algo_config=dataclasses.replace(TD3Config(), privileged_critic=True))  # fmt: skip
    with pytest.raises(UserError, match="privileged"):
        train(cfg, tmp_path / "r")


@pytest.mark.parametrize("name", ["biped", "knob"])
def test_the_privileged_state_is_opt_in(name):
    """Only an env made with ``privileged=True`` reports it (it costs every step); the episode is the same."""
    plain, asked = gym.make(sim.resolve_env_id(name)), gym.make(sim.resolve_env_id(name), privileged=True)
    try:
        (o1, i1), (o2, i2) = plain.reset(seed=5), asked.reset(seed=5)
        assert "privileged" not in i1 and "privileged" in i2 and np.array_equal(o1, o2)
        for _ in range(5):
            a = plain.action_space.sample()
            (o1, r1, *_, i1), (o2, r2, *_, i2) = plain.step(a), asked.step(a)
            assert "privileged" not in i1 and i2["privileged"].shape == (len(asked.unwrapped.privileged_fields),)  # type: ignore[attr-defined]
            assert np.array_equal(o1, o2) and r1 == r2
    finally:
        plain.close()
        asked.close()
