"""Pure learning math against hand-computed numbers: TD3 target, smoothing, GAE, PPO loss, polyak, normalizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from policies.networks import BetaActor, GaussianActor, mlp, mlp_forward, polyak_update
from policies.normalizer import ObsNormalizer
from policies.ppo import gae, ppo_loss
from policies.td3 import ReplayBuffer, smoothed_target_action, td3_target


def test_td3_target_takes_min_and_cuts_bootstrap_only_on_termination():
    r = torch.tensor([1.0, 1.0, -2.0])
    term = torch.tensor([0.0, 1.0, 0.0])  # a truncated transition has term 0: it bootstraps
    q1 = torch.tensor([10.0, 10.0, 4.0])
    q2 = torch.tensor([8.0, 12.0, 5.0])
    out = td3_target(r, term, q1, q2, gamma=0.9)
    assert torch.allclose(out, torch.tensor([1 + 0.9 * 8, 1.0, -2 + 0.9 * 4]))
    # DDPG: one critic, no min
    assert torch.allclose(td3_target(r, term, q2, None, 0.9), torch.tensor([1 + 0.9 * 8, 1.0, -2 + 0.9 * 5]))


def test_target_smoothing_noise_is_clipped_and_action_bounded():
    a = torch.tensor([[0.95, -0.95, 0.0]]).repeat(2000, 1)
    out = smoothed_target_action(a, noise_std=1.0, noise_clip=0.3, generator=torch.Generator().manual_seed(0))
    assert (out - a).abs().max() <= 0.3 + 1e-6
    assert out.abs().max() <= 1.0
    assert out[:, 2].std() > 0.1  # noise actually applied
    assert torch.equal(smoothed_target_action(a, 0.0, 0.5), a)  # DDPG: none


def test_gae_hand_computed_with_truncation_and_termination():
    gamma, lam = 0.9, 0.8
    # one env, 3 steps: step 0 normal, step 1 truncated (bootstraps from V(final)=5), step 2 terminated
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0]])
    next_values = torch.tensor([[1.0], [5.0], [7.0]])  # V(obs after each step); 7 is ignored (terminal)
    term = torch.tensor([[0.0], [0.0], [1.0]])
    end = torch.tensor([[0.0], [1.0], [1.0]])
    adv, ret = gae(rewards, values, next_values, term, end, gamma, lam)
    d2 = 3.0 - 2.0
    d1 = 2.0 + 0.9 * 5.0 - 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a1 = d1  # the truncation stops the recursion
    a0 = d0 + gamma * lam * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, d2]))
    assert torch.allclose(ret, adv + values)


def test_ppo_loss_hand_computed():
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([0.8, 0.2]))  # ratios 1.6 and 0.4
    adv = torch.tensor([1.0, -1.0])
    v_new, v_old, ret = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0])
    ent = torch.tensor([0.3, 0.5])
    total, t = ppo_loss(new, old, adv, v_new, v_old, ret, ent, 0.2, None, ent_coef=0.01, vf_coef=0.5)
    # min(1.6*1, 1.2*1) = 1.2 ; min(0.4*-1, 0.8*-1) = -0.8 → policy loss -(1.2 - 0.8)/2 = -0.2
    assert t["loss/policy"].item() == pytest.approx(-0.2)
    assert t["loss/value"].item() == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    assert total.item() == pytest.approx(-0.2 + 0.5 * 0.5 - 0.01 * 0.4)
    assert t["clip_frac"].item() == pytest.approx(1.0)
    # value clipping: v_new 2.0 may move only 0.1 from 1.0 → clipped 1.1, error (3-1.1)^2 = 3.61 > 1
    _, t2 = ppo_loss(new, old, adv, v_new, v_old, ret, ent, 0.2, 0.1, 0.0, 0.5)
    assert t2["loss/value"].item() == pytest.approx(0.5 * (3.61 + 1.0) / 2)


def test_polyak_update():
    online, target = nn.Linear(2, 2), nn.Linear(2, 2)
    w_t, w_o = target.weight.detach().clone(), online.weight.detach().clone()
    polyak_update(target, online, 0.25)
    assert torch.allclose(target.weight, 0.75 * w_t + 0.25 * w_o)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_normalizer_matches_numpy_over_batches(sizes, seed):
    rng = np.random.default_rng(seed)
    batches = [rng.normal(3.0, 2.0, (n, 3)) for n in sizes]
    norm = ObsNormalizer(3, clip=5.0)
    for b in batches:
        norm.update(b)
    data = np.concatenate(batches)
    assert np.allclose(norm.mean, data.mean(0)) and np.allclose(norm.var, data.var(0))
    out = norm(data)
    assert out.dtype == np.float32 and np.abs(out).max() <= 5.0
    norm.frozen = True
    norm.update(data + 100)
    assert np.allclose(norm.mean, data.mean(0))  # frozen: unchanged


def test_replay_buffer_wraps_around():
    buf = ReplayBuffer(5, 1, 1)
    for start in (0, 3):
        x = np.arange(start, start + 3, dtype=np.float32)
        buf.add(x[:, None], x[:, None], x, x[:, None], np.zeros(3))
    assert buf.size == 5 and buf.pos == 1
    assert sorted(buf.rew.tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]  # 0 overwritten by 5
    o, a, r, no, t = buf.sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(o[:, 0], r) and not math.isnan(r.sum().item())


def test_gae_matches_the_step_by_step_recursion_bit_for_bit():
    """The vectorized GAE does the same float32 arithmetic as the textbook per-step loop."""
    g = torch.Generator().manual_seed(0)
    T, N, gamma, lam = 64, 3, 0.99, 0.95
    rew, val, nxt = (torch.randn(T, N, generator=g) for _ in range(3))
    term = (torch.rand(T, N, generator=g) < 0.05).float()
    end = torch.maximum(term, (torch.rand(T, N, generator=g) < 0.05).float())
    ref, last = torch.zeros(T, N), torch.zeros(N)
    for t in range(T - 1, -1, -1):
        last = rew[t] + gamma * (1.0 - term[t]) * nxt[t] - val[t] + gamma * lam * (1.0 - end[t]) * last
        ref[t] = last
    adv, ret = gae(rew, val, nxt, term, end, gamma, lam)
    assert torch.equal(adv, ref) and torch.equal(ret, ref + val)


@pytest.mark.parametrize("kind", ["gaussian", "beta"])
def test_actor_sample_and_log_prob_match_the_distribution(kind):
    """``sample``/``log_prob_entropy`` (no Distribution object per call) give the distribution's numbers."""
    torch.manual_seed(0)
    actor = GaussianActor(5, 3, [8], log_std_init=-0.5) if kind == "gaussian" else BetaActor(5, 3, [8])
    obs = torch.randn(7, 5)
    state = torch.get_rng_state()
    raw = actor.sample(obs)
    torch.set_rng_state(state)
    dist = actor.dist(obs)
    expected = dist.sample().clamp(1e-6, 1 - 1e-6) if kind == "beta" else dist.sample()
    assert torch.equal(raw, expected)
    logp, entropy = actor.log_prob_entropy(obs, raw)
    assert torch.equal(logp, dist.log_prob(raw).sum(-1)) and torch.equal(entropy, dist.entropy().sum(-1))


def test_mlp_forward_is_the_module_call_bit_for_bit():
    """The rollout acts through ``mlp_forward``: the same ops as ``net(x)``, so the same numbers."""
    torch.manual_seed(1)
    x = torch.randn(9, 6)
    for activation in ("tanh", "relu", "elu"):
        net = mlp([6, 32, 32, 3], activation, out_gain=1.0)
        assert torch.equal(mlp_forward(net, x), net(x))
