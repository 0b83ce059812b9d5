"""Ray scale-out on s2r/Biped-v0: env throughput against the number of Ray actors (1, 2 on this box), the
overhead of ``s2r train --ray local`` (lockstep, and ``--ray-mode segments``: the actors collect rollout segments
with a copy of the policy) against ``--vec split`` (the PPO preset, same seed, interleaved runs), and
a projection to N actors on a cluster from the measured costs: the physics per env step, Ray's round trip per
actor call, the driver's CPU per actor call, the learner's action and update times.

Baselines measured in the same run: in-process ``SyncVecEnv`` (throughput) and ``--vec split`` (training).
Results and the exact command: BENCHMARKS.md ("Ray scale-out"). Run with nothing else on the box if you can.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

ENV = "biped"


def env_throughput(n: int, steps: int, repeats: int) -> dict[str, float]:
    from vec_env_speed import throughput  # this folder's vec-env benchmark: the same random-action loop

    from policies.ray_vec import RayVecEnv
    from policies.vec_env import SubprocVecEnv, SyncVecEnv

    kinds = {
        "in-process (sync)": lambda: SyncVecEnv(ENV, n),
        "--vec split (1 worker + this process)": lambda: SubprocVecEnv(ENV, n, n_workers=1, local_envs=n // 2),
        "ray, 1 actor, all envs in it": lambda: RayVecEnv(ENV, n, n_actors=1, local_envs=0),
        "ray, 2 actors, all envs in them": lambda: RayVecEnv(ENV, n, n_actors=2, local_envs=0),
        "--ray local (1 actor + this process)": lambda: RayVecEnv(ENV, n, n_actors=1, local_envs=n // 2),
    }
    best = dict.fromkeys(kinds, 0.0)
    for _ in range(repeats):  # interleaved: load bursts hit every kind alike; the best of each counts
        for name, make in kinds.items():
            venv = make()
            try:
                best[name] = max(best[name], throughput(venv, n, steps))
            finally:
                venv.close()
    return best


def call_costs(calls: int) -> dict[str, float]:
    """Seconds: one env step in this process; a Ray actor call's round trip beyond the physics (1 env per
    actor); the driver's CPU time per actor call (what it pays per actor and vector step)."""
    from vec_env_speed import throughput

    from policies.ray_vec import RayVecEnv
    from policies.vec_env import SyncVecEnv

    sync = SyncVecEnv(ENV, 1)
    t_env = 1.0 / throughput(sync, 1, calls)
    sync.close()
    rv = RayVecEnv(ENV, 1, n_actors=1, local_envs=0)
    try:
        rv.reset_one(0, seed=0)
        a = np.zeros((1, 4), np.float32)
        for _ in range(50):
            rv.step(a)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            _, _, term, trunc, _ = rv.step(a)
            if term[0] or trunc[0]:
                rv.reset_one(0)
        wall, cpu = (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls
    finally:
        rv.close()
    return {"t_env": t_env, "t_rtt": max(0.0, wall - t_env), "t_drv": cpu}


def learner_costs(num_envs: int, repeats: int = 3) -> dict[str, float]:
    """Seconds: the PPO preset's action for ``num_envs`` rows; its update per transition (n_epochs included)."""
    import torch

    from policies.normalizer import ObsNormalizer
    from policies.ppo import PPOAgent, ppo_preset

    torch.set_num_threads(1)
    cfg = ppo_preset("s2r/Biped-v0")
    obs_dim, act_dim = 24, 4
    agent = PPOAgent(cfg, obs_dim, act_dim, ObsNormalizer(obs_dim), num_envs, 10**7)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((num_envs, obs_dim)).astype(np.float32)
    t_act, t_upd = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(cfg.n_steps):
            a = agent.act(obs)
            agent.observe(obs, a, rng.standard_normal(num_envs), obs, np.zeros(num_envs, bool), np.zeros(num_envs, bool))
        t_act.append((time.perf_counter() - t) / cfg.n_steps)
        t = time.perf_counter()
        agent.update()
        t_upd.append((time.perf_counter() - t) / (cfg.n_steps * num_envs))
    return {"t_act": float(np.median(t_act)), "u_update": float(np.median(t_upd)), "n_steps": cfg.n_steps}


def training_overhead(steps: int, repeats: int) -> dict[str, list[float]]:
    """Training env steps/s (time after the envs are built; Ray already connected) of the PPO preset."""
    from policies.train import TrainConfig, train

    base = TrainConfig(env=ENV, algo="ppo", steps=steps, seed=0, vec="split", update_threads=1,
                       tensorboard=False, progress=False, checkpoint_every=10**9)  # fmt: skip
    ray = dataclasses.replace(base, vec="auto", ray="local")
    runs = {"--vec split": base, "--ray local": ray, "--ray local --ray-mode segments":
            dataclasses.replace(ray, ray_mode="segments")}  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, cfg in runs.items():
                out = train(cfg, Path(tmp) / f"{name.strip('-').replace(' ', '_')}-{r}")
                rates[name].append(out["global_step"] / out["time_s"])
    return rates


def projection(c: dict[str, float], envs_per_actor: int, actors: list[int]) -> list[tuple[int, float, str]]:
    """Steps/s of PPO with A actors of E envs each (lockstep; the driver steps none), from the measured costs.

    Per rollout of ``n`` vector steps: the actors need ``n·(E·t_env + t_rtt)`` (they run in parallel); the
    driver needs ``n·(A·t_drv + t_act(A·E))`` to send, receive and act, and ``A·E·n·u`` to update. A vector
    step waits for the slower of the two sides; the update waits for everything.
    """
    out = []
    n, e = c["n_steps"], envs_per_actor
    for a in actors:
        actor_side = e * c["t_env"] + c["t_rtt"]
        driver_side = a * c["t_drv"] + c["t_act_row"] * a * e + c["t_act_fixed"]
        rollout = n * max(actor_side, driver_side)
        update = a * e * n * c["u_update"]
        rate = a * e * n / (rollout + update)
        bound = "actors" if actor_side >= driver_side and rollout >= update else "learner (driver)"
        out.append((a, rate, bound))
    return out


def projection_segments(c: dict[str, float], e: int, actors: list[int], episode_len: int) -> list[tuple[int, float, str]]:
    """Steps/s of PPO with ``--ray-mode segments``: A actors of E envs collect a rollout of n vector steps alone.

    The actors need ``n·E·t_env`` plus a round trip ``t_rtt`` at each step where one of their envs ended (about
    ``n·E / episode_len`` of them); the driver replays the rollout through the loop (``n·t_act(A·E)``), makes
    one reset call (``t_drv``) per episode end (``n·A·E / episode_len``) and then updates (``A·E·n·u``). The
    driver's replay overlaps the actors' stepping; the update does not.
    """
    out = []
    n = c["n_steps"]
    for a in actors:
        ends = n * e / episode_len
        actor_side = n * e * c["t_env"] + min(n, ends) * c["t_rtt"]
        driver_side = n * (c["t_act_row"] * a * e + c["t_act_fixed"]) + ends * a * c["t_drv"]
        update = a * e * n * c["u_update"]
        rate = a * e * n / (max(actor_side, driver_side) + update)
        bound = "actors" if actor_side >= driver_side and actor_side >= update else "learner (driver)"
        out.append((a, rate, bound))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, default=8, help="sub-envs (the biped PPO preset's 8)")
    ap.add_argument("--steps", type=int, default=4000, help="env steps per throughput measurement")
    ap.add_argument("--train-steps", type=int, default=16384, help="env steps per training run (4 PPO updates)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--envs-per-actor", type=int, nargs="+", default=[4, 32], help="for the projection")
    ap.add_argument("--training-only", action="store_true", help="only the training overhead (the three modes)")
    args = ap.parse_args()

    import os

    import ray

    t = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    print(f"ray.init (local cluster, {os.cpu_count()} CPUs): {time.perf_counter() - t:.1f} s, paid once per run")
    try:
        if not args.training_only:
            best = env_throughput(args.envs, args.steps, args.repeats)
            base = best["in-process (sync)"]
            print(f"\nenv throughput, {args.envs} biped envs, random actions (best of {args.repeats}):")
            for name, v in best.items():
                print(f"  {name:42s} {v:7.0f} steps/s  ({v / base:.2f}x in-process)")
        rates = training_overhead(args.train_steps, args.repeats)
        print(f"\nPPO preset training, {args.train_steps} steps, env steps/s per run (interleaved):")
        for name, v in rates.items():
            print(f"  {name:32s} " + " ".join(f"{x:.0f}" for x in v) + f"  median {np.median(v):.0f}")
        for name in ("--ray local", "--ray local --ray-mode segments"):
            ratio = np.median(rates["--vec split"]) / np.median(rates[name])
            print(f"  time ratio {name} / --vec split (medians): {ratio:.2f}x")
        if args.training_only:
            return
        c = call_costs(2000)
        lc8, lc64 = learner_costs(args.envs), learner_costs(64)
        t_act_row = max(0.0, (lc64["t_act"] - lc8["t_act"]) / (64 - args.envs))
        c.update(n_steps=lc8["n_steps"], u_update=lc8["u_update"], t_act_row=t_act_row,
                 t_act_fixed=max(0.0, lc8["t_act"] - t_act_row * args.envs))  # fmt: skip
        print("\nmeasured costs (ms): " + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in c.items() if k != "n_steps"))
        for e in args.envs_per_actor:
            print(f"\nprojection, PPO preset, {e} envs per actor, the driver on its own core:")
            for a, rate, bound in projection(c, e, [1, 2, 4, 8, 16, 32, 64, 128, 256]):
                print(f"  {a:4d} actors ({a * e:5d} envs): {rate:8.0f} steps/s, bound by the {bound}")
            ceiling = 1.0 / (c["u_update"] + c["t_drv"] / e + c["t_act_row"])
            knee = (e * c["t_env"] + c["t_rtt"] - c["t_act_fixed"]) / (c["t_drv"] + e * c["t_act_row"])
            print(f"  the driver's per-step work passes the actors' at A = {knee:.1f} actors; ceiling as A grows "
                  f"(update + driver per transition): {ceiling:.0f} steps/s")
            for ep in (100, 1000):
                print(f"  --ray-mode segments, episodes of {ep} steps:")
                for a, rate, bound in projection_segments(c, e, [1, 2, 4, 8, 16, 32, 64, 128, 256], ep):
                    print(f"    {a:4d} actors ({a * e:5d} envs): {rate:8.0f} steps/s, bound by the {bound}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
