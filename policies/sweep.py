"""Multi-seed sweeps (``s2r sweep SPEC``): seeds × hyper-parameters × DR/ADR configs, each trial an ordinary
run folder, run one after another in this process or as Ray tasks on a cluster (``--ray``); then a summary
table (final metric, mean ± 95 % confidence interval across seeds) and multi-seed learning curves.

A spec is YAML (or JSON), for example::

    name: biped-ppo                  # the sweep's folder name (default: the spec file's name)
    base:                            # settings every trial shares
      env: biped
      algo: ppo
      steps: 200000
      ppo.n_steps: 512               # an algorithm field: <algo>.<field> (td3.* also for ddpg)
    seeds: [0, 1, 2, 3, 4]
    configs:                         # named DR/ADR setups (any settings)
      nominal: {}
      dr: {dr: wide}
      adr: {adr: true}
    grid:                            # hyper-parameters: every combination of these values
      ppo.lr: [0.0003, 0.001]
    metric: return_mean              # a progress.csv column; the table reports its final value

A setting is a ``TrainConfig`` field (``policies.train``; ``vec``, ``num_envs``, ``dr``, ``adr``...) or an
algorithm field written as ``ppo.<field>`` / ``td3.<field>`` (``PPOConfig``, ``TD3Config``; presets fill the
rest, as ``s2r train`` does). A trial's settings are: the sweep's defaults (``vec: sync``, one update thread,
no progress bar: one trial per CPU; a trial given ``ray`` steps its envs in Ray actors instead), then ``base``,
then its config, then its grid point, then its seed.

Trials live in ``OUT/trials/<config>[,<param>=<value>...]/s<seed>/``. A trial whose run folder already holds a
checkpoint is resumed (a finished one is not run again), so an interrupted sweep continues where it stopped,
and a Ray task that is retried after its node died picks up from the trial's last checkpoint.

The confidence interval is Student's t over the seeds' final values: ``mean ± t(0.975, n−1) · s / √n``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.ppo import PPOConfig
from policies.td3 import TD3Config
from sim.errors import UserError
from sim.files import atomic_open, atomic_write, read_json

SPEC_KEYS = ("name", "base", "seeds", "configs", "grid", "metric")
TRIAL_DEFAULTS: dict[str, Any] = {"vec": "sync", "update_threads": 1, "progress": False}
MAX_RETRIES = 2  # Ray retries of a trial whose worker or node died (it resumes from its last checkpoint)

# two-sided 95 % quantiles of Student's t, t(0.975, df), df = 1..30 (beyond: a Cornish-Fisher expansion)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict[str, Any]
    seeds: tuple[int, ...]
    configs: dict[str, dict[str, Any]]
    grid: dict[str, list[Any]]
    metric: str = "return_mean"


@dataclass(frozen=True)
class Trial:
    group: str  # "<config>[,<param>=<value>...]": the trials that differ only by seed
    config_name: str
    params: dict[str, Any]  # the grid point
    seed: int
    settings: dict[str, Any]  # everything that makes its TrainConfig

    @property
    def rel_dir(self) -> str:
        return f"trials/{_safe(self.group)}/s{self.seed}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.,=+" else "_" for c in text)


def t975(df: int) -> float:
    """Student's t quantile t(0.975, df)."""
    if df < 1:
        return math.nan
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (NaN with fewer than two values)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


