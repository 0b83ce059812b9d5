"""Write rendered frames to an animated GIF or an MP4 (H.264 through imageio-ffmpeg, where it is installed),
atomically (sim.files.atomic_write: temp file, fsync, rename). :func:`write_video` picks the format from the
file's suffix."""

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


VIDEO_SUFFIXES = (".gif", ".mp4")


def mp4_available() -> bool:
    """Whether MP4 can be written here (the imageio-ffmpeg package, which ships its own ffmpeg binary)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def check_video_path(path: str | os.PathLike) -> None:
    """ValueError (one line, with the fix) if ``path`` is not a .gif/.mp4 this machine can write."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"cannot write video '{path}': use a .gif or .mp4 file name")
    if suffix == ".mp4" and not mp4_available():
        raise UserError(f"writing '{path}' needs imageio-ffmpeg (pip install imageio-ffmpeg); or write a .gif")


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 25.0) -> Path:
    """Save RGB frames (H×W×3 uint8) as a GIF or an MP4, chosen by the suffix of ``path``."""
    check_video_path(path)
    if Path(path).suffix.lower() == ".gif":
        return write_gif(frames, path, fps)
    return _write_mp4(frames, path, fps)


def _write_mp4(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    import tempfile

    import imageio.v2 as imageio

    if not frames:
        raise UserError("no frames to write; the episode rendered nothing")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output_file(out)  # before the encoding work
    # H.264 in yuv420p (plays everywhere, TensorBoard and browsers included) needs even sizes: crop one pixel
    h, w = (np.asarray(frames[0]).shape[0] // 2) * 2, (np.asarray(frames[0]).shape[1] // 2) * 2
    with tempfile.TemporaryDirectory(prefix=".s2r-video-", dir=out.parent) as tmp:
        encoded = Path(tmp) / "video.mp4"  # ffmpeg writes a file by name; then the one atomic write
        with imageio.get_writer(encoded, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                                macro_block_size=1, ffmpeg_log_level="error") as writer:  # fmt: skip
            for fr in frames:
                writer.append_data(np.asarray(fr, dtype=np.uint8)[:h, :w])  # type: ignore[attr-defined]
        atomic_write(out, encoded.read_bytes())
    return out
