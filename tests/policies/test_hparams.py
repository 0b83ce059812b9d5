"""Hyper-parameter files: the shipped YAML presets, `s2r train --config` (file < flags), its errors, and the
preset defaults in `s2r train --help`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from policies.ppo import PPOConfig, ppo_preset
from policies.td3 import TD3Config, ddpg, td3_preset

# the presets as they were written in policies/ppo.py and policies/td3.py before they moved to
# policies/presets/*.yaml: the files must give exactly these dataclasses
PPO_BEFORE = {
    "Pendulum-v1": PPOConfig(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, lr=1e-3,
                             clip_range=0.2, num_envs=4, normalize_obs=False, normalize_reward=False),
    "BipedalWalker-v3": PPOConfig(n_steps=2048, batch_size=64, gamma=0.999, gae_lambda=0.95, n_epochs=10,
                                  ent_coef=0.001, lr=2.5e-4, clip_range=0.18, num_envs=32),
    "s2r/Biped-v0": PPOConfig(n_steps=512, batch_size=512, n_epochs=10, gamma=0.99, gae_lambda=0.95, lr=3e-4,
                              ent_coef=0.0, anneal_lr=True, log_std_init=-0.5, num_envs=8, hidden=(128, 128)),
    "s2r/BipedRough-v0": PPOConfig(n_steps=512, batch_size=512, n_epochs=10, lr=3e-4, anneal_lr=True,
                                   log_std_init=-0.5, num_envs=8, hidden=(128, 128)),
    "s2r/BipedHardcore-v0": PPOConfig(n_steps=512, batch_size=512, n_epochs=10, lr=2.5e-4, anneal_lr=True,
                                      log_std_init=-0.5, num_envs=8, hidden=(256, 256)),
    "s2r/Knob-v0": PPOConfig(n_steps=400, batch_size=400, n_epochs=10, gamma=0.98, lr=1e-4, anneal_lr=True,
                             log_std_init=-2.0, num_envs=8, hidden=(128, 128), expert="knob_gait",
                             imitation_steps=200_000, bc_coef=1.0,
                             actor_ignores=tuple(f"prev_action_finger{i}_{j}" for i in (0, 1) for j in ("base", "distal"))),
}  # fmt: skip
TD3_BEFORE = {
    "Pendulum-v1": TD3Config(gamma=0.98, buffer_size=200_000, learning_starts=1_000, expl_noise=0.1),
    "BipedalWalker-v3": TD3Config(gamma=0.98, buffer_size=200_000, learning_starts=10_000, expl_noise=0.1),
    "s2r/Biped-v0": TD3Config(gamma=0.98, buffer_size=300_000, learning_starts=10_000, normalize_obs=True),
    "s2r/BipedRough-v0": TD3Config(gamma=0.98, buffer_size=500_000, learning_starts=10_000, normalize_obs=True),
    "s2r/BipedHardcore-v0": TD3Config(gamma=0.98, buffer_size=1_000_000, learning_starts=20_000, normalize_obs=True),
    "s2r/Knob-v0": TD3Config(gamma=0.98, learning_starts=5_000, hidden=(256, 256), normalize_obs=True),
}


def _exact(a: object, b: object) -> bool:
    """Equal and of the same types field by field (1e-4 must not come back as the string '1e-4' or an int)."""
    fa, fb = vars(a), vars(b)
    return fa == fb and all(type(fa[k]) is type(fb[k]) for k in fa)


@pytest.mark.parametrize("env_id", sorted(PPO_BEFORE))
def test_yaml_presets_equal_the_old_dataclasses(env_id):
    assert _exact(ppo_preset(env_id), PPO_BEFORE[env_id])
    assert _exact(td3_preset(env_id), TD3_BEFORE[env_id])
    assert _exact(td3_preset(env_id, "ddpg"), ddpg(TD3_BEFORE[env_id]))


def test_unknown_envs_get_the_generic_defaults():
    assert ppo_preset("MountainCarContinuous-v0") == PPOConfig()
    assert td3_preset("MountainCarContinuous-v0") == TD3Config()


def s2r(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300"}  # argparse wraps help at the terminal's width (and breaks at hyphens)
    return subprocess.run([sys.executable, "-m", "s2r", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip


def test_train_help_shows_the_preset_defaults():
    r = s2r("train", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())  # argparse wraps help lines
    # the knob PPO preset's n_steps and imitation budget, the biped TD3 preset's replay buffer
    assert "default 2048; preset 512: biped, biped-rough, biped-hardcore; 400: knob" in text, text
    assert "--ppo-imitation-steps INT env steps of DAgger before PPO starts (part of --steps) (default 0; preset " \
        "200000: knob)" in text, text
    assert "--td3-buffer-size INT replay buffer size, transitions (preallocated float32) (default 300000; preset " \
        "500000: biped-rough; 1000000: biped-hardcore" in text, text


@pytest.mark.slow
def test_config_file_fills_the_run_and_flags_override_it(tmp_path):
    """A YAML file sets TrainConfig and TD3Config fields (over the preset); a flag given beats the file; the run's
    config.json is itself a valid --config file and reproduces the config."""
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(
        "env: Pendulum-v1\nalgo: td3\nsteps: 300\nseed: 3\ntensorboard: false\ncheckpoint_every: 1000\n"
        "algo_config:\n  hidden: [16, 16]\n  batch_size: 32\n  learning_starts: 100\n  lr_actor: 3e-4\n"
    )
    run = tmp_path / "run"
    r = s2r("train", "--config", str(cfg_file), "--seed", "5", "--run-dir", str(run))
    assert r.returncode == 0, r.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["steps"] == 300 and saved["seed"] == 5 and saved["tensorboard"] is False  # --seed beats the file
    algo = saved["algo_config"]
    assert algo["hidden"] == [16, 16] and algo["batch_size"] == 32 and algo["lr_actor"] == 3e-4
    assert algo["gamma"] == 0.98 and algo["buffer_size"] == 200_000  # not in the file: the Pendulum preset's

    again = tmp_path / "again"
    r = s2r("train", "--config", str(run / "config.json"), "--steps", "200", "--td3-batch-size", "16",
            "--run-dir", str(again))  # fmt: skip
    assert r.returncode == 0, r.stderr
    copy = json.loads((again / "config.json").read_text())
    assert copy["steps"] == 200 and copy["algo_config"]["batch_size"] == 16
    assert {**copy, "steps": 300, "algo_config": {**copy["algo_config"], "batch_size": 32}} == saved


def test_config_file_errors_are_one_line(tmp_path, capsys):
    from s2r.cli import main  # in-process: error paths need no subprocess start-up

    def write(name: str, text: str) -> str:
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)

    cases = [
        (write("a.yaml", "env: biped\nlearning_rate: 0.1\n"), "unknown key 'learning_rate' for TrainConfig; valid keys: env, engine, algo,"),
        (write("b.yaml", "algo: ppo\nalgo_config:\n  n_step: 8\n"), "unknown key 'n_step' for PPOConfig; valid keys: n_steps,"),
        (write("c.yaml", "algo_config:\n  gamma: fast\n"), "algo_config: gamma: expected a number, got 'fast'"),
        (write("d.yaml", "- a\n- b\n"), "must hold a mapping"),
        (write("e.yaml", "env: [unclosed\n"), "is not valid YAML"),
        (write("f.ini", "x=1\n"), "unknown suffix '.ini'"),
        (str(tmp_path / "missing.yaml"), "config file"),
        (write("g.yaml", "algo: ppo\nalgo_config:\n  n_steps: 8\n"), "--algo td3 cannot use them"),
    ]  # fmt: skip
    for i, (path, message) in enumerate(cases):
        extra = ["--algo", "td3"] if path.endswith("g.yaml") else []
        assert main(["train", "--config", path, *extra, "--steps", "10", "--run-dir", str(tmp_path / f"r{i}")]) == 1
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, (path, err)
        assert not (tmp_path / f"r{i}").exists()
