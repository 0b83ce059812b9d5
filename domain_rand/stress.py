"""``s2r stress``: how far from nominal a policy keeps working — the robustness report to read before hardware.

Three parts, all from the one episode loop and success definition of :mod:`domain_rand.evaluate` (biped: walked
≥ 15 m without a fall; knob: reached its target), with deterministic actions:

1. **One-at-a-time sweep.** Every parameter of the robot's :attr:`sim.task.Task.stress_sweeps` goes from nominal outward (both ways for two-sided
   ones), everything else nominal, ``episodes`` episodes per value. The **cliff** of a series is the first value
   (walking outward) where success falls below :data:`CLIFF_SUCCESS`; ``None`` if it never does on the grid.
   With ``toward``, also the line from nominal to each named plant (``worst_case``): every parameter of the plant
   moves together, at :data:`TOWARD_DEPTHS` of the way (1 = the plant), and the cliff is a depth. Named plants
   are single points; this says how far short of (or past) one the policy breaks.
2. **Reality box.** ``plants`` random plants, every parameter of the robot's :attr:`sim.task.Task.reality_box` drawn at
   once (log-uniform for scale factors): moderate ranges standing for an uncalibrated real robot. One episode per
   plant; the success rate with a Wilson 95 % interval.
3. **Torque-signal metrics** on the nominal plant (the sweep's nominal episodes, recorded): steps at the torque
   limit, step-to-step change, share of the signal's power above 5 Hz, RMS commanded and delivered torque, cost
   of transport (biped), peak joint speed over the motor's no-load speed.

Common random numbers: episode k of every sweep value (and of the nominal point) is reset with seed ``seed + k``,
so values differ only in their physics; plant i of the box uses seed ``seed + 10_000 + i`` and parameters drawn
from ``np.random.default_rng(seed)``. The new effects draw from a child of the env's generator, so switching one on
leaves the initial state and the other noise unchanged. Episodes end at success (the biped at 15 m: the outcome
cannot change after that), at a fall or at the time limit.

Episodes run in a process pool (one policy per worker, built by ``policy_factory`` in the worker, so the policy can
be an onnxruntime bundle with no torch installed; a fresh env per episode, so that no episode depends on what its
worker ran before and the report is the same for any number of workers).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain_rand.evaluate import Policy, run_episode
from domain_rand.plants import get_plant
from domain_rand.samplers import check_ranges, sample_ranges
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError
from sim.params import ParamSpace
from sim.spec import RobotSpec
from sim.task import get_task, task_of_env

CLIFF_SUCCESS = 0.8  # a sweep value is past the cliff when fewer than 80 % of its episodes succeed
HIGH_FREQ_HZ = 5.0  # torque-signal power above this counts as high-frequency (the control rate is 50 Hz)
AT_LIMIT = 0.99  # |command| >= 99 % of the limit counts as "at the limit"
BOX_SEED_OFFSET = 10_000
# depths of a ``toward`` line: the fraction of the way from nominal to the named plant (past 1: beyond it, each
# parameter clipped to its hard limits)
TOWARD_DEPTHS = (0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)

@dataclass(frozen=True)
class Series:
    """One sweep direction of one parameter, or the line from nominal to a named plant (``toward``)."""

    name: str  # the parameter, with ":low" / ":high" when it is swept both ways; "toward PLANT" for a line
    param: str  # "" for a line
    values: tuple[float, ...]  # from nominal outward (a line: depths)
    toward: tuple[tuple[str, float], ...] = ()  # a line's end: the named plant's (parameter, value) pairs

    def params(self, value: float, space: ParamSpace) -> dict[str, float]:
        """The physics of one point of the series."""
        return line_plant(space, dict(self.toward), value) if self.toward else {self.param: value}


def line_plant(space: ParamSpace, plant: Mapping[str, float], depth: float) -> dict[str, float]:
    """The plant ``depth`` of the way from nominal to ``plant`` (0: nominal, 1: ``plant``), every parameter moved
    together and clipped to its hard limits."""
    out = {}
    for name, value in plant.items():
        p = space[name]
        out[name] = float(np.clip(p.nominal + depth * (value - p.nominal), p.low, p.high))
    return out


def toward_series(robot: str, space: ParamSpace, plants: Sequence[str]) -> list[Series]:
    """One line series per named plant of the robot (``--toward``); an unknown name is a one-line error."""
    out = []
    for name in plants:
        plant = get_plant(robot, name)
        check_ranges(space, plant, f"plant {name}")
        if not plant:
            raise UserError(f"--toward {name}: that plant is the nominal one; name a perturbed plant")
        out.append(Series(f"toward {name}", "", TOWARD_DEPTHS, tuple(sorted(plant.items()))))
    return out


def sweep_series(robot: str, space: ParamSpace, only: Sequence[str] | None = None) -> list[Series]:
    """The sweep grid of a robot (optionally only the parameters in ``only``), checked against its hard limits."""
    table = get_task(robot).stress_sweeps
    if not table:
        raise UserError(f"robot '{robot}' lists no stress sweeps (Task.stress_sweeps)")
    if only:
        unknown = sorted(set(only) - {p for p, _ in table})
        if unknown:
            raise UserError(f"--params: no sweep for {unknown} on {robot}; swept: {', '.join(dict(table))}")
    out = []
    for param, values in table:
        if only and param not in only:
            continue
        p = space[param]
        two_way = sum(1 for q, _ in table if q == param) > 1
        side = "high" if values[0] > p.nominal else "low"
        check_ranges(space, {param: (min(values), max(values))}, f"stress sweep of {param}")
        out.append(Series(f"{param}:{side}" if two_way else param, param, tuple(values)))
    return out


@dataclass(frozen=True)
class Job:
    """One episode to run: which part of the report it belongs to, its physics and its seed."""

    kind: str  # "sweep" (the nominal point is the sweep's value None) or "box"
    key: str  # series name, "nominal" or the plant index
    value: float | None
    params: dict[str, float]
    seed: int
    record: bool = False


@dataclass(frozen=True)
class StressConfig:
    """What to run; the CLI flags of ``s2r stress``."""

    episodes: int = option(10, "episodes per sweep value and on the nominal plant", above=0)
    plants: int = option(100, "random reality-box plants (one episode each)", low=0)
    seed: int = option(0, "seed of the episodes and of the box's plants", low=0)
    workers: int = option(0, "worker processes (0: one per core)", low=0)
    params: tuple[str, ...] = option((), "comma list: sweep only these parameters (default: all)")
    sweep: bool = option(True, "the one-at-a-time sweeps (--no-sweep: only the nominal plant, the reality box and "
                         "--toward)")
    toward: tuple[str, ...] = option((), "comma list of named plants (e.g. worst_case): also sweep the line from "
                                     "nominal to each, all its parameters together; the cliff is a depth (1 = the "
                                     "plant)", metavar="PLANTS")
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP, choices=ENGINES)

    def __post_init__(self) -> None:
        validate(self)


def plan(robot: str, space: ParamSpace, cfg: StressConfig) -> tuple[list[Series], list[Job], list[dict[str, float]]]:
    """The sweep series, every episode job (nominal first, then the box and the sweep interleaved) and the box."""
    series = sweep_series(robot, space, cfg.params) if cfg.sweep else []
    series += toward_series(robot, space, cfg.toward)
    jobs = [Job("sweep", "nominal", None, {}, cfg.seed + k, record=True) for k in range(cfg.episodes)]
    box_ranges = check_ranges(space, get_task(robot).reality_box, f"reality box of {robot}")
    rng = np.random.default_rng(cfg.seed)
    box = [sample_ranges(space, box_ranges, rng) for _ in range(cfg.plants)]
    sweep_jobs = [
        Job("sweep", s.name, v, s.params(v, space), cfg.seed + k) for s in series for v in s.values for k in range(cfg.episodes)
    ]
    box_jobs = [Job("box", str(i), None, params, cfg.seed + BOX_SEED_OFFSET + i) for i, params in enumerate(box)]
    # interleave so that a partial run (or the progress bar) covers both parts evenly
    step = max(1, len(sweep_jobs) // max(1, len(box_jobs)))
    mixed: list[Job] = []
    for i in range(max(len(sweep_jobs), len(box_jobs) * step)):
        if i % step == 0 and i // step < len(box_jobs):
            mixed.append(box_jobs[i // step])
        if i < len(sweep_jobs):
            mixed.append(sweep_jobs[i])
    return series, jobs + mixed, box


def scripted_expert(name: str, env_id: str) -> Policy:
    """A scripted expert of the env's robot (``Task.experts``) as the policy (a picklable factory: ``partial(scripted_expert, ...)``)."""
    import sim

    return sim.get_expert(name, env_id)


