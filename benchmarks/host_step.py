"""Host step benchmark: the controller's CPU work per SENSOR, without any I/O wait.

Run: ``python benchmarks/host_step.py [--rounds 7] [--steps 2000]``. Times ``Controller._step`` (deploy/runtime.py)
on one decoded biped SENSOR with the shipped bundle (``deploy/pretrained/biped``) and a ``loop://`` link:
plausibility check → safety state machine (RUNNING) → observation → ONNX policy → clamp → TORQUE encode and
write. Baseline measured in the same run: the bare policy call on the same observation. Prints the median of each
round (µs) and the ratio of the medians. Results are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from deploy.bundle import Policy, load_bundle
from deploy.runtime import Controller, RuntimeConfig
from deploy.safety import HostSafety, SafetyConfig
from firmware_bridge import protocol as p
from firmware_bridge.link import Link
from sim.robots import BIPED_SPEC


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2000, help="steps per round")
    args = ap.parse_args()
    bundle = load_bundle("deploy/pretrained/biped")
    link = Link.open("loop://")
    ctl = Controller(bundle, RuntimeConfig(port="loop://", quiet=True), link=link)
    ctl._check_ident(p.ident_from_spec(BIPED_SPEC))
    ctl.t0 = now = time.monotonic()
    ctl.safety = HostSafety(SafetyConfig(ramp_ms=0.0))
    ctl.safety.start(now)
    ctl.safety.sensor(now, 0, 0, None)
    ctl.safety.status(now, 0, p.Mode.ENABLED)
    assert ctl.safety.state.value == "running"
    sensor = p.Sensor(
        t_us=1, cmd_seq=0, faults=0, mode=p.Mode.ENABLED, contacts=1, imu_pitch_rad=0.05, imu_pitch_rate_rad_s=-0.1,
        vel_mps=(0.5, 0.0), joint_pos_rad=(0.3, -0.5, -0.2, -0.8), joint_vel_rad_s=(1.0, -2.0, 0.5, 0.1),
        torque_nm=(1.0, 2.0, 3.0, 4.0), lidar_m=tuple(np.linspace(2.5, 0.5, 10).tolist()),
    )  # fmt: skip
    (frame,) = p.FrameDecoder().feed(p.encode(sensor, 5))
    policy = Policy(bundle)
    obs = BIPED_SPEC.build_obs(p.sensor_to_frame(sensor, ctl.layout), np.zeros(4, np.float32))
    step_med, infer_med = [], []
    for _ in range(args.rounds):
        step, infer = [], []
        for _ in range(args.steps):
            t = time.perf_counter_ns()
            ctl._step(frame, frame.msg, time.monotonic_ns(), 0)
            step.append(time.perf_counter_ns() - t)
            link.port.reset_input_buffer()  # loop:// keeps what is written: drop it outside the timed part
            t = time.perf_counter_ns()
            policy(obs)
            infer.append(time.perf_counter_ns() - t)
        step_med.append(statistics.median(step) / 1e3)
        infer_med.append(statistics.median(infer) / 1e3)
    s, i = statistics.median(step_med), statistics.median(infer_med)
    print(f"host step (CPU, no I/O wait): round medians {sorted(round(x, 1) for x in step_med)} µs -> {s:.1f} µs")
    print(f"bare policy call (baseline):  round medians {sorted(round(x, 1) for x in infer_med)} µs -> {i:.1f} µs")
    print(f"ratio step / policy call: {s / i:.2f}x; step = {s / 200:.3f} % of the 20 ms control period")


if __name__ == "__main__":
    main()
