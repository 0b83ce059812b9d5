"""A third robot, defined in this one module, through the whole pipeline: train, export, flash, lockstep HIL.

The robot is a two-joint arm in a horizontal plane (PyBullet, torque-controlled through ``sim.motor.MotorModel``,
with the shared motor parameters of ``sim.params``) that must hold both joints at target angles. Everything s2r
needs to know about it — spec, parameter space, env, metrics, plants, DR/ADR, a scripted expert and a learner
preset — is in this file, in one :class:`sim.task.Task`; no other file of the repository names it. The HIL
harness runs the board and the controller as separate processes, which learn of the arm through ``S2R_TASKS``
(this file's path), the registry's plug-in hook.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from sim.engines import DEFAULT_ENGINE
from sim.errors import UserError
from sim.motor import MotorModel, MotorParams
from sim.params import ParamSpace, PhysParam, motor_params, motor_params_from
from sim.spec import ActionSpec, MotorSpec, ObsField, RobotSpec, SensorFrame, SensorLayout
from sim.task import ACTUATOR_BOX, EnvVariant, Task, register_task

# ------------------------------------------------------------------------------------------------ the robot
CONTROL_HZ, PHYSICS_HZ = 50.0, 250.0
SUBSTEPS = int(PHYSICS_HZ / CONTROL_HZ)
LINK_LENGTH_M, LINK_MASS_KG = (0.25, 0.2), (0.6, 0.3)
JOINT_LIMIT_RAD = 3.0  # the motors' declared range (the controller's safety check)
OUT_OF_RANGE_RAD = 2.8  # the episode ends (a failure) before a joint leaves it
GOAL_RANGE_RAD, SUCCESS_TOL_RAD, HOLD_STEPS = 1.0, 0.1, 10

ARM_MOTORS = (
    MotorSpec("shoulder", torque_limit_nm=2.0, no_load_speed_rad_s=10.0, joint_low_rad=-JOINT_LIMIT_RAD,
              joint_high_rad=JOINT_LIMIT_RAD),
    MotorSpec("elbow", torque_limit_nm=1.0, no_load_speed_rad_s=10.0, joint_low_rad=-JOINT_LIMIT_RAD,
              joint_high_rad=JOINT_LIMIT_RAD),
)  # fmt: skip
ARM_OBS_FIELDS = (
    *(ObsField(f"{m.name}_angle", "rad", -JOINT_LIMIT_RAD, JOINT_LIMIT_RAD, f"{m.name} angle", 0.01) for m in ARM_MOTORS),
    *(ObsField(f"{m.name}_speed", "rad/s", -10.0, 10.0, f"{m.name} speed", 0.1) for m in ARM_MOTORS),
    *(ObsField(f"{m.name}_error", "rad", -4.0, 4.0, f"target − {m.name} angle", 0.01) for m in ARM_MOTORS),
    *(ObsField(f"prev_action_{m.name}", "1", -1.0, 1.0, f"previous action of {m.name}", 0.05) for m in ARM_MOTORS),
)


def _arm_obs(spec: RobotSpec, f: SensorFrame, prev_action: np.ndarray) -> np.ndarray:
    del spec
    q = np.asarray(f.joint_pos_rad, dtype=np.float32)
    return np.concatenate([q, f.joint_vel_rad_s, np.asarray(f.aux, dtype=np.float32) - q, prev_action]).astype(
        np.float32
    )


ARM_SPEC = RobotSpec(
    robot_id="arm",
    obs_fields=ARM_OBS_FIELDS,
    action=ActionSpec(ARM_MOTORS),
    sensors=SensorLayout(n_joints=2, n_contacts=0, aux_names=("shoulder_target", "elbow_target"),
                         aux_units=("rad", "rad"), sensor_rate_hz=CONTROL_HZ),  # fmt: skip
    control_hz=CONTROL_HZ,
    obs_builder=_arm_obs,
)
ARM_PARAMS = ParamSpace(
    "arm", (PhysParam("link_mass_scale", "x", 1.0, 0.5, 2.0, "scale on both link masses", True), *motor_params())
)


class ArmEnv(gym.Env):
    """Two links on vertical revolute axes (no gravity torque); reward −Σ|target − angle| − 0.01·Σa²; success:
    both joints within 0.1 rad of their targets for 10 steps (terminates); a joint past ±2.8 rad terminates as
    a failure. ``info["metrics"]``: success, out_of_range, error_rad. Encoder noise and bias are modelled; the
    motor model carries latency, strength, damping, friction, lag, backlash and supply sag."""

    metadata = {"render_modes": [], "render_fps": int(CONTROL_HZ)}
    robot_spec = ARM_SPEC
    param_space = ARM_PARAMS

    def __init__(self, engine: str = DEFAULT_ENGINE) -> None:
        if engine != "pybullet":
            raise UserError(f"the arm runs in pybullet only, not {engine}")
        from sim._bullet import connect_direct, p  # lazy: the controller process imports this module too

        self.p = p
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(ARM_SPEC.obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._bc = connect_direct()
        self._bc.setGravity(0, 0, -9.81)
        self._bc.setTimeStep(1.0 / PHYSICS_HZ)
        boxes = [self._bc.createCollisionShape(p.GEOM_BOX, halfExtents=[n / 2, 0.02, 0.02]) for n in LINK_LENGTH_M]
        self._arm = self._bc.createMultiBody(
            baseMass=0.0, basePosition=[0, 0, 0.5], linkMasses=list(LINK_MASS_KG), linkCollisionShapeIndices=boxes,
            linkVisualShapeIndices=[-1, -1], linkPositions=[[0, 0, 0], [LINK_LENGTH_M[0], 0, 0]],
            linkOrientations=[[0, 0, 0, 1]] * 2, linkInertialFramePositions=[[n / 2, 0, 0] for n in LINK_LENGTH_M],
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2, linkParentIndices=[0, 1],
            linkJointTypes=[p.JOINT_REVOLUTE] * 2, linkJointAxis=[[0, 0, 1]] * 2,
        )  # fmt: skip
        for j in (0, 1):
            self._bc.changeDynamics(self._arm, j, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0)
        self._bc.setJointMotorControlArray(self._arm, [0, 1], p.VELOCITY_CONTROL, forces=[0.0, 0.0])
        self._motor = MotorModel(ARM_SPEC.action, 1.0 / PHYSICS_HZ, SUBSTEPS)
        self._limits = ARM_SPEC.action.limits_nm
        self.params = ARM_PARAMS.nominal()
        self._frame: SensorFrame | None = None
        self._goal = np.zeros(2)
        self._prev_action = np.zeros(2, dtype=np.float32)
        self._hold = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.params = P = ARM_PARAMS.validate((options or {}).get("params"))
        for j, m in enumerate(LINK_MASS_KG):
            self._bc.changeDynamics(self._arm, j, mass=m * P["link_mass_scale"])
        self._motor.reset(MotorParams(**motor_params_from(P)))
        for j, q in enumerate(self.np_random.uniform(-0.3, 0.3, 2)):
            self._bc.resetJointState(self._arm, j, float(q), 0.0)
        self._goal = self.np_random.uniform(-GOAL_RANGE_RAD, GOAL_RANGE_RAD, 2)
        self._prev_action, self._hold = np.zeros(2, dtype=np.float32), 0
        self._frame = self._measure()
        return ARM_SPEC.build_obs(self._frame, self._prev_action), {"params": dict(P)}

    def step(self, action: np.ndarray):
        a = np.asarray(action, dtype=np.float64)
        return self.step_torque(ARM_SPEC.action.to_torque_nm(a))  # clips; NaN/inf raise the spec's error

    def step_torque(self, torque_nm: np.ndarray):
        tau = np.asarray(torque_nm, dtype=np.float64).reshape(-1)
        if tau.shape != (2,) or not np.isfinite(tau).all():
            raise ValueError(f"torque command must be 2 finite values in N·m, got {np.asarray(torque_nm).tolist()}")
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        self._motor.command(tau)
        for _ in range(SUBSTEPS):
            speeds = [s[1] for s in self._bc.getJointStates(self._arm, [0, 1])]
            self._bc.setJointMotorControlArray(self._arm, [0, 1], self.p.TORQUE_CONTROL,
                                               forces=self._motor.torque(speeds))  # fmt: skip
            self._bc.stepSimulation()
        q = np.array([s[0] for s in self._bc.getJointStates(self._arm, [0, 1])])
        a_norm = (tau.astype(np.float32) / self._limits).clip(-1.0, 1.0)
        error = float(np.max(np.abs(self._goal - q)))
        self._hold = self._hold + 1 if error < SUCCESS_TOL_RAD else 0
        out = bool(np.any(np.abs(q) > OUT_OF_RANGE_RAD))
        self._prev_action = a_norm
        self._frame = self._measure()
        info = {
            "metrics": {"success": float(self._hold >= HOLD_STEPS), "out_of_range": float(out), "error_rad": error},
            "applied_torque_nm": np.asarray(self._motor.last_applied_nm, dtype=np.float32),
            "params": dict(self.params),
        }
        reward = -float(np.sum(np.abs(self._goal - q))) - 0.01 * float(np.dot(a_norm, a_norm)) - 10.0 * out
        return ARM_SPEC.build_obs(self._frame, self._prev_action), reward, self._hold >= HOLD_STEPS or out, False, info

    def sensor_frame(self) -> SensorFrame:
        if self._frame is None:
            raise RuntimeError("call reset() first")
        return self._frame

    def _measure(self) -> SensorFrame:
        P, rng = self.params, self.np_random
        states = self._bc.getJointStates(self._arm, [0, 1])
        q = np.array([s[0] for s in states]) + P["encoder_bias"]
        dq = np.array([s[1] for s in states])
        if P["encoder_noise"] > 0:
            q, dq = q + rng.normal(0.0, P["encoder_noise"], 2), dq + rng.normal(0.0, 10 * P["encoder_noise"], 2)
        return SensorFrame(joint_pos_rad=q.astype(np.float32), joint_vel_rad_s=dq.astype(np.float32),
                           contacts=np.zeros(0, dtype=np.float32), aux=self._goal.astype(np.float32))  # fmt: skip

    def close(self) -> None:
        if getattr(self, "_bc", None) is not None:
            self._bc.disconnect()
            self._bc = None


def pd_expert(obs: np.ndarray) -> np.ndarray:
    """A scripted PD controller on the observation: the expert PPO imitates first."""
    return np.clip(np.array([3.0, 4.0]) * obs[4:6] - np.array([0.3, 0.3]) * obs[2:4], -1.0, 1.0)


# ------------------------------------------------------------------------------------------------- its task
PPO_PRESET = {
    "n_steps": 128, "batch_size": 256, "n_epochs": 4, "num_envs": 4, "hidden": [32, 32], "log_std_init": -1.5,
    "lr": 1e-3, "expert": "pd", "imitation_steps": 2048, "imitation_expert_steps": 512, "imitation_iter_steps": 512,
    "imitation_epochs": 10, "bc_coef": 1.0, "actor_ignores": ["prev_action_shoulder", "prev_action_elbow"],
}  # fmt: skip
ARM_TASK = register_task(
    Task(
        spec=ARM_SPEC,
        params=ARM_PARAMS,
        envs=(EnvVariant("arm", "s2r_test/Arm-v0", ArmEnv, 100, {}, {"ppo": PPO_PRESET}),),
        success_text="both joints within 0.1 rad of their targets for 10 steps",
        metrics=("success", "out_of_range", "error_rad"),
        performance="success",
        failure="out_of_range",
        plants={"heldout": {"nominal": {}, "heavy_links": {"link_mass_scale": 1.6},
                            "weak_motors": {"motor_strength": 0.6},
                            "worst_case": {"link_mass_scale": 1.4, "motor_strength": 0.7, "action_latency": 0.03}}},
        reality_box={"link_mass_scale": (0.9, 1.15), **ACTUATOR_BOX},
        dr_presets={"default": {"link_mass_scale": (0.8, 1.25), "motor_strength": (0.9, 1.1)}},
        adr={"params": {"link_mass_scale": {"delta": 0.05}, "motor_strength": {"delta": 0.05}},
             "t_low": 0.3, "t_high": 0.7, "buffer_size": 4},
        stress_sweeps=(("link_mass_scale", (1.5, 2.0)), ("motor_strength", (0.7, 0.4))),
        experts={"pd": pd_expert},
    )
)  # fmt: skip


# ------------------------------------------------------------------------------------------------- the proof
def test_the_arm_is_an_s2r_env_to_every_stage():
    """The registry serves every stage the arm's record: Gymnasium, the checker, DR, ADR, plants, the expert."""
    from gymnasium.utils.env_checker import check_env

    import sim
    from domain_rand import ADR, FixedDRSource, make_source
    from domain_rand.plants import get_plant

    assert sim.resolve_env_id("arm") == "s2r_test/Arm-v0"
    env = gym.make("s2r_test/Arm-v0")
    try:
        check_env(env.unwrapped, skip_render_check=True)
        assert isinstance(make_source(env, dr="default"), FixedDRSource)
        assert isinstance(make_source(env, adr=True), ADR)
        _, info = env.reset(seed=0, options={"params": get_plant("arm", "weak_motors")})
        assert info["params"]["motor_strength"] == 0.6
        expert, ret, info = sim.get_expert("pd", "arm"), 0.0, {}
        obs, _ = env.reset(seed=1)
        for _ in range(100):
            obs, r, term, trunc, info = env.step(expert(obs))
            ret += r
            if term or trunc:
                break
        assert info["metrics"]["success"] == 1.0, info  # the scripted expert solves the task
    finally:
        env.close()