# ------------------------------------------------------------------------------------------------- workers
_WORKER: dict[str, Any] = {}


def _init_worker(env_id: str, policy_factory: Callable[[], Policy], engine: str = "pybullet") -> None:
    import sim
    from sim.engines import env_kwargs

    sim.register_envs()
    _WORKER["env_id"] = sim.resolve_env_id(env_id)
    _WORKER["env_kwargs"] = env_kwargs(env_id, engine)
    _WORKER["policy"] = policy_factory()


def _run_job(job: Job) -> dict[str, Any]:
    import gymnasium as gym

    t0 = time.process_time()
    # a fresh env per episode: a PyBullet world's solver state carries over from the previous episode, so a
    # reused env would make each outcome depend on which jobs its worker ran before (and on the worker count)
    env = gym.make(_WORKER["env_id"], **_WORKER["env_kwargs"])
    try:
        ep = run_episode(env, _WORKER["policy"], job.seed, job.params, stop_at_success=True, record=job.record)
    finally:
        env.close()
    out: dict[str, Any] = {"success": ep.success, "fell": ep.fell, "length": ep.length, "metrics": ep.metrics,
                           "cpu_s": time.process_time() - t0}  # fmt: skip
    if job.record:
        out.update(action=ep.action, applied=ep.applied_torque_nm, obs=ep.obs)
    return out


