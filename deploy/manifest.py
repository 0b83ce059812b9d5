"""Bundle manifest: what an exported policy expects and produces, and the robot profile a model store accepts.

A bundle is a folder::

    policy.onnx            obs float32 [batch, obs_dim] (raw sensor units) -> torque_nm float32 [batch, n_motors]
    sample_obs.npy         recorded + random observations, float32 [n, obs_dim], for flash's self-test
    sample_torque_nm.npy   the torch policy's torques on them, float32 [n, n_motors] (the expected answers)
    manifest.json          this module's schema (below)

A policy with memory (LSTM-TD3) has more inputs and outputs: ``model.state`` lists them, one entry per state
tensor ``{"input", "output", "dtype", "shape": ["batch", ...], "initial": <one row, nested lists>}``. The
graph maps (obs, state) to (torque_nm, next state); the controller feeds each step's next state back as the
following step's state and starts from ``initial`` (on every ENABLE). A feed-forward bundle has no ``state``.

The manifest is self-describing (robot, observation fields with units, motors with torque limits, sensor layout,
control rate, training config and commit, sha256 of every file), so a controller can refuse a bundle that does not
fit the board it talks to without importing any training code. Pure python: no torch, no onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sim.errors import UserError
from sim.files import read_json
from sim.robots import get_robot
from sim.spec import RobotSpec

SCHEMA_VERSION = 1
MODEL_FILE = "policy.onnx"
SAMPLE_OBS_FILE = "sample_obs.npy"
SAMPLE_TORQUE_FILE = "sample_torque_nm.npy"
MANIFEST_FILE = "manifest.json"
BUNDLE_FILES = (MODEL_FILE, SAMPLE_OBS_FILE, SAMPLE_TORQUE_FILE)
INPUT_NAME = "obs"
OUTPUT_NAME = "torque_nm"

# top-level keys and their JSON types; validate_manifest checks exactly these
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "s2r_version": str,
    "robot": str,
    "env_id": str,
    "created_utc": str,
    "control_hz": (int, float),
    "model": dict,
    "files": dict,
    "observation": dict,
    "action": dict,
    "sensors": dict,
    "training": dict,
    "parity": dict,
}


def input_gain_problem(obs_std: Any, spec: RobotSpec) -> str | None:
    """The first observation field whose normalizer std is below the resolution the robot spec declares (its
    input gain 1/std above 1/resolution), as a one-line phrase; None when every field is within bounds.

    A tiny std makes a policy react to changes far below what the sensor resolves: the first biped bundle had
    std 1e-4 on two lidar rays that never hit anything in training, so 0.25 mm of range moved its input by 1.
    """
    std = [float(x) for x in obs_std]
    if len(std) != spec.obs_dim:
        return f"normalizer has {len(std)} fields, robot '{spec.robot_id}' has {spec.obs_dim}"
    for i, (s, f) in enumerate(zip(std, spec.obs_fields, strict=True)):
        if not s >= f.resolution * (1.0 - 1e-6):  # float32 rounding of a floored std; NaN fails too
            return (
                f"observation field '{f.name}' (index {i}) has normalizer std {s:.3g} {f.unit}, below its resolution "
                f"{f.resolution:g} {f.unit}: input gain {1.0 / max(s, 1e-30):.3g} per {f.unit} > bound "
                f"{1.0 / f.resolution:.3g}"
            )
    return None


def adr_summary(source_state: Any) -> dict[str, Any] | None:
    """The manifest's ``adr`` section from a checkpoint's parameter-source state (None unless it is ADR).

    ``ranges``: the final ADR range of every randomized parameter. ``at_bounds``: for each bound ADR decided on,
    the bound it last evaluated and the mean performance there over ``episodes`` episodes (with the default
    ``performance: success``, the success rate of the policy at that time). A range is only as robust as
    ``s2r stress`` shows: ADR widens a bound one step past the last value it saw succeed.
    """
    if not isinstance(source_state, dict) or source_state.get("kind") != "adr":
        return None
    return {
        "performance": source_state.get("performance", "unknown (trained before it was recorded)"),
        "thresholds": source_state.get("thresholds"),
        "ranges": {n: [float(v) for v in r] for n, r in source_state["ranges"].items()},
        "at_bounds": source_state.get("bound_stats", {}),
        "decisions": int(source_state.get("n_updates", 0)),
    }


def s2r_version() -> str:
    """Installed s2r version (``0.0.0+src`` when running from an uninstalled tree)."""
    try:
        return version("s2r")
    except PackageNotFoundError:
        return "0.0.0+src"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def robot_profile(spec: RobotSpec) -> dict[str, Any]:
    """The facts a bundle and a board must agree on: robot, obs order, motors, limits, sensors, control rate.

    JSON-able; stored as the model store's ``profile.json`` and compared field by field at flash time.
    """
    return {
        "robot": spec.robot_id,
        "obs_names": [f.name for f in spec.obs_fields],
        "motor_names": list(spec.action.names),
        "torque_limits_nm": [float(m.torque_limit_nm) for m in spec.action.motors],
        "sensors": _sensors(spec),
        "control_hz": float(spec.control_hz),
    }


def _sensors(spec: RobotSpec) -> dict[str, Any]:
    s = asdict(spec.sensors)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()}


def profile_of_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The robot profile a (validated) manifest claims, in :func:`robot_profile`'s format."""
    return {
        "robot": manifest["robot"],
        "obs_names": [f["name"] for f in manifest["observation"]["fields"]],
        "motor_names": [m["name"] for m in manifest["action"]["motors"]],
        "torque_limits_nm": [float(m["torque_limit_nm"]) for m in manifest["action"]["motors"]],
        "sensors": manifest["sensors"],
        "control_hz": float(manifest["control_hz"]),
    }


