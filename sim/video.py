"""Write rendered frames to an animated GIF, atomically (sim.files.atomic_write: temp file, fsync, rename)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.errors import UserError
from sim.files import atomic_write, check_output_file


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 25.0) -> Path:
    """Save RGB frames (H×W×3 uint8) as a looping GIF at ``fps`` frames per second."""
    import imageio.v2 as imageio

    if not frames:
        raise UserError("no frames to write; the episode rendered nothing")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output_file(out)  # before the encoding work
    data = imageio.mimsave("<bytes>", [np.asarray(fr, dtype=np.uint8) for fr in frames], format="GIF",
                           duration=1000.0 / fps, loop=0)  # fmt: skip
    atomic_write(out, data)
    return out
