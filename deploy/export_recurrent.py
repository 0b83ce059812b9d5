"""Export of a policy with memory (LSTM-TD3: :class:`policies.lstm_td3.RecurrentInferencePolicy`).

The graph has explicit state inputs and outputs::

    (obs, hist_obs, hist_act, hist_len) ─► [normalizer ─► LSTM actor ─► clip ─► × torque limits] ─► torque_nm
                                       └─► [window advanced by (obs, action)] ─► hist_obs_next, ... hist_len_next

and the manifest's ``model.state`` names them with the initial state (an empty window). Parity is checked over
*whole seeded episodes* — the torch policy and onnxruntime each carry their own state step by step from the
initial state, reset at every episode start — and over a stream of random observations, so a state that drifts
between the two runtimes would show; the bundle's samples are one such stream, for flash's self-test.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deploy.bundle import Policy, load_bundle, write_file_durable
from deploy.manifest import (
    INPUT_NAME,
    MODEL_FILE,
    OUTPUT_NAME,
    SAMPLE_OBS_FILE,
    SAMPLE_TORQUE_FILE,
    build_manifest,
    sha256_file,
)
from sim.errors import UserError
from sim.files import make_dir_beside

N_EPISODE_STEPS = 600  # simulator steps of seeded episodes for parity (several episodes where they are short)
N_RANDOM_STREAM = 2_000  # random observations fed as one stream


class RecurrentTorquePolicy(nn.Module):
    """RecurrentInferencePolicy followed by clip and per-motor scaling to N·m; the state passes through."""

    policy: Any  # a RecurrentInferencePolicy (initial_state, state_shapes, STATE_NAMES)

    def __init__(self, policy: nn.Module, limits_nm: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("limits_nm", torch.as_tensor(np.asarray(limits_nm, dtype=np.float32)))

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        action, *next_state = self.policy(obs, *state)
        return (action.clamp(-1.0, 1.0) * self.limits_nm, *next_state)


def state_names(policy: Any) -> list[tuple[str, str]]:
    return [(name, f"{name}_next") for name in policy.STATE_NAMES]


def onnx_bytes_recurrent(model: RecurrentTorquePolicy, obs_dim: int, opset: int) -> bytes:
    import io
    import warnings

    import onnx

    from deploy.export import drop_redundant_clips

    policy = model.policy
    names = state_names(policy)
    inputs, outputs = [INPUT_NAME, *(n for n, _ in names)], [OUTPUT_NAME, *(o for _, o in names)]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy TorchScript exporter's deprecation and LSTM batch warnings
        torch.onnx.export(model.eval(), (torch.zeros(1, obs_dim), *policy.initial_state(1)), buf,  # type: ignore[arg-type,unused-ignore]
                          input_names=inputs, output_names=outputs, opset_version=opset, do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in inputs + outputs}, dynamo=False)  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    drop_redundant_clips(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def torch_stream(model: RecurrentTorquePolicy, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Torques for a stream of observations, the state carried step to step and reset where ``starts``."""
    out, state = [], model.policy.initial_state(1)
    with torch.no_grad():
        for o, start in zip(obs, starts, strict=True):
            if start:
                state = model.policy.initial_state(1)
            torque, *state = model(torch.as_tensor(o, dtype=torch.float32)[None], *state)
            out.append(torque[0].numpy())
    return np.stack(out)


