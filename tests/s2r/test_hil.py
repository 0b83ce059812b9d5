"""HIL through a real pty: lockstep parity with direct evaluation, fault injection safety, fault-spec parsing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sim
from deploy.bundle import Policy, load_bundle
from s2r.hil import FaultSpec, HilConfig, controller_window, run_hil

PRETRAINED_BIPED = Path(__file__).resolve().parents[2] / "deploy" / "pretrained" / "biped"


@pytest.fixture(scope="module")
def biped_bundle(tmp_path_factory, make_tiny_bundle) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("hil"), "biped", n_random=64)


def _direct_rewards(bundle: Path, n_steps: int, seed: int) -> tuple[list[float], list[list[float]]]:
    """Evaluate the same ONNX policy directly in the simulator, episode i seeded seed + i (as the emulator)."""
    policy = Policy(load_bundle(bundle))
    env = gym.make(sim.resolve_env_id("biped"))
    limits = env.unwrapped.robot_spec.action.limits_nm
    obs, _ = env.reset(seed=seed)
    rewards, torques, ep = [], [], 0
    for _ in range(n_steps):
        tau = np.clip(policy(obs).copy(), -limits, limits)
        obs, r, term, trunc, _ = env.unwrapped.step_torque(tau)
        rewards.append(r)
        torques.append(tau.tolist())
        if term or trunc:
            ep += 1
            obs, _ = env.reset(seed=seed + ep)
    env.close()
    return rewards, torques


@pytest.mark.slow
def test_lockstep_hil_cli_matches_direct_evaluation(biped_bundle, tmp_path):
    """`s2r hil --lockstep` (emulator and runtime as processes on a real pty) loses nothing: same episode."""
    n = 80
    out = subprocess.run(
        [sys.executable, "-m", "s2r", "hil", "--bundle", str(biped_bundle), "--lockstep", "--duration", "60",
         "--max-steps", str(n), "--seed", "3", "--watchdog-ms", "2000", "--out", str(tmp_path / "o"),
         "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # the demo's table and plain words: no Python reprs, no 16-digit floats
    assert "safety OK: 0 non-finite and 0 over-limit torque commands" in out.stdout, out.stdout
    header, row = out.stdout.splitlines()[1:3]
    assert header.split()[:4] == ["plant", "steps", "episodes", "return/ep"] and row.split()[:2] == ["nominal", "80"]
    assert "{" not in out.stdout and "[" not in out.stdout and not re.search(r"\d\.\d{4,}", out.stdout), out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["steps"] == n and report["crc_errors"] == {"board_rx": 0, "host_rx": 0}
    assert report["watchdog_trips"] == 0 and report["seq_gaps"]["host_rx"] == 0
    assert (tmp_path / "o" / "hil.png").stat().st_size > 10_000
    steps = [json.loads(x) for x in (tmp_path / "o" / "emulator.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["ev"] == "step"]
    rewards, torques = _direct_rewards(biped_bundle, n, seed=3)
    np.testing.assert_allclose([s["tau"] for s in steps], torques, atol=1e-4)
    np.testing.assert_allclose([s["r"] for s in steps], rewards, atol=1e-4)
    assert np.abs(np.array(torques)).max() > 1.0  # the policy actually drove the motors


@pytest.mark.slow
def test_faults_and_disconnect_stay_safe_and_recover(biped_bundle, tmp_path):
    faults = FaultSpec.parse("drop=0.01,corrupt=0.001,delay_ms=5,disconnect_at=1.5,disconnect_s=0.5")
    cfg = HilConfig(
        bundle=str(biped_bundle),
        duration_s=4.0,
        faults=faults,
        out_dir=str(tmp_path),
        plots=False,
        slack_ms=60,
    )
    report = run_hil(cfg)
    s = report["safety"]
    assert s["ok"], s
    assert s["zero_torque_after_s"] <= (100 + 5 + cfg.slack_ms) / 1000 and s["resumed_after_reconnect"]
    assert report["watchdog_trips"] >= 1 and report["proxy"]["disconnect_dropped"] > 10
    assert report["steps"] > 100 and report["latency_ms"]["p50"] >= 10.0  # 2 × 5 ms injected delay


def _step(t: float, ep: int, r: float = 1.0) -> dict:
    return {"ev": "step", "t": t, "ep": ep, "r": r}


def test_controller_window_drops_what_the_board_did_after_the_controller_stopped():
    """Episodes that end after the controller stopped are not counted; the one in progress becomes the partial."""
    steps = [_step(0.02 * k, 0) for k in range(1, 6)] + [_step(0.02 * k, 1) for k in range(6, 20)]
    steps += [_step(0.02 * k, 2) for k in range(20, 23)]
    episodes = [{"ep": 0, "ret": 5.0}, {"ep": 1, "ret": 14.0}]
    board_partial = {"ep": 2, "ret": 3.0, "length": 3}
    assert controller_window(steps, episodes, board_partial, None) == (steps, episodes, board_partial)
    assert controller_window(steps, episodes, board_partial, 1.0) == (steps, episodes, board_partial)
    kept, done, partial = controller_window(steps, episodes, board_partial, 0.2001)  # stopped inside episode 1
    assert kept == steps[:10] and done == episodes[:1] and partial == {"ep": 1, "ret": 5.0, "length": 5}
    kept, done, partial = controller_window(steps, episodes, board_partial, 0.3801)  # at episode 1's last step
    assert done == episodes and partial == {"ep": 2, "ret": 0.0, "length": 0}
    kept, done, partial = controller_window(steps, episodes, board_partial, 0.001)  # before the first step
    assert kept == [] and done == [] and partial == {"ep": 0, "ret": 0.0, "length": 0}


@pytest.mark.slow
def test_real_time_hil_counts_only_the_controllers_run(tmp_path):
    """A real-time board keeps stepping the unpowered robot after `s2r run` stops: those falls are not counted.
    The shipped biped (torque ramped in over 500 ms after ENABLE, as on a real board) walks the whole run."""
    report = run_hil(HilConfig(bundle=str(PRETRAINED_BIPED), duration_s=3.0, out_dir=str(tmp_path), plots=False))
    assert report["safety"]["ok"] and not report["lockstep"]
    assert report["falls"] == 0 and report["episodes"] == [], report["episodes"]
    assert report["partial_episode"]["length"] > 100 and report["partial_episode"]["ret"] > 0
    assert report["steps"] == report["partial_episode"]["length"] and report["steps_after_stop"] > 0


def test_fault_spec_parsing():
    f = FaultSpec.parse("drop=0.01,corrupt=0.001,delay_ms=5,disconnect_at=5")
    assert (f.drop, f.corrupt, f.delay_ms, f.disconnect_at, f.disconnect_s) == (0.01, 0.001, 5.0, 5.0, 1.0)
    assert not FaultSpec.parse("").active and f.active
    for bad, msg in (
        ("lag=3", "bad fault"),
        ("drop=x", "needs a number"),
        ("drop=2", "≤ 1"),
        ("delay_ms=-1", "≥ 0"),
    ):
        with pytest.raises(ValueError, match=msg):
            FaultSpec.parse(bad)


def test_cli_user_errors_are_one_line(biped_bundle):
    for argv, msg in (
        (["hil", "--bundle", str(biped_bundle), "--fault", "lag=1"], "bad fault 'lag=1'"),
        (["emulate", "--robot", "biped", "--plant", "moon"], "unknown plant 'moon'"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "s2r", *argv], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 1 and msg in out.stderr and len(out.stderr.strip().splitlines()) == 1, (
            out.stderr
        )
