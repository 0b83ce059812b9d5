"""Videos: GIF or MP4 by the file's suffix (s2r eval/rollout --video), and periodic videos while training
(--video-every: RUN/videos/ and TensorBoard)."""

from __future__ import annotations

import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest

from sim.video import write_video

TINY = ["--env", "Pendulum-v1", "--algo", "td3", "--td3-hidden", "16,16", "--td3-batch-size", "32",
        "--td3-learning-starts", "100", "--checkpoint-every", "1000"]  # fmt: skip


def test_write_video_by_suffix(tmp_path):
    frames = [np.full((301, 400, 3), 20 * i, dtype=np.uint8) for i in range(12)]  # odd height: cropped for H.264
    mp4 = write_video(frames, tmp_path / "a.mp4", fps=10.0)
    reader = imageio.get_reader(mp4)
    assert reader.count_frames() == 12 and reader.get_meta_data()["fps"] == 10.0
    assert reader.get_data(0).shape == (300, 400, 3)
    assert len(imageio.mimread(write_video(frames, tmp_path / "a.gif", fps=10.0))) == 12
    with pytest.raises(ValueError, match="use a .gif or .mp4"):
        write_video(frames, tmp_path / "a.avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4"]  # no temp file left


@pytest.mark.slow
def test_train_records_periodic_videos_then_eval_writes_mp4(tmp_path):
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "s2r", "train", *TINY, "--steps", "300", "--video-every", "150",
                        "--run-dir", str(run)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    videos = sorted(p.name for p in (run / "videos").iterdir())
    assert videos == ["step_000000150.mp4", "step_000000300.mp4"], videos
    assert imageio.get_reader(run / "videos" / videos[0]).count_frames() == 200 // 5  # a Pendulum episode
    assert f"video at step 150: {run / 'videos' / videos[0]}" in r.stderr, r.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0}).Reload()
    assert [e.step for e in events.Images("video/episode")] == [150, 300]

    r = subprocess.run([sys.executable, "-m", "s2r", "eval", str(run), "--episodes", "1", "--video",
                        str(tmp_path / "eval.mp4")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert imageio.get_reader(tmp_path / "eval.mp4").count_frames() == 100  # every 2nd of 200 steps
    r = subprocess.run([sys.executable, "-m", "s2r", "eval", str(run), "--video", str(tmp_path / "x.avi")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "use a .gif or .mp4" in r.stderr, r.stderr
