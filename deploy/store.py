"""The controller's model store: two bundle slots (A/B), an ``active`` pointer, and the robot profile.

Layout::

    STORE/profile.json   robot profile (deploy.manifest.robot_profile) every bundle must match
    STORE/active         "A" or "B": the slot the controller runs; replaced only by an atomic rename
    STORE/A/, STORE/B/   bundle folders (policy.onnx, manifest.json, sample_*.npy)
    STORE/.lock          flock'ed by flash/rollback so two of them cannot interleave
    STORE/.staging-*/    a bundle being copied (left behind only by a killed flash; removed by the next one)

Flashing is an A/B update in the style of RAUC/Mender: the new bundle goes into the *inactive* slot (copied into
a staging folder, fsync'ed, renamed to the slot), is verified there (sha256, then run in onnxruntime on its
recorded observations against the torques torch produced at export), and only then does ``active`` switch, by
``os.replace`` of a fsync'ed temp file. Until that rename the previous model stays active and untouched, so a
flash killed at any instant leaves the store valid; the other slot keeps the previous model for ``rollback``.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploy.bundle import Bundle, copy_durable, load_bundle, replace_atomic, self_test
from deploy.manifest import BUNDLE_FILES, MANIFEST_FILE, profile_mismatch, profile_of_manifest, robot_profile
from sim.errors import UserError
from sim.files import make_dir_beside, read_json, replace_dir
from sim.robots import get_robot

SLOTS = ("A", "B")
PROFILE_FILE = "profile.json"
ACTIVE_FILE = "active"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"


class ModelStore:
    """A model directory with A/B slots. Read methods never modify it; writers hold the store lock."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------------------------------ reading
    def profile(self) -> dict[str, Any] | None:
        """The robot profile, or None for a store that was never initialized."""
        try:
            return read_json(self.root / PROFILE_FILE, "robot profile", "re-create it with --init-robot")
        except FileNotFoundError:
            return None

    def active_slot(self) -> str | None:
        """``A``, ``B`` or None (nothing flashed yet)."""
        try:
            slot = (self.root / ACTIVE_FILE).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        if slot not in SLOTS:
            raise UserError(f"{self.root / ACTIVE_FILE} holds {slot!r}, not A or B; the store is damaged")
        return slot

    def active_bundle(self) -> Bundle:
        """The active bundle, hash-checked; ValueError if the store holds none."""
        slot = self.active_slot()
        if slot is None:
            raise UserError(f"model store '{self.root}' has no active model; flash one with `s2r flash BUNDLE --store`")
        bundle = load_bundle(self.root / slot)
        self._check_profile(bundle)
        return bundle

    def status(self) -> dict[str, Any]:
        """Profile, active slot and, per slot, the bundle summary or why it is not usable."""
        active = self.active_slot()
        slots: dict[str, Any] = {}
        for slot in SLOTS:
            if not (self.root / slot / MANIFEST_FILE).exists():
                slots[slot] = {"state": "empty"}
                continue
            try:
                b = load_bundle(self.root / slot)
                m = b.manifest
                slots[slot] = {
                    "state": "active" if slot == active else "previous",
                    "robot": m["robot"],
                    "sha256": b.sha256,
                    "created_utc": m["created_utc"],
                    "git_commit": m["training"]["git_commit"],
                    "env_id": m["env_id"],
                }
            except ValueError as exc:
                slots[slot] = {"state": "invalid", "error": str(exc)}
        profile = self.profile()
        return {"store": str(self.root), "robot": profile and profile["robot"], "active": active, "slots": slots}

    # ------------------------------------------------------------------------------------------ writing
    def init_robot(self, robot_id: str) -> None:
        """Record the robot profile (from sim.robots); refuses to change the robot of an initialized store."""
        with self._locked():
            self._init_profile(robot_id, repair=True)

    def flash(self, bundle_dir: str | Path) -> str:
        """Install a bundle into the inactive slot, verify it, make it active. Returns the slot name."""
        source = load_bundle(bundle_dir)  # corrupt or tampered → refused before anything is written
        with self._locked():
            if self.profile() is None:
                self._init_profile(source.robot)
            self._check_profile(source)
            active = self.active_slot()
            target = "B" if active == "A" else "A"
            self._remove_staging()
            staging = make_dir_beside(self.root / target, STAGING_PREFIX)  # mode from the umask, as mkdir gives
            for name in (*BUNDLE_FILES, MANIFEST_FILE):
                copy_durable(source.path / name, staging / name)
            replace_dir(staging, self.root / target)  # fsyncs staging, swaps it in, fsyncs the store
            installed = load_bundle(self.root / target)  # what is on disk now, not what we meant to write
            if installed.sha256 != source.sha256:
                raise UserError(f"slot {target} reads back a different model than {bundle_dir}; disk problem?")
            self_test(installed)
            self._set_active(target)
            return target

    def rollback(self) -> str:
        """Make the other slot active again, after verifying it. Returns the slot name."""
        with self._locked():
            active = self.active_slot()
            if active is None:
                raise UserError(f"model store '{self.root}' has no active model, nothing to roll back")
            other = "B" if active == "A" else "A"
            if not (self.root / other / MANIFEST_FILE).exists():
                raise UserError(f"slot {other} of '{self.root}' is empty: there is no previous model to roll back to")
            try:
                previous = load_bundle(self.root / other)
                self._check_profile(previous)
                self_test(previous)
            except ValueError as exc:
                raise UserError(f"cannot roll back to slot {other}: {exc}") from None
            self._set_active(other)
            return other

    # ---------------------------------------------------------------------------------------- internals
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"model store '{self.root}' is busy: another flash/rollback holds it") from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _init_profile(self, robot_id: str, repair: bool = False) -> None:
        profile = robot_profile(get_robot(robot_id))
        try:
            current = self.profile()
        except UserError:
            if not repair:
                raise
            current = None  # --init-robot is the repair the corrupt-profile error suggests: write it anew
        if current is not None and current != profile:
            raise UserError(
                f"model store '{self.root}' is set up for robot '{current['robot']}'"
                + ("" if current["robot"] != robot_id else " with a different spec")
                + "; use another --store"
            )
        if current is None:
            replace_atomic(self.root / PROFILE_FILE, (json.dumps(profile, indent=2) + "\n").encode())

    def _check_profile(self, bundle: Bundle) -> None:
        profile = self.profile()
        if profile is None:
            raise UserError(f"model store '{self.root}' has no robot profile; run `s2r flash --store DIR --init-robot`")
        problem = profile_mismatch(profile, profile_of_manifest(bundle.manifest))
        if problem:
            raise UserError(
                f"bundle '{bundle.path}' does not fit store '{self.root}' (robot '{profile['robot']}'): {problem}"
            )

    def _set_active(self, slot: str) -> None:
        replace_atomic(self.root / ACTIVE_FILE, f"{slot}\n".encode())

    def _remove_staging(self) -> None:
        for p in self.root.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)
