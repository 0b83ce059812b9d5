"""Memory sanity check: LSTM-TD3 on a partially observed Pendulum (angular velocity removed) against TD3 with the
full observation (the baseline, in the same run) and TD3 on the same partial observation (what memory buys).

Each arm trains for ``--steps`` env steps with one seed and is evaluated every ``--eval-every`` steps on
``--eval-episodes`` deterministic episodes (fixed seeds, the same for every arm); the figure is the best and the
final evaluation return per arm, and the ratio LSTM-TD3 (partial) / TD3 (full) of the final ones (returns are
negative: a ratio near 1 means it got there). The three arms run as three processes, one torch thread each.
Results are printed and written to ``--out`` as JSON; record them in BENCHMARKS.md ("Memory").

    python benchmarks/memory_pendulum.py --steps 15000 --out /tmp/memory_pendulum.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import replace

import gymnasium as gym
import numpy as np
import torch

from policies.lstm_td3 import LSTMTD3Agent, LSTMTD3Config, empty_history, push_history
from policies.normalizer import ObsNormalizer
from policies.td3 import TD3Agent, td3_preset
from policies.vec_env import make_env


class NoVelocity(gym.ObservationWrapper):
    """Pendulum with its angular velocity removed: the observation is (cos θ, sin θ)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        box = env.observation_space
        assert isinstance(box, gym.spaces.Box)
        self.observation_space = gym.spaces.Box(box.low[:2], box.high[:2], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation[:2], dtype=np.float32)


def make(partial: bool) -> gym.Env:
    env = make_env("Pendulum-v1")
    return NoVelocity(env) if partial else env


def _config(arm: str):
    td3 = td3_preset("Pendulum-v1")
    if arm != "lstm-td3-partial":
        return td3
    fields = {k: getattr(td3, k) for k in td3.__dataclass_fields__ if k not in ("hidden", "batch_size")}
    # a smaller memory than the preset's (K 5, 128 units) so the check fits a shared 2-core box
    return LSTMTD3Config(**fields, history_len=3, mem_hidden=64, cur_hidden=64, hidden=(64, 64), batch_size=100)


def evaluate(agent, partial: bool, episodes: int, seed: int = 10_000) -> float:
    """Mean deterministic return; a memory agent carries its window through the episode."""
    env, returns = make(partial), []
    memory = isinstance(agent, LSTMTD3Agent)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        window = empty_history(1, agent.cfg.history_len, agent.obs_dim, agent.act_dim) if memory else None
        done, ret = False, 0.0
        while not done:
            o = torch.as_tensor(np.asarray(obs, np.float32))[None]
            with torch.no_grad():
                if window is not None:
                    a = agent.actor(agent._norm(o), agent._norm(window[0]), window[1], window[2])
                    window = push_history(*window, o, a)
                else:
                    a = agent.actor(agent._norm(o))
            obs, r, term, trunc, _ = env.step(a[0].numpy())
            ret, done = ret + float(r), term or trunc
        returns.append(ret)
    env.close()
    return float(np.mean(returns))


def run_arm(arm: str, steps: int, eval_every: int, eval_episodes: int, seed: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    partial = arm.endswith("partial")
    env = make(partial)
    obs_dim = int(env.observation_space.shape[0])  # type: ignore[index]
    cfg = _config(arm)
    norm = ObsNormalizer(obs_dim, enabled=cfg.normalize_obs)
    agent_cls = LSTMTD3Agent if isinstance(cfg, LSTMTD3Config) else TD3Agent
    agent = agent_cls(cfg, obs_dim, 1, norm, seed=seed)  # type: ignore[arg-type]
    obs, _ = env.reset(seed=seed)
    curve, t0 = [], time.monotonic()
    for step in range(1, steps + 1):
        a = agent.act(np.asarray(obs, np.float32)[None])
        nxt, r, term, trunc, _ = env.step(a[0])
        agent.observe(np.asarray(obs, np.float32)[None], a, np.array([r]), np.asarray(nxt, np.float32)[None],
                      np.array([term]), np.array([trunc]))  # fmt: skip
        obs = env.reset()[0] if term or trunc else nxt
        agent.update()
        if step % eval_every == 0:
            curve.append((step, evaluate(agent, partial, eval_episodes), time.monotonic() - t0))
            print(f"{arm}: step {step} eval {curve[-1][1]:.1f} ({curve[-1][2]:.0f} s)", flush=True)
    return {"arm": arm, "config": repr(replace(cfg)), "curve": curve, "wall_s": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=15_000)
    ap.add_argument("--eval-every", type=int, default=2_500)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    arms = ("td3-full", "td3-partial", "lstm-td3-partial")
    with mp.get_context("spawn").Pool(len(arms)) as pool:
        results = pool.starmap(run_arm, [(a, args.steps, args.eval_every, args.eval_episodes, args.seed) for a in arms])
    by = {r["arm"]: r for r in results}
    print("arm                best eval   final eval   wall s")
    for r in results:
        evals = [c[1] for c in r["curve"]]
        print(f"{r['arm']:<18} {max(evals):>9.1f}   {evals[-1]:>10.1f}   {r['wall_s']:>6.0f}")
    ratio = by["lstm-td3-partial"]["curve"][-1][1] / by["td3-full"]["curve"][-1][1]
    print(f"final return ratio LSTM-TD3 (partial) / TD3 (full): {ratio:.2f} (1.0 = the same; returns are negative)")
    if args.out:
        from sim.files import atomic_write

        atomic_write(args.out, json.dumps({"args": vars(args), "results": results, "ratio": ratio}, indent=1) + "\n")


if __name__ == "__main__":
    main()
