"""Checkpoints: atomic writes, corruption-tolerant loading, and the inference policy the exporter consumes.

A run directory holds ``checkpoints/latest.pt`` (the newest), ``checkpoints/previous.pt`` (the one before) and
``checkpoints/best.pt`` (the highest mean return of the periodic deterministic evaluation during training,
``--eval-every``; its ``selection`` entry says on what it was chosen). Each is a plain dict of tensors, numbers,
strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``: model and optimizer states,
normalizer, RNG states, counters, the training config and the parameter-source (DR/ADR) state.

Writes go through :func:`sim.files.atomic_open` (temp file in the same folder, fsync, rename, normal file
mode): a run killed with SIGKILL at any instant leaves either the old or the new file, never a half-written one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from policies.networks import build_actor
from sim.errors import UserError
from sim.files import atomic_open, check_output_file, fsync_dir

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
    """``torch.save`` to ``path`` atomically and durably (:func:`sim.files.atomic_open`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def save_checkpoint(ckpt: dict, ckpt_dir: Path, best: bool = False) -> Path:
    """Write ``ckpt`` as the new latest (the old latest becomes previous); also as best when ``best``."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT, **ckpt}
    latest = ckpt_dir / LATEST
    if latest.exists():
        check_output_file(ckpt_dir / PREVIOUS)
        os.replace(latest, ckpt_dir / PREVIOUS)  # a kill between the renames leaves previous.pt: still loadable
        fsync_dir(ckpt_dir)
    atomic_torch_save(ckpt, latest)
    if best:
        atomic_torch_save(ckpt, ckpt_dir / BEST)
    return latest


def read_checkpoint(path: Path) -> dict:
    """Load one checkpoint file (weights_only). A file that cannot be read (permissions, I/O) raises a
    :class:`UserError` saying so; a truncated/corrupt/foreign one raises :class:`CorruptCheckpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; opened apart so a read error is not called corruption)
    except PermissionError:
        raise UserError(f"cannot read checkpoint {path}: permission denied ({_access(path)}); run as a user "
                        "who may read it, or have its owner make it readable (chmod a+r)") from None  # fmt: skip
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    with f:
        try:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
        except OSError as exc:  # the disk failed under us: the file may be fine
            raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
        except Exception as exc:  # torch raises a zoo of types on truncation (RuntimeError, EOFError, pickle errors)
            raise CorruptCheckpoint(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); point at "
                                    "another one (--checkpoint previous) or delete it") from None  # fmt: skip
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path} is not an s2r checkpoint (format {FORMAT}); was it written by `s2r train`?")
    return ckpt


class CorruptCheckpoint(UserError):
    """A checkpoint file that was read but is truncated, corrupt or not an s2r checkpoint."""


def _access(path: Path) -> str:
    st = path.stat()
    return f"mode {st.st_mode & 0o777:o}, owner uid {st.st_uid}; you are uid {os.geteuid()}"


CHOICES = ("latest", "best", "previous")  # --checkpoint names; anything else is a file path


def checkpoint_candidates(path: Path, which: str = "latest") -> list[Path]:
    """Files to try, in order, for a run dir / checkpoints dir / checkpoint file.

    ``which``: ``latest`` (then previous if latest is corrupt), ``previous``, ``best`` (only best.pt), or ``auto``
    (best.pt if the run chose one by evaluation during training, else latest)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: it does not exist; give a run folder written by "
                                "`s2r train` or a .pt file")  # fmt: skip
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    names = {"latest": [LATEST, PREVIOUS], "previous": [PREVIOUS], "best": [BEST]}.get(which)
    if which == "auto":
        names = [BEST, LATEST, PREVIOUS] if _best_by_eval(folder / BEST) else [LATEST, PREVIOUS]
    if names is None:
        raise UserError(f"--checkpoint {which!r}: use one of {', '.join(CHOICES)} or a checkpoint file path")
    found = [folder / n for n in names if (folder / n).is_file()]
    if not found:
        hint = {"best": " (best.pt is written by the evaluation during training: `s2r train --eval-every N`); use "
                "--checkpoint latest", "previous": "; use --checkpoint latest"}.get(which, " (run `s2r train` first)")  # fmt: skip
        raise FileNotFoundError(f"no {names[0]} in {folder}{hint}")
    return found


def _best_by_eval(path: Path) -> bool:
    """Whether best.pt exists and was chosen by deterministic evaluation (runs before --eval-every chose it on
    noisy training return, which picked e.g. the knob's imitation phase: those default to latest)."""
    if not path.is_file():
        return False
    try:
        return read_checkpoint(path).get("selection", {}).get("metric") == "eval_return_mean"
    except UserError:
        return True  # let the loader report it (or fall back) with the usual warning


def load_checkpoint(path: Path, which: str = "latest") -> tuple[dict, Path]:
    """Load the usable checkpoint of a run (or the given file) chosen by ``which`` (see
    :func:`checkpoint_candidates`); corrupt ones are skipped with a warning, unreadable ones are an error."""
    candidates = checkpoint_candidates(path, which)
    errors = []
    for k, cand in enumerate(candidates):
        try:
            return read_checkpoint(cand), cand
        except CorruptCheckpoint as exc:
            if len(candidates) == 1:
                raise
            errors.append(str(exc))
            if k + 1 < len(candidates):
                print(f"s2r: warning: {exc}; trying {candidates[k + 1].name}", file=sys.stderr)
    raise CorruptCheckpoint(f"no usable checkpoint in {path}: {errors[-1]}")


def describe_checkpoint(ckpt: dict, path: Path) -> str:
    """One line naming the checkpoint used: file, step and, for best.pt, what it was chosen on."""
    step = int(ckpt.get("counters", {}).get("global_step", -1))
    notes = [f"step {step:,}"] if step >= 0 else []
    sel = ckpt.get("selection")
    if sel and path.name == BEST:
        notes.append(f"best deterministic eval return {sel['value']:.1f} over {sel['episodes']} episodes")
    elif path.name == BEST:
        notes.append("chosen on training return, before --eval-every existed")
    return f"checkpoint {path}" + (f" ({'; '.join(notes)})" if notes else "")


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
    """Build the :class:`InferencePolicy` of a loaded checkpoint dict (a memory policy's is stateful:
    :class:`policies.lstm_td3.RecurrentInferencePolicy`, :class:`policies.recurrent_ppo.RecurrentPPOPolicy`)."""
    if ckpt["actor_arch"]["kind"] == "lstm-td3":
        from policies.lstm_td3 import recurrent_policy_from_checkpoint

        return recurrent_policy_from_checkpoint(ckpt)
    if ckpt["actor_arch"]["kind"] == "rppo":
        from policies.recurrent_ppo import rppo_policy_from_checkpoint

        return rppo_policy_from_checkpoint(ckpt)
    actor = build_actor(ckpt["actor_arch"])
    actor.load_state_dict(ckpt["actor"])
    norm = ckpt["normalizer"]
    policy = InferencePolicy(actor, norm["mean"], norm["var"], norm["clip"], norm["eps"], ckpt, norm.get("std_floor"))
    for p in policy.parameters():
        p.requires_grad_(False)
    clock_hz = float(ckpt.get("config", {}).get("gait_clock_hz") or 0.0)
    if clock_hz:  # trained with a gait clock: the policy carries its phase (policies.gait_clock)
        from policies.gait_clock import ClockedPolicy
        from sim.robots import get_robot

        if policy.robot_id is None:
            raise UserError(f"checkpoint trained with a gait clock on {policy.env_id}, not an s2r robot env")
        policy = ClockedPolicy(policy, clock_hz, get_robot(policy.robot_id).control_hz)  # type: ignore[assignment]
    history = int(ckpt.get("config", {}).get("action_history") or 0)
    if history:  # trained with its last actions in its observation: the policy carries them (policies.action_history)
        from policies.action_history import HistoryPolicy

        policy = HistoryPolicy(policy, history)  # type: ignore[assignment]
    cutoff_hz = float(ckpt.get("config", {}).get("action_filter_hz") or 0.0)
    if cutoff_hz:  # trained with the action filter: it is part of the policy (policies.action_filter)
        from policies.action_filter import FilteredPolicy
        from sim.robots import get_robot

        if policy.robot_id is None:
            raise UserError(f"checkpoint trained with an action filter on {policy.env_id}, not an s2r robot env")
        return FilteredPolicy(policy, cutoff_hz, get_robot(policy.robot_id).control_hz)  # type: ignore[return-value]
    return policy


def load_inference_policy(path: str | os.PathLike, which: str = "auto") -> InferencePolicy:
    """Run dir or checkpoint file → :class:`InferencePolicy` in eval mode (``which``: see
    :func:`checkpoint_candidates`; ``auto`` = best.pt if chosen by evaluation, else latest.pt)."""
    return load_policy(path, which)[0]


def load_policy(path: str | os.PathLike | None, which: str = "auto") -> tuple[InferencePolicy, str]:
    """The policy for ``s2r eval``/``export`` and the line naming which checkpoint it came from.

    ``which`` is ``auto``, ``latest``, ``best``, ``previous`` or a checkpoint file path (then ``path`` may be
    None)."""
    if which not in (*CHOICES, "auto"):
        if not Path(which).is_file():
            raise UserError(f"--checkpoint {which}: use latest, best, previous or the path of a checkpoint file "
                            "(there is no such file)")  # fmt: skip
        if path is not None and Path(path).is_file():
            raise UserError(f"give either a checkpoint file ({path}) or --checkpoint {which}, not both")
        path, which = Path(which), "latest"
    if path is None:
        raise UserError("give a run folder or a checkpoint file (RUN_OR_CKPT or --checkpoint PATH)")
    if Path(path).is_file() and which not in ("auto", "latest"):
        raise UserError(f"--checkpoint {which} picks a file in a run folder; {path} is already a file")
    ckpt, used = load_checkpoint(Path(path), which)
    return inference_policy_from_checkpoint(ckpt), describe_checkpoint(ckpt, used)
