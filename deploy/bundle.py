"""Reading and checking bundles, the onnxruntime session the controller uses, and crash-safe file helpers.

No torch here: this module runs on the robot's controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.manifest import (
    BUNDLE_FILES,
    INPUT_NAME,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
    SAMPLE_OBS_FILE,
    SAMPLE_TORQUE_FILE,
    read_manifest,
    sha256_file,
)
from sim import files
from sim.errors import UserError

SELF_TEST_TOL = 1e-5  # onnxruntime vs the torch torques stored at export, in units of each torque limit


# ---------------------------------------------------------------------------------------- crash-safe files
# one implementation for the whole tree: sim.files (temp file + fsync + rename + fsync of the folder, normal modes,
# only a regular file or a new name is replaced); these names stay for the bundle/store code that uses them
fsync_dir = files.fsync_dir
replace_atomic = files.atomic_write
replace_dir = files.replace_dir
copy_durable = files.copy_file


def write_file_durable(path: str | Path, data: bytes) -> None:
    """Write a new file inside a temp folder that :func:`replace_dir` swaps in (the folder is the atomic unit)."""
    files.atomic_write(path, data)


# -------------------------------------------------------------------------------------------------- bundles
@dataclass(frozen=True)
class Bundle:
    """A bundle folder whose manifest validated and whose files match their sha256."""

    path: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def sha256(self) -> str:
        return self.manifest["model"]["sha256"]

    @property
    def robot(self) -> str:
        return self.manifest["robot"]

    def sample_obs(self) -> np.ndarray:
        return np.load(self.path / SAMPLE_OBS_FILE, allow_pickle=False)

    def sample_torque_nm(self) -> np.ndarray:
        return np.load(self.path / SAMPLE_TORQUE_FILE, allow_pickle=False)

    def limits_nm(self) -> np.ndarray:
        return np.array([m["torque_limit_nm"] for m in self.manifest["action"]["motors"]], dtype=np.float32)


def load_bundle(bundle_dir: str | Path) -> Bundle:
    """Validate the manifest and check every file's sha256; ValueError names what is wrong (corrupt/tampered)."""
    path = Path(bundle_dir)
    manifest = read_manifest(path)
    for name in BUNDLE_FILES:
        f = path / name
        if not f.is_file():
            raise UserError(f"bundle '{path}' lacks {name}; the bundle is incomplete, re-export it")
        if sha256_file(f) != manifest["files"][name]:
            raise UserError(f"bundle '{path}': {name} does not match its sha256 in {MANIFEST_FILE}; refusing it")
    return Bundle(path, manifest)


