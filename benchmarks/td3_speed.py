"""TD3 gradient updates/s: our learner vs a bare torch loop of the same networks and batch (the compute limit),
and vs stable-baselines3's TD3, all on the biped's shapes (obs 24, act 4), 400-300 MLPs, batch 256, 1 thread.

Runs interleave (ours, bare, sb3, ours, ...) and the best of ``--repeats`` counts, so a burst of load on a
shared machine hits all three alike. Prints updates/s and the ratios.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch import nn

from policies.networks import mlp
from policies.normalizer import ObsNormalizer
from policies.td3 import TD3Agent, TD3Config

OBS, ACT, BATCH, HIDDEN, N_FILL = 24, 4, 256, (400, 300), 50_000


def ours(n: int) -> float:
    agent = TD3Agent(TD3Config(learning_starts=0, batch_size=BATCH, hidden=HIDDEN, normalize_obs=True), OBS, ACT,
                     ObsNormalizer(OBS))  # fmt: skip
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(N_FILL, OBS))
    agent.normalizer.update(obs)
    agent.observe(obs, rng.uniform(-1, 1, (N_FILL, ACT)), rng.normal(size=N_FILL), obs, np.zeros(N_FILL),
                  np.zeros(N_FILL))  # fmt: skip
    agent.update_debt = 10.0
    agent.update()  # warm-up
    agent.update_debt = float(n)
    t = time.perf_counter()
    agent.update()
    return n / (time.perf_counter() - t)


def bare(n: int) -> float:
    """CleanRL-style TD3 update on preallocated tensors: nothing but the math."""
    actor = nn.Sequential(mlp([OBS, *HIDDEN, ACT]), nn.Tanh())
    q1, q2 = mlp([OBS + ACT, *HIDDEN, 1]), mlp([OBS + ACT, *HIDDEN, 1])
    actor_t, q1_t, q2_t = copy.deepcopy(actor), copy.deepcopy(q1), copy.deepcopy(q2)
    a_opt = torch.optim.Adam(actor.parameters(), 1e-3)
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], 1e-3)
    data = [torch.randn(N_FILL, OBS), torch.rand(N_FILL, ACT) * 2 - 1, torch.randn(N_FILL), torch.randn(N_FILL, OBS),
            torch.zeros(N_FILL)]  # fmt: skip

    def step(i: int) -> None:
        idx = torch.randint(0, N_FILL, (BATCH,))
        o, a, r, o2, d = (x[idx] for x in data)
        with torch.no_grad():
            a2 = (actor_t(o2) + (torch.randn_like(a) * 0.2).clamp(-0.5, 0.5)).clamp(-1, 1)
            x2 = torch.cat([o2, a2], 1)
            y = r + 0.98 * (1 - d) * torch.min(q1_t(x2), q2_t(x2)).squeeze(1)
        x = torch.cat([o, a], 1)
        loss = ((q1(x).squeeze(1) - y) ** 2).mean() + ((q2(x).squeeze(1) - y) ** 2).mean()
        q_opt.zero_grad()
        loss.backward()
        q_opt.step()
        if i % 2 == 0:
            a_loss = -q1(torch.cat([o, actor(o)], 1)).mean()
            a_opt.zero_grad()
            a_loss.backward()
            a_opt.step()
            with torch.no_grad():
                for net, tgt in ((actor, actor_t), (q1, q1_t), (q2, q2_t)):
                    for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                        pt.mul_(0.995).add_(0.005 * p)

    for i in range(10):
        step(i)
    t = time.perf_counter()
    for i in range(n):
        step(i)
    return n / (time.perf_counter() - t)


def sb3(n: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import TD3

    class Shapes(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)

    model = TD3("MlpPolicy", Shapes(), batch_size=BATCH, learning_starts=0, buffer_size=N_FILL, gamma=0.98,
                policy_kwargs={"net_arch": list(HIDDEN)}, device="cpu")  # fmt: skip
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, [""]))
    rb, rng = model.replay_buffer, np.random.default_rng(0)
    rb.observations[:] = rng.normal(size=rb.observations.shape)
    rb.next_observations[:] = rng.normal(size=rb.next_observations.shape)
    rb.actions[:] = rng.uniform(-1, 1, rb.actions.shape)
    rb.rewards[:] = rng.normal(size=rb.rewards.shape)
    rb.full = True
    model.train(gradient_steps=10, batch_size=BATCH)
    t = time.perf_counter()
    model.train(gradient_steps=n, batch_size=BATCH)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    best = {"ours": 0.0, "bare": 0.0, "sb3": 0.0}
    for _ in range(args.repeats):
        for name, fn in (("ours", ours), ("bare", bare), ("sb3", sb3)):
            best[name] = max(best[name], fn(args.updates))
    print(f"TD3 updates/s (batch {BATCH}, {HIDDEN} MLPs, {args.threads} thread, best of {args.repeats} x "
          f"{args.updates}):")  # fmt: skip
    for name, v in best.items():
        print(f"  {name:5s} {v:8.1f} updates/s")
    print(f"ours / bare torch loop = {best['ours'] / best['bare']:.2f}x (goal >= 0.9x)")
    print(f"ours / SB3 TD3         = {best['ours'] / best['sb3']:.2f}x")


if __name__ == "__main__":
    main()
