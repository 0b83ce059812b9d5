"""The training loop drives the DR/ADR parameter source: one sample per episode start, one report per episode
end (with the task performance), scalars in progress.csv, state in the checkpoint."""

from __future__ import annotations

import csv

import domain_rand
from policies.checkpoint import load_checkpoint
from policies.ppo import PPOConfig
from policies.train import TrainConfig, train


class Recording:
    """Wraps the real source made by domain_rand.make_source and records the calls."""

    def __init__(self, inner) -> None:
        self.inner, self.samples, self.reports = inner, [], []

    def sample(self):
        params, tag = self.inner.sample()
        self.samples.append(params)
        return params, tag

    def report(self, tag, performance):
        self.reports.append(performance)
        self.inner.report(tag, performance)

    def scalars(self):
        return self.inner.scalars()

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def test_adr_source_is_sampled_per_episode_and_checkpointed(tmp_path, monkeypatch):
    made = []
    real = domain_rand.make_source

    def make_source(env, **kw):
        made.append(Recording(real(env, **kw)))
        return made[-1]

    monkeypatch.setattr(domain_rand, "make_source", make_source)
    cfg = TrainConfig(env="biped", algo="ppo", steps=256, num_envs=2, vec="sync", adr=True, tensorboard=False,
                      progress=False, algo_config=PPOConfig(n_steps=64, batch_size=128, n_epochs=1, hidden=(16, 16)))  # fmt: skip
    train(cfg, tmp_path / "run")
    src = made[0]
    assert len(src.reports) >= 2, "random biped episodes fall within 256 steps"
    assert len(src.samples) == len(src.reports) + 2  # + the first episode of each of the 2 sub-envs
    assert any(src.samples)  # ADR hands out real parameter values
    # ADR's performance is task success by default (walked >= 15 m without a fall): random episodes all fail
    assert all(p == 0.0 for p in src.reports)
    with open(tmp_path / "run" / "progress.csv") as f:
        header = next(csv.reader(f))
    assert "adr/npd" in header
    ckpt, _ = load_checkpoint(tmp_path / "run")
    assert ckpt["param_source"]["kind"] == "adr"
