"""Write rendered frames to an animated GIF, atomically (temp file, fsync, rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.errors import UserError


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 25.0) -> Path:
    """Save RGB frames (H×W×3 uint8) as a looping GIF at ``fps`` frames per second."""
    import imageio.v2 as imageio

    if not frames:
        raise UserError("no frames to write; the episode rendered nothing")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".gif", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            imageio.mimsave(f, [np.asarray(fr, dtype=np.uint8) for fr in frames], format="GIF",
                            duration=1000.0 / fps, loop=0)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
