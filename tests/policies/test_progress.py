"""What a training run tells its user while it runs: the ETA from the recent rate, the phase (imitation warm-up
or the policy's own learning) on the progress line and in progress.csv."""

from __future__ import annotations

import csv
import re
import subprocess
import sys

import pytest

from policies.logger import Progress, RecentRate


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_eta_follows_the_recent_rate_not_the_mean_since_the_start(capsys):
    """1000 steps/s for 100 s, then 100 steps/s: the ETA must be (remaining / 100) s, not the few seconds that
    the mean rate since the start (here 640 steps/s) would promise."""
    clock = FakeClock()
    progress = Progress(total=200_000, start=0, every_s=10.0, clock=clock)
    step = 0
    for rate, seconds in ((1000, 100), (100, 60)):
        for _ in range(seconds * 4):  # 4 updates per second
            clock.t += 0.25
            step += rate // 4
            progress.update(step, lambda: "stats")
    last = capsys.readouterr().err.strip().splitlines()[-1]
    remaining_s = (200_000 - step) / 100
    assert f"step {step}/200000" in last and "| 100 steps/s |" in last, last
    m = re.search(r"ETA (\d+)m(\d+)s", last)
    assert m and abs(int(m[1]) * 60 + int(m[2]) - remaining_s) <= 2, last


def test_recent_rate_window():
    r = RecentRate(window_s=10.0, sample_s=1.0)
    assert r.rate() == 0.0
    for t in range(31):
        r.add(float(t), 50 * t if t <= 20 else 1000 + 10 * (t - 20))
        r.add(t + 0.5, -1)  # closer than sample_s to the previous sample: ignored
    assert r.rate() == pytest.approx(10.0)


@pytest.mark.slow
def test_imitation_phase_is_named_and_logged(tmp_path):
    """A knob PPO run with a short DAgger warm start: stderr says which phase runs and whose numbers are shown;
    progress.csv's phase column goes expert → dagger → ppo."""
    cfg = tmp_path / "knob.yaml"
    cfg.write_text(
        "env: knob\nalgo: ppo\nsteps: 1200\nnum_envs: 2\nvec: sync\nlog_every: 100\ncheckpoint_every: 200\n"
        "tensorboard: false\nalgo_config:\n  n_steps: 100\n  batch_size: 100\n  n_epochs: 1\n  hidden: [16, 16]\n"
        "  imitation_steps: 800\n  imitation_expert_steps: 400\n  imitation_iter_steps: 200\n  imitation_epochs: 1\n"
    )
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "s2r", "train", "--config", str(cfg), "--run-dir", str(run)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "phase expert at step 0: imitation warm-up: the scripted expert acts" in r.stderr, r.stderr
    assert "(the numbers are the expert's)" in r.stderr
    assert "phase dagger-fit at step 800: imitation: final DAgger fit" in r.stderr, r.stderr
    assert "phase ppo at step 800: the policy acts and learns by ppo" in r.stderr, r.stderr
    with open(run / "progress.csv", newline="") as f:
        phases = [row["phase"] for row in csv.DictReader(f)]
    assert phases[0] == "expert" and "dagger" in phases and phases[-1] == "ppo", phases
    assert phases == sorted(phases, key=["expert", "dagger", "dagger-fit", "ppo"].index)


def test_learning_curves_read_the_phase_column(tmp_path):
    """progress.csv's text column does not break `s2r plot`; its changes are found for the shaded spans."""
    from policies.plotting import plot_learning_curves, read_phases

    src = tmp_path / "progress.csv"
    rows = [(1000 * i, "expert" if i < 3 else "dagger" if i < 6 else "ppo") for i in range(1, 10)]
    src.write_text("global_step,phase,return_mean\n" + "".join(f"{s},{p},{s / 100}\n" for s, p in rows))
    assert read_phases(src) == [(1000.0, "expert"), (3000.0, "dagger"), (6000.0, "ppo")]
    assert [p.name for p in plot_learning_curves(src, tmp_path / "plots")] == ["return.png"]
