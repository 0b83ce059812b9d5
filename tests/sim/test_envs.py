"""Every registered s2r env gets the same checks (Gymnasium's tests/envs/test_envs.py): the API checker, seeded
determinism, pickled specs, a documented version. The ids come from Gymnasium's registry, so an env is covered
the moment its robot's Task (``sim/tasks/``) is registered."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import sim

S2R_SPECS = [spec for spec in gym.registry.values() if spec.namespace == "s2r"]
N_STEPS = 25  # short episodes: the checks are about the API and determinism, not the physics


def test_every_short_name_is_registered():
    from sim.task import env_variants

    ids = {v.gym_id for v in env_variants().values()}
    assert {spec.id for spec in S2R_SPECS} <= ids
    assert ids <= set(gym.registry)  # every task's env ids reach Gymnasium, whenever the task was registered
    assert {v.name for v in env_variants().values()} >= {"biped", "biped-rough", "biped-hardcore", "knob"}


@pytest.mark.parametrize("spec", S2R_SPECS, ids=lambda s: s.id)
def test_env_passes_gymnasium_checker(spec):
    env = gym.make(spec.id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def _rollout(spec, seed: int) -> list:
    """Reset with ``seed`` and step with actions drawn from the action space seeded the same way."""
    env = gym.make(spec)
    try:
        env.action_space.seed(seed)
        steps = [env.reset(seed=seed)]
        for _ in range(N_STEPS):
            step = env.step(env.action_space.sample())
            steps.append(step)
            if step[2] or step[3]:
                steps.append(env.reset())
        return steps
    finally:
        env.close()


@pytest.mark.parametrize("spec", S2R_SPECS, ids=lambda s: s.id)
def test_same_seed_gives_the_same_episode(spec):
    first, second = _rollout(spec, seed=7), _rollout(spec, seed=7)
    assert data_equivalence(first, second, exact=True)
    assert not data_equivalence(first, _rollout(spec, seed=8))


def _episode(env, seed: int, steps: int = 200) -> list:
    """One seeded episode (actions from a generator seeded by ``seed``), until it ends or ``steps``."""
    rng = np.random.default_rng(seed)
    out = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape)
                                                            .astype(np.float32))  # fmt: skip
        out.append((obs, reward, info.get("privileged")))
        if terminated or truncated:
            break
    return out


# PyBullet's rough grounds: the heightfield is updated in place for speed (sim/biped_pybullet.py set_ground), which
# is not bit-identical to creating it: a reused env's episode drifts in the last bits within a few steps
_REPLAY_CASES = [
    pytest.param(spec, engine, id=f"{spec.id}-{engine}", marks=pytest.mark.xfail(
        strict=True, reason="heightfield updated in place")) if engine == "pybullet" and "Biped" in spec.id
    and spec.id != "s2r/Biped-v0" else pytest.param(spec, engine, id=f"{spec.id}-{engine}")
    for spec in S2R_SPECS for engine in ("pybullet", "mujoco")
]  # fmt: skip


@pytest.mark.parametrize(("spec", "engine"), _REPLAY_CASES)
def test_a_reused_env_replays_a_fresh_envs_episode(spec, engine):
    """reset(seed=s) after other episodes (one ended by a fall) gives a fresh env's episode s, bit for bit: the
    emulator reuses one env for every HIL episode, the demo's replay makes a fresh one."""
    fresh, reused = gym.make(spec.id, engine=engine), gym.make(spec.id, engine=engine)
    try:
        _episode(reused, 3, steps=400)
        _episode(reused, 11, steps=400)
        assert data_equivalence(_episode(fresh, 7), _episode(reused, 7), exact=True)
    finally:
        fresh.close()
        reused.close()


@pytest.mark.parametrize("spec", S2R_SPECS, ids=lambda s: s.id)
def test_pickled_spec_makes_the_same_env(spec):
    """Vector-env workers and Ray actors receive the spec pickled; it must rebuild the same env."""
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec and copy.to_json() == spec.to_json()
    assert data_equivalence(_rollout(copy, seed=3), _rollout(spec, seed=3), exact=True)


@pytest.mark.parametrize("spec", S2R_SPECS, ids=lambda s: s.id)
def test_env_documents_its_version(spec):
    """A physics change bumps the id (bundles pin it); the env module's docstring says what each version is."""
    module, _ = spec.entry_point.split(":")
    doc = importlib.import_module(module).__doc__ or ""
    history = doc.split("Version History", 1)
    assert len(history) == 2, f"{module} has no 'Version History' section"
    assert f"v{spec.version}:" in history[1] and f"``{spec.id}``" in doc


@pytest.mark.parametrize(
    "code",
    [
        "import sim, gymnasium as gym; gym.make('s2r/Knob-v0').reset(seed=0)",  # registered once gymnasium loads
        "import gymnasium as gym, sim; gym.make('s2r/Knob-v0').reset(seed=0)",  # gymnasium already loaded
        "import gymnasium as gym; gym.make('sim:s2r/Knob-v0').reset(seed=0)",  # Gymnasium's module:id form
    ],
)
def test_envs_can_be_made_whatever_the_import_order(code):
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_resolve_env_id_names_the_choices():
    assert sim.resolve_env_id("knob") == "s2r/Knob-v0" and sim.resolve_env_id("Pendulum-v1") == "Pendulum-v1"
    with pytest.raises(ValueError, match="unknown env 'nope'; use one of biped"):
        sim.resolve_env_id("nope")
