"""Fine-tuning from an exported policy: ``s2r train --init-policy BUNDLE`` starts the actor and the observation
normalizer from a bundle's ONNX graph instead of from scratch (the critic starts fresh); ``--init-policy RUN``
takes them from a run's latest checkpoint instead.

The bundle must hold a feed-forward MLP policy of the same shape as the training's actor (the initializers
``policy.actor.net.<i>.weight/bias``, ``policy.obs_mean`` and ``policy.obs_std`` that ``deploy/export.py``
writes for a PPO or TD3 actor). The normalizer takes the bundle's mean and std (floored at the spec's resolution,
as every new training's is) and stays **frozen** for the whole run: a normalizer that keeps moving under a fitted
network lost up to half the success in the knob's fine-tuning (docs/pretrained.md). The bundle's weights enter
the run through its checkpoints; the path is recorded in config.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.action_filter import FilteredPolicy
from policies.action_history import HistoryPolicy
from policies.gait_clock import ClockedPolicy
from policies.normalizer import ObsNormalizer
from sim.errors import UserError
from sim.files import read_json

# bundle state that is not memory: an action filter, a gait clock (policies.gait_clock), an action history
# (policies.action_history); the actor is an MLP
FILTER_STATES = (*FilteredPolicy.STATE_NAMES, *ClockedPolicy.STATE_NAMES, *HistoryPolicy.STATE_NAMES)


def bundle_weights(bundle_dir: str | Path) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """(actor state dict, obs mean, obs std) read from a bundle's policy.onnx; UserError if it has none."""
    import onnx
    import onnx.numpy_helper

    folder = Path(bundle_dir)
    model, manifest = folder / "policy.onnx", folder / "manifest.json"
    if not (model.is_file() and manifest.is_file()):
        raise UserError(f"--init-policy {bundle_dir}: not a bundle folder (policy.onnx and manifest.json)")
    # an action filter's or a gait clock's state is not memory: the actor behind them is an MLP, and the training's
    # own filter and clock (--action-filter-hz, --gait-clock-hz, not the bundle's) run around it
    state = read_json(manifest, f"--init-policy {bundle_dir}: manifest").get("model", {}).get("state") or []
    if any(s.get("input") not in FILTER_STATES for s in state):
        raise UserError(f"--init-policy {bundle_dir}: a policy with memory cannot start a feed-forward training")
    init = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer}
    # the exported module: "policy." is the inference policy, one "policy." deeper behind each wrapper with state
    # (FilteredPolicy, ClockedPolicy, HistoryPolicy)
    base = "policy." * (1 + len(state))
    prefix, mean, std = base + "actor.", base + "obs_mean", base + "obs_std"
    actor = {k[len(prefix):]: torch.as_tensor(v.copy()) for k, v in init.items() if k.startswith(prefix)}
    if not actor or mean not in init or std not in init:
        raise UserError(f"--init-policy {bundle_dir}: its ONNX graph has no MLP actor and normalizer initializers "
                        f"({prefix}*, {mean}, {std})")  # fmt: skip
    return actor, np.asarray(init[mean], np.float64), np.asarray(init[std], np.float64)


def checkpoint_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """(actor state dict, obs mean, obs std) of a run folder's latest checkpoint (or a checkpoint file)."""
    from policies.checkpoint import load_checkpoint

    ckpt, _ = load_checkpoint(Path(path), "latest")
    norm = ObsNormalizer(len(ckpt["normalizer"]["mean"]))
    norm.load_state_dict(ckpt["normalizer"])
    return dict(ckpt["actor"]), norm.mean, norm.std()


def warm_start(actor: torch.nn.Module, norm: ObsNormalizer, source: str | Path) -> None:
    """Load the actor weights of ``source`` — a bundle folder, or a run folder / checkpoint file (its latest
    checkpoint, log-std included) — into ``actor`` (a PPO actor keeps its own log-std when the source is a
    bundle) and its normalizer statistics into ``norm``, which is frozen."""
    bundle_dir = source
    is_bundle = (Path(source) / "manifest.json").is_file()
    weights, mean, std = bundle_weights(bundle_dir) if is_bundle else checkpoint_weights(source)
    own: dict[str, Any] = actor.state_dict()
    missing = [k for k in own if k not in weights and k != "log_std"]
    wrong = [k for k, v in weights.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
    if missing or wrong:
        raise UserError(f"--init-policy {bundle_dir}: its actor does not fit this training's "
                        f"(missing {missing[:3]}, mismatched {wrong[:3]}); use the same hidden sizes")  # fmt: skip
    actor.load_state_dict({**own, **weights})
    if mean.shape != norm.mean.shape:
        raise UserError(f"--init-policy {bundle_dir}: {mean.shape[0]} observations, this env has {norm.mean.shape[0]}")
    norm.load_state_dict({**norm.state_dict(), "mean": mean.tolist(),
                          "var": np.maximum(std**2 - norm.eps, 0.0).tolist(), "count": 1e6})  # fmt: skip
    norm.frozen = True


def set_log_std(actor: torch.nn.Module, log_std: float) -> None:
    """Set every action's exploration log-std of a gaussian ``actor`` (PPO, rPPO) to ``log_std``."""
    with torch.no_grad():
        actor.log_std.fill_(float(log_std))  # type: ignore[operator]
