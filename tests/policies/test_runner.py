"""The Runner/Agent contract: the runner trains, logs, checkpoints and resumes an agent it has never heard of;
it never asks an agent's type; no function in policies/ outgrows a screen; older checkpoints still load."""

from __future__ import annotations

import ast
import csv
import dataclasses
from pathlib import Path

import numpy as np
import torch

from domain_rand.base import NominalSource
from policies.agent import Agent, make_agent
from policies.checkpoint import load_checkpoint
from policies.networks import DeterministicActor
from policies.normalizer import ObsNormalizer
from policies.ppo import PPOAgent, PPOConfig
from policies.runner import Runner, StopSignals
from policies.train import TrainConfig, config_to_dict

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60  # a function (def line to last line, docstring included) fits on a screen


class HillClimber:
    """A learner the runner knows nothing about: random search on the actor's weights, one trial per episode
    batch of ``every`` env steps, kept when its return beat the best so far."""

    phase = "learn"
    at_boundary = True
    log_every = 100
    replay = None

    def __init__(self, norm: ObsNormalizer, every: int = 200) -> None:
        self.actor = DeterministicActor(3, 1, [8], "tanh")
        self.norm, self.every = norm, every
        self.gen = torch.Generator().manual_seed(0)
        self.best, self.best_state = -np.inf, {k: v.clone() for k, v in self.actor.state_dict().items()}
        self.ret, self.steps, self.trials = 0.0, 0, 0

    @property
    def actor_arch(self) -> dict:
        return {"kind": "deterministic", "obs_dim": 3, "act_dim": 1, "hidden": [8], "activation": "tanh"}

    @property
    def update_due(self) -> bool:
        return self.steps >= self.every

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        with torch.no_grad():
            return self.actor(torch.as_tensor(self.norm(obs))).numpy()

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.ret += float(np.sum(reward))
        self.steps += len(reward)

    def update(self) -> dict[str, float] | None:
        if not self.update_due:
            return None
        if self.ret > self.best:
            self.best, self.best_state = self.ret, {k: v.clone() for k, v in self.actor.state_dict().items()}
        self.actor.load_state_dict(self.best_state)
        with torch.no_grad():
            for p in self.actor.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=self.gen))
        self.ret, self.steps, self.trials = 0.0, 0, self.trials + 1
        return {"search/best_return": self.best, "search/trials": float(self.trials)}

    def forget_replay(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "best": self.best, "trials": self.trials,
                "gen": self.gen.get_state(), "best_state": self.best_state}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.best, self.trials, self.best_state = float(state["best"]), int(state["trials"]), state["best_state"]
        self.gen.set_state(state["gen"])


def _run(run_dir: Path, steps: int, resume: bool = False) -> tuple[dict, HillClimber]:
    cfg = TrainConfig(env="Pendulum-v1", algo="td3", steps=steps, vec="sync", num_envs=2, checkpoint_every=200,
                      eval_every=0, tensorboard=False, progress=False).resolved()  # fmt: skip
    run_dir.mkdir(exist_ok=True)
    norm = ObsNormalizer(3)
    agent = HillClimber(norm)
    checked: Agent = agent  # the toy learner satisfies the protocol (mypy checks this line)
    meta = {"env_id": cfg.env, "robot_id": None, "obs_dim": 3, "act_dim": 1, "config": config_to_dict(cfg)}
    with StopSignals() as signals:
        runner = Runner(cfg, run_dir, checked, norm, NominalSource(), meta, signals, "success")
        if resume:
            runner.restore()
        return runner.learn(), agent


def test_runner_trains_logs_checkpoints_and_resumes_an_agent_it_does_not_know(tmp_path):
    summary, agent = _run(tmp_path / "run", 800)
    assert summary["global_step"] == 800 and agent.trials == 4
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["global_step"] for r in rows] == [str(s) for s in range(100, 801, 100)]
    assert float(rows[-1]["search/trials"]) == 4 and rows[-1]["phase"] == "td3"  # its metrics, logged unread
    ckpt, _ = load_checkpoint(tmp_path / "run")
    assert ckpt["agent"]["trials"] == 4 and ckpt["counters"]["global_step"] == 800
    summary, agent = _run(tmp_path / "run", 1200, resume=True)
    assert summary["global_step"] == 1200 and agent.trials == 6  # the agent's own state came back


def test_runner_never_asks_an_agents_type():
    tree = ast.parse((ROOT / "policies" / "runner.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert not [c.lineno for c in calls if c.func.id in ("isinstance", "issubclass")]  # type: ignore[attr-defined]
    asked = [ast.unparse(c) for c in calls if c.func.id == "type"]  # type: ignore[attr-defined]
    assert asked == ["type(exc)"], asked  # an error's name in a message, nothing else
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not {n for n in imported if n.endswith("Agent") and n != "Agent"}, imported


def test_no_function_in_policies_is_longer_than_a_screen():
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((ROOT / "policies").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"split these functions (at most {MAX_FUNCTION_LINES} lines each): " + "; ".join(long)


def test_a_ppo_state_saved_before_the_imitation_plug_in_still_loads():
    """Checkpoints of plain PPO written before the DAgger warm start moved out of PPOAgent carry its (unused)
    schedule and data keys; they load, and the agent carries on."""
    cfg = PPOConfig(n_steps=8, batch_size=8, hidden=(8,))
    a = make_agent(cfg, 3, 1, ObsNormalizer(3), num_envs=2, total_steps=100)
    assert isinstance(a, PPOAgent)
    old = a.state_dict()
    old["counters"]["next_fit"], old["dagger"] = cfg.imitation_iter_steps, None
    b = make_agent(dataclasses.replace(cfg), 3, 1, ObsNormalizer(3), num_envs=2, total_steps=100)
    b.load_state_dict(old)
    assert not b.normalizer.frozen and b.phase == "learn"
    obs = np.zeros((2, 3), np.float32)
    assert np.array_equal(a.act(obs, deterministic=True), b.act(obs, deterministic=True))
