"""The robot's controller imports numpy, onnxruntime and pyserial, never the simulator or the learner.

The import-linter contracts in pyproject.toml check the import graph; this checks what Python really loads,
which includes every package's ``__init__`` (``sim/__init__`` among them)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("gymnasium", "pybullet", "mujoco", "torch", "ray")


def _loaded_by(statement: str) -> list[str]:
    code = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_importing_the_runtime_loads_no_simulator_learner_or_gymnasium():
    loaded = _loaded_by("import deploy.runtime, deploy.store, s2r.commands.run")
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_the_robot_spec_imports_with_numpy_only():
    loaded = _loaded_by("import sim.spec, sim.robots, sim.params, firmware_bridge.protocol")
    assert [m for m in loaded if m.split(".")[0] in HEAVY + ("policies", "domain_rand")] == []
