"""CLI smoke tests through real subprocesses: help, version, one-line errors, envs, rollout with a GIF."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from s2r.cli import COMMANDS


def s2r(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2r", *args], capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    r = s2r("--version")
    assert r.returncode == 0 and r.stdout.startswith("s2r ")
    r = s2r("--help")
    assert r.returncode == 0
    for cmd in COMMANDS:
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd):
    r = s2r(cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: s2r " + cmd in r.stdout


def test_unknown_command_and_bad_flag_are_one_line_exit_2():
    for args in (["bogus"], ["envs", "--nope"]):
        r = s2r(*args)
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "error" in r.stderr and "Traceback" not in r.stderr


def test_user_error_is_one_line_exit_1():
    r = s2r("rollout", "--params", '{"ground_friction": 9}')
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "s2r rollout: error: parameter 'ground_friction' = 9 1 is outside its hard limits [0.05, 2] 1"
    ]
    r = s2r("envs", "quadruped")
    assert r.returncode == 1 and "unknown env 'quadruped'" in r.stderr and "Traceback" not in r.stderr


def test_envs_prints_tables():
    r = s2r("envs", "biped")
    assert r.returncode == 0, r.stderr
    for needle in ("s2r/Biped-v0", "hull_pitch", "lidar_9", "knee_right", "ground_friction", "action_latency"):
        assert needle in r.stdout
    assert "pybullet build time" not in r.stdout + r.stderr


def test_rollout_writes_gif(tmp_path):
    gif = tmp_path / "walk.gif"
    r = s2r("rollout", "--env", "biped", "--episodes", "2", "--max-steps", "40", "--gif", str(gif))
    assert r.returncode == 0, r.stderr
    assert "mean return" in r.stdout
    import imageio.v2 as imageio

    frames = imageio.mimread(gif)
    assert len(frames) >= 5 and frames[0].shape[:2] == (300, 400)


def test_rollout_engine_mujoco():
    """--engine runs the same seeded random episodes in the twin: same report layout, another engine's numbers."""
    args = ("rollout", "--env", "biped", "--episodes", "1", "--max-steps", "30", "--seed", "3")
    bullet, mujoco = s2r(*args), s2r(*args, "--engine", "mujoco")
    assert bullet.returncode == 0 and mujoco.returncode == 0, bullet.stderr + mujoco.stderr
    assert mujoco.stdout.startswith("s2r/Biped-v0 (mujoco) — random policy") and "mean return" in mujoco.stdout
    assert bullet.stdout.startswith("s2r/Biped-v0 — random policy")
    assert bullet.stdout.splitlines()[2:] != mujoco.stdout.splitlines()[2:]
    r = s2r("rollout", "--env", "Pendulum-v1", "--engine", "mujoco")
    assert r.returncode == 1 and "needs an s2r env" in r.stderr and "Traceback" not in r.stderr


def test_demo_quick_never_fails(tmp_path):
    """The shipped pretrained bundle, as CI runs it (the demo's own tests: tests/s2r/test_demo.py)."""
    r = s2r("demo", "--quick", "--out", str(tmp_path / "demo_out"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "safety OK" in r.stdout and (tmp_path / "demo_out" / "episode.gif").is_file()


def test_stress_on_the_shipped_knob_bundle_writes_json_and_png(tmp_path):
    """`s2r stress` on a bundle: onnxruntime policy in a process pool, JSON report and PNG (tiny sizes here)."""
    import json

    out = s2r("stress", "deploy/pretrained/knob", "--plants", "2", "--episodes", "1", "--params", "backlash",
              "--workers", "2", "--json", str(tmp_path / "k.json"), "--plot", str(tmp_path / "k.png"), timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "k.json").read_text())
    assert report["robot"] == "knob" and list(report["sweep"]) == ["backlash"] and report["reality_box"]["plants"] == 2
    assert report["input_gain_problem"] is None and (tmp_path / "k.png").stat().st_size > 1000
    assert "reality box:" in out.stdout and "stress [" in out.stderr
    assert "\r" not in out.stderr and re.search(r" (\d+)/\1 episodes", out.stderr)  # no TTY: plain lines, to the end
    bad = s2r("stress", str(tmp_path / "nothing"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "neither a bundle" in bad.stderr


def test_a_closed_pipe_is_not_an_error():
    """`s2r envs | head`: the reader leaves early; s2r stops quietly (no error line, no traceback)."""
    proc = subprocess.Popen([sys.executable, "-m", "s2r", "envs", "biped", "knob"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "error" not in err and "Traceback" not in err, err
