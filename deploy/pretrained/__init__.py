"""The pretrained policy bundles shipped inside the s2r package, one folder per robot.

``deploy/pretrained/<robot>/`` holds a bundle exactly as ``s2r export`` writes it (policy.onnx, manifest.json,
sample_*.npy); the manifest's ``training`` section records the command, seed and budget it was trained with.
``s2r demo`` finds them through :func:`bundle_path` only, so moving them means changing one line.
"""

from __future__ import annotations

from pathlib import Path

from deploy.manifest import MANIFEST_FILE
from sim.robots import get_robot

PRETRAINED_DIR = Path(__file__).resolve().parent


def bundle_path(robot_id: str, root: str | Path = PRETRAINED_DIR) -> Path:
    """Folder of the pretrained bundle for ``robot_id`` (``biped`` or ``knob``).

    Raises OSError with the fix when it is not there (a partial checkout or an install without package data).
    The bundle's integrity is checked by whoever loads it (:func:`deploy.bundle.load_bundle`).
    """
    get_robot(robot_id)  # unknown robot → ValueError listing the known ones
    path = Path(root) / robot_id
    if not (path / MANIFEST_FILE).is_file():
        raise OSError(
            f"no pretrained {robot_id} bundle at {path}; reinstall s2r from a full checkout "
            f"(pip install -e .) or pass --bundle DIR with one made by `s2r export RUN -o DIR`"
        )
    return path
