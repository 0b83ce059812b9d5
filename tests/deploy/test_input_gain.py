"""No observation field can be blown up by a tiny normalizer std: the spec declares a resolution per field, the
normalizer floors its std there, and export refuses a policy whose input gain exceeds 1/resolution."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.bundle import bundle_obs_std
from deploy.export import check_input_gain, export_bundle
from deploy.manifest import input_gain_problem
from deploy.pretrained import bundle_path
from policies.checkpoint import InferencePolicy
from policies.networks import build_actor
from policies.normalizer import ObsNormalizer
from sim.robots import BIPED_SPEC, KNOB_SPEC


def _policy(var: np.ndarray, std_floor: np.ndarray | None = None) -> InferencePolicy:
    arch = {"kind": "deterministic", "obs_dim": 24, "act_dim": 4, "hidden": [8], "activation": "tanh"}
    meta = {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": 24, "act_dim": 4}
    return InferencePolicy(build_actor(arch), np.zeros(24), var, 10.0, 1e-8, meta, std_floor)


def test_shipped_bundles_keep_every_input_gain_within_the_bound():
    """Why the fix: the biped shipped before 2026-11-29 divided its two near-horizontal lidar rays by 1e-4 (they
    never hit anything in training), a gain of 1e4 per range fraction — 0.25 mm of lidar noise moved the input by
    1 (docs/pretrained.md). Its replacement was fine-tuned with the floored normalizer: those rays are divided by
    their resolution, 0.02, and every shipped field passes the export check."""
    std = bundle_obs_std(bundle_path("biped"))
    assert std is not None and std[14] == pytest.approx(0.02, rel=1e-3) and std[15] == pytest.approx(0.02, rel=1e-3)
    assert input_gain_problem(std, BIPED_SPEC) is None
    assert input_gain_problem(bundle_obs_std(bundle_path("knob")), KNOB_SPEC) is None
    old_std = [1.0] * 24
    old_std[14] = 1e-4  # the old bundle's initializer policy.obs_std[14]: refused today
    problem = input_gain_problem(old_std, BIPED_SPEC)
    assert problem is not None and "'lidar_0' (index 14)" in problem


def test_export_refuses_a_policy_with_a_tiny_std_and_writes_nothing(tmp_path):
    var = np.ones(24)
    var[15] = 0.0  # lidar_1 never varied
    with pytest.raises(ValueError, match=r"export refused: observation field 'lidar_1' \(index 15\)") as err:
        export_bundle(_policy(var), tmp_path / "bundle", recorded_obs=np.zeros((4, 24), np.float32), n_random=10)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "bundle").exists()


def test_the_floor_keeps_every_gain_within_the_bound():
    var = np.zeros(24)  # nothing varied at all
    check_input_gain(_policy(var, BIPED_SPEC.obs_resolution), BIPED_SPEC)  # no error


def test_normalizer_floor_bounds_the_response_to_one_resolution():
    floor = BIPED_SPEC.obs_resolution
    norm = ObsNormalizer(24, std_floor=floor)
    norm.update(np.tile(np.linspace(0, 1, 24), (100, 1)))  # every field constant: var 0
    base = np.linspace(0, 1, 24)
    moved = norm(base + floor) - norm(base)
    assert np.all(np.abs(moved) <= 1.0 + 1e-5)


def test_checkpoints_from_before_the_floor_keep_their_normalizer():
    norm = ObsNormalizer(3, std_floor=np.full(3, 0.5))
    state = norm.state_dict()
    del state["std_floor"]  # a checkpoint written before the floor existed
    old = ObsNormalizer(3)
    old.var = np.full(3, 1e-6)
    old.load_state_dict({**state, "var": [1e-6] * 3})
    np.testing.assert_allclose(old.std(), np.sqrt(1e-6 + 1e-8))
    roundtrip = ObsNormalizer(3)
    roundtrip.load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(roundtrip.std_floor, 0.5)