def run_jobs(
    env_id: str,
    policy_factory: Callable[[], Policy],
    jobs: Sequence[Job],
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "pybullet",
) -> list[dict[str, Any]]:
    """Run every job (in a process pool when ``workers`` > 1) in the physics ``engine``; results in job order.
    Worker errors re-raise."""
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if workers <= 1:
        _init_worker(env_id, policy_factory, engine)
        for i, job in enumerate(jobs):
            results[i] = _run_job(job)
            if progress:
                progress(i + 1, len(jobs))
        return [r for r in results if r is not None]
    ctx = mp.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(env_id, policy_factory, engine)) as ex:
        pending = {ex.submit(_run_job, job): i for i, job in enumerate(jobs)}
        done_n = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                results[pending.pop(fut)] = fut.result()  # a worker's exception re-raises here, with its type
                done_n += 1
            if progress:
                progress(done_n, len(jobs))
    return [r for r in results if r is not None]


# ------------------------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def cliff(values: Sequence[float], success: Sequence[float], threshold: float = CLIFF_SUCCESS) -> float | None:
    """The first value (in sweep order, nominal outward) whose success rate is below ``threshold``."""
    return next((v for v, s in zip(values, success, strict=True) if s < threshold), None)


def high_freq_share(signal: np.ndarray, rate_hz: float, cutoff_hz: float = HIGH_FREQ_HZ) -> float:
    """Share of a signal's power (mean removed) above ``cutoff_hz``; per column, averaged. NaN if it is constant."""
    x = np.asarray(signal, dtype=np.float64)
    x = x - x.mean(axis=0)
    power = np.abs(np.fft.rfft(x, axis=0)) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], d=1.0 / rate_hz)
    total = power[1:].sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = power[freqs > cutoff_hz].sum(axis=0) / total
    return float(np.nanmean(shares)) if np.any(total > 0) else math.nan


def torque_metrics(spec: RobotSpec, recorded: Sequence[Mapping[str, Any]], mass_kg: float | None) -> dict[str, Any]:
    """Torque-signal metrics over recorded nominal episodes (see the module docstring); each a mean over motors."""
    limits = spec.action.limits_nm.astype(np.float64)
    no_load = np.array([m.no_load_speed_rad_s for m in spec.action.motors])
    names = [f.name for f in spec.obs_fields]
    speed_idx = [names.index(f"{m}_speed") for m in spec.action.names]
    dt = spec.control_period_s
    cmd = [np.asarray(r["action"], dtype=np.float64) * limits for r in recorded if len(r["action"]) > 1]
    if not cmd:
        return {}
    applied = [np.asarray(r["applied"], dtype=np.float64) for r in recorded if len(r["action"]) > 1]
    speeds = [np.asarray(r["obs"], dtype=np.float64)[1:, speed_idx] for r in recorded if len(r["action"]) > 1]
    all_cmd, all_applied, all_speed = np.concatenate(cmd), np.concatenate(applied), np.concatenate(speeds)
    out: dict[str, Any] = {
        "steps": int(all_cmd.shape[0]),
        "at_limit_pct": float(100 * np.mean(np.abs(all_cmd) >= AT_LIMIT * limits)),
        "at_limit_pct_per_motor": [float(100 * v) for v in np.mean(np.abs(all_cmd) >= AT_LIMIT * limits, axis=0)],
        "mean_abs_delta_per_limit": float(np.mean(np.concatenate([np.abs(np.diff(c, axis=0)) / limits for c in cmd]))),
        "power_above_5hz_pct": float(100 * np.nanmean([high_freq_share(c, spec.control_hz) for c in cmd])),
        "rms_commanded_per_limit": float(np.mean(np.sqrt(np.mean(all_cmd**2, axis=0)) / limits)),
        "rms_delivered_per_limit": float(np.mean(np.sqrt(np.mean(all_applied**2, axis=0)) / limits)),
        "peak_speed_per_no_load": float(np.max(np.abs(all_speed) / no_load)),
    }
    distance = sum(float(r["metrics"].get("distance_m", 0.0)) for r in recorded)  # a travelling robot reports it
    if mass_kg is not None and distance > 0:
        work_j = sum(float(np.sum(np.abs(a * w)) * dt) for a, w in zip(applied, speeds, strict=True))
        out["cost_of_transport"] = work_j / (mass_kg * 9.81 * distance)
    return out


