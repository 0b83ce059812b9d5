"""Automatic Domain Randomization, exactly OpenAI's Algorithm 1 (Akkaya et al. 2019, arXiv:1910.07113).

Each randomized parameter i has a range [φᴸᵢ, φᴴᵢ], starting at its nominal value (or a declared initial
range). Per episode, with probability ``p_boundary`` one parameter i (uniform) is pinned at one of its two bounds
(each with probability ½) and every other parameter is drawn in its range; otherwise all are drawn in range.
The pinned episode's performance goes to that bound's buffer Dᴸᵢ or Dᴴᵢ. When a buffer holds ``buffer_size``
(m) results, its mean p̄ is compared with the thresholds: p̄ ≥ t_H widens that bound by Δᵢ, p̄ ≤ t_L narrows
it; the buffer is then cleared. Ranges never leave the hard limits and never shrink inside the initial range.

A parameter declared ``adapt: false`` is plain DR inside ADR (not in the paper): drawn in its initial range in
every episode, never pinned, never moved, so the parameters that adapt (a task curriculum, say) get every
boundary evaluation.

The class never touches a simulator: the training loop calls :meth:`ADR.sample` before each episode, passes the
parameters through ``env.reset(options={"params": ...})`` (in whichever worker process), and hands the
episode's performance back with :meth:`ADR.report` and the sample's tag. With vector envs several episodes are
in flight at once; the tag ``(name, "low"|"high", value)`` or ``None`` says which buffer each result belongs
to. A result whose bound has moved since its episode was sampled (another worker's results moved it) evaluated a
range that no longer exists: it is dropped and counted in ``n_stale`` rather than credited to the new bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from domain_rand.samplers import check_ranges, rng_from_state, rng_state, sample_value
from sim.errors import UserError
from sim.files import read_json
from sim.params import ParamSpace
from sim.task import get_task

BOUNDS = ("low", "high")
CORNER_DECLARED = (*BOUNDS, "either")  # ADRParam.corner
PARAM_KEYS = {"delta", "init", "adapt", "corner"}  # the keys of one parameter in an ADR config file
CORNER_SIDES = ("random", "hard")  # ADRConfig.corner_side
CORNER_DEPTHS = ("bound", "uniform")  # ADRConfig.corner_depth
CORNER_RESTS = ("drawn", "nominal")  # ADRConfig.corner_rest
WIDTH_FLOOR = 1e-3  # entropy of a zero-width range would be −inf; floor it (as IsaacGymEnvs' ADR does)


@dataclass(frozen=True)
class ADRParam:
    """One parameter under ADR: its bound step and (optionally) its initial range, in the parameter's unit."""

    name: str
    delta: float  # Δ: how far one widen/narrow step moves a bound
    init: tuple[float, float] | None = None  # None: both bounds start at the nominal value
    # False: plain DR inside ADR, drawn in its initial range every episode but never pinned at a bound nor moved
    # (not in the paper), so the parameters that do adapt get every boundary evaluation
    adapt: bool = True
    # "low" or "high": the bound a corner episode pins this parameter at, whatever ``ADRConfig.corner_side`` says
    # (the side a user knows is the hard one: low friction, a heavy hull); "either": ½ each per corner episode (a
    # parameter with no hard side, such as a calibration offset). A parameter with a declared corner is in corner
    # episodes even if it does not adapt (not in the paper)
    corner: str | None = None


