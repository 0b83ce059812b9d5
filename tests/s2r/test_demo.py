"""`s2r demo`: the end-to-end run on a small exported bundle, its outputs, and its one-line user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest

from deploy.pretrained import bundle_path
from s2r.demo import REPORT_FILE, DemoConfig, run_demo, staged_dir


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, make_tiny_bundle) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("demo"), "biped", n_random=64)


def _s2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s2r", "demo", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_demo_runs_hil_on_two_plants_and_the_twin_and_writes_its_outputs(bundle, tmp_path):
    out = tmp_path / "demo_out"
    r = _s2r("--quick", "--steps", "40", "--bundle", str(bundle), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "nominal" in r.stdout and "worst_case" in r.stdout and "(match: tolerance" in r.stdout
    report = json.loads((out / REPORT_FILE).read_text())
    # the third row is sim-to-sim: the same bundle over the pty against the MuJoCo twin's nominal plant
    assert set(report["runs"]) == {"nominal", "worst_case", "nominal@mujoco"} and report["safety_ok"]
    assert "nominal@mujoco" in r.stdout and report["engine"] == "pybullet"
    assert [report["runs"][k]["engine"] for k in ("nominal", "worst_case", "nominal@mujoco")] == [
        "pybullet", "pybullet", "mujoco"
    ]
    for run in report["runs"].values():  # every command answered, nothing lost on the pty
        # the host sent 40 commands; the board may be stopped (SIGTERM) before it reads the very last one
        assert run["host"]["steps"] == 40 and run["steps"] == 40 and run["lockstep"]
        assert run["crc_errors"] == {"board_rx": 0, "host_rx": 0}
        assert run["safety"]["ok"] and run["watchdog_trips"] == 0
    assert report["runs"]["worst_case"]["plant"] == "worst_case"
    # the GIF replays the nominal run in the simulator: the same torques, step for step
    replay = report["replay"]
    assert replay["matches_hil"] and replay["compared_steps"] >= 1 and replay["max_torque_diff_nm"] <= 1e-3
    frames = imageio.mimread(out / "episode.gif")
    assert len(frames) == replay["gif_frames"] >= 1 and frames[0].shape[:2] == (300, 400)
    assert (out / "dashboard.png").stat().st_size > 20_000
    assert (out / "hil-nominal" / "telemetry.csv").stat().st_size > 0
    assert (out / "report.txt").read_text().strip() == r.stdout.strip()
    assert [p.name for p in tmp_path.iterdir()] == ["demo_out"]  # no staging folder left behind


def test_staged_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "demo_out"
    out.mkdir()
    (out / REPORT_FILE).write_text("{}")
    with pytest.raises(RuntimeError), staged_dir(out) as tmp:
        (tmp / REPORT_FILE).write_text('{"new": 1}')
        raise RuntimeError("killed half-way")
    assert (out / REPORT_FILE).read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == [
        "demo_out"
    ]
    with staged_dir(out) as tmp:
        (tmp / REPORT_FILE).write_text('{"new": 1}')
    assert (out / REPORT_FILE).read_text() == '{"new": 1}' and sorted(p.name for p in tmp_path.iterdir()) == [
        "demo_out"
    ]


def test_staged_dir_refuses_a_folder_that_is_not_a_demo_output(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a demo output folder"), staged_dir(tmp_path):
        pass
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_missing_pretrained_bundle_names_the_fix(tmp_path):
    with pytest.raises(OSError, match=r"no pretrained knob bundle .*--bundle DIR.*s2r export"):
        bundle_path("knob", root=tmp_path)
    with pytest.raises(ValueError, match="unknown robot"):
        bundle_path("quadruped", root=tmp_path)


def test_user_errors_are_one_line_and_write_nothing(bundle, tmp_path):
    out = tmp_path / "o"
    for args, msg in (
        (["--bundle", str(tmp_path / "nope")], "not found"),
        (["--bundle", str(bundle), "--plant", "moon_gravity"], "unknown plant 'moon_gravity'"),
    ):
        r = _s2r(*args, "--out", str(out))
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr, r.stderr
    assert not out.exists()
    with pytest.raises(ValueError, match="is for robot 'biped', not 'knob'"):
        run_demo(DemoConfig(robot="knob", bundle=str(bundle), out_dir=str(out)))
