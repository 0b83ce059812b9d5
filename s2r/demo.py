"""`s2r demo`: the whole pipeline on this machine, from a shipped bundle to a HIL report, a dashboard and a GIF.

::

    deploy/pretrained/<robot>  ─► flash into a temporary A/B model store (sha256 + onnxruntime self-test)
        ─► HIL, lockstep, real pty: `s2r emulate --plant nominal`  ◄─►  `s2r run --bundle STORE/<slot>`
        ─► HIL, lockstep, real pty: `s2r emulate --plant <held-out>` ◄─►  `s2r run --bundle STORE/<slot>`
        ─► replay of the nominal episode in the simulator with the same ONNX policy (rendered to a GIF;
           its torques must equal the HIL log's: lockstep HIL is bit-compatible with the simulator)
        ─► OUT/: report.txt, report.json, dashboard.png, episode.gif, hil-<plant>/ (emulator log, telemetry)

The two HIL runs go in parallel (each is two processes that take turns) while this process renders the replay.
Everything is built in a temp folder beside OUT and renamed into place at the end, so OUT is either the previous
demo's output or this one's, never half-written. The watchdogs are longer than a real board's 100 ms because in
lockstep the physics waits for each command: they guard against a dead host, not a slow one, and must not trip
on a loaded 2-core box.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from s2r.hil import HilConfig, format_table, per_joint_panels, run_hil
from sim.config import option, validate
from sim.engines import DEFAULT_ENGINE, ENGINE_HELP, ENGINES
from sim.errors import UserError
from sim.files import check_output_dir, make_dir_beside, replace_dir

HELDOUT_PLANT = "worst_case"  # the held-out plant of the second HIL run: every perturbation at once
QUICK_STEPS = 150  # control steps per HIL run with --quick (3 s of robot time)
GIF_EVERY = 5  # render every 5th control step: 10 frames per second of robot time at 50 Hz
REPORT_FILE = "report.json"
TORQUE_WINDOW_S = 5.0  # robot time shown in the dashboard's torque and joint panels (a whole episode is a blur)
PARITY_TOL_NM = 1e-3  # replay vs HIL torque; float32 on both sides, so any real mismatch is far larger


MAX_STEPS = 100_000  # a demo, not an endurance run (that is `s2r hil --max-steps N`): ~33 min of biped time


@dataclass(frozen=True)
class DemoConfig:
    """One demo run (the flags of ``s2r demo``)."""

    robot: str | None = option(None, "which robot: biped, knob or another registered one (default: the bundle's, "
                               "else biped)")
    quick: bool = option(False, "CI-sized variant: a few seconds of robot time per run")
    out_dir: str = option("demo_out", "output folder", flag="--out", metavar="DIR")
    bundle: str | None = option(None, "use this bundle instead of the pretrained one", metavar="DIR")
    plant: str | None = option(None, "held-out plant of the robot's task to run besides nominal (default worst_case)")
    seed: int = option(0, "episode seed of the HIL runs and the replay", low=0)
    steps: int | None = option(None, f"control steps per HIL run (default: one full episode; {QUICK_STEPS} with "
                               "--quick)", low=1, high=MAX_STEPS, metavar="N",
                               hint="for longer runs use `s2r hil --bundle DIR --lockstep --max-steps N`")
    watchdog_ms: int = option(500, "board watchdog (lockstep: guards against a dead host only), ms", low=1,
                              high=65535, cli=False)
    host_watchdog_ms: float = option(1000.0, "controller: no SENSOR for this long → DISABLE and re-handshake, ms",
                                     low=1, high=60_000, cli=False)
    engine: str = option(DEFAULT_ENGINE, ENGINE_HELP + "; the sim-to-sim row runs the bundle on the nominal plant "
                         "of the other engine", choices=ENGINES)

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class Replay:
    """The nominal episode replayed in the simulator with the flashed ONNX policy."""

    torque_nm: np.ndarray  # (steps, n_motors)
    frames: list[np.ndarray] = field(default_factory=list)
    aux: np.ndarray | None = None  # knob: (steps, 3) knob angle, knob speed, goal angle
    ret: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)  # the last step's info["metrics"] (sim.task)


def resolve_bundle(cfg: DemoConfig) -> tuple[str, Path]:
    """(robot, bundle folder): ``--bundle`` names its own robot; otherwise the pretrained one of ``--robot``."""
    from deploy.bundle import load_bundle
    from deploy.pretrained import bundle_path

    if cfg.bundle is None:
        robot = cfg.robot or "biped"
        return robot, bundle_path(robot)
    path = Path(cfg.bundle)
    if not path.is_dir():
        raise OSError(f"bundle folder '{path}' not found; export one with `s2r export RUN -o DIR`")
    bundle_robot = load_bundle(path).robot
    if cfg.robot not in (None, bundle_robot):
        raise UserError(f"bundle '{path}' is for robot '{bundle_robot}', not '{cfg.robot}'; drop --robot")
    return bundle_robot, path


def run_demo(cfg: DemoConfig, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Flash, run both HIL runs and the replay, write OUT; return the report (``report["safety_ok"]``)."""
    import gymnasium as gym

    import sim
    from deploy.store import ModelStore
    from firmware_bridge.emulator import plant_params
    from sim.engines import check_engine

    t0 = time.monotonic()
    robot, bundle_dir = resolve_bundle(cfg)
    plant = cfg.plant or HELDOUT_PLANT
    plant_params(robot, plant)  # unknown plant → one-line error before anything runs
    env_id = sim.resolve_env_id(robot)
    twin = next(e for e in ENGINES if e != check_engine(cfg.engine))  # the sim-to-sim row's engine
    steps = cfg.steps or (QUICK_STEPS if cfg.quick else int(gym.spec(env_id).max_episode_steps or 1000))
    if steps < 1:
        raise UserError(f"steps must be ≥ 1, got {steps}")
    out = Path(cfg.out_dir)
    with tempfile.TemporaryDirectory(prefix="s2r-demo-store-") as store_dir, staged_dir(out) as tmp:
        store = ModelStore(store_dir)
        slot = store.flash(bundle_dir)  # hash check + onnxruntime self-test before it becomes active
        flashed = store.active_bundle()
        progress(
            f"flashed {bundle_dir} into slot {slot} of a temporary model store (sha256 {flashed.sha256[:12]})"
        )
        # table row → (plant, engine): nominal and held-out in the chosen engine, then the bundle on the nominal
        # plant of the other engine (sim-to-sim: what the policy learned that is not physics of one engine)
        rows = {"nominal": ("nominal", cfg.engine), plant: (plant, cfg.engine), f"nominal@{twin}": ("nominal", twin)}
        progress(f"HIL, lockstep over a pty, {steps} control steps on plants {', '.join(rows)}...")
        with ThreadPoolExecutor(max_workers=len(rows)) as pool:
            futures = {
                name: pool.submit(
                    run_hil,
                    HilConfig(
                        bundle=str(flashed.path),
                        duration_s=30.0 + 4.0 * steps / flashed.manifest["control_hz"],
                        max_steps=steps,
                        lockstep=True,
                        plant=rows[name][0],
                        engine=rows[name][1],
                        seed=cfg.seed,
                        watchdog_ms=cfg.watchdog_ms,
                        host_watchdog_ms=cfg.host_watchdog_ms,
                        slack_ms=100.0,
                        out_dir=str(tmp / f"hil-{name}"),
                        plots=False,
                    ),
                )  # fmt: skip
                for name in rows
            }
            replay = replay_episode(flashed.path, env_id, steps, cfg.seed, cfg.engine)  # meanwhile, in this process
            runs = {name: f.result() for name, f in futures.items()}
        logs = {name: read_log(tmp / f"hil-{name}" / "emulator.jsonl") for name in rows}
        hil_tau = np.array([s["tau"] for s in logs["nominal"] if s["ev"] == "step" and s["ep"] == 0])
        n = min(len(hil_tau), len(replay.torque_nm))
        parity_nm = float(np.max(np.abs(hil_tau[:n] - replay.torque_nm[:n]))) if n else float("nan")
        from sim.video import write_gif

        write_gif(replay.frames, tmp / "episode.gif", fps=flashed.manifest["control_hz"] / GIF_EVERY)
        plot_dashboard(logs, runs, replay, robot, tmp / "dashboard.png")
        report = {
            "robot": robot, "env_id": env_id, "engine": cfg.engine, "quick": cfg.quick, "seed": cfg.seed, "steps": steps,
            "bundle": {"path": str(bundle_dir), "sha256": flashed.sha256, "slot": slot,
                       "created_utc": flashed.manifest["created_utc"],
                       "git_commit": flashed.manifest["training"]["git_commit"]},
            "runs": {name: _trim(r) for name, r in runs.items()},
            "replay": {"steps": len(replay.torque_nm), "return": replay.ret, "metrics": replay.metrics,
                       "gif_frames": len(replay.frames),
                       "compared_steps": n, "max_torque_diff_nm": parity_nm,
                       "matches_hil": bool(n and parity_nm <= PARITY_TOL_NM)},
            "safety_ok": all(r["safety"]["ok"] for r in runs.values()),
            "out_dir": str(out),
        }  # fmt: skip
        report["wall_s"] = round(time.monotonic() - t0, 1)
        text = format_report(report)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "report.txt").write_text(text + "\n")
    report["table"] = text
    return report