@dataclass(frozen=True)
class ADRConfig:
    """ADR hyper-parameters (names as in the paper's Algorithm 1)."""

    params: tuple[ADRParam, ...]
    t_low: float  # t_L: a bound's mean performance at or below this narrows it
    t_high: float  # t_H: at or above this widens it
    buffer_size: int = 10  # m: results per bound before a decision
    p_boundary: float = 0.5  # p_b: probability that an episode evaluates a bound
    # probability that an episode runs every ADR parameter at its nominal value (no bound evaluated; not in the
    # paper): the ideal corner, which drawing every parameter at once almost never visits, stays in training
    p_nominal: float = 0.0
    # probability that an episode pins ``corner_size`` adaptive parameters (drawn at random) each at one of its
    # current bounds (each ½), the rest drawn in range, with no bound evaluated (not in the paper): several
    # parameters at their extremes at once, which one pinned bound per episode never shows (0: off)
    p_corner: float = 0.0
    corner_size: int = 4
    # which bound a corner pins: "random" (each ½) or "hard": the bound whose last ADR decision measured the lower
    # performance (a bound not decided yet counts as t_high, good enough; a tie: ½ each), so corners gather the
    # plant's hard sides at once: low friction with a heavy hull, weak motors and long latency, say (not in the paper)
    corner_side: str = "random"
    # where on the way to that bound a corner puts its parameters: "bound" (at it) or "uniform": one depth u drawn
    # uniformly in [corner_depth_low, 1] per corner episode puts every pinned parameter at
    # nominal + u·(bound − nominal), so corner episodes walk the line from the nominal plant to the corner and always
    # include plants just inside a joint cliff that the corner itself lies past (not in the paper)
    corner_depth: str = "bound"
    corner_depth_low: float = 0.0  # "uniform": u is drawn in [corner_depth_low, 1], to put more corners near the end
    # the parameters a corner does not pin: "drawn" in their ranges, as in any episode, or held "nominal", so a
    # corner episode is its pinned parameters alone (not in the paper)
    corner_rest: str = "drawn"
    # what an episode's performance is (domain_rand.success.episode_performance): "success" (1/0, so the
    # thresholds are success rates), another metric of the task (Task.metrics: "distance_m"...) or "return"
    performance: str = "success"

    def __post_init__(self) -> None:
        if not self.t_low < self.t_high:
            raise UserError(
                f"ADR thresholds out of order: need t_low < t_high, got {self.t_low:g} >= {self.t_high:g}"
            )
        if self.buffer_size < 1:
            raise UserError(f"ADR buffer_size must be >= 1, got {self.buffer_size}")
        if not 0.0 <= self.p_boundary <= 1.0:
            raise UserError(f"ADR p_boundary must be in [0, 1], got {self.p_boundary:g}")
        if not 0.0 <= self.p_nominal < 1.0:
            raise UserError(f"ADR p_nominal must be in [0, 1), got {self.p_nominal:g}")
        if not 0.0 <= self.p_corner < 1.0 or self.p_nominal + self.p_corner >= 1.0:
            raise UserError(f"ADR p_corner must be in [0, 1) with p_nominal + p_corner < 1, got {self.p_corner:g}")
        if self.corner_size < 1:
            raise UserError(f"ADR corner_size must be >= 1 parameter, got {self.corner_size}")
        if self.corner_side not in CORNER_SIDES:
            raise UserError(f"ADR corner_side must be one of {', '.join(CORNER_SIDES)}, got {self.corner_side!r}")
        if not 0.0 <= self.corner_depth_low < 1.0:
            raise UserError(f"ADR corner_depth_low must be in [0, 1), got {self.corner_depth_low:g}")
        if self.corner_rest not in CORNER_RESTS:
            raise UserError(f"ADR corner_rest must be one of {', '.join(CORNER_RESTS)}, got {self.corner_rest!r}")
        if self.corner_depth not in CORNER_DEPTHS:
            raise UserError(
                f"ADR corner_depth must be one of {', '.join(CORNER_DEPTHS)}, got {self.corner_depth!r}"
            )
        if not self.params:
            raise UserError("ADR config lists no parameters to randomize")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise UserError(f"ADR config lists a parameter twice: {names}")
        for p in self.params:
            if p.adapt and not (math.isfinite(p.delta) and p.delta > 0):
                raise UserError(f"ADR parameter '{p.name}': delta must be > 0, got {p.delta:g}")
            if not p.adapt and p.init is None:
                raise UserError(f"ADR parameter '{p.name}' does not adapt and needs an \"init\": [low, high] range")
            if p.corner not in (None, *CORNER_DECLARED):
                raise UserError(
                    f"ADR parameter '{p.name}': corner must be \"low\", \"high\" or \"either\", got {p.corner!r}"
                )
        if not isinstance(self.performance, str) or not self.performance:
            raise UserError(f"ADR performance must be 'return' or a metric of the task, got {self.performance!r}")
        if self.performance == "success" and not 0.0 <= self.t_low < self.t_high <= 1.0:
            raise UserError(
                f"ADR thresholds t_low {self.t_low:g} / t_high {self.t_high:g} are success rates and must lie in "
                '[0, 1]; for thresholds in metres set "performance": "distance_m"'
            )


