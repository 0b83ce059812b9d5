"""`s2r export` / `s2r flash` end to end through subprocesses, from a real checkpoint file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.bundle import load_bundle
from policies.checkpoint import save_checkpoint
from policies.networks import DeterministicActor

REPO = Path(__file__).resolve().parents[2]


def s2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2r", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with a TD3-style checkpoint for the biped (random weights, non-trivial normalizer)."""
    run = tmp_path_factory.mktemp("run")
    actor = DeterministicActor(24, 4, [64, 64])
    rng = np.random.default_rng(0)
    ckpt = {
        "actor_arch": {"kind": "deterministic", "obs_dim": 24, "act_dim": 4, "hidden": [64, 64], "activation": "relu"},
        "actor": actor.state_dict(),
        "normalizer": {"mean": rng.normal(0, 0.2, 24).tolist(), "var": rng.uniform(0.1, 4, 24).tolist(),
                       "count": 100.0, "clip": 10.0, "eps": 1e-8, "enabled": True},
        "env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": 24, "act_dim": 4,
        "config": {"algo": "td3", "total_steps": 1000}, "git_commit": "feedbeef",
    }  # fmt: skip
    save_checkpoint(ckpt, run / "checkpoints")
    return run


@pytest.mark.slow
def test_export_verify_flash_status(tmp_path: Path, run_dir: Path) -> None:
    out = s2r("export", str(run_dir), "-o", str(tmp_path / "b"), "--verify")
    assert out.returncode == 0, out.stderr
    assert "exported biped policy" in out.stdout and "verified" in out.stdout
    m = load_bundle(tmp_path / "b").manifest
    assert m["training"] == {"config": {"algo": "td3", "total_steps": 1000}, "git_commit": "feedbeef"}
    assert m["parity"]["n_random"] == 10_000 and m["parity"]["n_recorded"] == 400  # rolled out in the simulator
    assert m["parity"]["max_abs_diff"] <= 1e-5
    sample = load_bundle(tmp_path / "b").sample_obs()
    assert sample.shape == (256, 24) and np.ptp(sample[:, 4]) > 0  # recorded biped states, not zeros

    store = str(tmp_path / "store")
    assert s2r("flash", str(tmp_path / "b"), "--store", store).returncode == 0
    st = s2r("flash", "--store", store, "--status", "--json")
    status = json.loads(st.stdout)
    assert status["active"] == "A" and status["slots"]["A"]["git_commit"] == "feedbeef"
    assert status["slots"]["B"] == {"state": "empty"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "{run}"], "give the bundle folder with -o"),
        (["flash", "--store", "{tmp}/s", "--rollback"], "no active model"),
        (["flash", "{tmp}", "--store", "{tmp}/s"], "has no manifest.json"),
        (["run", "--bundle", "{tmp}", "--port", "loop://"], "has no manifest.json"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, run_dir: Path, args: list[str], message: str) -> None:
    out = s2r(*(a.format(run=run_dir, tmp=tmp_path) for a in args))
    assert out.returncode == 1 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
