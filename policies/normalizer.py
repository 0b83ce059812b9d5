"""Running observation normalizer (mean/var over everything seen), saved with the checkpoint, frozen at eval.

Statistics are kept in float64 (many million updates in float32 drift); the inference policy gets float32
copies. Before the first update it is the identity (mean 0, var 1).

The std is floored per field at ``std_floor`` — for a robot, the resolution its spec declares for each
observation field (``RobotSpec.obs_resolution``). Without it, an input that never varied in training (the
biped's near-horizontal lidar rays, which never hit anything) got a std of ~1e-4 and a gain of 1e4: any real
sensor noise drove it to the clip. Checkpoints written before the floor existed load without one, so their
policies stay exactly what they were trained as (and ``s2r export`` refuses those whose gain is too high).
"""

from __future__ import annotations

import numpy as np

from sim.errors import UserError


class ObsNormalizer:
    """``(obs - mean) / sqrt(var + eps)`` clipped to ±clip, with mean/var updated from batches (Chan et al.)."""

    def __init__(
        self, dim: int, clip: float = 10.0, eps: float = 1e-8, enabled: bool = True, std_floor: np.ndarray | None = None
    ) -> None:
        self.std_floor = np.zeros(dim) if std_floor is None else np.asarray(std_floor, dtype=np.float64).reshape(dim)
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 0.0
        self.clip = float(clip)
        self.eps = float(eps)
        self.enabled = enabled  # disabled: stays the identity (TD3 presets that match rl-zoo don't normalize)
        self.frozen = False  # eval and inference never update the statistics
        self._std, self._std_of = self.std(), self.var  # recomputed when ``var`` is replaced

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch ``(B, dim)`` of raw observations into the running statistics."""
        if not self.enabled or self.frozen:
            return
        x = np.asarray(batch, dtype=np.float64).reshape(-1, self.mean.shape[0])
        b_mean, b_var, b = x.mean(axis=0), x.var(axis=0), float(x.shape[0])
        total = self.count + b
        delta = b_mean - self.mean
        self.mean = self.mean + delta * b / total
        self.var = (self.var * self.count + b_var * b + delta**2 * self.count * b / total) / total
        self.count = total

    def std(self) -> np.ndarray:
        """The std each field is divided by: ``max(sqrt(var + eps), std_floor)``, float64."""
        return np.maximum(np.sqrt(self.var + self.eps), self.std_floor)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Normalize raw observations (any leading shape), float32."""
        if self._std_of is not self.var:  # update() and load_state_dict() assign a new array
            self._std, self._std_of = self.std(), self.var
        out = np.asarray(obs, dtype=np.float64) - self.mean
        out /= self._std
        return np.clip(out, -self.clip, self.clip, out=out).astype(np.float32)

    def state_dict(self) -> dict:
        return {
            "mean": self.mean.tolist(),
            "var": self.var.tolist(),
            "count": self.count,
            "clip": self.clip,
            "eps": self.eps,
            "enabled": self.enabled,
            "std_floor": self.std_floor.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.shape != self.mean.shape:
            raise UserError(f"normalizer has dim {mean.shape[0]}, this env has obs_dim {self.mean.shape[0]}")
        self.mean, self.var = mean, np.asarray(state["var"], dtype=np.float64)
        self.count, self.clip, self.eps = float(state["count"]), float(state["clip"]), float(state["eps"])
        self.enabled = bool(state["enabled"])
        # checkpoints from before the floor existed have none: their policies were trained without it
        self.std_floor = np.asarray(state.get("std_floor", np.zeros_like(mean)), dtype=np.float64)
        self._std_of = None  # type: ignore[assignment]  # recompute the std with this floor


def privileged_normalizer(enabled: bool, floor: np.ndarray | None) -> ObsNormalizer | None:
    """The running normalizer of an asymmetric critic's privileged inputs (always on: the physical parameters span
    orders of magnitude), floored per field at ``floor``; None when the critic is not asymmetric."""
    if not enabled:
        return None
    if floor is None:
        raise UserError("privileged_critic needs an env that reports info['privileged'] (the s2r robots do); "
                        "drop --ppo-privileged-critic / --td3-privileged-critic for this env")  # fmt: skip
    return ObsNormalizer(len(floor), std_floor=np.asarray(floor, dtype=np.float64))
