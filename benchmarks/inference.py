"""Policy inference latency on one observation: onnxruntime (the controller's path) vs torch eager, same run.

Also the controller runtime's per-step overhead excluding the wait for I/O: the ``loop_us`` the runtime
measures from a decoded SENSOR to the written TORQUE (observation build, inference, finite check, clamp, encode,
write), over a lockstep run against the firmware emulator on a pty.

    python benchmarks/inference.py [--calls 300] [--rounds 50] [--steps 1000]

The biped policy is the TD3 preset's actor (24 → 400 → 300 → 4, ReLU, tanh head) with a normalizer, exported
exactly as `s2r export` does. Each round times every method back to back (interleaved, in a shuffled order;
short rounds, so load from other processes hits them alike); percentiles are over all calls of all rounds. The
CPU column is the thread's CPU time per call (median over rounds): it leaves out preemption, so it ranks the
methods on a loaded box where the wall-clock percentiles move with the load. Rows:

* torch eager, one thread: the baseline of the speed-up column;
* onnxruntime ``session.run()`` with a reused input buffer;
* IOBinding as before 2026-11-23: the graph as traced (two Clips in a row), prepacked weights, the Python
  ``run_with_iobinding`` wrapper;
* the runtime's :class:`deploy.bundle.Policy` with prepacked weights (what unpacking the weights buys);
* the runtime's :class:`deploy.bundle.Policy` (the controller's path);
* the same path with the biped policy the package ships (``deploy/pretrained/biped``: PPO, 24 → 128 → 128 → 4
  tanh, 18 k weights in L1/L2 instead of the TD3 actor's 524 KB);
* the runtime's :class:`deploy.bundle.Policy` with an LSTM-TD3 policy (the biped preset's actor: K = 5
  (observation, action) pairs through a 128-unit LSTM beside a 128-unit current-observation layer, 256-256
  head), its state carried from call to call as the controller does;
* the same with a recurrent PPO policy (the biped preset's: one step of a 64-unit LSTM, then 64 → 4 tanh; state
  ``lstm_h``/``lstm_c`` carried from call to call);
* the floor: a 1-node Identity graph called exactly as ``Policy.__call__`` calls the policy, i.e. what
  onnxruntime and the Python call cost with no model at all.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from deploy.bundle import Policy, load_bundle, make_session, session_options
from deploy.export import TorquePolicy, export_bundle, onnx_bytes, random_observations
from deploy.manifest import INPUT_NAME, OUTPUT_NAME
from deploy.pretrained import bundle_path
from deploy.runtime import Controller, RuntimeConfig
from policies.checkpoint import InferencePolicy
from policies.networks import DeterministicActor
from sim.robots import get_robot


def biped_policy() -> InferencePolicy:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    actor = DeterministicActor(24, 4, [400, 300], "relu")
    meta = {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": 24, "act_dim": 4, "config": {}}
    return InferencePolicy(actor, rng.normal(0, 0.2, 24), rng.uniform(0.1, 4, 24), 10.0, 1e-8, meta)


def lstm_biped_policy():
    from policies.lstm_td3 import LSTMActor, RecurrentInferencePolicy, lstm_td3_preset

    cfg = lstm_td3_preset("s2r/Biped-v0")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    arch = {"kind": "lstm-td3", "obs_dim": 24, "act_dim": 4, "hidden": list(cfg.hidden), "activation": cfg.activation,
            "history_len": cfg.history_len, "mem_hidden": cfg.mem_hidden, "cur_hidden": cfg.cur_hidden}  # fmt: skip
    meta = {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": 24, "act_dim": 4, "config": {}, "actor_arch": arch}
    actor = LSTMActor(24, 4, cfg)
    return RecurrentInferencePolicy(actor, rng.normal(0, 0.2, 24), rng.uniform(0.1, 4, 24), 10.0, 1e-8, meta).eval()


def rppo_biped_policy():
    from policies.recurrent_ppo import RecurrentGaussianActor, RecurrentPPOPolicy, rppo_preset

    cfg = rppo_preset("s2r/Biped-v0")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    arch = {"kind": "rppo", "obs_dim": 24, "act_dim": 4, "hidden": list(cfg.hidden), "activation": cfg.activation,
            "lstm_hidden": cfg.lstm_hidden}  # fmt: skip
    meta = {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": 24, "act_dim": 4, "config": {}, "actor_arch": arch}
    actor = RecurrentGaussianActor(24, 4, cfg.lstm_hidden, cfg.hidden, cfg.activation)
    return RecurrentPPOPolicy(actor, rng.normal(0, 0.2, 24), rng.uniform(0.1, 4, 24), 10.0, 1e-8, meta).eval()


def identity_model(obs_dim: int) -> bytes:
    """obs [batch, obs_dim] → Identity → torque_nm: the cheapest graph a session can run."""
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", obs_dim]) for n in (INPUT_NAME, OUTPUT_NAME)]
    graph = helper.make_graph([helper.make_node("Identity", [INPUT_NAME], [OUTPUT_NAME])], "floor", io[:1], io[1:])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def floor_call(obs_dim: int):
    """The Identity graph, bound and called the way ``Policy.__call__`` calls a policy."""
    sess = ort.InferenceSession(identity_model(obs_dim), session_options(), providers=["CPUExecutionProvider"])
    obs_buf, out_buf = np.zeros((1, obs_dim), np.float32), np.zeros((1, obs_dim), np.float32)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(obs_buf))
    binding.bind_ortvalue_output(OUTPUT_NAME, ort.OrtValue.ortvalue_from_numpy(out_buf))
    run, arg, obs_row, out_row = sess._sess.run_with_iobinding, binding._iobinding, obs_buf[0], out_buf[0]
    run_options = ort.RunOptions()

    def call(x: np.ndarray) -> np.ndarray:
        obs_row[...] = x
        run(arg, run_options)
        return out_row

    return call


def previous_call(model_path: Path, obs_dim: int, n_out: int):
    """The controller's inference before 2026-11-23: prepacked weights, the Python IOBinding wrapper."""
    sess = make_session(model_path, session_options(prepack_weights=True))
    obs_buf, out_buf = np.zeros((1, obs_dim), np.float32), np.zeros((1, n_out), np.float32)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(obs_buf))
    binding.bind_ortvalue_output(OUTPUT_NAME, ort.OrtValue.ortvalue_from_numpy(out_buf))

    def call(x: np.ndarray) -> np.ndarray:
        obs_buf[0] = x
        sess.run_with_iobinding(binding)
        return out_buf[0]

    return call