def ort_stream(policy: Policy, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The same through the controller's path (IOBinding, state buffers), resetting where ``starts``."""
    out = []
    policy.reset_state()
    for o, start in zip(obs, starts, strict=True):
        if start:
            policy.reset_state()
        out.append(policy(o).copy())
    policy.reset_state()
    return np.stack(out)


def record_episodes(policy: nn.Module, env_id: str, n_steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded episodes (seeds ``seed, seed+1, ...``) played by the torch policy carrying its state; returns the
    observations and the episode-start flags of ``n_steps`` steps."""
    import gymnasium as gym

    import sim
    from policies.evaluate import policy_initial_state, policy_step

    env = gym.make(sim.resolve_env_id(env_id))
    obs_list, starts = [], []
    try:
        episode, start = 0, True
        obs, _ = env.reset(seed=seed)
        state = policy_initial_state(policy)  # type: ignore[arg-type]
        for _ in range(n_steps):
            obs_list.append(np.asarray(obs, dtype=np.float32))
            starts.append(start)
            action, state = policy_step(policy, obs, state)  # type: ignore[arg-type]
            obs, _, terminated, truncated, _ = env.step(np.clip(action, -1.0, 1.0))
            start = bool(terminated or truncated)
            if start:
                episode += 1
                obs, _ = env.reset(seed=seed + episode)
                state = policy_initial_state(policy)  # type: ignore[arg-type]
        return np.stack(obs_list), np.asarray(starts)
    finally:
        env.close()


def stream_parity(model: RecurrentTorquePolicy, policy: Policy, obs: np.ndarray, starts: np.ndarray) -> dict[str, float]:
    ref, got = torch_stream(model, obs, starts), ort_stream(policy, obs, starts)
    delta = np.abs(got - ref)
    return {"max_abs_diff": float(np.max(delta / np.asarray(model.limits_nm))), "max_abs_diff_nm": float(np.max(delta))}


def export_recurrent_bundle(policy: nn.Module, out: Path, spec: Any, env_id: str, *, seed: int, opset: int,
                            n_random: int, recorded: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """:func:`deploy.export.export_bundle` for a policy with memory (it dispatches here)."""
    from deploy.export import (
        N_SAMPLES,
        PARITY_TOL,
        _jsonable,
        _save_npy,
        adr_summary,
        finish_bundle,
        random_observations,
    )

    model = RecurrentTorquePolicy(policy, spec.action.limits_nm).eval()
    ep_obs, ep_starts = recorded if recorded is not None else record_episodes(policy, env_id, N_EPISODE_STEPS, seed)
    ep_obs = spec.check_obs(ep_obs).reshape(-1, spec.obs_dim)
    rand = random_observations(spec, min(n_random, N_RANDOM_STREAM), seed)
    rand_starts = np.zeros(len(rand), dtype=bool)
    rand_starts[:1] = True
    samples = ep_obs[:N_SAMPLES]  # one stream from the initial state (the first episode, as far as it goes)
    initial = [x[0].numpy().tolist() for x in policy.initial_state(1)]  # type: ignore[operator]
    shapes = policy.state_shapes()  # type: ignore[operator]
    state = [{"input": i, "output": o, "dtype": "float32", "shape": ["batch", *shapes[i]], "initial": init}
             for (i, o), init in zip(state_names(policy), initial, strict=True)]  # fmt: skip
    tmp = make_dir_beside(out)
    try:
        write_file_durable(tmp / MODEL_FILE, onnx_bytes_recurrent(model, spec.obs_dim, opset))
        _save_npy(tmp / SAMPLE_OBS_FILE, samples)
        _save_npy(tmp / SAMPLE_TORQUE_FILE, torch_stream(model, samples, np.arange(len(samples)) == 0))
        files = {name: sha256_file(tmp / name) for name in (MODEL_FILE, SAMPLE_OBS_FILE, SAMPLE_TORQUE_FILE)}
        manifest = build_manifest(
            spec, env_id=env_id, files_sha256=files, opset=opset, n_samples=len(samples),
            training_config=_jsonable(getattr(policy, "config", {}) or {}),
            git_commit=str(getattr(policy, "git_commit", "") or "unknown"),
            parity={"n_random": len(rand), "n_recorded": len(ep_obs), "episodes": int(ep_starts.sum()),
                    "tolerance": PARITY_TOL, "mode": "streams: seeded episodes, state reset at each start"},
            created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), state=state,
            adr=adr_summary(getattr(policy, "param_source", None)),
        )  # fmt: skip

        def check(ort_policy: Policy) -> dict[str, float]:
            results = [stream_parity(model, ort_policy, ep_obs, ep_starts),
                       stream_parity(model, ort_policy, rand, rand_starts)]  # fmt: skip
            return {k: max(r[k] for r in results) for k in results[0]}

        finish_bundle(tmp, out, manifest, check)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def verify_recurrent_bundle(policy: nn.Module, bundle_dir: str | Path, spec: Any, n_random: int, seed: int) -> dict[str, float]:
    from deploy.export import _check_parity, random_observations

    bundle = load_bundle(bundle_dir)
    if not bundle.manifest["model"].get("state"):
        raise UserError(f"bundle '{bundle_dir}' has no state but the policy has memory; re-export it")
    model = RecurrentTorquePolicy(policy, spec.action.limits_nm).eval()
    obs = np.concatenate([bundle.sample_obs(), random_observations(spec, min(n_random, N_RANDOM_STREAM), seed)])
    result = stream_parity(model, Policy(bundle), obs, np.arange(len(obs)) == 0)
    _check_parity(result)
    return result