def session_options(*, prepack_weights: bool = False) -> Any:
    """onnxruntime options for a 50 Hz single-observation loop: one thread, sequential, full graph optimization.

    One intra-op thread: a [1, 24] x [24, 400] matmul is far too small to amortize waking a thread pool, and a
    controller must not compete with its own I/O thread for cores.

    Weight prepacking is off by default: for one observation (M = 1) MLAS has dedicated GEMV kernels that read
    the weights in place, and it takes them only for unpacked weights; prepacked ones go through the blocked
    GEMM kernel, slower per call for one observation (BENCHMARKS.md, Policy inference; benchmarks/inference.py
    measures both; ``prepack_weights=True`` is the faster choice for large batches).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-wait between 20 ms steps
    so.add_session_config_entry("session.disable_prepacking", "0" if prepack_weights else "1")
    so.log_severity_level = 3
    return so


def make_session(model_path: str | Path, options: Any = None) -> Any:
    """An onnxruntime CPU session for a bundle's policy.onnx (``options``: default :func:`session_options`);
    ValueError if onnxruntime cannot load it."""
    import onnxruntime as ort

    options = options if options is not None else session_options()
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        raise UserError(f"onnxruntime cannot load {model_path}: {str(exc).splitlines()[0][:200]}") from None


class Policy:
    """A bundle's policy in onnxruntime, run on one observation at a time into preallocated buffers.

    ``__call__`` copies the observation into a fixed [1, obs_dim] input buffer and lets onnxruntime write the
    [1, n_motors] output into a fixed buffer through IOBinding: no allocation per step (see
    benchmarks/inference.py for the comparison with ``session.run``). ``session``: an onnxruntime session of
    the bundle's model to use instead of one with :func:`session_options` (benchmarks compare options).
    """

    def __init__(self, bundle: Bundle, session: Any = None) -> None:
        import onnxruntime as ort

        self.bundle = bundle
        self.session = session if session is not None else make_session(bundle.model_path)
        self.state_spec: list[dict[str, Any]] = list(bundle.manifest["model"].get("state", []))
        obs_dim, n = bundle.manifest["observation"]["dim"], bundle.manifest["action"]["n"]
        self.obs_buf = np.zeros((1, obs_dim), dtype=np.float32)
        self.out_buf = np.zeros((1, n), dtype=np.float32)
        self._obs_row, self._out_row = self.obs_buf[0], self.out_buf[0]  # views made once, not per step
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(self.obs_buf))
        binding.bind_ortvalue_output(OUTPUT_NAME, ort.OrtValue.ortvalue_from_numpy(self.out_buf))
        # a policy with memory: each state tensor has a fixed input buffer (this step's state) and output buffer
        # (the next state), copied over the input after every step
        self.initial_state = [np.asarray(st["initial"], dtype=np.float32)[None] for st in self.state_spec]
        self.state_in = [x.copy() for x in self.initial_state]
        self.state_out = [x.copy() for x in self.initial_state]
        for st, x_in, x_out in zip(self.state_spec, self.state_in, self.state_out, strict=True):
            binding.bind_ortvalue_input(st["input"], ort.OrtValue.ortvalue_from_numpy(x_in))
            binding.bind_ortvalue_output(st["output"], ort.OrtValue.ortvalue_from_numpy(x_out))
        self._binding = binding
        # InferenceSession.run_with_iobinding is a Python wrapper that checks for WebGPU graph capture on every
        # call; call the C++ method under it when this onnxruntime has one. The wrapper's other check
        # (binding made by this session) holds by construction. RunOptions made once: with None, the binding
        # builds a default one per call. What each costs: BENCHMARKS.md, Policy inference.
        self._run_options = ort.RunOptions()
        c_run = getattr(getattr(self.session, "_sess", None), "run_with_iobinding", None)
        c_binding = getattr(binding, "_iobinding", None)
        if c_run is not None and c_binding is not None:
            self._run, self._run_arg = c_run, c_binding
        else:
            self._run, self._run_arg = self.session.run_with_iobinding, binding

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Torque in N·m (a view of the output buffer: copy it to keep it past the next call). A policy with
        memory advances its state by this step (:attr:`stateful`)."""
        self._obs_row[...] = obs
        self._run(self._run_arg, self._run_options)
        for x_in, x_out in zip(self.state_in, self.state_out, strict=True):
            np.copyto(x_in, x_out)
        return self._out_row

    @property
    def stateful(self) -> bool:
        """Whether the policy carries a state (memory) from one step to the next."""
        return bool(self.state_spec)

    def reset_state(self) -> None:
        """Back to the manifest's initial state (an episode's start, every ENABLE, after a bad state)."""
        for x_in, x0 in zip(self.state_in, self.initial_state, strict=True):
            np.copyto(x_in, x0)

    def state_finite(self) -> bool:
        """Whether every number of the current state is finite (a feed-forward policy's always is)."""
        return all(bool(np.isfinite(x).all()) for x in self.state_in)

    def batch(self, obs: np.ndarray) -> np.ndarray:
        """Torques for a batch [B, obs_dim] (allocating; for checks, not the control loop); a policy with memory
        answers each row from its initial state."""
        feeds = {INPUT_NAME: np.ascontiguousarray(obs, dtype=np.float32)}
        for st, x0 in zip(self.state_spec, self.initial_state, strict=True):
            feeds[st["input"]] = np.repeat(x0, len(obs), axis=0)
        return self.session.run([OUTPUT_NAME], feeds)[0]


def self_test(bundle: Bundle, policy: Policy | None = None) -> float:
    """Run the bundle's policy on its recorded observations; compare with the torch torques stored at export.

    Checks one at a time through the control-loop path (IOBinding), so what is tested is what will run.
    Returns the max |Δ| / torque limit; raises ValueError if it exceeds :data:`SELF_TEST_TOL`, an output is
    not finite, or a torque exceeds its limit.
    """
    policy = policy or Policy(bundle)
    obs, expected = bundle.sample_obs(), bundle.sample_torque_nm()
    n = bundle.manifest["action"]["n"]
    if obs.ndim != 2 or obs.shape[1] != policy.obs_buf.shape[1] or expected.shape != (obs.shape[0], n):
        raise UserError(f"bundle '{bundle.path}': sample files have shapes {obs.shape}, {expected.shape}")
    policy.reset_state()  # a policy with memory: the samples are one stream from the initial state
    got = np.stack([policy(o).copy() for o in obs]) if len(obs) else expected
    policy.reset_state()
    if not np.all(np.isfinite(got)):
        raise UserError(f"bundle '{bundle.path}': policy outputs NaN/inf on its recorded observations")
    if np.any(np.abs(got) > bundle.limits_nm() * (1 + 1e-6)):
        raise UserError(f"bundle '{bundle.path}': policy outputs torques beyond the manifest limits")
    err = float(np.max(np.abs(got - expected) / bundle.limits_nm())) if len(obs) else 0.0
    if not err <= SELF_TEST_TOL:
        raise UserError(
            f"bundle '{bundle.path}': onnxruntime differs from the exported torques by {err:.3g} of the "
            f"torque limit (> {SELF_TEST_TOL:g}); re-export it"
        )
    return err


def bundle_obs_std(bundle_dir: str | Path) -> list[float] | None:
    """The normalizer std folded into a bundle's ONNX graph (the initializer ``policy.obs_std``), or None if the
    graph has none (then the input gain cannot be read back). Imports onnx, so it is not for the controller."""
    import onnx
    import onnx.numpy_helper

    model = onnx.load(str(Path(bundle_dir) / MODEL_FILE))
    for t in model.graph.initializer:
        if t.name.endswith("obs_std"):
            return [float(x) for x in onnx.numpy_helper.to_array(t).reshape(-1)]
    return None
