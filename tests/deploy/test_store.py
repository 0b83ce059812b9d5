"""A/B model store: flash, mismatch and corruption refusal, rollback, and SIGKILL at every step of a flash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.bundle import load_bundle
from deploy.store import ModelStore


def _sha(bundle: Path) -> str:
    return load_bundle(bundle).sha256


def test_flash_switches_slots_and_keeps_previous(tmp_path: Path, bundles: dict[str, Path]) -> None:
    store = ModelStore(tmp_path / "store")
    assert store.flash(bundles["a"]) == "A"
    assert store.active_bundle().sha256 == _sha(bundles["a"])
    assert store.profile()["robot"] == "biped"  # first flash records the robot
    assert store.flash(bundles["b"]) == "B"
    st = store.status()
    assert st["active"] == "B" and st["slots"]["A"]["state"] == "previous"
    assert st["slots"]["B"]["sha256"] == _sha(bundles["b"])
    assert store.flash(bundles["c"]) == "A"  # the inactive slot is overwritten, B stays as the fallback
    assert store.active_bundle().sha256 == _sha(bundles["c"])
    assert store.status()["slots"]["B"]["sha256"] == _sha(bundles["b"])
    assert sorted(p.name for p in store.root.iterdir()) == [".lock", "A", "B", "active", "profile.json"]


def test_rollback(tmp_path: Path, bundles: dict[str, Path]) -> None:
    store = ModelStore(tmp_path)
    store.flash(bundles["a"])
    with pytest.raises(ValueError, match="no previous model"):
        store.rollback()
    store.flash(bundles["b"])
    assert store.rollback() == "A" and store.active_bundle().sha256 == _sha(bundles["a"])
    assert store.rollback() == "B" and store.active_bundle().sha256 == _sha(bundles["b"])
    (store.root / "A" / "policy.onnx").write_bytes(b"garbage")  # the fallback slot rotted on disk
    with pytest.raises(ValueError, match="cannot roll back to slot A: .*sha256"):
        store.rollback()
    assert store.active_slot() == "B"


def test_mismatched_robot_refused(tmp_path: Path, bundles: dict[str, Path]) -> None:
    store = ModelStore(tmp_path)
    store.init_robot("biped")
    with pytest.raises(ValueError, match=r"does not fit store .* \(robot 'biped'\): robot is \"knob\""):
        store.flash(bundles["knob"])
    with pytest.raises(ValueError, match="set up for robot 'biped'"):
        store.init_robot("knob")
    assert store.active_slot() is None and not (tmp_path / "A").exists()
    # a store whose recorded profile differs (e.g. other torque limits) refuses a bundle made for the spec
    profile = json.loads((tmp_path / "profile.json").read_text())
    profile["torque_limits_nm"][2] = 12.0
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    with pytest.raises(ValueError, match=r"torque_limits_nm\[2\] is 30.0, expected 12.0"):
        store.flash(bundles["a"])


def _tampered(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    if how == "onnx":
        data = bytearray((dst / "policy.onnx").read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit: a weight changes, the sha256 must catch it
        (dst / "policy.onnx").write_bytes(bytes(data))
    elif how == "truncated":
        (dst / "policy.onnx").write_bytes((dst / "policy.onnx").read_bytes()[:100])
    elif how == "manifest":
        (dst / "manifest.json").write_text((dst / "manifest.json").read_text()[:-20])
    elif how == "samples":
        np.save(dst / "sample_torque_nm.npy", np.zeros((3, 4), np.float32))
    elif how == "missing":
        (dst / "sample_obs.npy").unlink()
    return dst


@pytest.mark.parametrize("how", ["onnx", "truncated", "manifest", "samples", "missing"])
def test_corrupt_bundle_refused(tmp_path: Path, bundles: dict[str, Path], how: str) -> None:
    store = ModelStore(tmp_path / "store")
    store.flash(bundles["a"])
    bad = _tampered(bundles["b"], tmp_path / "bad", how)
    with pytest.raises(ValueError, match="sha256|not valid JSON|lacks"):
        store.flash(bad)
    assert store.active_bundle().sha256 == _sha(bundles["a"])
    assert store.status()["slots"]["B"] == {"state": "empty"}


def test_wrong_model_with_matching_hashes_fails_self_test(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """A bundle re-hashed after swapping the model (so sha256 checks pass) still fails the recorded-obs test."""
    bad = Path(shutil.copytree(bundles["b"], tmp_path / "bad"))
    shutil.copy(bundles["c"] / "policy.onnx", bad / "policy.onnx")
    m = json.loads((bad / "manifest.json").read_text())
    m["model"]["sha256"] = m["files"]["policy.onnx"] = _sha(bundles["c"])
    (bad / "manifest.json").write_text(json.dumps(m))
    store = ModelStore(tmp_path / "store")
    store.flash(bundles["a"])
    with pytest.raises(ValueError, match="differs from the exported torques"):
        store.flash(bad)
    assert store.active_slot() == "A"


_CHILD = textwrap.dedent(
    """
    import os, shutil, signal, sys, tempfile
    kill_at = int(sys.argv[3])
    points = []

    def hook(name, fn):
        def wrapped(*a, **k):
            if len(points) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            points.append(name + ":" + os.path.basename(str(a[-1] if a else "")))
            return fn(*a, **k)
        return wrapped

    for mod, name in [(os, "fsync"), (os, "replace"), (os, "rename"), (shutil, "rmtree"), (tempfile, "mkdtemp")]:
        setattr(mod, name, hook(name, getattr(mod, name)))
    from deploy.store import ModelStore
    ModelStore(sys.argv[1]).flash(sys.argv[2])
    print("\\n".join(points))
    """
)


def _flash_child(store: Path, bundle: Path, kill_at: int = -1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(store), str(bundle), str(kill_at)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.slow
def test_flash_killed_at_every_step_leaves_previous_model_active(tmp_path: Path, bundles: dict[str, Path]) -> None:
    """SIGKILL before each fsync/rename/rmtree/mkdtemp of a flash (and at a few random instants): the store
    stays valid and runs the previous model, unless the kill came after the final switch of ``active``."""
    store = ModelStore(tmp_path / "store")
    store.flash(bundles["a"])
    store.flash(bundles["b"])
    store.rollback()  # active A (a), previous B (b): the flash of c must overwrite B
    old, new = _sha(bundles["a"]), _sha(bundles["c"])

    # dry run in a copy to learn the sequence of durable steps
    probe = tmp_path / "probe"
    shutil.copytree(store.root, probe)
    out, _ = _flash_child(probe, bundles["c"]).communicate(timeout=60)
    points = out.split()
    switch = max(i for i, p in enumerate(points) if p == "replace:active")
    assert len(points) >= 10 and points[switch - 1].startswith("fsync")

    kills = [(k, None) for k in range(len(points))] + [(-1, d) for d in (0.05, 0.3, 0.6)]
    for kill_at, delay in kills:
        child = _flash_child(store.root, bundles["c"], kill_at)
        if delay is not None:
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        active = store.active_bundle()  # hash-checked, profile-checked
        if delay is None:
            assert child.returncode == -signal.SIGKILL
            assert active.sha256 == (old if kill_at <= switch else new), f"killed before {points[kill_at]}"
        else:
            assert active.sha256 in (old, new)
        if active.sha256 == new:  # the kill came after the switch: go back to the old model for the next round
            assert store.rollback() == "A"
        st = store.status()
        assert st["slots"]["A"]["sha256"] == old and st["slots"]["B"]["state"] in ("empty", "previous", "invalid")

    # after all those crashes a normal flash still works and cleans up
    assert store.flash(bundles["c"]) == "B"
    assert store.active_bundle().sha256 == new and store.status()["slots"]["A"]["sha256"] == old
    assert not [p for p in os.listdir(store.root) if p.startswith(".staging")]