def default_adr_config(robot_id: str) -> ADRConfig:
    """The robot's ADR defaults (its :attr:`sim.task.Task.adr`); UserError for robots without one (use an
    --adr-config file). Deltas are ~1/20 of the usual DR spans; the buffer is small because CPU training sees
    hundreds, not OpenAI's millions, of episodes."""
    task = get_task(robot_id)
    if task.adr is None:
        raise UserError(f"no default ADR config for robot '{robot_id}'; pass --adr-config FILE")
    return adr_config_from_dict(task.adr, what=f"ADR defaults of {robot_id}")


def adr_config_from_dict(
    d: Mapping[str, Any], base: ADRConfig | None = None, what: str = "ADR config"
) -> ADRConfig:
    """Build an :class:`ADRConfig` from JSON-shaped data; missing top-level keys come from ``base``.

    Shape: ``{"t_low": 5, "t_high": 15, "buffer_size": 8, "p_boundary": 0.5, "p_nominal": 0.0,
    "params": {"ground_friction": {"delta": 0.05, "init": [0.9, 1.1]}, ...}}``; a parameter with
    ``"adapt": false`` (and no delta) is plain DR over its ``init`` range (:class:`ADRParam`).
    """
    allowed = {f.name for f in fields(ADRConfig)}
    unknown = set(d) - allowed
    if unknown:
        raise UserError(f"{what}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    kwargs: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(ADRConfig)} if base else {}
    for key in ("t_low", "t_high", "p_boundary", "p_nominal", "p_corner", "corner_depth_low"):
        if key in d:
            kwargs[key] = _number(d[key], f"{what}: {key}")
    for key in ("buffer_size", "corner_size"):
        if key in d:
            kwargs[key] = int(_number(d[key], f"{what}: {key}"))
    for key in ("performance", "corner_side", "corner_depth", "corner_rest"):
        if key in d:
            kwargs[key] = str(d[key])
    if "params" in d:
        if not isinstance(d["params"], Mapping):
            raise UserError(f"{what}: 'params' must be an object {{name: {{delta, init}}}}")
        kwargs["params"] = tuple(_param_from_dict(name, spec, what) for name, spec in d["params"].items())
    missing = {"params", "t_low", "t_high"} - set(kwargs)
    if missing:
        raise UserError(f"{what}: missing {sorted(missing)} (no default config to fill them in)")
    return ADRConfig(**kwargs)


def load_adr_config(path: str, base: ADRConfig | None = None, _seen: tuple[Path, ...] = ()) -> ADRConfig:
    """Read an ADR config JSON file (see :func:`adr_config_from_dict`). A top-level ``"base": "FILE"`` (a path
    relative to this file) names another ADR config file whose keys this file's override, so a variant of a
    recipe is its changes only, not a copy; its ``"params"`` change or add to the base file's, by name."""
    d = read_json(path, "ADR config")
    if not isinstance(d, dict):
        raise UserError(f"ADR config {path} must hold a JSON object")
    parent = d.pop("base", None)
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise UserError(f'ADR config {path}: "base" must be the path of another ADR config file, got {parent!r}')
        here = Path(path).resolve()
        parent_path = here.parent / parent
        if parent_path.resolve() in (*_seen, here):
            raise UserError(f'ADR config {path}: "base" {parent} leads back to itself; remove the cycle')
        base = load_adr_config(str(parent_path), base, (*_seen, here))
        if "params" in d:
            changed = adr_config_from_dict({"params": d.pop("params")}, base, f"ADR config {path}").params
            base = replace(base, params=tuple({p.name: p for p in (*base.params, *changed)}.values()))
    return adr_config_from_dict(d, base, f"ADR config {path}")


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise UserError(f"{what} must be a number, got {x!r}")
    return float(x)


def _param_from_dict(name: str, spec: Any, what: str) -> ADRParam:
    adapt = spec.get("adapt", True) if isinstance(spec, Mapping) else True
    if not isinstance(adapt, bool):
        raise UserError(f"{what}: parameter '{name}' adapt must be true or false, got {adapt!r}")
    if not isinstance(spec, Mapping) or ("delta" not in spec and adapt) or set(spec) - PARAM_KEYS:
        raise UserError(
            f'{what}: parameter \'{name}\' must be {{"delta": number, "init": [low, high]}} (init optional) '
            f'or {{"init": [low, high], "adapt": false}}, each with an optional "corner": "low", "high" or "either"'
        )
    init = spec.get("init")
    if init is not None:
        if not (isinstance(init, (list, tuple)) and len(init) == 2):
            raise UserError(f"{what}: parameter '{name}' init must be [low, high], got {init!r}")
        init = (_number(init[0], f"{what}: {name} init"), _number(init[1], f"{what}: {name} init"))
    delta = _number(spec["delta"], f"{what}: {name} delta") if "delta" in spec else 0.0
    return ADRParam(name, delta, init, adapt, spec.get("corner"))


class ADR:
    """ADR over a parameter space; a :class:`domain_rand.base.ParamSource`. Pure numpy, never touches a sim."""

    def __init__(self, space: ParamSpace, config: ADRConfig, seed: int = 0) -> None:
        self.space = space
        self.config = config
        for p in config.params:
            if p.name not in space:
                raise UserError(
                    f"ADR config: unknown parameter '{p.name}' for {space.robot_id}; known: {', '.join(space.names)}"
                )
        init = {p.name: p.init if p.init is not None else (space[p.name].nominal,) * 2 for p in config.params}
        self.init_ranges = check_ranges(space, init, "ADR initial range")  # unknown name / inverted / limits
        self.ranges = {name: list(r) for name, r in self.init_ranges.items()}
        self.deltas = {p.name: p.delta for p in config.params}
        self.names = tuple(p.name for p in config.params)
        self.adaptive = tuple(p.name for p in config.params if p.adapt)  # those a boundary episode may pin
        self.cornered = tuple(p.name for p in config.params if p.adapt or p.corner)  # those a corner may pin
        self.corner_sides = {p.name: BOUNDS.index(p.corner) for p in config.params if p.corner in BOUNDS}
        self.corner_either = {p.name for p in config.params if p.corner == "either"}
        self.buffers: dict[str, dict[str, list[float]]] = {n: {"low": [], "high": []} for n in self.names}
        self.rng = np.random.default_rng(seed)
        self.n_updates = 0  # bound decisions taken (widen, narrow or hold)
        self.n_stale = 0  # results dropped because their bound moved while the episode ran
        self.bound_stats: dict[str, dict[str, dict[str, float]]] = {}  # see update()

    # ------------------------------------------------------------------ Algorithm 1
    def sample(self) -> tuple[dict[str, float], tuple[str, str, float] | None]:
        """Parameters for one episode and the tag ``(name, bound, value)`` of the pinned bound, or ``None``."""
        if self.config.p_nominal and self.rng.uniform() < self.config.p_nominal:
            return {n: float(self.space[n].nominal) for n in self.names}, None
        params = {
            n: sample_value(self.ranges[n][0], self.ranges[n][1], self.space[n].log_scale, self.rng)
            for n in self.names
        }
        if self.config.p_corner and self.cornered and self.rng.uniform() < self.config.p_corner:
            k = min(self.config.corner_size, len(self.cornered))
            depth = self.rng.uniform(self.config.corner_depth_low, 1.0) if self.config.corner_depth == "uniform" else 1.0
            if self.config.corner_rest == "nominal":
                params = {n: float(self.space[n].nominal) for n in self.names}
            for i in self.rng.choice(len(self.cornered), size=k, replace=False):
                name = self.cornered[int(i)]
                params[name] = self._corner_value(name, self._corner_bound(name), depth)
            return params, None
        if self.rng.uniform() >= self.config.p_boundary or not self.adaptive:
            return params, None
        name = self.adaptive[int(self.rng.integers(len(self.adaptive)))]
        bound = BOUNDS[int(self.rng.integers(2))]
        params[name] = float(self.ranges[name][BOUNDS.index(bound)])
        return params, (name, bound, params[name])

    def _corner_bound(self, name: str) -> int:
        """The index (0 low, 1 high) of the bound a corner pins ``name`` at: its declared ``ADRParam.corner``,
        else by ``ADRConfig.corner_side``."""
        side = int(self.rng.integers(2))  # drawn either way, so every choice shares the sample stream
        if name in self.corner_sides:
            return self.corner_sides[name]
        if self.config.corner_side == "random" or name in self.corner_either:
            return side
        stats = self.bound_stats.get(name, {})
        low, high = (stats.get(b, {}).get("performance", self.config.t_high) for b in BOUNDS)
        return side if low == high else int(high < low)

    def _corner_value(self, name: str, bound: int, depth: float) -> float:
        """``name`` at ``depth`` (0 nominal, 1 the bound) on the way from its nominal value to bound ``bound``,
        kept inside the current range (``ADRConfig.corner_depth``)."""
        edge = self.ranges[name][bound]
        if depth == 1.0:
            return float(edge)
        low, high = self.ranges[name]
        nominal = float(self.space[name].nominal)
        return float(np.clip(nominal + depth * (edge - nominal), low, high))

    def report(self, tag: Any, performance: float) -> None:
        """Route an episode's performance to the buffer its tag names (episodes with no pinned bound: ignored)."""
        if tag is None:
            return
        name, bound, value = tag
        if name in self.ranges and bound in BOUNDS and self.ranges[name][BOUNDS.index(bound)] != value:
            self.n_stale += 1
            return
        self.update(name, bound, performance)

    def update(self, param: str, bound: str, performance: float) -> None:
        """Add one result to the (param, bound) buffer; when it holds m results, widen, narrow or hold."""
        if param not in self.adaptive or bound not in BOUNDS:
            raise ValueError(
                f"ADR has no bound ({param!r}, {bound!r}); adaptive parameters: {', '.join(self.adaptive)}"
            )
        if not math.isfinite(performance):
            raise ValueError(f"ADR performance for {param}/{bound} is not finite: {performance}")
        buf = self.buffers[param][bound]
        buf.append(float(performance))
        if len(buf) < self.config.buffer_size:
            return
        mean = sum(buf) / len(buf)
        buf.clear()
        self.n_updates += 1
        # the last decision at each bound: the bound it evaluated and the mean performance there (for a
        # success-based config, the success rate at the bound: the bundle manifest records it)
        self.bound_stats.setdefault(param, {})[bound] = {
            "value": float(self.ranges[param][BOUNDS.index(bound)]), "performance": mean,
            "episodes": self.config.buffer_size,
        }  # fmt: skip
        if mean >= self.config.t_high:
            self._move(param, bound, widen=True)
        elif mean <= self.config.t_low:
            self._move(param, bound, widen=False)

    def _move(self, name: str, bound: str, widen: bool) -> None:
        p, (init_low, init_high), delta = self.space[name], self.init_ranges[name], self.deltas[name]
        low, high = self.ranges[name]
        if bound == "low":
            self.ranges[name][0] = max(low - delta, p.low) if widen else min(low + delta, init_low)
        else:
            self.ranges[name][1] = min(high + delta, p.high) if widen else max(high - delta, init_high)

    # ------------------------------------------------------------------ reporting
    def entropy_npd(self) -> float:
        """ADR entropy in nats per dimension: the mean of log(range width), widths floored at WIDTH_FLOOR."""
        return float(np.mean([math.log(max(h - lo, WIDTH_FLOOR)) for lo, h in self.ranges.values()]))

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for n in self.names:
            out[f"adr/{n}/low"], out[f"adr/{n}/high"] = (float(v) for v in self.ranges[n])
        out["adr/npd"] = self.entropy_npd()
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/floats/str: survives ``torch.save`` + ``torch.load(weights_only=True)`` and JSON."""
        return {
            "kind": "adr",
            "names": list(self.names),
            "ranges": {n: [float(v) for v in r] for n, r in self.ranges.items()},
            "buffers": {n: {b: list(v) for b, v in bufs.items()} for n, bufs in self.buffers.items()},
            "rng": rng_state(self.rng),
            "n_updates": self.n_updates,
            "n_stale": self.n_stale,
            "bound_stats": {n: {b: dict(v) for b, v in d.items()} for n, d in self.bound_stats.items()},
            "performance": self.config.performance,
            "thresholds": [self.config.t_low, self.config.t_high],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume exactly; the config (and so the parameter set) must match the one that wrote the state."""
        if state.get("kind") != "adr":
            raise UserError(f"checkpoint holds a '{state.get('kind')}' parameter source, not ADR")
        if list(state["names"]) != list(self.names):
            raise UserError(
                f"checkpoint ADR randomizes {state['names']} but this config randomizes {list(self.names)}; "
                "resume with the same --adr-config"
            )
        ranges = check_ranges(self.space, state["ranges"], "checkpoint ADR ranges")
        self.ranges = {n: list(r) for n, r in ranges.items()}
        self.buffers = {
            n: {b: [float(x) for x in state["buffers"][n][b]] for b in BOUNDS} for n in self.names
        }
        self.rng = rng_from_state(state["rng"])
        self.n_updates = int(state["n_updates"])
        self.n_stale = int(state["n_stale"])
        self.bound_stats = {n: {b: dict(v) for b, v in d.items()} for n, d in state.get("bound_stats", {}).items()}