# ------------------------------------------------------------------------------------------------- output
@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out`` that replaces ``out`` only if the block succeeds (fsync'ed renames).

    ``out`` may be missing, empty or a previous demo output (it holds ``report.json``); anything else is
    refused, so a typo in ``--out`` cannot delete a user's folder.
    """
    check_output_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / REPORT_FILE).exists():
        raise UserError(f"'{out}' exists and is not a demo output folder; choose another --out or remove it")
    tmp = make_dir_beside(out)  # the mode a plain mkdir gives: an output folder reads like any other
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        replace_dir(tmp, out)  # fsyncs the folders, swaps tmp in, fsyncs the parent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename


def read_log(path: Path) -> list[dict[str, Any]]:
    """The emulator's JSON-lines log."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _trim(run: dict[str, Any]) -> dict[str, Any]:
    """A HIL report without its per-trip list (kept in the emulator log)."""
    return {k: v for k, v in run.items() if k not in ("watchdog_gap_ms", "plot")}


# ------------------------------------------------------------------------------------------------- replay
def replay_episode(bundle_dir: Path, env_id: str, steps: int, seed: int, engine: str = "pybullet") -> Replay:
    """Episode ``seed`` on the nominal plant of ``engine``, driven directly by the bundle's ONNX policy, rendered.

    Same seed, same policy, same clamp as the emulator: the torques must match the nominal HIL run's episode 0.
    """
    import gymnasium as gym

    from deploy.bundle import Policy, load_bundle
    from sim.engines import env_kwargs

    policy = Policy(load_bundle(bundle_dir))
    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs(env_id, engine))
    try:
        base: Any = env.unwrapped  # the s2r env API (step_torque, sensor_frame) beyond gymnasium.Env
        limits = base.robot_spec.action.limits_nm
        obs, _ = env.reset(seed=seed)
        torques, aux, frames = [], [], [cast(np.ndarray, env.render())]
        ret, info = 0.0, {}
        for k in range(steps):
            tau = np.clip(policy(obs).copy(), -limits, limits)
            obs, reward, terminated, truncated, info = base.step_torque(tau)
            torques.append(tau)
            aux.append(np.asarray(base.sensor_frame().aux, dtype=np.float32))
            ret += float(reward)
            if (k + 1) % GIF_EVERY == 0:
                frames.append(cast(np.ndarray, env.render()))
            if terminated or truncated:
                break
        has_aux = bool(aux) and aux[0].size > 0
        return Replay(
            torque_nm=np.array(torques, dtype=np.float32).reshape(-1, len(limits)), frames=frames,
            aux=np.stack(aux) if has_aux else None, ret=ret,
            metrics={k: float(v) for k, v in info.get("metrics", {}).items()},
        )  # fmt: skip
    finally:
        env.close()