def time_calls(fn, inputs: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-call wall latency in µs of fn(obs) for each row of ``inputs``, and the mean CPU µs per call."""
    out = np.empty(len(inputs))
    cpu = time.thread_time_ns()
    for i, x in enumerate(inputs):
        t = time.perf_counter_ns()
        fn(x)
        out[i] = time.perf_counter_ns() - t
    return out * 1e-3, (time.thread_time_ns() - cpu) * 1e-3 / len(inputs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300, help="calls per method per round")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--steps", type=int, default=1000, help="runtime steps against the emulator (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the same single core onnxruntime gets
    spec = get_robot("biped")
    tmp = Path(tempfile.mkdtemp())
    policy = biped_policy()
    export_bundle(policy, tmp / "bundle", recorded_obs=random_observations(spec, 64, 1))
    bundle = load_bundle(tmp / "bundle")
    export_bundle(lstm_biped_policy(), tmp / "lstm", recorded_obs=random_observations(spec, 64, 1), n_random=500)
    export_bundle(rppo_biped_policy(), tmp / "rppo", recorded_obs=random_observations(spec, 64, 1), n_random=500)
    model = TorquePolicy(policy, spec.action.limits_nm).eval()

    iob = Policy(bundle)  # the runtime's path: IOBinding on preallocated buffers
    sess = iob.session
    buf = np.zeros((1, spec.obs_dim), dtype=np.float32)

    def ort_run(x: np.ndarray) -> np.ndarray:  # session.run with a reused input buffer
        buf[0] = x
        return sess.run([OUTPUT_NAME], {INPUT_NAME: buf})[0]

    tbuf = torch.zeros(1, spec.obs_dim)

    def torch_eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tbuf[0] = torch.from_numpy(x)
            return model(tbuf).numpy()

    traced = tmp / "traced.onnx"  # the exporter's graph before it dropped redundant Clips
    traced.write_bytes(onnx_bytes(model, spec.obs_dim, simplify=False))
    prepacked = make_session(bundle.model_path, session_options(prepack_weights=True))
    methods = {
        "torch eager (1 thread)": torch_eager,
        "onnxruntime run()": ort_run,
        "IOBinding, before": previous_call(traced, spec.obs_dim, spec.action.n),
        "Policy, prepacked weights": Policy(bundle, prepacked),
        "Policy (the runtime's path)": iob,
        "Policy, shipped biped bundle": Policy(load_bundle(bundle_path("biped"))),
        "Policy, LSTM-TD3 bundle": Policy(load_bundle(tmp / "lstm")),
        "Policy, recurrent PPO bundle": Policy(load_bundle(tmp / "rppo")),
        "floor: Identity graph": floor_call(spec.obs_dim),
    }
    obs = random_observations(spec, args.calls, 2)
    for fn in methods.values():  # warm-up
        time_calls(fn, random_observations(spec, 300, 3))
    times: dict[str, list[np.ndarray]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    order = np.random.default_rng(0)
    for _ in range(args.rounds):
        for name in order.permutation(list(methods)):
            wall, cpu_us = time_calls(methods[name], obs)
            times[name].append(wall)
            cpu[name].append(cpu_us)
    base = np.concatenate(times["torch eager (1 thread)"])
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, biped policy 24-400-300-4, batch 1")
    print(f"{'method':30s} {'p50 µs':>8s} {'p99 µs':>8s} {'p50 vs torch':>13s} {'CPU µs/call':>12s}")
    for name, ts in times.items():
        t = np.concatenate(ts)
        p50, p99 = np.percentile(t, [50, 99])
        print(f"{name:30s} {p50:8.1f} {p99:8.1f} {np.percentile(base, 50) / p50:12.2f}x {np.median(cpu[name]):12.1f}")

    if args.steps:
        runtime_overhead(tmp / "bundle", args.steps, np.concatenate(times["Policy (the runtime's path)"]))


def runtime_overhead(bundle_dir: Path, steps: int, infer_us: np.ndarray) -> None:
    """Run the controller against `s2r emulate --lockstep` (a separate process, like a real board)."""
    log = tempfile.NamedTemporaryFile("w+", suffix=".log")  # noqa: SIM115 (a file, not a pipe: never fills up)
    emu = subprocess.Popen(
        [sys.executable, "-m", "s2r", "emulate", "--lockstep", "--watchdog-ms", "5000"],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        path = ""
        while not path and emu.poll() is None:
            time.sleep(0.1)
            lines = Path(log.name).read_text().splitlines()
            path = next((ln.split("port:", 1)[1].strip() for ln in lines if ln.startswith("port:")), "")
        cfg = RuntimeConfig(port=path, max_steps=steps, watchdog_ms=5000.0, handshake_timeout_s=30.0, quiet=True)
        ctl = Controller(load_bundle(bundle_dir), cfg)
        ctl.run()
    finally:
        emu.send_signal(signal.SIGINT)
        try:
            emu.wait(60)
        except subprocess.TimeoutExpired:
            print("warning: the emulator did not stop within 60 s after SIGINT; killed it", file=sys.stderr)
            emu.kill()
    loop, inf = np.array(ctl.loop_us), np.array(ctl.infer_us)
    lp50, lp99 = np.percentile(loop, [50, 99])
    print(f"\nruntime per-step overhead (SENSOR decoded → TORQUE written), {len(loop)} lockstep steps over a pty:")
    print(f"  loop p50 {lp50:.1f} µs, p99 {lp99:.1f} µs; of which inference p50 {np.percentile(inf, 50):.1f} µs")
    print(
        f"  loop p99 / bare IOBinding inference p99 = {lp99 / np.percentile(infer_us, 99):.2f}x; "
        f"loop p99 = {lp99 / 200:.2f}% of the 20 ms control period"
    )


if __name__ == "__main__":
    main()
