"""`s2r train / eval / plot` through real subprocesses on tiny budgets, including SIGKILL → --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from policies.checkpoint import load_checkpoint

TINY = ["--env", "Pendulum-v1", "--no-tensorboard", "--td3-hidden", "16,16", "--td3-batch-size", "32",
        "--td3-learning-starts", "100", "--checkpoint-every", "200"]  # fmt: skip


def s2r(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2r", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_train_eval_plot_smoke(tmp_path):
    run = tmp_path / "run"
    r = s2r("train", "--algo", "ddpg", "--steps", "400", "--run-dir", str(run), *TINY, "--eval-every", "200",
            "--eval-episodes", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "done:" in r.stdout and (run / "checkpoints" / "best.pt").is_file() and (run / "config.json").is_file()
    ckpt, _ = load_checkpoint(run)
    assert ckpt["config"]["algo_config"]["n_critics"] == 1 and ckpt["config"]["algo_config"]["hidden"] == [16, 16]
    r = s2r("eval", str(run), "--episodes", "2")
    assert r.returncode == 0, r.stderr
    assert "Pendulum-v1: return" in r.stdout and "over 2 episodes" in r.stdout
    assert "Pendulum-v1: 100%" in r.stderr and "2/2" in r.stderr and "return" in r.stderr, r.stderr  # the bar
    r = s2r("plot", str(run))
    assert r.returncode == 0, r.stderr
    assert (run / "plots" / "return.png").stat().st_size > 1000


def test_user_errors_are_one_line(tmp_path, capsys):
    from s2r.cli import main  # in-process: error paths need no subprocess start-up

    cases = [
        (["train", "--algo", "td3", "--ppo-gamma", "0.9", "--steps", "10", "--run-dir", str(tmp_path / "x")],
         "--ppo-gamma does not apply"),
        (["train", "--td3-hidden", "a,b", "--steps", "10", "--run-dir", str(tmp_path / "y")], "--td3-hidden"),
        (["eval", str(tmp_path / "nope")], "does not exist"),
        (["train", "--env", "NoSuchEnv-v9", "--steps", "10"], "unknown env"),
        (["train", "--resume", str(tmp_path / "nope")], "config.json not found"),
        (["train", "--env", "biped", "--update-threads", "-1", "--steps", "10", "--run-dir", str(tmp_path / "x")],
         "--update-threads must be >= 0"),
        (["train", "--env", "knob", "--algo", "ppo", "--ppo-expert", "none", "--steps", "10", "--run-dir",
          str(tmp_path / "x")], "--ppo-imitation-steps 0 --ppo-bc-coef 0 for pure PPO"),
        (["train", "--env", "biped", "--algo", "ppo", "--ppo-expert", "knob_gait", "--steps", "10", "--run-dir",
          str(tmp_path / "x")], "no scripted expert 'knob_gait' for biped; experts: (none)"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "x").exists()  # nothing half-written


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "s2r", "train", "--algo", "td3", "--steps", "100000", "--run-dir", str(run), *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "previous.pt").exists():  # at least two checkpoints written
            assert time.monotonic() < deadline and proc.poll() is None, "training never checkpointed"
            time.sleep(0.2)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ckpt, used = load_checkpoint(run)
    step = ckpt["counters"]["global_step"]
    # a kill inside save_checkpoint's window (latest.pt renamed to previous.pt, the new latest not yet in place)
    # leaves previous.pt: loadable by design, and resume must work from it as well
    assert used.name in ("latest.pt", "previous.pt") and step >= 400
    r = s2r("train", "--resume", str(run), "--steps", str(step + 200))
    assert r.returncode == 0, r.stderr
    after, _ = load_checkpoint(run)
    assert after["counters"]["global_step"] == step + 200 and after["counters"]["resumes"] == 1
