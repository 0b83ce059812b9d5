"""Checkpoints: atomic writes, corruption-tolerant loading, and the inference policy the exporter consumes.

A run directory holds ``checkpoints/latest.pt`` (the newest), ``checkpoints/previous.pt`` (the one before) and
``checkpoints/best.pt`` (highest mean training return so far). Each is a plain dict of tensors, numbers,
strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``: model and optimizer states,
normalizer, RNG states, counters, the training config and the parameter-source (DR/ADR) state.

Writes go to a temp file in the same folder, are fsynced and renamed over the target: a run killed with
SIGKILL at any instant leaves either the old or the new file, never a half-written one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from policies.networks import build_actor

FORMAT = 1
LATEST, PREVIOUS, BEST = "latest.pt", "previous.pt", "best.pt"


def git_commit() -> str | None:
    """The commit of the s2r checkout this code runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via temp file + fsync + rename (+ fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(ckpt: dict, ckpt_dir: Path, best: bool = False) -> Path:
    """Write ``ckpt`` as the new latest (the old latest becomes previous); also as best when ``best``."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT, **ckpt}
    latest = ckpt_dir / LATEST
    if latest.exists():
        os.replace(latest, ckpt_dir / PREVIOUS)  # a kill between the renames leaves previous.pt: still loadable
    atomic_torch_save(ckpt, latest)
    if best:
        atomic_torch_save(ckpt, ckpt_dir / BEST)
    return latest


def read_checkpoint(path: Path) -> dict:
    """Load one checkpoint file (weights_only); a truncated/corrupt/foreign file raises a one-line ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a zoo of types on truncation (RuntimeError, EOFError, pickle errors)
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); delete it or "
                         "point at another checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not an s2r checkpoint (format {FORMAT}); was it written by `s2r train`?")
    return ckpt


def checkpoint_candidates(path: Path, prefer_best: bool) -> list[Path]:
    """Files to try, in order, for a run dir / checkpoints dir / checkpoint file."""
    path = Path(path)
    if path.is_file():
        return [path]
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    names = [BEST, LATEST, PREVIOUS] if prefer_best else [LATEST, PREVIOUS]
    found = [folder / n for n in names if (folder / n).is_file()]
    if not found:
        raise FileNotFoundError(f"no checkpoint in {path}; expected {folder}/{LATEST} (run `s2r train` first)")
    return found


def load_checkpoint(path: Path, prefer_best: bool = False) -> tuple[dict, Path]:
    """Load the newest usable checkpoint of a run (or the given file); corrupt ones are skipped with a warning."""
    candidates = checkpoint_candidates(path, prefer_best)
    errors = []
    for cand in candidates:
        try:
            return read_checkpoint(cand), cand
        except ValueError as exc:
            if len(candidates) == 1:
                raise
            errors.append(str(exc))
            print(f"s2r: warning: {exc}; trying the previous checkpoint", file=sys.stderr)
    raise ValueError(f"no usable checkpoint in {path}: {errors[-1]}")


class InferencePolicy(nn.Module):
    """Raw observation → deterministic normalized action in [-1, 1]: frozen normalizer + actor head.

    ``forward(obs)`` takes float32 ``[B, obs_dim]`` raw observations and returns float32 ``[B, act_dim]``,
    using only ONNX-exportable ops (sub, div, sqrt, clamp, linear, relu/tanh, softplus).
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(
        self, actor: nn.Module, obs_mean, obs_var, clip: float, eps: float, meta: dict, std_floor=None
    ) -> None:
        super().__init__()
        self.actor = actor
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        std = torch.sqrt(torch.as_tensor(obs_var, dtype=torch.float64) + eps)
        if std_floor is not None:  # the normalizer's per-field floor (policies.normalizer.ObsNormalizer.std)
            std = torch.maximum(std, torch.as_tensor(std_floor, dtype=torch.float64))
        self.register_buffer("obs_std", std.float())
        self.clip = float(clip)
        self.env_id: str = meta["env_id"]
        self.robot_id: str | None = meta.get("robot_id")
        self.obs_dim: int = int(meta["obs_dim"])
        self.act_dim: int = int(meta["act_dim"])
        self.config: dict = meta.get("config", {})
        self.git_commit: str | None = meta.get("git_commit")
        # the DR/ADR source's state at save time (ADR: final ranges, success at each bound); export records it
        self.param_source: dict | None = meta.get("param_source")
        self.eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
        return self.actor.deterministic(x).clamp(-1.0, 1.0)  # type: ignore[operator]


def inference_policy_from_checkpoint(ckpt: dict) -> InferencePolicy:
    """Build the :class:`InferencePolicy` of a loaded checkpoint dict."""
    actor = build_actor(ckpt["actor_arch"])
    actor.load_state_dict(ckpt["actor"])
    norm = ckpt["normalizer"]
    policy = InferencePolicy(actor, norm["mean"], norm["var"], norm["clip"], norm["eps"], ckpt, norm.get("std_floor"))
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy


def load_inference_policy(path: str | os.PathLike) -> InferencePolicy:
    """Run dir (uses best.pt, else latest.pt) or checkpoint file → :class:`InferencePolicy` in eval mode."""
    ckpt, _ = load_checkpoint(Path(path), prefer_best=True)
    return inference_policy_from_checkpoint(ckpt)
