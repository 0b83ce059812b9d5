"""The HIL and demo figures: robot time in lockstep, named joints, one panel per joint for torques, no empty
lidar panel, a short torque window on the demo dashboard."""

from __future__ import annotations

import numpy as np

from s2r.demo import TORQUE_WINDOW_S, Replay, dashboard_figure
from s2r.hil import run_figure
from sim.robots import get_robot


def _records(robot: str, n: int, lockstep: bool, plant: str = "nominal") -> list[dict]:
    rng = np.random.default_rng(0)
    spec = get_robot(robot)
    rays = len(spec.sensors.lidar_angles_rad)
    steps = [{"ev": "step", "t": 100.0 + 0.004 * k, "ep": k // 500, "k": k % 500, "r": 0.1,
              "tau": (30 * np.sign(rng.standard_normal(spec.action.n))).tolist(),
              "q": rng.standard_normal(spec.action.n).tolist(), "lidar": [2.0] * rays, "lat_ms": 0.4, "en": True}
             for k in range(n)]  # fmt: skip
    summary = {"ev": "summary", "robot": robot, "plant": plant, "lockstep": lockstep, "control_hz": 50.0,
               "latency_ms": [0.4] * n}  # fmt: skip
    return [*steps, summary]


def _titles(fig) -> list[str]:
    return [a.get_title() for a in fig.axes]


def test_hil_figure_knob_lockstep_uses_robot_time_names_joints_and_has_no_lidar_panel():
    fig = run_figure(_records("knob", 200, lockstep=True))
    joints = list(get_robot("knob").action.names)
    assert not any("lidar" in t for t in _titles(fig)), _titles(fig)
    torque_panels = [a for a in fig.axes if a.get_ylabel() in joints]
    assert [a.get_ylabel() for a in torque_panels] == joints  # one torque panel per joint
    t_end = torque_panels[0].lines[0].get_xdata()[-1]
    assert abs(t_end - 199 / 50.0) < 1e-9 and torque_panels[-1].get_xlabel() == "robot time, s"
    angle = next(a for a in fig.axes if a.get_title().startswith("joint angle"))
    assert [t.get_text() for t in angle.get_legend().get_texts()] == joints


def test_hil_figure_biped_real_time_keeps_wall_time_and_lidar():
    fig = run_figure(_records("biped", 100, lockstep=False))
    assert any(t == "lidar rays" for t in _titles(fig))
    torque = next(a for a in fig.axes if a.get_ylabel() == "hip_left")
    assert abs(torque.lines[0].get_xdata()[-1] - 99 * 0.004) < 1e-9  # wall time since the first step


def test_demo_dashboard_torques_one_panel_per_joint_over_a_short_window():
    joints = list(get_robot("biped").action.names)
    logs = {p: _records("biped", 1600, lockstep=True, plant=p) for p in ("nominal", "worst_case")}
    runs = {p: {"falls": 1, "successes": 0} for p in logs}
    fig = dashboard_figure(logs, runs, Replay(torque_nm=np.zeros((1, 4))), "biped")
    panels = [a for a in fig.axes if a.get_ylabel() in joints]
    assert len(panels) == 2 * len(joints)  # both plants, one panel per joint
    for a in panels:
        assert len(a.lines) == 1 and a.lines[0].get_xdata()[-1] < TORQUE_WINDOW_S
