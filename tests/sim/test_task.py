"""The robot registry: one record per robot, one-line errors for unknown names, the S2R_TASKS plug-in hook."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from sim.task import get_task, register_task, task_of_env, tasks


def test_lookups_and_one_line_errors():
    assert list(tasks())[:2] == ["biped", "knob"]
    assert task_of_env("s2r/BipedHardcore-v0") is get_task("biped") and task_of_env("Pendulum-v1") is None
    with pytest.raises(ValueError, match=r"^unknown robot 'quadruped'; known robots: biped, knob"):
        get_task("quadruped")
    knob = get_task("knob")
    assert register_task(knob) is knob  # the same record again: a no-op
    with pytest.raises(ValueError, match="robot 'knob' is already registered"):
        register_task(dataclasses.replace(knob, success_text="other"))
    with pytest.raises(ValueError, match="plant suite 'x' for knob; suites: nominal, heldout"):
        knob.plant_suite("x")


@pytest.mark.parametrize("entry", ["no_such_module", "no_such_pkg.mod", "/nonexistent/robot.py"])
def test_a_bad_s2r_tasks_entry_is_a_one_line_error(entry):
    code = "from sim.task import get_task\ntry:\n    get_task('arm')\nexcept ValueError as e:\n    print(e)"
    env = {**os.environ, "S2R_TASKS": entry}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("S2R_TASKS: no ") and entry in out.stdout, out


def test_the_record_references_the_envs_reward_weights():
    from sim.rewards import ActuationWeights

    for robot in ("biped", "knob"):
        presets = get_task(robot).rewards()
        assert presets and all(isinstance(w, ActuationWeights) for w in presets.values()), robot
