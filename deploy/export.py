"""Export an inference policy to a verified ONNX bundle (the only deploy module that imports torch).

The exported graph maps raw observations (the units the board reports) straight to motor torques in N·m::

    obs ─► [normalizer ─► actor ─► deterministic action]  (the InferencePolicy)
        ─► clip to [-1, 1] ─► × per-motor torque limits (sim.robots: RobotSpec.action.limits_nm) ─► torque_nm

Parity is checked on ≥ 10,000 random observations plus observations recorded by rolling the policy out in the
simulator: torch and onnxruntime must agree to :data:`PARITY_TOL` of each motor's torque limit. The bundle is built in a temp folder and
renamed into place only once it passed, so a failed or interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import torch
from torch import nn

from deploy.bundle import Policy, load_bundle, self_test, write_file_durable
from deploy.manifest import (
    INPUT_NAME,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
    SAMPLE_OBS_FILE,
    SAMPLE_TORQUE_FILE,
    adr_summary,
    build_manifest,
    input_gain_problem,
    sha256_file,
)
from sim.errors import UserError
from sim.files import check_output_dir, make_dir_beside, replace_dir
from sim.robots import get_robot
from sim.spec import RobotSpec

OPSET = 18  # supported by onnxruntime >= 1.14 and by the legacy TorchScript exporter
# torch vs onnxruntime, in normalized action units (|Δ torque| / torque limit): float32 GEMMs accumulate in a
# different order in MKL and MLAS, ~3e-7 for a 400x300 MLP; absolute N·m would scale the bound with the motor
PARITY_TOL = 1e-5
N_RANDOM = 10_000
N_RECORDED = 400  # simulator steps recorded for parity and for the flash self-test
N_SAMPLES = 256  # observations kept in the bundle for flash's self-test (recorded first, then random)


class TorquePolicy(nn.Module):
    """InferencePolicy (raw obs → normalized action) followed by clip and per-motor scaling to N·m."""

    def __init__(self, policy: nn.Module, limits_nm: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("limits_nm", torch.as_tensor(np.asarray(limits_nm, dtype=np.float32)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy(obs).clamp(-1.0, 1.0) * self.limits_nm


def robot_of(policy: nn.Module) -> RobotSpec:
    """The robot spec a policy was trained for; ValueError if its dimensions do not fit that robot."""
    if getattr(policy, "robot_id", None) is None:
        raise UserError(
            f"policy was trained on '{getattr(policy, 'env_id', '?')}', not an s2r robot env; only policies of a "
            "registered robot (biped, knob...) can be exported to a robot"
        )
    spec = get_robot(str(policy.robot_id))
    obs_dim, act_dim = int(getattr(policy, "obs_dim", -1)), int(getattr(policy, "act_dim", -1))
    if obs_dim != spec.obs_dim or act_dim != spec.action.n:
        raise UserError(
            f"policy has obs_dim {obs_dim}, act_dim {act_dim} but robot '{spec.robot_id}' has "
            f"{spec.obs_dim} observations and {spec.action.n} motors; was it trained on an s2r env?"
        )
    return spec


def check_input_gain(policy: nn.Module, spec: RobotSpec) -> None:
    """Refuse a policy whose normalizer divides a field by less than its spec resolution (one-line ValueError)."""
    std = getattr(policy, "obs_std", None)
    if std is None:
        return
    problem = input_gain_problem(torch.as_tensor(std).reshape(-1).tolist(), spec)
    if problem:
        raise UserError(
            f"export refused: {problem}; the policy was trained without the normalizer's std floor — retrain it "
            "with this s2r (its normalizer floors every field at the spec's resolution)"
        )


def onnx_bytes(model: TorquePolicy, obs_dim: int, opset: int = OPSET, *, simplify: bool = True) -> bytes:
    """Trace ``model`` to ONNX (dynamic batch), drop redundant Clips (``simplify``; False: the graph as traced,
    for comparison), check it with onnx.checker, return the serialized model."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch >= 2.9 warns that the TorchScript exporter is legacy; the dynamo one needs onnxscript, which a
        # controller image does not carry, and both produce the same graph for an MLP.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, obs_dim),),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file-like objects too
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    if simplify:
        drop_redundant_clips(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def drop_redundant_clips(proto: onnx.ModelProto) -> int:
    """Remove each Clip whose input is the output of a Clip with bounds inside its own (in place); return how many.

    The normalized action is clamped to [-1, 1] by the InferencePolicy and again by :class:`TorquePolicy` (and
    by a Gaussian actor's deterministic head before them), so the traced graph holds two or three Clips in a
    row; all but the first are exact no-ops, and each node costs time on every call in onnxruntime
    (BENCHMARKS.md, Policy inference). A Clip after
    a Tanh stays: onnxruntime's tanh reaches 1.0000002.
    """
    graph = proto.graph
    consts = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            consts[n.output[0]] = n.attribute[0].t
    clips = {n.output[0]: n for n in graph.node if n.op_type == "Clip"}
    graph_outputs = {o.name for o in graph.output}

    def bounds(clip: onnx.NodeProto) -> tuple[float, float] | None:
        out = [-np.inf, np.inf]
        for i, name in enumerate(clip.input[1:3]):
            if name:
                value = onnx.numpy_helper.to_array(consts[name]) if name in consts else None
                if value is None or value.size != 1:
                    return None  # a bound computed at run time: leave the node alone
                out[i] = float(value.reshape(()))
        return out[0], out[1]

    redundant: dict[str, str] = {}
    for out_name, clip in clips.items():
        inner = clips.get(clip.input[0])
        b, b_inner = bounds(clip), (bounds(inner) if inner is not None else None)
        if out_name not in graph_outputs and b and b_inner and b[0] <= b_inner[0] and b_inner[1] <= b[1]:
            redundant[out_name] = clip.input[0]
    for out_name, src in redundant.items():  # a chain of three resolves to its first Clip
        while src in redundant:
            src = redundant[src]
        redundant[out_name] = src
    for node in graph.node:
        node.input[:] = [redundant.get(name, name) for name in node.input]
    keep = [n for n in graph.node if not (n.op_type == "Clip" and n.output[0] in redundant)]
    used = {name for n in keep for name in n.input} | graph_outputs
    keep = [n for n in keep if n.op_type != "Constant" or n.output[0] in used]  # the dropped Clips' bounds
    del graph.node[:]
    graph.node.extend(keep)
    return len(redundant)


def random_observations(spec: RobotSpec, n: int, seed: int = 0) -> np.ndarray:
    """``n`` observations uniform in each field's documented range widened by half its span on both sides,
    so parity also covers the normalizer's clipping and out-of-distribution inputs."""
    rng = np.random.default_rng(seed)
    low = np.array([f.low for f in spec.obs_fields], dtype=np.float64)
    high = np.array([f.high for f in spec.obs_fields], dtype=np.float64)
    span = high - low
    return rng.uniform(low - 0.5 * span, high + 0.5 * span, size=(n, spec.obs_dim)).astype(np.float32)


def record_observations(policy: nn.Module, env_id: str, n_steps: int = N_RECORDED, seed: int = 0) -> np.ndarray:
    """Roll the policy out (deterministic action) in the simulator for ``n_steps``; return the observations."""
    import gymnasium as gym

    import sim

    env = gym.make(sim.resolve_env_id(env_id))
    try:
        obs, _ = env.reset(seed=seed)
        out = []
        for _ in range(n_steps):
            out.append(np.asarray(obs, dtype=np.float32))
            with torch.no_grad():
                action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, _, terminated, truncated, _ = env.step(np.clip(action, -1.0, 1.0))
            if terminated or truncated:
                obs, _ = env.reset()
        return np.stack(out)
    finally:
        env.close()


def torch_torques(model: TorquePolicy, obs: np.ndarray) -> np.ndarray:
    """The torch reference: torques in N·m for a batch of observations, float32."""
    with torch.no_grad():
        return model(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def parity(model: TorquePolicy, policy: Policy, obs: np.ndarray) -> dict[str, float]:
    """torch vs onnxruntime over ``obs``: max |Δ| in normalized action units (torque / limit) and in N·m.

    The whole batch is compared at once, and the first 200 observations one by one through the controller's
    IOBinding path (batch 1 can take a different GEMM kernel).
    """
    ref = torch_torques(model, obs)
    got = np.concatenate([np.stack([policy(o).copy() for o in obs[:200]]), policy.batch(obs)])
    delta_nm = np.abs(got - np.concatenate([ref[:200], ref]))
    return {
        "max_abs_diff": float(np.max(delta_nm / np.asarray(model.limits_nm))),
        "max_abs_diff_nm": float(np.max(delta_nm)),
    }


def _check_parity(result: dict[str, float]) -> None:
    if not result["max_abs_diff"] <= PARITY_TOL:
        raise UserError(
            f"ONNX parity failed: torch and onnxruntime differ by {result['max_abs_diff']:.3g} of the torque "
            f"limit ({result['max_abs_diff_nm']:.3g} N·m; bound {PARITY_TOL:g}); check the policy's ops"
        )


def export_bundle(
    policy: nn.Module,
    out_dir: str | Path,
    *,
    recorded_obs: np.ndarray | None = None,
    n_random: int = N_RANDOM,
    seed: int = 0,
    opset: int = OPSET,
) -> dict[str, Any]:
    """Export ``policy`` (an InferencePolicy) as a verified bundle in ``out_dir``; return its manifest.

    ``recorded_obs``: observations to check parity on and to keep for the flash self-test; default: roll the
    policy out in its simulator env for :data:`N_RECORDED` steps. ``out_dir`` may exist only as a previous
    bundle (it is then replaced) or an empty folder.
    """
    policy = policy.eval()
    spec = robot_of(policy)
    check_input_gain(policy, spec)
    out = Path(out_dir)
    _check_target(out)
    env_id = str(getattr(policy, "env_id", spec.robot_id))
    if hasattr(policy, "initial_state"):  # a policy with memory: state inputs/outputs, parity over episodes
        from deploy.export_recurrent import export_recurrent_bundle

        rec = None if recorded_obs is None else (recorded_obs, np.arange(len(recorded_obs)) == 0)
        return export_recurrent_bundle(policy, out, spec, env_id, seed=seed, opset=opset, n_random=n_random,
                                       recorded=rec)  # fmt: skip
    if recorded_obs is None:
        recorded_obs = record_observations(policy, env_id, seed=seed)
    recorded = spec.check_obs(recorded_obs).reshape(-1, spec.obs_dim)
    model = TorquePolicy(policy, spec.action.limits_nm).eval()
    random = random_observations(spec, n_random, seed)
    samples = np.concatenate([recorded, random])[:N_SAMPLES]  # recorded first

    tmp = make_dir_beside(out)  # the mode a plain mkdir gives: a bundle is meant to be copied, flashed and shipped
    try:
        write_file_durable(tmp / MODEL_FILE, onnx_bytes(model, spec.obs_dim, opset))
        _save_npy(tmp / SAMPLE_OBS_FILE, samples)
        _save_npy(tmp / SAMPLE_TORQUE_FILE, torch_torques(model, samples))
        # the Policy (onnxruntime) object only needs the manifest's dims, so check parity before writing it
        files = {name: sha256_file(tmp / name) for name in (MODEL_FILE, SAMPLE_OBS_FILE, SAMPLE_TORQUE_FILE)}
        manifest = build_manifest(
            spec,
            env_id=env_id,
            files_sha256=files,
            opset=opset,
            n_samples=len(samples),
            training_config=_jsonable(getattr(policy, "config", {}) or {}),
            git_commit=str(getattr(policy, "git_commit", "") or "unknown"),
            parity={"n_random": int(n_random), "n_recorded": len(recorded), "tolerance": PARITY_TOL},
            created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            adr=adr_summary(getattr(policy, "param_source", None)),
        )
        finish_bundle(tmp, out, manifest, lambda ort: parity(model, ort, np.concatenate([recorded, random])))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest



def finish_bundle(
    tmp: Path, out: Path, manifest: dict[str, Any], check: Callable[[Policy], dict[str, float]]
) -> None:
    """The last steps of every export: write the manifest, run ``check`` (torch vs onnxruntime parity) on the
    bundle as onnxruntime loads it, refuse it over the tolerance, record the figures, self-test, and only then
    move ``tmp`` into place as ``out``."""
    _write_manifest(tmp, manifest)
    result = check(Policy(load_bundle(tmp)))
    _check_parity(result)
    manifest["parity"].update(result)
    _write_manifest(tmp, manifest)
    self_test(load_bundle(tmp))
    replace_dir(tmp, out)


def verify_bundle(
    policy: nn.Module, bundle_dir: str | Path, n_random: int = N_RANDOM, seed: int = 1
) -> dict[str, float]:
    """Re-check an existing bundle against the torch policy on fresh random + its recorded observations."""
    spec = robot_of(policy.eval())
    if hasattr(policy, "initial_state"):
        from deploy.export_recurrent import verify_recurrent_bundle

        return verify_recurrent_bundle(policy, bundle_dir, spec, n_random, seed)
    bundle = load_bundle(bundle_dir)
    if bundle.robot != spec.robot_id:
        raise UserError(f"bundle '{bundle_dir}' is for robot '{bundle.robot}', the policy for '{spec.robot_id}'")
    model = TorquePolicy(policy, spec.action.limits_nm).eval()
    obs = np.concatenate([bundle.sample_obs(), random_observations(spec, n_random, seed)])
    result = parity(model, Policy(bundle), obs)
    _check_parity(result)
    return result


def _check_target(out: Path) -> None:
    check_output_dir(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).exists())):
        raise UserError(f"'{out}' exists and is not a bundle folder; choose another -o or remove it")


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    write_file_durable(path, buf.getvalue())


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_file_durable(folder / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())


def _jsonable(obj: Any) -> Any:
    """Training configs may hold tuples, numpy scalars, paths: turn them into plain JSON values."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