@pytest.mark.slow
def test_train_export_flash_and_lockstep_hil(tmp_path, monkeypatch):
    from deploy.bundle import Policy
    from deploy.export import export_bundle
    from deploy.store import ModelStore
    from domain_rand.evaluate import run_episode
    from policies.checkpoint import load_policy
    from policies.train import TrainConfig, train
    from s2r.hil import HilConfig, format_table, run_hil

    # train: the preset comes from the Task record (DAgger from the PD expert, then PPO with a BC term)
    summary = train(TrainConfig(env="arm", algo="ppo", steps=3072, vec="sync", tensorboard=False, progress=False,
                                eval_every=0, seed=0), tmp_path / "run")  # fmt: skip
    assert summary["global_step"] >= 3072 and "success_rate" in summary and "out_of_range" in summary
    policy, _ = load_policy(tmp_path / "run")

    # export and flash into an A/B store (sha256 and onnxruntime self-test before the slot becomes active)
    manifest = export_bundle(policy, tmp_path / "bundle", n_random=200)
    assert manifest["robot"] == "arm" and manifest["env_id"] == "s2r_test/Arm-v0"
    store = ModelStore(tmp_path / "store")
    store.init_robot("arm")
    slot = store.flash(tmp_path / "bundle")
    flashed = store.active_bundle()
    assert store.active_slot() == slot

    # the ONNX policy in the simulator, directly: what lockstep HIL must reproduce bit for bit
    onnx = Policy(flashed)
    obs = np.random.default_rng(0).uniform(-1, 1, (50, ARM_SPEC.obs_dim)).astype(np.float32)
    moved = obs.copy()
    moved[:, 6:8] = -obs[:, 6:8]  # actor_ignores named the previous-action fields: they change nothing
    np.testing.assert_array_equal(np.stack([onnx(o) for o in obs]), np.stack([onnx(o) for o in moved]))
    env = gym.make("s2r_test/Arm-v0")
    limits = ARM_SPEC.action.limits_nm
    ep = run_episode(env, lambda o: ARM_SPEC.action.to_normalized(np.clip(onnx(o), -limits, limits)), seed=5,
                     record=True)  # fmt: skip
    env.close()

    # lockstep HIL: the board and the controller are separate processes on a real pty
    monkeypatch.setenv("S2R_TASKS", str(Path(__file__).resolve()))
    n = min(ep.length, 60)  # one episode
    report = run_hil(HilConfig(bundle=str(flashed.path), lockstep=True, max_steps=n, duration_s=60, seed=5,
                               watchdog_ms=2000, host_watchdog_ms=2000, out_dir=str(tmp_path / "hil"), plots=False))  # fmt: skip
    assert report["robot"] == "arm" and report["steps"] == n and report["safety"]["ok"], report
    table = format_table({"nominal": report})
    assert "successes" in table and "falls" in table  # the task's own outcome columns
    lines = [json.loads(x) for x in (tmp_path / "hil" / "emulator.jsonl").read_text().splitlines()]
    tau = [s["tau"] for s in lines if s["ev"] == "step"]
    direct = ep.action[:n] * limits  # the same episode, torque for torque
    np.testing.assert_allclose(tau, direct, atol=1e-4)
    assert math.isfinite(report["return_mean"] or 0.0)
