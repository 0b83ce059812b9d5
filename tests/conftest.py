"""Fixtures shared by every test folder: a small inference policy with a normalizer and bundles exported from it.

(conftest modules are not importable under --import-mode=importlib, so tests reach these through fixtures.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deploy.export import export_bundle, random_observations
from policies.networks import DeterministicActor
from sim.robots import get_robot


class TinyPolicy(nn.Module):
    """Stands in for policies.checkpoint's InferencePolicy: clipped normalizer inside, deterministic action."""

    def __init__(self, robot_id: str = "biped", seed: int = 0) -> None:
        super().__init__()
        spec = get_robot(robot_id)
        torch.manual_seed(seed)
        self.robot_id, self.env_id = robot_id, robot_id
        self.obs_dim, self.act_dim = spec.obs_dim, spec.action.n
        self.config = {"algo": "td3", "hidden": (32, 32), "seed": seed}
        self.git_commit = "0123abc"
        self.actor = DeterministicActor(self.obs_dim, self.act_dim, [32, 32])
        gen = np.random.default_rng(seed)
        self.register_buffer("mean", torch.as_tensor(gen.normal(0, 0.3, self.obs_dim), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(gen.uniform(0.3, 2.0, self.obs_dim), dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(((obs - self.mean) / self.std).clamp(-5.0, 5.0))


def make_bundle(tmp: Path, robot_id: str = "biped", seed: int = 0, n_random: int = 2000) -> Path:
    """Export a TinyPolicy bundle (recorded obs = random ones, so no simulator is needed)."""
    out = tmp / f"bundle-{robot_id}-{seed}"
    spec = get_robot(robot_id)
    export_bundle(
        TinyPolicy(robot_id, seed), out, recorded_obs=random_observations(spec, 64, seed + 100), n_random=n_random
    )
    return out


@pytest.fixture(scope="session")
def tiny_policy() -> type[TinyPolicy]:
    """The TinyPolicy class."""
    return TinyPolicy


@pytest.fixture(scope="session")
def make_tiny_bundle() -> Callable[..., Path]:
    """:func:`make_bundle`: ``make_tiny_bundle(tmp_dir, robot_id="biped", seed=0, n_random=2000) -> Path``."""
    return make_bundle


@pytest.fixture(scope="module")
def ray_cluster():
    """A private local Ray cluster with 2 CPUs (never another session's: address="local") for one test module,
    shut down after it. Ray gives its node 30 s to register, which an overloaded machine can miss: 3 tries."""
    ray = pytest.importorskip("ray")
    for attempt in range(3):
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as exc:  # Ray raises a bare Exception for this
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
    try:
        yield
    finally:
        ray.shutdown()
