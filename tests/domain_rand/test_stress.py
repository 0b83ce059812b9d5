"""`s2r stress`'s pieces: statistics, the plan (common random numbers), torque metrics, a real tiny run."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest

from domain_rand.plants import get_plant
from domain_rand.stress import (
    TOWARD_DEPTHS,
    StressConfig,
    box_by_param,
    cliff,
    format_report,
    high_freq_share,
    line_plant,
    plan,
    run_stress,
    scripted_expert,
    sweep_series,
    wilson_interval,
)
from sim.biped import BIPED_PARAMS
from sim.errors import UserError
from sim.knob import KNOB_PARAMS
from sim.task import get_task


def test_wilson_interval_matches_the_textbook():
    lo, hi = wilson_interval(4, 100)  # the 4 % of 100 plants: 95 % CI 1.6-9.8 %
    assert lo == pytest.approx(0.0157, abs=5e-4) and hi == pytest.approx(0.0984, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_cliff_is_the_first_value_below_80_percent():
    assert cliff([1, 2, 3, 4], [1.0, 0.8, 0.7, 0.9]) == 3
    assert cliff([1, 2], [1.0, 0.9]) is None


def test_high_freq_share():
    t = np.arange(500) / 50.0
    slow, fast = np.sin(2 * np.pi * 1.0 * t), np.sign(np.sin(2 * np.pi * 12.0 * t))
    assert high_freq_share(slow[:, None], 50.0) < 0.01
    assert high_freq_share(fast[:, None], 50.0) > 0.95


@pytest.mark.parametrize("robot,space", [("biped", BIPED_PARAMS), ("knob", KNOB_PARAMS)])
def test_sweeps_and_box_fit_the_hard_limits_and_go_outward(robot, space):
    series = sweep_series(robot, space)  # raises on a value outside the hard limits
    for s in series:
        nominal = space[s.param].nominal
        dist = [abs(v - nominal) for v in s.values]
        if s.param != "encoder_resolution":  # 0 = ideal: coarser is outward
            assert dist == sorted(dist), s.name
    assert len(get_task(robot).reality_box) >= 16
    assert {p for p, _ in get_task(robot).stress_sweeps} >= {"action_latency", "sensor_delay", "torque_lag", "backlash",
                                             "encoder_resolution", "motor_strength", "control_jitter"}  # fmt: skip


def test_plan_uses_common_random_numbers():
    series, jobs, box = plan("biped", BIPED_PARAMS, StressConfig(episodes=3, plants=5, seed=7))
    seeds = {}
    for j in jobs:
        if j.kind == "sweep":
            seeds.setdefault((j.key, j.value), []).append(j.seed)
    assert all(sorted(s) == [7, 8, 9] for s in seeds.values())
    assert len(box) == 5 and sorted(j.seed for j in jobs if j.kind == "box") == list(range(10_007, 10_012))
    _, _, box2 = plan("biped", BIPED_PARAMS, StressConfig(episodes=3, plants=5, seed=7))
    assert box == box2  # seeded plants
    assert len(jobs) == 3 + 5 + 3 * sum(len(s.values) for s in series)


_knob_expert = functools.partial(scripted_expert, "knob_gait", "s2r/Knob-v0")  # picklable for the pool


@pytest.mark.slow
def test_a_tiny_stress_run_of_the_scripted_knob_expert():
    cfg = StressConfig(episodes=2, plants=3, seed=0, workers=1, params=("action_latency",))
    report = run_stress("knob", _knob_expert, cfg)
    sweep = report["sweep"]["action_latency"]
    assert sweep["values"][0] == 0.004 and len(sweep["success"]) == len(sweep["values"])
    assert report["nominal"]["success_rate"] == 1.0  # the expert turns the knob on the nominal plant
    assert sweep["success"][-1] < 0.8 and sweep["cliff"] is not None  # 60 ms of latency defeats it
    box = report["reality_box"]
    assert [p["success"] for p in box["per_plant"]].count(True) == box["successes"]
    assert all(set(p["params"]) == set(box["ranges"]) for p in box["per_plant"])
    assert box["plants"] == 3 and 0 <= box["wilson95"][0] <= box["success_rate"] <= box["wilson95"][1] <= 1
    tm = report["nominal"]["torque_metrics"]
    assert 0 <= tm["at_limit_pct"] <= 100 and 0 < tm["rms_commanded_per_limit"] <= 1 and "cost_of_transport" not in tm
    assert not math.isnan(tm["power_above_5hz_pct"])
    # seeded, and a fresh env per episode: the same report from a pool of 2 workers as from 1 in-process
    pooled = run_stress("knob", _knob_expert, dataclasses.replace(cfg, workers=2))
    assert pooled["sweep"] == report["sweep"] and pooled["reality_box"] == report["reality_box"]
    assert pooled["nominal"]["torque_metrics"] == tm


def test_unknown_sweep_parameter_is_a_one_line_error():
    with pytest.raises(ValueError, match="no sweep for"):
        sweep_series("biped", BIPED_PARAMS, ["gravity"])


def test_a_tiny_stress_run_in_the_mujoco_twin():
    cfg = StressConfig(episodes=2, plants=2, seed=0, workers=1, params=("knob_friction",), engine="mujoco")
    report = run_stress("knob", _knob_expert, cfg)
    assert report["engine"] == "mujoco" and "(mujoco)" in format_report(report).splitlines()[0]
    assert report["nominal"]["success_rate"] == 1.0  # the scripted gait turns the MuJoCo knob too


def test_box_by_param_ranks_the_parameter_the_failures_lean_on():
    rng = np.random.default_rng(0)
    plants = []
    for _ in range(60):
        params = {"latency": float(rng.uniform(0, 0.02)), "noise": float(rng.uniform(0, 1))}
        plants.append({"params": params, "success": params["latency"] < 0.012})  # latency sinks it, noise does not
    rows = box_by_param(plants)
    assert list(rows) == ["latency", "noise"]
    assert rows["latency"]["low_third"] == 1.0 and rows["latency"]["high_third"] == 0.0
    assert abs(rows["noise"]["difference"]) < 0.4
    assert box_by_param(plants[:2]) == {}


def test_no_sweep_plans_only_the_nominal_plant_and_the_box():
    series, jobs, box = plan("biped", BIPED_PARAMS, StressConfig(episodes=2, plants=4, sweep=False))
    assert series == [] and len(box) == 4 and len(jobs) == 2 + 4


def test_line_plant_runs_from_nominal_through_the_plant_and_clips_past_it():
    worst = get_plant("biped", "worst_case")
    assert line_plant(BIPED_PARAMS, worst, 0.0) == {k: BIPED_PARAMS[k].nominal for k in worst}
    assert line_plant(BIPED_PARAMS, worst, 1.0) == pytest.approx(worst)
    half = line_plant(BIPED_PARAMS, worst, 0.5)
    assert half["ground_friction"] == pytest.approx(0.7) and half["action_latency"] == pytest.approx(0.015)
    near_stop = {"motor_strength": 0.35}  # hard limit 0.3: twice the way would be -0.3
    assert line_plant(BIPED_PARAMS, near_stop, 2.0)["motor_strength"] == BIPED_PARAMS["motor_strength"].low


def test_toward_plans_a_line_of_depths_to_the_named_plant():
    series, jobs, _ = plan("biped", BIPED_PARAMS, StressConfig(episodes=2, plants=0, sweep=False,
                                                                toward=("worst_case",)))  # fmt: skip
    assert [(s.name, s.values) for s in series] == [("toward worst_case", TOWARD_DEPTHS)]
    at_plant = [j for j in jobs if j.key == "toward worst_case" and j.value == 1.0]
    assert [j.seed for j in at_plant] == [0, 1]  # common random numbers with the nominal episodes
    assert at_plant[0].params == pytest.approx(get_plant("biped", "worst_case"))
    assert len(jobs) == 2 + 2 * len(TOWARD_DEPTHS)
    with pytest.raises(UserError, match="unknown plant 'worst' for biped; plants: nominal, "):
        plan("biped", BIPED_PARAMS, StressConfig(plants=0, toward=("worst",)))
    with pytest.raises(UserError, match="nominal one"):
        plan("biped", BIPED_PARAMS, StressConfig(plants=0, toward=("nominal",)))


@pytest.mark.slow
def test_a_stress_line_toward_the_knobs_worst_case():
    cfg = StressConfig(episodes=1, plants=0, seed=0, workers=1, sweep=False, toward=("worst_case",))
    report = run_stress("knob", _knob_expert, cfg)
    line = report["sweep"]["toward worst_case"]
    assert line["param"] == "depth" and line["nominal"] == 0.0 and line["values"] == list(TOWARD_DEPTHS)
    assert line["toward"] == get_plant("knob", "worst_case") and len(line["success"]) == len(TOWARD_DEPTHS)
    assert line["cliff"] is None or line["cliff"] in TOWARD_DEPTHS
    assert any(row.startswith("toward worst_case  depth") for row in format_report(report).splitlines())
