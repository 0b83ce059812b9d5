"""Actor and critic networks. Every actor outputs normalized actions in [-1, 1] and offers ``deterministic(obs)``
built only from ONNX-exportable ops, so the same module runs in training, eval and the exported graph.

``build_actor(arch)`` rebuilds an actor from the small JSON-able ``arch`` dict stored in every checkpoint, so
loading a policy needs no algorithm code.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Beta, Normal

from sim.errors import UserError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def mlp(sizes: list[int], activation: str = "relu", out_gain: float | None = None) -> nn.Sequential:
    """Linear layers with ``activation`` between them (none after the last). ``out_gain``: orthogonal init."""
    if activation not in ACTIVATIONS:
        raise UserError(f"unknown activation '{activation}'; use one of {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    if out_gain is not None:  # PPO: orthogonal init, sqrt(2) hidden, small policy head (Andrychowicz et al. 2021)
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        for j, lin in enumerate(linears):
            nn.init.orthogonal_(lin.weight, gain=out_gain if j == len(linears) - 1 else 2**0.5)
            nn.init.zeros_(lin.bias)
    return nn.Sequential(*layers)


def mlp_forward(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for an :func:`mlp`, without the per-module call overhead: the same ops, so the same numbers.
    For the rollout's forward pass on a few rows, where module calls cost more than the math (BENCHMARKS.md,
    Learners: "Where the time goes now")."""
    for layer in net:
        if type(layer) is nn.Linear:
            x = nn.functional.linear(x, layer.weight, layer.bias)
        elif type(layer) is nn.Tanh:
            x = torch.tanh(x)
        else:
            x = layer(x)
    return x


class DeterministicActor(nn.Module):
    """TD3/DDPG actor: ``tanh(mlp(obs))``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], activation: str = "relu") -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, act_dim], activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.forward(obs)


class GaussianActor(nn.Module):
    """PPO Gaussian policy with a state-independent log-std; actions are clipped to [-1, 1] by the env side."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: list[int], activation: str = "tanh", log_std_init: float = 0.0
    ) -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, act_dim], activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        return Normal(self.net(obs), self.log_std.exp().expand(obs.shape[0], -1), validate_args=False)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw actions, the same draws as ``dist(obs).sample()`` without building a ``Normal`` or calling
        modules (the rollout calls this once per vector step)."""
        mean = mlp_forward(self.net, obs)
        return torch.normal(mean, self.log_std.exp().expand_as(mean))

    def log_prob_entropy(self, obs: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``raw`` and entropy, both summed over action dims (one per row); the same numbers
        and gradients as through :meth:`dist` (hence the expanded std), without building a ``Normal``."""
        mean = self.net(obs)
        std = self.log_std.exp().expand_as(mean)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(std)).sum(-1)  # Normal.entropy()
        return _normal_log_prob(raw, mean, std), entropy

    @staticmethod
    def to_env(raw: torch.Tensor) -> torch.Tensor:
        """Sampled (unbounded) action → env action in [-1, 1]."""
        return raw.clamp(-1.0, 1.0)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).clamp(-1.0, 1.0)


class BetaActor(nn.Module):
    """PPO Beta policy (Chou et al. 2017) on [0, 1], mapped to [-1, 1]: no clipping bias at the bounds."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], activation: str = "tanh") -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, 2 * act_dim], activation, out_gain=0.01)

    def _alpha_beta(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.net(obs).chunk(2, dim=-1)
        return nn.functional.softplus(a) + 1.0, nn.functional.softplus(b) + 1.0  # > 1: unimodal

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        return Beta(*self._alpha_beta(obs), validate_args=False)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw actions in [1e-6, 1 - 1e-6] (log_prob(0 or 1) is -inf for alpha, beta > 1)."""
        return self.dist(obs).sample().clamp(1e-6, 1 - 1e-6)

    def log_prob_entropy(self, obs: torch.Tensor, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``raw`` and entropy, both summed over action dims (one per row)."""
        dist = self.dist(obs)
        return dist.log_prob(raw).sum(-1), dist.entropy().sum(-1)

    @staticmethod
    def to_env(raw: torch.Tensor) -> torch.Tensor:
        """Sample in [0, 1] → env action in [-1, 1]."""
        return 2.0 * raw - 1.0

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        alpha, beta = self._alpha_beta(obs)
        return 2.0 * alpha / (alpha + beta) - 1.0


def _normal_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``Normal(mean, std).log_prob(x).sum(-1)``, term for term as torch computes it."""
    return (-((x - mean) ** 2) / (2 * std**2) - std.log() - math.log(math.sqrt(2 * math.pi))).sum(-1)


def build_actor(arch: dict) -> nn.Module:
    """Rebuild an actor from ``{"kind", "obs_dim", "act_dim", "hidden", "activation"}``."""
    kind, args = arch["kind"], (int(arch["obs_dim"]), int(arch["act_dim"]), list(arch["hidden"]), arch["activation"])
    if kind == "deterministic":
        return DeterministicActor(*args)
    if kind == "gaussian":
        return GaussianActor(*args)
    if kind == "beta":
        return BetaActor(*args)
    raise UserError(f"unknown actor kind '{kind}' in checkpoint; expected deterministic, gaussian or beta")


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target ← (1 − tau)·target + tau·online``, in place, for every parameter (buffers copied)."""
    t_params: list[torch.Tensor] = list(target.parameters())
    o_params: list[torch.Tensor] = list(online.parameters())
    torch._foreach_mul_(t_params, 1.0 - tau)
    torch._foreach_add_(t_params, o_params, alpha=tau)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)