# ------------------------------------------------------------------------------------------------ figures
def plot_dashboard(
    logs: dict[str, list[dict[str, Any]]],
    runs: dict[str, dict[str, Any]],
    replay: Replay,
    robot: str,
    path: Path,
) -> Path:
    """:func:`dashboard_figure` → PNG."""
    import matplotlib.pyplot as plt

    fig = dashboard_figure(logs, runs, replay, robot)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def dashboard_figure(
    logs: dict[str, list[dict[str, Any]]], runs: dict[str, dict[str, Any]], replay: Replay, robot: str
) -> Any:
    """One figure: torques and joint angles (nominal), cumulative reward and latency (both plants), held-out
    torques, and a lidar scan (biped) or the knob angle against its goal (knob)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.task import get_task

    spec = get_task(robot).spec
    names = list(logs)
    steps = {n: [r for r in logs[n] if r["ev"] == "step"] for n in names}
    period = spec.control_period_s
    fig, ax = plt.subplots(2, 3, figsize=(16, 8))

    window = int(round(TORQUE_WINDOW_S / period))
    for cell, name in ((ax[0, 0], names[0]), (ax[1, 0], names[1])):  # one panel per joint, the first seconds
        n = min(len(steps[name]), window)
        tau = np.array([r["tau"] for r in steps[name][:n]]).reshape(n, len(spec.action.names))
        per_joint_panels(fig, cell, np.arange(n) * period, tau, spec.action.names,
                         f"applied torque, N·m — plant {name}, first {n * period:.0f} s", "robot time, s")  # fmt: skip
    q = np.array([r["q"] for r in steps[names[0]][:window]])
    if len(q):
        lines = ax[0, 1].plot(np.arange(len(q)) * period, q, lw=0.8)
        ax[0, 1].legend(lines, spec.action.names, fontsize=7, loc="upper right")
    ax[0, 1].set(title=f"joint angle, rad — plant {names[0]}, first {len(q) * period:.0f} s", xlabel="robot time, s")
    for name in names:  # return so far, restarting at each episode
        s = steps[name]
        rewards, ep = np.array([r["r"] for r in s]), np.array([r["ep"] for r in s])
        cum = np.zeros(len(s))
        for e in np.unique(ep):
            cum[ep == e] = np.cumsum(rewards[ep == e])
        outcome = f"{runs[name]['successes']} successes" + (
            f", {runs[name]['falls']} falls" if get_task(robot).failure is not None else ""
        )
        ax[0, 2].plot(np.arange(len(s)) * period, cum, label=f"{name} ({outcome})")
    ax[0, 2].set(title="return so far (resets each episode)", xlabel="robot time, s")
    ax[0, 2].legend(fontsize=8)
    if spec.sensors.lidar_angles_rad:
        _lidar_scan(
            ax[1, 1], steps[names[0]], spec.sensors.lidar_angles_rad, spec.sensors.lidar_max_range_m, period
        )
    elif replay.aux is not None:
        from sim.robots import wrap_angle

        t = np.arange(len(replay.aux)) * period
        ax[1, 1].plot(t, wrap_angle(replay.aux[:, 2] - replay.aux[:, 0]), label="goal − knob angle")
        ax[1, 1].axhline(0.0, color="0.6", lw=0.8)
        ax[1, 1].set(title="knob angle still to turn, rad (sim replay, nominal)", xlabel="robot time, s")
        ax[1, 1].legend(fontsize=8)
    for name in names:
        lat = [r["lat_ms"] for r in steps[name] if r.get("lat_ms") is not None]
        ax[1, 2].hist(lat or [0.0], bins=40, alpha=0.6, label=name)
    ax[1, 2].set(title="sensor → command latency at the board", xlabel="ms", ylabel="count", yscale="log")
    ax[1, 2].legend(fontsize=8)
    fig.suptitle(f"s2r demo — {robot}: lockstep HIL over a pty", fontsize=12)
    fig.tight_layout()
    return fig


def _lidar_scan(
    ax, steps: list[dict[str, Any]], angles_rad: tuple[float, ...], max_range_m: float, period_s: float
) -> None:
    """One scan, mid-run, drawn as rays from the sensor (x forward, y up)."""
    if not steps:
        return
    scan = np.asarray(steps[len(steps) // 2]["lidar"], dtype=np.float64)
    a = np.asarray(angles_rad)
    for ang, rng in zip(a, scan, strict=True):
        ax.plot(
            [0, rng * np.cos(ang)], [0, -rng * np.sin(ang)], color="tab:red" if rng < max_range_m else "0.7"
        )
    ax.plot(scan * np.cos(a), -scan * np.sin(a), "o", ms=3, color="tab:red")
    ax.set(title=f"lidar scan at t = {len(steps) // 2 * period_s:.1f} s (red: hit)", xlabel="forward, m",
           ylabel="up, m", aspect="equal")  # fmt: skip


def format_report(r: dict[str, Any]) -> str:
    """The short table ``s2r demo`` prints."""
    b, rp = r["bundle"], r["replay"]
    where = "".join(f", {k} {v:.2f}" for k, v in rp["metrics"].items() if k != "success")
    where += f", success {rp['metrics']['success']:.0f}" if "success" in rp["metrics"] else ""
    return "\n".join([
        f"s2r demo — {r['robot']} ({r['env_id']}, {r['engine']}): bundle {b['path']} (sha256 {b['sha256'][:12]}) flashed to slot "
        f"{b['slot']} of a temporary model store; lockstep HIL over a pty, seed {r['seed']}",
        format_table(r["runs"]),
        f"sim replay of the nominal episode: {rp['steps']} steps, return {rp['return']:.1f}{where}; torques vs HIL "
        f"max |Δ| {rp['max_torque_diff_nm']:.2g} N·m over {rp['compared_steps']} steps "
        f"({'match' if rp['matches_hil'] else 'MISMATCH'}: tolerance {PARITY_TOL_NM:g} N·m)",
        f"safety {'OK' if r['safety_ok'] else 'FAILED'}: no NaN or over-limit torque reached the board, no late "
        f"watchdog trip. {r['wall_s']} s.",
        f"wrote {r['out_dir']}/: dashboard.png, episode.gif, report.txt, report.json, hil-*/ "
        f"(try `s2r plot {r['out_dir']}/hil-nominal/telemetry.csv`)",
    ])  # fmt: skip
