"""CAPS smoothness terms (policies.smoothness): the temporal pairs the rollout records, the loss by hand, and that
training on the term alone smooths a policy; the bounds loss on the mean beyond the action clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.agent import make_agent
from policies.networks import GaussianActor
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOConfig
from policies.smoothness import BoundTerm, SmoothnessTerm
from sim.errors import UserError


def _term(temporal: float = 1.0, spatial: float = 0.0, n_steps: int = 4) -> SmoothnessTerm:
    norm = ObsNormalizer(2)
    return SmoothnessTerm(norm, temporal, spatial, 0.1, n_steps, 3, 2)


def test_record_pairs_each_step_with_the_next_observation():
    term = _term()
    obs = [np.full((3, 2), float(t), np.float32) for t in range(4)]
    for t, o in enumerate(obs):
        term.record(t, o)
    # step t's label is step t + 1's normalized observation; the rollout's last step is its own (no pair)
    assert [float(term.labels[t, 0, 0]) for t in range(4)] == pytest.approx([1.0, 2.0, 3.0, 3.0])


def test_loss_by_hand():
    term = _term(temporal=2.0, spatial=0.0)
    actor = GaussianActor(2, 1, [4])
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 0.0]]))
        lin.bias.zero_()
    actor.net = torch.nn.Sequential(lin)  # μ(s) = 3 s_0
    obs, labels = torch.zeros(5, 2), torch.zeros(5, 2)
    labels[:, 1] = 1.0  # a change μ does not see: no cost
    assert term.loss(actor, obs, labels).item() == 0.0
    labels[:, 0] = 1.0  # μ moves by 3 between the steps: 2 · 3²
    assert term.loss(actor, obs, labels).item() == pytest.approx(2.0 * 9.0)


def test_training_on_the_spatial_term_lowers_the_policy_gain():
    term = _term(temporal=0.0, spatial=1.0)
    term.gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    actor = GaussianActor(2, 1, [16])
    opt = torch.optim.Adam(actor.parameters(), lr=1e-2)
    obs = torch.randn(64, 2)
    first = term.loss(actor, obs, obs).item()
    for _ in range(100):
        opt.zero_grad()
        term.loss(actor, obs, obs).backward()
        opt.step()
    assert term.loss(actor, obs, obs).item() < 0.2 * first


def test_caps_config_builds_the_term_and_rppo_refuses_it():
    from policies.recurrent_ppo import RecurrentPPOConfig

    agent = make_agent(PPOConfig(n_steps=8, batch_size=8, caps_temporal=0.1), 3, 1, ObsNormalizer(3), 2, 100)
    (term,) = agent.extra_losses  # type: ignore[attr-defined]
    assert isinstance(term, SmoothnessTerm) and term.gen is agent.gen  # type: ignore[attr-defined]
    assert not make_agent(PPOConfig(), 3, 1, ObsNormalizer(3), 2, 100).extra_losses  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="CAPS"):
        RecurrentPPOConfig(caps_spatial=0.1)


def test_bound_term_by_hand_and_it_pulls_a_mean_back_inside_the_clip():
    term = BoundTerm(0.5, 4, 3)
    actor = GaussianActor(1, 2, [4])
    lin = torch.nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [-3.0]]))
        lin.bias.zero_()
    actor.net = torch.nn.Sequential(lin)  # μ(s) = (s, −3 s)
    obs = torch.tensor([[0.2], [1.0]])  # means (0.2, −0.6) inside; (1, −3) → (0 + 2²)
    assert term.loss(actor, obs, torch.zeros(2, 0)).item() == pytest.approx(4.0 / 2)
    opt = torch.optim.Adam(actor.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        term.loss(actor, obs, torch.zeros(2, 0)).backward()
        opt.step()
    assert actor.net(obs).abs().max().item() < 1.05


def test_bound_config_builds_the_term_and_rppo_and_beta_refuse_it():
    from policies.recurrent_ppo import RecurrentPPOConfig

    agent = make_agent(PPOConfig(n_steps=8, batch_size=8, bound_coef=0.3), 3, 1, ObsNormalizer(3), 2, 100)
    (term,) = agent.extra_losses  # type: ignore[attr-defined]
    assert isinstance(term, BoundTerm) and term.coef == 0.3
    with pytest.raises(UserError, match="bounds"):
        RecurrentPPOConfig(bound_coef=0.1)
    with pytest.raises(UserError, match="bound_coef bounds a gaussian"):
        PPOConfig(bound_coef=0.1, distribution="beta")