# ------------------------------------------------------------------------------------------------ the spec
def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and check a spec (YAML, or JSON for a .json file); UserError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} not found")
    if path.suffix == ".json":
        data = read_json(path, "sweep spec")
    else:
        try:
            import yaml
        except ImportError:
            raise UserError(f"{path}: YAML specs need PyYAML (pip install pyyaml), or write the spec as JSON") from None
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep spec is a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = set(data) - set(SPEC_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown keys {sorted(unknown)}; a spec has {', '.join(SPEC_KEYS)}")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise UserError(f"{path}: seeds must be a non-empty list of integers, e.g. seeds: [0, 1, 2]")
    configs = data.get("configs") or {"default": {}}
    grid = data.get("grid") or {}
    if not isinstance(configs, dict) or not all(isinstance(v or {}, dict) for v in configs.values()):
        raise UserError(f"{path}: configs maps a name to settings, e.g. configs: {{adr: {{adr: true}}}}")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise UserError(f"{path}: grid maps a setting to a non-empty list of values, e.g. grid: {{ppo.lr: [1e-4, 3e-4]}}")
    spec = SweepSpec(
        name=str(data.get("name") or path.stem), base=dict(data.get("base") or {}), seeds=tuple(seeds),
        configs={str(k): dict(v or {}) for k, v in configs.items()}, grid=grid,
        metric=str(data.get("metric", "return_mean")),
    )  # fmt: skip
    for t in trials(spec):
        trial_config(t)  # every setting of every trial must make a valid TrainConfig now, not hours into the sweep
    return spec


def trials(spec: SweepSpec) -> list[Trial]:
    """Every (config, grid point, seed), in that nesting order."""
    keys = list(spec.grid)
    out = []
    for cname, csettings in spec.configs.items():
        for values in itertools.product(*(spec.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            group = ",".join([cname, *(f"{k}={v}" for k, v in point.items())])
            for seed in spec.seeds:
                settings = {**TRIAL_DEFAULTS, **spec.base, **csettings, **point, "seed": seed}
                if settings.get("ray") and "vec" not in {**spec.base, **csettings, **point}:
                    settings["vec"] = "auto"  # a trial with its own Ray actors: --vec does not apply
                out.append(Trial(group, cname, point, seed, settings))
    return out


def trial_config(trial: Trial):
    """The trial's TrainConfig: its plain settings, then its ``<algo>.<field>`` settings over the preset."""
    from policies.train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"algo_config"}
    plain = {k: v for k, v in trial.settings.items() if "." not in k}
    dotted = {k: v for k, v in trial.settings.items() if "." in k}
    unknown = set(plain) - fields
    if unknown:
        raise UserError(f"unknown setting(s) {sorted(unknown)}: use TrainConfig fields ({', '.join(sorted(fields))}) "
                         "or <algo>.<field> for a PPOConfig/TD3Config field")  # fmt: skip
    cfg = TrainConfig(**plain)
    algo_cfg = cfg.resolved().algo_config
    assert algo_cfg is not None  # resolved() fills it
    prefix, cls = ("ppo", PPOConfig) if isinstance(algo_cfg, PPOConfig) else ("td3", TD3Config)
    names = {f.name for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in dotted.items():
        pre, name = key.split(".", 1)
        if pre != prefix or name not in names:
            raise UserError(f"setting '{key}' does not apply to --algo {cfg.algo}: use {prefix}.<field>, a field "
                             f"of {cls.__name__} ({', '.join(sorted(names))})")  # fmt: skip
        changes[name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(cfg, algo_config=dataclasses.replace(algo_cfg, **changes))


# -------------------------------------------------------------------------------------------- running trials
def run_trial(settings: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Train one trial into ``run_dir``, resuming its checkpoint if it has one (a finished trial returns at
    once). Also the body of the Ray task."""
    from policies.train import train

    trial = Trial("", "", {}, int(settings["seed"]), settings)
    cfg = trial_config(trial)
    resume = (Path(run_dir) / "checkpoints" / "latest.pt").is_file()
    return train(cfg, run_dir, resume=resume)


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, ray_address: str | None = None) -> dict[str, Any]:
    """Run every trial (sequentially here, or as Ray tasks with one CPU each), then :func:`summarize`.

    A trial that fails is reported (its error in the table's ``failed`` column and on stderr) and the others go
    on; the summary is written from the trials that finished.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.json"
    spec_json = json.dumps(dataclasses.asdict(spec), indent=2, default=str) + "\n"
    if spec_path.is_file() and json.loads(spec_path.read_text()) != json.loads(spec_json):
        raise UserError(f"{out} holds a different sweep (its spec.json differs); pick another --out")
    atomic_write(spec_path, spec_json)
    todo = trials(spec)
    failures: dict[str, str] = {}
    t0 = time.monotonic()
    if ray_address:
        failures = _run_on_ray(todo, out, ray_address)
    else:
        for i, t in enumerate(todo):
            print(f"s2r sweep: trial {i + 1}/{len(todo)} {t.group} seed {t.seed}", file=sys.stderr)
            try:
                run_trial(t.settings, str(out / t.rel_dir))
            except Exception as exc:  # the other trials go on; a bug still shows its traceback
                failures[t.rel_dir] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                if not isinstance(exc, UserError):
                    traceback.print_exc()
                print(f"s2r sweep: trial {t.rel_dir} failed: {failures[t.rel_dir]}", file=sys.stderr)
    summary = summarize(spec, out, failures)
    summary["time_s"] = time.monotonic() - t0
    return summary


def _run_on_ray(todo: list[Trial], out: Path, address: str) -> dict[str, str]:
    from policies.ray_vec import connect

    owns = connect(address)
    import ray

    task = ray.remote(run_trial).options(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
    refs = {task.remote(_absolute_paths(t.settings), str((out / t.rel_dir).resolve())): t for t in todo}
    failures: dict[str, str] = {}
    try:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            t = refs[ready[0]]
            try:
                ray.get(ready[0])
                print(f"s2r sweep: done {t.group} seed {t.seed} ({len(refs) - len(pending)}/{len(refs)})",
                      file=sys.stderr)  # fmt: skip
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None) or exc
                failures[t.rel_dir] = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0]}"
                print(f"s2r sweep: trial {t.rel_dir} failed: {failures[t.rel_dir]}", file=sys.stderr)
    finally:
        if owns:
            ray.shutdown()
    return failures


def _absolute_paths(settings: dict[str, Any]) -> dict[str, Any]:
    """DR/ADR files named relative to this directory, made absolute for a Ray worker that runs elsewhere."""
    out = dict(settings)
    for key in ("dr", "adr_config"):
        if isinstance(out.get(key), str) and Path(out[key]).is_file():
            out[key] = str(Path(out[key]).resolve())
    return out


# ----------------------------------------------------------------------------------------------- the summary
def _final(progress: dict[str, list[float]], metric: str) -> float:
    vals = [v for v in progress.get(metric, []) if math.isfinite(v)]
    return vals[-1] if vals else math.nan


def summarize(spec: SweepSpec, out_dir: str | os.PathLike, failures: dict[str, str] | None = None) -> dict:
    """``summary.csv``, ``summary.md`` and ``curves.png`` in ``out_dir`` from the trials' progress.csv files."""
    from policies.plotting import read_progress

    out = Path(out_dir)
    failures = failures or {}
    groups: dict[str, list[Trial]] = {}
    for t in trials(spec):
        groups.setdefault(t.group, []).append(t)
    rows, curves = [], {}
    for group, members in groups.items():
        finals, steps, times, seeds_done, curve = [], [], [], [], []
        for t in members:
            path = out / t.rel_dir / "progress.csv"
            try:
                prog = read_progress(path)
            except (FileNotFoundError, ValueError):
                continue
            if spec.metric not in prog:
                raise UserError(f"metric '{spec.metric}' is not a column of {path}; columns: {', '.join(prog)}")
            finals.append(_final(prog, spec.metric))
            steps.append(prog["global_step"][-1])
            times.append(prog["time_s"][-1])
            seeds_done.append(t.seed)
            curve.append((np.asarray(prog["global_step"]), np.asarray(prog[spec.metric])))
        mean, ci = mean_ci95(finals)
        rows.append({
            "group": group, "config": members[0].config_name,
            **{k: json.dumps(v) for k, v in members[0].params.items()},
            "seeds": len(finals), "metric": spec.metric, "mean": mean, "ci95": ci,
            "per_seed": " ".join(f"s{s}:{v:.4g}" for s, v in zip(seeds_done, finals, strict=True)),
            "steps": int(np.min(steps)) if steps else 0, "time_s_mean": float(np.mean(times)) if times else math.nan,
            "failed": "; ".join(f"{t.rel_dir}: {failures[t.rel_dir]}" for t in members if t.rel_dir in failures),
        })  # fmt: skip
        curves[group] = curve
    _write_csv(out / "summary.csv", rows)
    atomic_write(out / "summary.md", format_table(rows, spec.metric) + "\n")
    plot = plot_curves(curves, spec.metric, out / "curves.png")
    return {"rows": rows, "table": out / "summary.md", "csv": out / "summary.csv", "plot": plot}


def format_table(rows: list[dict], metric: str) -> str:
    """A Markdown table: one line per group, final ``metric`` as mean ± 95 % CI over its seeds."""
    lines = [f"| group | seeds | final {metric} (mean ± 95% CI) | per seed | steps |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ci = "n/a" if not math.isfinite(r["ci95"]) else f"{r['ci95']:.3g}"
        mean = "n/a" if not math.isfinite(r["mean"]) else f"{r['mean']:.4g}"
        failed = f" (failed: {r['failed']})" if r["failed"] else ""
        lines.append(f"| {r['group']} | {r['seeds']} | {mean} ± {ci} | {r['per_seed']}{failed} | {r['steps']} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], metric: str, path: Path) -> Path:
    """One line per group: the mean over seeds, a band for its 95 % CI, each seed thin, on the steps that all
    of a group's seeds logged (interpolated onto the first seed's logging steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (group, curve), color in zip(curves.items(), itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"]), strict=False):
        if not curve:
            continue
        end = min(float(x[-1]) for x, _ in curve)
        grid = curve[0][0][curve[0][0] <= end]
        ys = np.stack([np.interp(grid, x, y) for x, y in curve])  # NaN (no episode yet) stays NaN nearby
        for y in ys:
            ax.plot(grid, y, color=color, lw=0.6, alpha=0.35)
        stats = [mean_ci95(list(col)) for col in ys.T]
        mean = np.array([m for m, _ in stats])
        ci = np.nan_to_num(np.array([c for _, c in stats]))
        ax.plot(grid, mean, color=color, lw=1.8, label=f"{group} (n={len(curve)})")
        ax.fill_between(grid, mean - ci, mean + ci, color=color, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean over seeds, 95% CI band, seeds thin")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=100, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


