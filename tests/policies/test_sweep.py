"""Sweeps: the confidence interval against hand-computed numbers, spec errors as one line naming the fix, and
`s2r sweep` end to end (2 seeds × 2 DR configs): in this process (re-running skips finished trials) and as Ray
tasks on a real local Ray cluster started by the CLI."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policies.sweep import load_spec, mean_ci95, run_sweep, t975, trial_config, trials

SPEC = """\
name: tiny
base:
  env: biped
  algo: ppo
  steps: 256
  num_envs: 2
  tensorboard: false
  ppo.n_steps: 64
  ppo.batch_size: 64
  ppo.n_epochs: 1
  ppo.hidden: [16, 16]
seeds: [0, 1]
configs:
  nominal: {}
  dr: {dr: default}
metric: return_mean
"""


def test_mean_ci95_is_students_t_interval():
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0])  # s = sqrt(5/3), t(0.975, 3) = 3.182
    assert mean == 2.5 and half == pytest.approx(3.182 * math.sqrt(5 / 3) / 2)
    assert math.isnan(mean_ci95([7.0])[1]) and mean_ci95([7.0])[0] == 7.0
    assert t975(1) == 12.706 and t975(100) == pytest.approx(1.984, abs=2e-3) and t975(1000) == pytest.approx(1.962, abs=1e-3)


def test_spec_builds_every_trial_and_rejects_bad_settings(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPEC + "grid:\n  ppo.lr: [0.001, 0.0003]\n")
    spec = load_spec(path)
    ts = trials(spec)
    assert len(ts) == 2 * 2 * 2 and ts[0].rel_dir == "trials/nominal,ppo.lr=0.001/s0"
    cfg = trial_config(ts[-1])
    assert (cfg.seed, cfg.dr, cfg.vec, cfg.algo_config.lr, cfg.algo_config.hidden) == (1, "default", "sync", 0.0003, (16, 16))
    for bad, match in (("grid:\n  ppo.no_such: [1]\n", "ppo.no_such"), ("grid:\n  td3.lr_actor: [1]\n", "does not apply"),
                       ("grid:\n  no_such: [1]\n", "unknown setting"), ("extra: 1\n", "unknown keys")):  # fmt: skip
        path.write_text(SPEC + bad)
        with pytest.raises(ValueError, match=match):
            load_spec(path)


def _check_outputs(out: Path) -> None:
    table = (out / "summary.md").read_text()
    assert "| nominal | 2 |" in table and "| dr | 2 |" in table and "±" in table
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "summary.csv").is_file()
    for group in ("nominal", "dr"):
        for seed in (0, 1):
            run = out / "trials" / group / f"s{seed}"
            assert (run / "config.json").is_file() and (run / "checkpoints" / "latest.pt").is_file()


@pytest.mark.slow
def test_sweep_in_process_and_rerun_skips_finished_trials(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    summary = run_sweep(spec, tmp_path / "out")
    _check_outputs(tmp_path / "out")
    rows = {r["group"]: r for r in summary["rows"]}
    assert rows["nominal"]["seeds"] == 2 and rows["nominal"]["steps"] == 256
    assert rows["nominal"]["mean"] != rows["dr"]["mean"]  # DR changes the episodes
    latest = tmp_path / "out/trials/dr/s1/checkpoints/latest.pt"
    mtime = latest.stat().st_mtime_ns
    run_sweep(spec, tmp_path / "out")  # every trial finished: resumed at its end, nothing trained or rewritten
    assert latest.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_s2r_sweep_on_ray_local(tmp_path):
    """The CLI on a private local Ray cluster (2 CPUs): 4 trials as Ray tasks, then the table and the plot."""
    (tmp_path / "tiny.yaml").write_text(SPEC)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "s2r", "sweep", "tiny.yaml", "--ray", "local", "--out", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| nominal | 2 |" in proc.stdout and "wrote" in proc.stdout
    _check_outputs(tmp_path / "out")