# ------------------------------------------------------------------------------------------------- the report
def run_stress(
    env_id: str,
    policy_factory: Callable[[], Policy],
    cfg: StressConfig,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the sweep, the reality box and the nominal metrics; return the JSON-able report."""
    import sim

    gym_id = sim.resolve_env_id(env_id)
    task = task_of_env(gym_id)
    if task is None:
        raise UserError(f"s2r stress needs an s2r robot env (biped, knob), not {env_id}")
    robot, spec = task.name, task.spec
    space = _param_space(gym_id)
    series, jobs, box = plan(robot, space, cfg)
    workers = cfg.workers or os.cpu_count() or 1
    t0 = time.monotonic()
    results = run_jobs(gym_id, policy_factory, jobs, min(workers, len(jobs)), progress, cfg.engine)
    wall_s = time.monotonic() - t0

    by_point: dict[tuple[str, float | None], list[dict[str, Any]]] = {}
    box_results: list[dict[str, Any]] = []
    for job, res in zip(jobs, results, strict=True):
        if job.kind == "box":
            box_results.append(res)
        else:
            by_point.setdefault((job.key, job.value), []).append(res)
    nominal = by_point[("nominal", None)]
    nominal_rate = float(np.mean([r["success"] for r in nominal]))
    sweep: dict[str, Any] = {}
    for s in series:
        rates = [float(np.mean([r["success"] for r in by_point[(s.name, v)]])) for v in s.values]
        if s.toward:  # a line toward a named plant: the value is the depth, nominal is depth 0
            param, unit, start = "depth", "depth", 0.0
        else:
            param, unit, start = s.param, space[s.param].unit, space[s.param].nominal
        sweep[s.name] = {
            "param": param, "unit": unit, "nominal": start, "values": list(s.values),
            "success": rates, "cliff": cliff(s.values, rates) if nominal_rate >= CLIFF_SUCCESS else start,
            **({"toward": dict(s.toward)} if s.toward else {}),
        }  # fmt: skip
    wins = sum(bool(r["success"]) for r in box_results)
    lo, hi = wilson_interval(wins, len(box_results))
    plants = [{"params": params, "success": bool(r["success"]), "fell": bool(r["fell"]), "steps": int(r["length"]),
               "metrics": r["metrics"]} for params, r in zip(box, box_results, strict=True)]  # fmt: skip
    mass = task.walking_mass()
    return {
        "robot": robot,
        "env_id": gym_id,
        "engine": cfg.engine,
        "success_definition": task.success_text,
        "cliff_definition": f"first value (nominal outward) with success < {CLIFF_SUCCESS:.0%}",
        "seed": cfg.seed,
        "episodes_per_point": cfg.episodes,
        "nominal": {
            "success_rate": nominal_rate,
            "episodes": len(nominal),
            "falls": int(sum(r["fell"] for r in nominal)),
            "torque_metrics": torque_metrics(spec, nominal, mass),
        },
        "sweep": sweep,
        "reality_box": {
            "ranges": {k: list(v) for k, v in task.reality_box.items()},
            "plants": len(box_results),
            "successes": wins,
            "success_rate": wins / len(box_results) if box_results else math.nan,
            "wilson95": [lo, hi],
            "falls": int(sum(r["fell"] for r in box_results)),
            "by_param": box_by_param(plants),
            "per_plant": plants,  # each plant's parameters and outcome, in plan order
        },
        "episodes": len(jobs),
        "steps": int(sum(r["length"] for r in results)),
        "workers": min(workers, len(jobs)),
        "wall_s": wall_s,
        # CPU seconds the episodes took in the workers (the cost on an idle box, whatever the load was)
        "episode_cpu_s": float(sum(r["cpu_s"] for r in results)),
    }


def box_by_param(plants: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Which box parameters the failures lean on: per parameter, the success rate of the plants in the lower and
    the upper third of its drawn values, and their difference (upper − lower), largest |difference| first. With
    every parameter drawn at once this is a screen, not a proof: read it with the sweep's cliffs."""
    if len(plants) < 3:
        return {}
    success = np.array([p["success"] for p in plants], dtype=float)
    rows: dict[str, dict[str, float]] = {}
    for name in plants[0]["params"]:
        x = np.array([p["params"][name] for p in plants], dtype=float)
        lo_cut, hi_cut = np.quantile(x, [1 / 3, 2 / 3])
        low, high = success[x <= lo_cut], success[x >= hi_cut]
        if lo_cut == hi_cut or not len(low) or not len(high):
            continue
        rows[name] = {"low_third": float(low.mean()), "high_third": float(high.mean()),
                      "difference": float(high.mean() - low.mean())}  # fmt: skip
    return dict(sorted(rows.items(), key=lambda kv: -abs(kv[1]["difference"])))


def _param_space(gym_id: str) -> ParamSpace:
    import gymnasium as gym

    env = gym.make(gym_id)
    try:
        return env.unwrapped.param_space  # type: ignore[attr-defined]
    finally:
        env.close()


def box_line(box: Mapping[str, Any]) -> str:
    """The reality box's result in one line (or that it was not run: ``--plants 0``)."""
    if not box["plants"]:
        return "reality box: not run (--plants 0)"
    return (f"reality box: {box['success_rate']:.0%} of {box['plants']} random plants "
            f"(95 % CI {box['wilson95'][0]:.0%}-{box['wilson95'][1]:.0%}; {len(box['ranges'])} parameters at once)")


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text: nominal line, reality box, torque metrics, one line per sweep series."""
    nom, box, tm = report["nominal"], report["reality_box"], report["nominal"]["torque_metrics"]
    lines = [
        f"{report['env_id']} ({report.get('engine', 'pybullet')}): success = {report['success_definition']}; "
        f"cliff = {report['cliff_definition']}",
        f"nominal plant: {nom['success_rate']:.0%} of {nom['episodes']} episodes",
        box_line(box),
    ]
    lean = [f"{name} {r['low_third']:.0%} (low third) vs {r['high_third']:.0%} (high third)"
            for name, r in list(box.get("by_param", {}).items())[:3] if abs(r["difference"]) >= 0.1]  # fmt: skip
    if lean:
        lines.append("box failures lean on: " + "; ".join(lean))
    if tm:
        lines.append(
            f"torque on the nominal plant: {tm['at_limit_pct']:.0f} % of steps at the limit, mean |Δτ| "
            f"{tm['mean_abs_delta_per_limit']:.2f} of the limit, {tm['power_above_5hz_pct']:.0f} % of power above "
            f"5 Hz, RMS {tm['rms_commanded_per_limit']:.2f} (commanded) / {tm['rms_delivered_per_limit']:.2f} "
            f"(delivered) of the limit, peak joint speed {tm['peak_speed_per_no_load']:.2f}x no-load"
            + (f", cost of transport {tm['cost_of_transport']:.2f}" if "cost_of_transport" in tm else "")
        )
    width = max((len(n) for n in report["sweep"]), default=10)
    lines.append(f"{'parameter'.ljust(width)}  {'unit':<10} {'cliff':>10}   success per value (nominal outward)")
    for name, s in report["sweep"].items():
        c = "none" if s["cliff"] is None else f"{s['cliff']:g}"
        pts = "  ".join(f"{v:g}:{r:.0%}" for v, r in zip(s["values"], s["success"], strict=True))
        lines.append(f"{name.ljust(width)}  {s['unit']:<10} {c:>10}   {pts}")
    lines.append(f"{report['episodes']} episodes, {report['steps']} steps, {report['workers']} workers, "
                 f"{report['wall_s']:.0f} s wall, {report['episode_cpu_s']:.0f} CPU-s in the episodes")  # fmt: skip
    return "\n".join(lines)
