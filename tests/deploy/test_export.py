"""ONNX export: graph contract, parity with torch, manifest schema, nothing half-written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deploy.bundle import Policy, load_bundle
from deploy.export import (
    PARITY_TOL,
    TorquePolicy,
    export_bundle,
    onnx_bytes,
    random_observations,
    torch_torques,
    verify_bundle,
)
from deploy.manifest import SCHEMA_VERSION, read_manifest, validate_manifest
from sim.robots import get_robot


def test_graph_io_names_shapes_and_opset(bundles: dict[str, Path]) -> None:
    model = onnx.load(str(bundles["a"] / "policy.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "obs" and out.name == "torque_nm"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 24]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 4]


def test_parity_10k_random_and_scaling_folded_in(bundles: dict[str, Path], tiny_policy) -> None:
    spec = get_robot("biped")
    policy = tiny_policy("biped", 0)
    obs = random_observations(spec, 10_000, seed=7)
    with torch.no_grad():
        normalized = policy(torch.as_tensor(obs)).numpy()
    got = Policy(load_bundle(bundles["a"])).batch(obs)
    # the graph outputs N·m: the normalizer, tanh head and the 30 N·m scaling are all inside it
    np.testing.assert_allclose(got / spec.action.limits_nm, normalized, rtol=0, atol=PARITY_TOL)
    assert np.abs(got).max() > 5.0, "outputs look normalized, not scaled to N·m"
    assert np.all(np.abs(got) <= spec.action.limits_nm)
    r = verify_bundle(policy, bundles["a"], n_random=10_000)
    assert r["max_abs_diff"] <= PARITY_TOL
    with pytest.raises(ValueError, match="parity failed"):
        verify_bundle(tiny_policy("biped", 5), bundles["a"], n_random=10_000)  # a different policy


def test_out_of_range_actions_are_clipped_before_scaling(tmp_path: Path, tiny_policy) -> None:
    class Wild(tiny_policy):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return 3.0 * obs[:, :4]  # a head that leaves [-1, 1] (e.g. an unclamped Gaussian mean)

    spec = get_robot("biped")
    obs = np.zeros((3, 24), dtype=np.float32)
    obs[:, :4] = [[1.0, -1.0, 0.1, 0.0], [5, -5, 0.2, -0.3], [0.3, 0.01, -0.2, 2]]
    export_bundle(Wild(), tmp_path / "w", recorded_obs=obs, n_random=10_000)
    got = Policy(load_bundle(tmp_path / "w")).batch(obs)
    np.testing.assert_allclose(got, np.clip(3.0 * obs[:, :4], -1, 1) * spec.action.limits_nm, atol=1e-5)


def test_manifest_schema(bundles: dict[str, Path]) -> None:
    m = read_manifest(bundles["knob"])
    assert m["schema_version"] == SCHEMA_VERSION and m["robot"] == "knob"
    spec = get_robot("knob")
    assert [f["name"] for f in m["observation"]["fields"]] == [f.name for f in spec.obs_fields]
    assert all(f["unit"] for f in m["observation"]["fields"])
    assert [(x["name"], x["torque_limit_nm"]) for x in m["action"]["motors"]] == [
        (x.name, x.torque_limit_nm) for x in spec.action.motors
    ]
    assert m["control_hz"] == spec.control_hz and m["sensors"]["aux_names"] == list(spec.sensors.aux_names)
    assert m["training"] == {"config": {"algo": "td3", "hidden": [32, 32], "seed": 2}, "git_commit": "0123abc"}
    assert len(m["model"]["sha256"]) == 64 and m["files"]["policy.onnx"] == m["model"]["sha256"]
    assert m["parity"]["n_random"] >= 2000 and m["parity"]["max_abs_diff"] <= PARITY_TOL
    assert m["created_utc"].endswith("Z") and m["s2r_version"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.pop("robot"), "lacks 'robot'"),
        (lambda m: m.update(schema_version=99), "schema version 99"),
        (lambda m: m.update(robot="hexapod"), "unknown robot"),
        (lambda m: m["action"]["motors"][1].update(torque_limit_nm=300.0), r"torque_limits_nm\[1\]"),
        (lambda m: m["observation"]["fields"].reverse(), r"obs_names\[0\]"),
        (lambda m: m["model"].update(sha256="0" * 64), "tampered"),
    ],
)
def test_manifest_validation_rejects(bundles: dict[str, Path], edit, match: str) -> None:
    m = json.loads((bundles["a"] / "manifest.json").read_text())
    edit(m)
    with pytest.raises(ValueError, match=match):
        validate_manifest(m)


def test_failed_export_writes_nothing(tmp_path: Path, tiny_policy) -> None:
    bad = tiny_policy("biped")
    bad.obs_dim = 20
    with pytest.raises(ValueError, match="obs_dim 20"):
        export_bundle(bad, tmp_path / "x", recorded_obs=np.zeros((1, 24), np.float32))
    with pytest.raises(ValueError, match="shape"):
        export_bundle(tiny_policy(), tmp_path / "x", recorded_obs=np.zeros((4, 20), np.float32))
    (tmp_path / "notabundle").mkdir()
    (tmp_path / "notabundle" / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="not a bundle folder"):
        export_bundle(tiny_policy(), tmp_path / "notabundle", recorded_obs=np.zeros((4, 24), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notabundle"]


def test_reexport_replaces_bundle(tmp_path: Path, tiny_policy) -> None:
    obs = random_observations(get_robot("biped"), 8)
    export_bundle(tiny_policy(seed=0), tmp_path / "b", recorded_obs=obs, n_random=10_000)
    first = load_bundle(tmp_path / "b").sha256
    export_bundle(tiny_policy(seed=3), tmp_path / "b", recorded_obs=obs, n_random=10_000)
    assert load_bundle(tmp_path / "b").sha256 != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_torque_policy_matches_action_spec() -> None:
    spec = get_robot("knob")
    a = np.array([[0.5, -2.0, 1.0, 0.25]], dtype=np.float32)

    class Const(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(a).expand(obs.shape[0], -1)

    with torch.no_grad():
        got = TorquePolicy(Const(), spec.action.limits_nm)(torch.zeros(1, spec.obs_dim)).numpy()[0]
    np.testing.assert_array_equal(got, spec.action.to_torque_nm(a[0]))


def test_redundant_clips_dropped_narrower_ones_kept() -> None:
    class Clamps(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            a = torch.tanh(obs[:, :4] * 3.0).clamp(-1.0, 1.0).clamp(-1.0, 1.0)  # the 2nd is a no-op
            return a.clamp(-0.5, 0.9)  # narrower: must stay (and TorquePolicy's clamp(-1, 1) after it goes)

    spec = get_robot("biped")
    model = TorquePolicy(Clamps(), spec.action.limits_nm)
    simplified = onnx.load_from_string(onnx_bytes(model, spec.obs_dim))
    traced = onnx.load_from_string(onnx_bytes(model, spec.obs_dim, simplify=False))
    ops = [n.op_type for n in simplified.graph.node if n.op_type != "Constant"]
    assert ops == ["Slice", "Mul", "Tanh", "Clip", "Clip", "Mul"]
    assert sum(n.op_type == "Clip" for n in traced.graph.node) == 4
    obs = random_observations(spec, 2000, seed=3)
    got = [ort.InferenceSession(m.SerializeToString()).run(None, {"obs": obs})[0] for m in (simplified, traced)]
    np.testing.assert_array_equal(got[0], got[1])  # exact: only no-op nodes were dropped
    ref = torch_torques(model, obs)
    np.testing.assert_allclose(got[0] / spec.action.limits_nm, ref / spec.action.limits_nm, atol=PARITY_TOL)
