"""Controller runtime against the firmware emulator over a real pty: control, clamp, NaN guard, watchdog,
handshake refusal, and SIGINT/SIGTERM shutdown of `s2r run`."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deploy.bundle import Policy, load_bundle
from deploy.manifest import sha256_file
from deploy.runtime import Controller, RuntimeConfig
from deploy.store import ModelStore
from deploy.telemetry import STATE_CODES, HostFault, plot_telemetry, read_telemetry
from firmware_bridge import protocol as p
from firmware_bridge.emulator import Emulator, EmulatorConfig
from firmware_bridge.link import open_pty
from sim.robots import get_robot

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def emulator(lockstep: bool = True, watchdog_ms: int = 1000, env: str = "biped") -> Iterator[tuple]:
    """An emulated board serving the master end of a new pty in a thread; yields (emulator, slave path, pause).
    While ``pause`` is set the board is unplugged: it stops reading and sending (and disarms, as serve() does)."""
    port, path = open_pty()
    emu = Emulator(EmulatorConfig(env=env, lockstep=lockstep, watchdog_ms=watchdog_ms), port)
    stop, pause = threading.Event(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            emu.serve(should_stop=lambda: stop.is_set() or pause.is_set())
            while pause.is_set() and not stop.is_set():
                time.sleep(0.005)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield emu, path, pause
    finally:
        stop.set()
        thread.join(5)
        emu.close()
        port.close()


def _run(bundle: Path, path: str, tmp: Path, **kw) -> tuple[dict, dict, dict]:
    cfg = RuntimeConfig(port=path, telemetry=tmp / "tel.csv", quiet=True, **{"watchdog_ms": 1000.0, **kw})
    summary = Controller(load_bundle(bundle), cfg).run()
    meta, cols = read_telemetry(tmp / "tel.csv")
    return summary, meta, cols


def _obs(cols: dict, robot: str = "biped") -> np.ndarray:
    return np.stack([cols[f"obs:{f.name}"] for f in get_robot(robot).obs_fields], axis=1)


def _torque(cols: dict, robot: str = "biped") -> np.ndarray:
    return np.stack([cols[f"torque_nm:{m}"] for m in get_robot(robot).action.names], axis=1)


def test_lockstep_control_matches_policy(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with emulator() as (emu, path, _):
        summary, meta, cols = _run(bundles["a"], path, tmp_path, max_steps=60)
        time.sleep(0.2)
        board = dict(emu.c)
        assert not emu.enabled  # shutdown sent DISABLE
    assert summary["steps"] == 60 and len(cols["step"]) == 60
    assert board["steps"] >= 59 and board["overlimit_commands"] == 0 and board["nonfinite_commands"] == 0
    assert meta["robot"] == "biped" and meta["model_sha256"] == load_bundle(bundles["a"]).sha256
    obs, torque = _obs(cols), _torque(cols)
    assert np.all(np.isfinite(obs)) and np.ptp(obs[:, 4]) > 0  # the hip moved: the loop is closed
    # what was sent is exactly the bundle's policy on the observation built from the board's SENSOR
    # (telemetry prints 7 significant digits, so compare to that precision)
    np.testing.assert_allclose(torque, Policy(load_bundle(bundles["a"])).batch(obs), rtol=2e-6, atol=1e-5)
    assert np.all(np.diff(cols["sensor_seq"]) > 0) and np.all(cols["faults"].astype(int) & 0b111 == 0)
    assert cols["faults"][0].astype(int) & HostFault.REENABLED
    assert np.all(cols["infer_us"] > 0) and np.all(cols["loop_us"] >= cols["infer_us"])
    pngs = plot_telemetry(tmp_path / "tel.csv", tmp_path / "plots")
    assert all(p.stat().st_size > 10_000 for p in pngs)


def _rogue_bundle(src: Path, dst: Path) -> Path:
    """A validly hashed bundle whose graph is ``1000 * sqrt(lidar[:4] - 100 * pitch_rate)``: NaN while the hull
    pitches forward, far over the limits otherwise (export would refuse such a policy; a tampered or
    buggy model still must not reach the motors)."""
    shutil.copytree(src, dst)
    nodes = [
        helper.make_node("Slice", ["obs", "l0", "l1", "ax"], ["lidar"]),
        helper.make_node("Slice", ["obs", "p0", "p1", "ax"], ["rate"]),
        helper.make_node("Mul", ["rate", "c"], ["rate100"]),
        helper.make_node("Add", ["lidar", "rate100"], ["x"]),
        helper.make_node("Sqrt", ["x"], ["r"]),
        helper.make_node("Mul", ["r", "k"], ["torque_nm"]),
    ]
    inits = [
        helper.make_tensor("l0", TensorProto.INT64, [1], [14]),
        helper.make_tensor("l1", TensorProto.INT64, [1], [18]),
        helper.make_tensor("p0", TensorProto.INT64, [1], [1]),
        helper.make_tensor("p1", TensorProto.INT64, [1], [2]),
        helper.make_tensor("c", TensorProto.FLOAT, [], [-100.0]),
        helper.make_tensor("ax", TensorProto.INT64, [1], [1]),
        helper.make_tensor("k", TensorProto.FLOAT, [], [1000.0]),
    ]
    graph = helper.make_graph(
        nodes, "rogue", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 24])],
        [helper.make_tensor_value_info("torque_nm", TensorProto.FLOAT, ["batch", 4])], inits,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), dst / "policy.onnx")
    m = json.loads((dst / "manifest.json").read_text())
    m["model"]["sha256"] = m["files"]["policy.onnx"] = sha256_file(dst / "policy.onnx")
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_nan_output_never_sent_and_torques_clamped(tmp_path: Path, bundles: dict[str, Path]) -> None:
    rogue = _rogue_bundle(bundles["a"], tmp_path / "rogue")
    with emulator() as (emu, path, _):
        summary, _, cols = _run(rogue, path, tmp_path, max_steps=40)
        time.sleep(0.2)
        board = dict(emu.c)
    faults, torque, obs = cols["faults"].astype(int), _torque(cols), _obs(cols)
    nan_rows = (faults & HostFault.NONFINITE_OUTPUT) != 0
    assert nan_rows.any() and (~nan_rows).any(), "the run should see the hull pitch both ways"
    assert np.all(np.isfinite(torque)) and np.all(torque[nan_rows] == 0.0)
    assert summary["faults"]["nonfinite_output"] == nan_rows.sum()
    limits = get_robot("biped").action.limits_nm
    ok = ~nan_rows
    raw = 1000 * np.sqrt(obs[ok, 14:18] - 100 * obs[ok, 1:2])
    np.testing.assert_allclose(torque[ok], np.clip(raw, -limits, limits), rtol=1e-5)
    over = np.any(raw > limits, axis=1)
    assert over.any() and np.array_equal((faults[ok] & HostFault.CLAMPED) != 0, over)
    assert summary["faults"]["clamped"] == over.sum()
    assert board["nonfinite_commands"] == 0 and board["overlimit_commands"] == 0  # the board saw none of it


def test_watchdog_zero_torque_then_recovery(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with emulator() as (emu, path, pause):

        def unplug_once() -> None:
            while emu.c["steps"] < 20:
                time.sleep(0.002)
            pause.set()  # the board goes silent for 0.6 s
            time.sleep(0.6)
            pause.clear()

        threading.Thread(target=unplug_once, daemon=True).start()
        summary, _, cols = _run(bundles["a"], path, tmp_path, max_steps=50, watchdog_ms=150.0)
        board = dict(emu.c)
    faults, t = cols["faults"].astype(int), cols["t_s"]
    (timeouts,) = np.nonzero(faults & HostFault.SENSOR_TIMEOUT)
    assert len(timeouts) == 1 and summary["faults"]["sensor_timeout"] == 1  # one outage → one fault
    i = timeouts[0]
    assert np.all(_torque(cols)[i] == 0.0) and np.all(np.isnan(_obs(cols)[i]))
    # declared once the timeout elapsed since the last SENSOR (whose row is stamped a few ms after it arrived)
    assert 0.14 <= t[i] - t[i - 1] < 0.45
    assert faults[i + 1] & HostFault.REENABLED and t[i + 1] - t[i] > 0.3  # resumed only when the board was back
    assert summary["steps"] == 50 and board["steps"] >= 49


def test_mismatched_board_is_refused_before_enable(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with emulator(env="biped") as (emu, path, _):
        cfg = RuntimeConfig(port=path, quiet=True, max_steps=5)
        with pytest.raises(ValueError, match="board does not match robot 'knob'.*motors stay disabled"):
            Controller(load_bundle(bundles["knob"]), cfg).run()
        time.sleep(0.1)
        assert not emu.enabled and emu.c["commands"] == 0


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "s2r", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_signal_disables_motors_and_exits_0(tmp_path: Path, bundles: dict[str, Path], sig: int) -> None:
    store = tmp_path / "store"
    ModelStore(store).flash(bundles["b"])
    with emulator(lockstep=False, watchdog_ms=2000) as (emu, path, _):
        tel = tmp_path / "run.csv"
        proc = _cli("run", "--store", str(store), "--port", path, "--telemetry", str(tel), "--watchdog-ms", "1000")
        deadline = time.monotonic() + 60
        while emu.c["commands"] < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emu.enabled, "the controller never enabled the board"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        time.sleep(0.2)
        assert proc.returncode == 0, err
        assert not emu.enabled and np.all(emu.held_nm == 0)  # DISABLE reached the board
    assert f"stopped by {signal.Signals(sig).name}, motors disabled" in err
    _, cols = read_telemetry(tel)
    assert len(cols["step"]) >= 10  # flushed on the way out
    assert os.path.getsize(tel) > 0 and tel.read_text().endswith("\n")


def test_knob_previous_action_is_the_command_sent(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """The knob observation ends with the previous normalized action: it must be what the motors were told."""
    with emulator(env="knob") as (_, path, _):
        _, _, cols = _run(bundles["knob"], path, tmp_path, max_steps=25)
    spec = get_robot("knob")
    obs, torque = _obs(cols, "knob"), _torque(cols, "knob")
    prev = obs[:, -spec.action.n :]
    assert np.all(prev[0] == 0.0) and np.abs(prev[1:]).max() > 0.01
    np.testing.assert_allclose(prev[1:], torque[:-1] / spec.action.limits_nm, atol=1e-6)


# ------------------------------------------------------------------------------- issue #16: safety state machine
def _glitch(schedule: dict[int, dict], modes: list[int] | None = None, forever_from: int | None = None):
    """An Emulator.sensor_fault that replaces SENSOR fields on the given frame numbers (and, with
    ``forever_from``, on every frame from then on with the schedule's entry for that frame); records each mode."""
    count = [0]

    def fault(msg: p.Sensor) -> p.Sensor:
        k = count[0]
        count[0] += 1
        if modes is not None:
            modes.append(msg.mode)
        if forever_from is not None and k >= forever_from:
            return dataclasses.replace(msg, **schedule[forever_from])
        return dataclasses.replace(msg, **schedule[k]) if k in schedule else msg

    return fault


NAN, INF = float("nan"), float("inf")


def test_isolated_glitched_frames_are_tolerated(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """Issue #16 item 6: one SENSOR with a wrong lidar count used to end the whole run."""
    with emulator() as (emu, path, _):
        emu.sensor_fault = _glitch({
            10: {"lidar_m": (1.0,) * 9}, 20: {"imu_pitch_rad": NAN}, 30: {"joint_vel_rad_s": (1e30, 0.0, 0.0, 0.0)},
        })  # fmt: skip
        summary, _, cols = _run(bundles["a"], path, tmp_path, max_steps=50)
    assert summary["steps"] == 50 and summary["state"] == "running"
    assert summary["faults"]["implausible"] == 2 and summary["faults"]["nonfinite_obs"] == 1
    faults = cols["faults"].astype(int)
    bad = (faults & (HostFault.IMPLAUSIBLE | HostFault.NONFINITE_OBS)) != 0
    assert bad.sum() == 3 and np.all(_torque(cols)[bad] == 0.0) and np.all(np.isnan(_obs(cols)[bad]))
    assert np.all(cols["state"][bad] == STATE_CODES["running"])


@pytest.mark.parametrize(
    "bad",
    [{"imu_pitch_rad": NAN}, {"imu_pitch_rate_rad_s": INF}, {"imu_pitch_rad": 100.0},
     {"joint_vel_rad_s": (1e30, 0.0, 0.0, 0.0)}, {"lidar_m": (50.0,) * 10}],
    ids=["nan_pitch", "inf_rate", "pitch_100rad", "speed_1e30", "lidar_50m"],
)  # fmt: skip
def test_untrustworthy_sensors_latch_fault_and_disable(tmp_path: Path, bundles: dict[str, Path], bad: dict) -> None:
    """Issue #16 items 2 and 3: NaN/inf sensors were answered with 0 N·m forever (board armed, watchdog fed);
    finite but impossible ones drove ±30 N·m with `faults: none`. Now 3 in a row → FAULT → DISABLE, latched."""
    modes: list[int] = []
    with emulator() as (emu, path, _):
        emu.sensor_fault = _glitch({10: bad}, modes, forever_from=10)
        summary, _, cols = _run(bundles["a"], path, tmp_path, max_steps=40)
        board = dict(emu.c)
    assert summary["state"] == "fault" and "bad SENSOR" in summary["reason"] and summary["safety"]["faults"] == 1
    state = cols["state"].astype(int)
    assert np.all(state[:10] != STATE_CODES["fault"]) and np.all(state[12:] == STATE_CODES["fault"])
    assert np.all(_torque(cols)[10:] == 0.0)
    assert not any(m & p.Mode.ENABLED for m in modes[13:])  # the board was disabled and stayed so
    assert summary["faults"]["reenabled"] == 1 and board["overlimit_commands"] == 0


def test_host_answers_ping_and_counts_enables(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """docs/protocol.md §4.7: either side answers PING. The `reenabled` counter counts every ENABLE sent."""
    with emulator() as (emu, path, _):
        count = [0]

        def ping_on_frame_5(msg: p.Sensor) -> p.Sensor:
            count[0] += 1
            if count[0] == 5:
                emu.send_ping(nonce=7)
            return msg

        emu.sensor_fault = ping_on_frame_5
        summary, _, _ = _run(bundles["a"], path, tmp_path, max_steps=20)
        time.sleep(0.1)
        assert len(emu.pong_rtt_ms) == 1 and 0 < emu.pong_rtt_ms[0] < 5000
    assert summary["faults"]["reenabled"] == 1 and summary["safety"]["reenabled"] == 0


def _tty_run(store: Path, path: str, *extra: str) -> tuple[subprocess.Popen, int]:
    """`s2r run` with its stdin on a real terminal (a pty): the operator's keyboard. Returns (process, master fd)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2r", "run", "--store", str(store), "--port", path, "--watchdog-ms", "1000", *extra],
        cwd=REPO, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(slave)
    return proc, master


def _wait_for(cond, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_estop_release_keeps_the_robot_disarmed_until_the_operator_rearms(
    tmp_path: Path, bundles: dict[str, Path]
) -> None:
    """Issue #16 item 1, end to end over real ptys: the board's E-stop is pressed and released; `s2r run` keeps
    the motors disarmed until the operator re-arms it (SIGUSR1, then the `r` key on its terminal)."""
    store = tmp_path / "store"
    ModelStore(store).flash(bundles["b"])
    with emulator(lockstep=False, watchdog_ms=2000) as (emu, path, _):
        proc, key = _tty_run(store, path, "--ramp-ms", "200")
        try:
            assert _wait_for(lambda: emu.enabled and emu.c["commands"] > 20), "the controller never armed"
            proc.send_signal(signal.SIGUSR1)  # a re-arm while nothing is latched is ignored, not kept for later
            time.sleep(0.3)
            for rearm in ("SIGUSR1", "key"):
                emu.set_estop(True)
                assert _wait_for(lambda: not emu.enabled, 2.0)
                time.sleep(0.2)
                emu.set_estop(False)
                commands = emu.c["commands"]
                time.sleep(1.0)  # released: the board would re-arm on one ENABLE, and none comes
                assert not emu.enabled and emu.c["refused_enables"] == 0 and np.all(emu.held_nm == 0)
                assert emu.c["commands"] > commands + 20  # the host still answers every SENSOR, with 0 N·m
                if rearm == "SIGUSR1":
                    proc.send_signal(signal.SIGUSR1)
                else:
                    os.write(key, b"r\n")
                assert _wait_for(lambda: emu.enabled and np.any(emu.held_nm != 0), 5.0), f"{rearm} did not re-arm"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(key)
        assert proc.returncode == 0, err
        assert err.count("ESTOP: the board reports its E-stop") == 2 and "operator re-arm" in err
        assert "re-arm ignored: state is running" in err
        assert not emu.enabled


@pytest.mark.parametrize(
    "flags, match",
    [(["--watchdog-ms", "inf"], "--watchdog-ms must be a finite number"),
     (["--watchdog-ms", "0"], "--watchdog-ms must be"), (["--handshake-timeout", "nan"], "--handshake-timeout must"),
     (["--duration", "-1"], "--duration must"), (["--ramp-ms", "nan"], "--ramp-ms must"),
     (["--fault-frames", "0"], "--fault-frames must"), (["--baud", "0"], "--baud must")],
)  # fmt: skip
def test_cli_refuses_bad_numbers_in_one_line(
    tmp_path: Path, bundles: dict[str, Path], capsys: pytest.CaptureFixture, flags: list[str], match: str
) -> None:
    """Issue #16 item 5: `--watchdog-ms inf` turned the link watchdog off; `--handshake-timeout nan` was cryptic."""
    from s2r.cli import main

    assert main(["run", "--bundle", str(bundles["a"]), "--port", "loop://", *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err
