"""Knob imitation probe: DAgger from the memoryless scripted gait (``sim.knob_gait``) into a 128×128 tanh MLP.

PPO alone has not learned ``s2r/Knob-v0`` to the 90 % success target on this 2-core box (BENCHMARKS.md,
"Learning"); this script measures the imitation half of the path that does get there, on its own (no ADR, no PPO).
``s2r train --env knob --algo ppo`` runs the same DAgger as a warm start (``policies.imitation``, the knob's PPO
preset) and then fine-tunes with PPO. The DAgger here:

1. the expert (``gait_action``, a pure function of the observation) drives for ``--first-steps`` steps;
2. then, each iteration, the *learner* drives for ``--steps-per-iter`` steps while the expert labels every
   visited observation (DAgger, Ross et al. 2011); the network is refit (MSE on the pre-clamp mean of a PPO
   ``GaussianActor``, observation normalizer) on everything collected so far.

The previous-action inputs (obs[16:20]) are zeroed for the learner: with them the network copied its own last
action and stalled at fixed points ("copycat" problem; 0–5 % success vs 83–95 % without). Prints the learner's
success rate alone on held-out seeds next to the expert's on the same seeds (the baseline of the same run).

    OMP_NUM_THREADS=1 python benchmarks/knob_imitation.py [--seed 1] [--iters 20] [--eval-episodes 50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

import sim  # noqa: F401  (registers the envs)
from policies.networks import GaussianActor
from policies.normalizer import ObsNormalizer
from sim.knob_gait import gait_action

PREV_ACTION = slice(16, 20)  # KNOB_SPEC's prev_action_* entries


def masked(obs: np.ndarray) -> np.ndarray:
    """Observations as the learner sees them: previous-action inputs zeroed (float32 copy)."""
    out = np.array(obs, dtype=np.float32)
    out[..., PREV_ACTION] = 0.0
    return out


def success_rate(policy: Callable[[np.ndarray], np.ndarray], seeds: range) -> tuple[float, float]:
    """(success fraction, mean episode length in control steps) of ``policy`` on one episode per seed."""
    env = gym.make("s2r/Knob-v0")
    wins, lengths = 0, []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            steps, done = steps + 1, terminated or truncated
        wins += bool(info["is_success"])
        lengths.append(steps)
    env.close()
    return wins / len(seeds), float(np.mean(lengths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iters", type=int, default=20, help="DAgger iterations (the first one is the expert's)")
    ap.add_argument("--first-steps", type=int, default=16_000)
    ap.add_argument("--steps-per-iter", type=int, default=8_000)
    ap.add_argument("--epochs", type=int, default=15, help="passes over the aggregate data per refit")
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--eval-episodes", type=int, default=50)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    n = args.num_envs
    envs = [gym.make("s2r/Knob-v0") for _ in range(n)]
    next_seed = 10_000 * args.seed
    obs = np.stack([e.reset(seed=next_seed + i)[0] for i, e in enumerate(envs)])
    next_seed += n
    actor = GaussianActor(20, 4, [128, 128], "tanh")
    norm = ObsNormalizer(20)
    opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    data_obs: list[np.ndarray] = []
    data_act: list[np.ndarray] = []

    def learner(o: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor.deterministic(torch.as_tensor(norm(masked(o)))).numpy()

    t0 = time.process_time()
    for it in range(args.iters):
        expert_drives = it == 0
        wins = episodes = 0
        for _ in range((args.first_steps if expert_drives else args.steps_per_iter) // n):
            labels = np.stack([gait_action(o) for o in obs])
            data_obs.append(masked(obs))
            data_act.append(labels)
            actions = labels if expert_drives else learner(obs)
            for i, env in enumerate(envs):
                o, _, terminated, truncated, info = env.step(actions[i])
                if terminated or truncated:
                    wins += bool(info["is_success"])
                    episodes += 1
                    o, _ = env.reset(seed=next_seed)
                    next_seed += 1
                obs[i] = o
        x_raw = np.concatenate(data_obs)
        norm.update(x_raw[-20_000:])  # the newest data: the states the current learner visits
        x, y = torch.as_tensor(norm(x_raw)), torch.as_tensor(np.concatenate(data_act))
        epochs = args.epochs * (2 if it == args.iters - 1 else 1)
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for s in range(0, len(x), 256):
                idx = perm[s : s + 256]
                loss = ((actor.net(x[idx]) - y[idx]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        who = "expert" if expert_drives else "learner"
        print(f"iter {it:2d}: {who} drove, {wins}/{episodes} episodes solved; {len(x)} labelled steps, "
              f"last minibatch MSE {loss.item():.4f}, {time.process_time() - t0:.0f} CPU s", flush=True)  # fmt: skip

    seeds = range(500_000, 500_000 + args.eval_episodes)
    learned, learned_len = success_rate(lambda o: learner(o[None])[0], seeds)
    expert, expert_len = success_rate(gait_action, seeds)
    print(f"held-out seeds {seeds.start}..{seeds.stop - 1}, nominal physics, deterministic:")
    print(f"  learner (MLP alone)  success {learned:.0%}, mean episode {learned_len:.0f} steps")
    print(f"  expert (baseline)    success {expert:.0%}, mean episode {expert_len:.0f} steps")
    print(f"  learner / expert     {learned / max(expert, 1e-9):.2f}x   (goal: learner >= 90 %)")


if __name__ == "__main__":
    main()