def profile_mismatch(expected: dict[str, Any], got: dict[str, Any]) -> str | None:
    """First difference between two robot profiles as a short phrase, or None when they match."""
    for key in expected:
        if expected[key] != got.get(key):
            e, g = expected[key], got.get(key)
            if isinstance(e, list) and isinstance(g, list) and len(e) == len(g):
                i = next(i for i, (a, b) in enumerate(zip(e, g, strict=True)) if a != b)
                return f"{key}[{i}] is {g[i]!r}, expected {e[i]!r}"
            return f"{key} is {_short(g)}, expected {_short(e)}"
    return None


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def build_manifest(
    spec: RobotSpec,
    *,
    env_id: str,
    files_sha256: dict[str, str],
    opset: int,
    n_samples: int,
    training_config: dict[str, Any],
    git_commit: str,
    parity: dict[str, Any],
    created_utc: str,
    state: list[dict[str, Any]] | None = None,
    adr: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a manifest for ``spec`` (the robot the policy was trained on); see the module docstring."""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "s2r_version": s2r_version(),
        "robot": spec.robot_id,
        "env_id": env_id,
        "created_utc": created_utc,
        "control_hz": float(spec.control_hz),
        "model": {
            "file": MODEL_FILE,
            "sha256": files_sha256[MODEL_FILE],
            "opset": int(opset),
            "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", spec.obs_dim]},
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", spec.action.n], "unit": "N·m"},
        },
        "files": {name: files_sha256[name] for name in BUNDLE_FILES},
        "observation": {
            "dim": spec.obs_dim,
            "fields": [
                {"index": i, "name": f.name, "unit": f.unit, "low": f.low, "high": f.high, "doc": f.doc}
                for i, f in enumerate(spec.obs_fields)
            ],
        },
        "action": {
            "n": spec.action.n,
            "motors": [
                {"name": m.name, "torque_limit_nm": float(m.torque_limit_nm)} for m in spec.action.motors
            ],
        },
        "sensors": _sensors(spec),
        "samples": {"n": int(n_samples)},
        "training": {"config": training_config, "git_commit": git_commit},
        "parity": parity,
    }
    if state:
        manifest["model"]["state"] = state
    if adr is not None:
        manifest["adr"] = adr
    validate_manifest(manifest)
    return manifest


def _state_ok(model: dict[str, Any]) -> bool:
    """``model.state`` (if any): distinct names, shapes that start with the batch axis, initial values of the
    row shape."""
    state = model.get("state", [])
    if not isinstance(state, list):
        return False
    names = [INPUT_NAME, OUTPUT_NAME]
    for s in state:
        names += [s["input"], s["output"]]
        rows, dims = s["initial"], [int(d) for d in s["shape"][1:]]
        for d in dims:  # nested lists of exactly the row shape
            if not isinstance(rows, list) or len(rows) != d:
                return False
            rows = rows[0] if d else []
        if s["dtype"] != "float32" or s["shape"][0] != "batch":
            return False
    return len(set(names)) == len(names) and all(isinstance(n, str) for n in names)


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check a manifest's schema; raise ValueError naming the first problem. Returns the manifest."""
    if not isinstance(manifest, dict):
        raise UserError("manifest.json is not a JSON object; re-export the bundle with `s2r export`")
    for key, typ in _REQUIRED.items():
        if key not in manifest:
            raise UserError(f"manifest.json lacks '{key}'; re-export the bundle with `s2r export`")
        if not isinstance(manifest[key], typ) or isinstance(manifest[key], bool):
            raise UserError(f"manifest.json: '{key}' has type {type(manifest[key]).__name__}; re-export the bundle")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise UserError(
            f"manifest schema version {manifest['schema_version']} is not supported (this s2r reads "
            f"{SCHEMA_VERSION}); re-export the bundle with this s2r version"
        )
    spec = get_robot(manifest["robot"])  # unknown robot → ValueError listing the known ones
    obs, act, model = manifest["observation"], manifest["action"], manifest["model"]
    try:
        fields, motors = list(obs["fields"]), list(act["motors"])
        names_ok = all(isinstance(f["name"], str) for f in fields) and all(
            isinstance(m["name"], str) and float(m["torque_limit_nm"]) > 0 for m in motors
        )
        io_ok = model["input"]["name"] == INPUT_NAME and model["output"]["name"] == OUTPUT_NAME
        shapes_ok = model["input"]["shape"][1] == len(fields) and model["output"]["shape"][1] == len(motors)
        files_ok = all(isinstance(manifest["files"][n], str) for n in BUNDLE_FILES)
        state_ok = _state_ok(model)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise UserError(f"manifest.json is malformed ({type(exc).__name__}: {exc}); re-export the bundle") from None
    if not state_ok:
        raise UserError("manifest.json: model.state is malformed (names, shapes or initial values); re-export")
    if not (names_ok and io_ok and shapes_ok and files_ok and obs.get("dim") == len(fields)):
        raise UserError("manifest.json: observation/action/model/files sections are inconsistent; re-export")
    if model.get("sha256") != manifest["files"][MODEL_FILE]:
        raise UserError("manifest.json: model.sha256 differs from files['policy.onnx']; the bundle was tampered with")
    problem = profile_mismatch(robot_profile(spec), profile_of_manifest(manifest))
    if problem:
        raise UserError(
            f"bundle for robot '{spec.robot_id}' does not match this s2r's {spec.robot_id} spec: {problem}; "
            "re-export it with this s2r version"
        )
    return manifest


def read_manifest(bundle_dir: str | Path) -> dict[str, Any]:
    """Load and validate ``bundle_dir/manifest.json``; one-line errors for missing or broken files."""
    path = Path(bundle_dir) / MANIFEST_FILE
    if not Path(bundle_dir).is_dir():
        raise UserError(f"bundle '{bundle_dir}' is not a directory; create one with `s2r export CKPT -o DIR`")
    try:
        manifest = read_json(path, "bundle manifest", "the bundle is corrupt")
    except FileNotFoundError:
        raise UserError(f"bundle '{bundle_dir}' has no {MANIFEST_FILE}; create it with `s2r export`") from None
    return validate_manifest(manifest)
