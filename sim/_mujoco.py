"""Shared pieces of s2r's MuJoCo models: the import (headless rendering through EGL unless ``MUJOCO_GL`` says
otherwise), the contact/solver settings both robots use, inertia as PyBullet computes it for the same primitive
shapes, and an off-screen renderer. How the settings were matched to the PyBullet models: docs/mujoco.md.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # headless: no display on a training box or in CI
import mujoco  # noqa: E402

from sim.errors import UserError

# Contact, joint-limit and friction-loss constraints: critically damped (damping ratio 1) with a time constant of
# two physics steps at 250 Hz, the stiffest MuJoCo integrates stably (its documented rule: timeconst >= 2·dt).
# PyBullet's constraints are rigid (ERP-corrected); these are the nearest MuJoCo gets to them.
SOLREF = "0.008 1"
SOLIMP = "0.95 0.99 0.001"
CONTACT_OPTIONS = 'cone="pyramidal"'
# The biped's solver flags: no island discovery. The biped is one kinematic tree, so every constraint is in its one
# island and MuJoCo's per-island solve only adds the cost of finding it; seeded episodes are bit-identical without
# it (tests/sim/test_engine_seam.py pins their digests). Not for the knob: its fingers and knob are separate
# islands while apart, and solving them as one changes the last bits.
# The other flags switch off stages with nothing to do in the biped's model, which still cost their checks every
# step: it has no springs, dampers (the motor model applies joint damping), sensors, actuators (torques go in
# qfrc_applied), equality or friction-loss constraints, and no parent-child pair of geoms can touch (only the
# ground collides with the robot). Bit-identical too; the mid-phase stays (without it a heightfield's contacts
# come in another order, which changes the last bits).
SOLVER_FLAGS = (
    '<flag island="disable" spring="disable" damper="disable" sensor="disable" actuation="disable" '
    'equality="disable" frictionloss="disable" filterparent="disable"/>'
)


def aabb_box_inertia(mass_kg: float, half_extents_m: Sequence[float]) -> list[float]:
    """Principal inertia (kg·m²) of a solid box: what Bullet uses for a box, and for any shape placed with a
    collision-frame offset (a compound shape, whose inertia Bullet takes from the box of its bounding box)."""
    lx, ly, lz = (2.0 * h for h in half_extents_m)
    return [mass_kg / 12.0 * (ly * ly + lz * lz), mass_kg / 12.0 * (lx * lx + lz * lz), mass_kg / 12.0 * (lx * lx + ly * ly)]


def capsule_aabb_half_extents(radius_m: float, length_m: float) -> tuple[float, float, float]:
    """Half extents of the bounding box of a z capsule whose sphere centres are ``length_m`` apart."""
    return (radius_m, radius_m, length_m / 2.0 + radius_m)


def fmt(values: Sequence[float] | np.ndarray) -> str:
    """Numbers as an MJCF attribute, at full double precision (the model must carry the constants exactly)."""
    return " ".join(repr(float(v)) for v in values)


# the MuJoCo functions sim/_mjloop.c calls, with the prototypes of these major versions (include/mujoco/mujoco.h)
_LOOP_FUNCTIONS = ("mj_step", "mj_multiRay", "mj_geomDistance")
_LOOP_CHECKED_MAJOR = (4,)


def _function_addresses() -> tuple[int, ...] | None:
    """Addresses of ``_LOOP_FUNCTIONS`` in the libmujoco the mujoco package loaded (None where not found)."""
    import ctypes
    import glob

    libs = sorted(glob.glob(os.path.join(os.path.dirname(mujoco.__file__), "libmujoco*")))
    if not libs:
        return None
    try:
        lib = ctypes.CDLL(libs[0])  # the library already loaded: the same functions the bindings call
        found = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in _LOOP_FUNCTIONS]
    except (OSError, AttributeError):
        return None
    return None if None in found else tuple(int(a) for a in found if a is not None)


@functools.cache
def _loop_type() -> tuple[Any, tuple[int, ...]] | None:
    """The compiled loop type (``sim/_mjloop.c``) and the MuJoCo function addresses it calls, or None: not built,
    another MuJoCo major version than its prototypes were checked against, no libmujoco found, or
    ``S2R_MJLOOP=python`` (the pure-Python loop, for comparison)."""
    if os.environ.get("S2R_MJLOOP", "").lower() == "python":
        return None
    if int(mujoco.__version__.split(".")[0]) not in _LOOP_CHECKED_MAJOR:
        return None
    try:
        from sim._mjloop import Loop
    except ImportError:  # no C compiler at install time
        return None
    functions = _function_addresses()
    return None if functions is None else (Loop, functions)


def loop_backend() -> str:
    """``"c"`` where the MuJoCo biped runs its substep loop and sensor reads in C (``sim/_mjloop.c``), else
    ``"python"`` (what benchmarks report beside their figures)."""
    return "c" if _loop_type() is not None else "python"


def compiled_loop(model: mujoco.MjModel, data: mujoco.MjData, dofs: slice) -> Any | None:
    """A compiled loop (``sim/_mjloop.c``) of the ideal motor model and ``mj_step`` on the motor dofs ``dofs`` of
    ``model``/``data``, with the sensor reads, or None where it is not available (then the caller runs the same
    code in Python)."""
    found = _loop_type()
    if found is None:
        return None
    loop_type, functions = found
    qvel, qfrc = data.qvel[dofs], data.qfrc_applied[dofs]
    if not (qvel.flags.c_contiguous and qfrc.flags.c_contiguous):
        return None
    return loop_type(functions, model._address, data._address, qvel.ctypes.data, qfrc.ctypes.data, len(qvel), data)


class OffscreenRenderer:
    """An RGB camera on a model, created at the first frame (the GL context is slow to create and needs EGL)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        self._model, self._size = model, (height, width)
        self._renderer: mujoco.Renderer | None = None
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE

    def render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self._model, *self._size)
            except Exception as exc:  # no EGL/OSMesa on this machine: say how to get a picture
                raise UserError(
                    f"MuJoCo cannot render here ({type(exc).__name__}: {exc}); install EGL or OSMesa and set "
                    "MUJOCO_GL=egl or osmesa, or render with --engine pybullet"
                ) from exc
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render().copy()

    def upload_hfield(self, hfield_id: int) -> None:
        """Send a changed heightfield to the GPU (collisions read the model directly; only pictures need this)."""
        if self._renderer is not None:
            self._renderer._gl_context.make_current()
            mujoco.mjr_uploadHField(self._model, self._renderer._mjr_context, hfield_id)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


__all__ = ["mujoco", "compiled_loop", "loop_backend", "SOLREF", "SOLIMP", "CONTACT_OPTIONS", "SOLVER_FLAGS", "aabb_box_inertia", "capsule_aabb_half_extents", "fmt", "OffscreenRenderer"]
