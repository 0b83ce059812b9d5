"""Crash-safe output files and folders: the one place s2r writes a result file or replaces a result folder.

Every output (checkpoint, config, report, GIF, plot, bundle, model-store slot) goes through here:

* a file is written to a temp file in the same folder, fsync'ed, renamed over the target and the folder is
  fsync'ed, so a kill or power cut at any instant leaves the old file or the new one, never half of one;
* the new file gets the mode a plain ``open(path, "w")`` would give (``0o666`` minus the umask), or keeps the
  mode of the regular file it replaces: outputs stay readable by the other users the umask allows (a model store
  flashed by one user and run by a service user, a checkpoint shared on a cluster);
* only a regular file or a new name is ever replaced. A target that is a symlink, a directory, a device or a
  FIFO is refused with a :class:`~sim.errors.UserError` (as root, ``--report /dev/null`` must not replace
  ``/dev/null``).

Folders (``demo_out/``, bundles, store slots) are built in a temp folder beside the target and swapped in by
:func:`replace_dir`. :func:`read_json` is the one reader of a JSON file a user hands s2r (a reward or DR file,
a config, a manifest): bad contents are a one-line error naming the file. Standard library only: every stage,
down to the robot's controller, uses this module.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sim.errors import UserError


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):  # fmt: skip
        if test(mode):
            return name
    return "special file"


def _mode(path: str | os.PathLike) -> int | None:
    """``st_mode`` of what is at ``path`` itself (a symlink is not followed), or None where nothing is."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` if it is free or a regular file s2r may replace; else a one-line :class:`UserError`."""
    path, mode = Path(path), _mode(path)
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(f"'{path}' is a {_kind(mode)}, not a regular file; s2r replaces only regular files "
                        "or writes new ones: give another file name")  # fmt: skip
    return path


def check_output_dir(path: str | os.PathLike) -> Path:
    """``path`` if it is free or a real folder s2r may replace (not a symlink or a file); else a UserError."""
    path, mode = Path(path), _mode(path)
    if mode is not None and not stat.S_ISDIR(mode):
        raise UserError(f"'{path}' is a {_kind(mode) if not stat.S_ISREG(mode) else 'file'}, not a folder; s2r "
                        "replaces only folders it can swap atomically: give another folder name")  # fmt: skip
    return path


def read_json(path: str | os.PathLike, what: str, fix: str = "") -> Any:
    """The JSON value in the file ``path``. Contents that are not UTF-8 JSON are a one-line :class:`UserError`
    naming ``what`` (e.g. ``"reward file"``), the file, the parser's complaint and its place, then ``fix`` (what
    to do) if given; a missing or unreadable file raises the OSError (which the CLI prints as one line)."""
    tail = f"; {fix}" if fix else ""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise UserError(f"{what} {path} is not valid JSON ({exc.msg}, {where}){tail}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start}), so not JSON{tail}") from None


def umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting (not thread-safe, but only a fallback)
    os.umask(mask)
    return mask


def new_file_mode(path: str | os.PathLike) -> int:
    """The mode a file written at ``path`` gets: the existing regular file's, else 0o666 minus the umask."""
    mode = _mode(path)
    return stat.S_IMODE(mode) if mode is not None and stat.S_ISREG(mode) else 0o666 & ~umask()


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so the renames and creations inside it survive a power cut (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing; on a clean exit it is fsync'ed and renamed over ``path``.

    ``mode`` is ``"w"`` or ``"wb"`` (text keyword arguments such as ``newline`` pass through). An exception in
    the block removes the temp file and leaves ``path`` untouched. The target is checked (regular file or new
    name) before anything is written and again just before the rename.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = check_output_file(path)
    folder = path.parent if str(path.parent) else Path(".")
    file_mode = new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, file_mode)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_output_file(path)  # replaced by something else while we wrote?
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Replace ``path`` (a regular file or a new name) with ``data``, atomically and durably; returns the path."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", **({} if isinstance(data, bytes) else
                     {"encoding": "utf-8"})) as f:  # fmt: skip
        f.write(data)
    return Path(path)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to ``dst`` atomically and durably (see :func:`atomic_open`)."""
    with open(src, "rb") as fi, atomic_open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)


def make_dir_beside(out: str | os.PathLike, prefix: str | None = None) -> Path:
    """A new empty folder next to ``out`` (same filesystem, so it can be renamed onto ``out``), named
    ``prefix``+random (default ``.<name>.tmp-``), with the mode a plain ``mkdir`` gives, not ``mkdtemp``'s 0700."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{out.name}.tmp-", dir=parent))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Swap the finished folder ``tmp`` in as ``out``; a previous ``out`` is moved aside (one rename), then
    deleted, so ``out`` is at every instant the old folder, absent for one rename, or the new one.

    ``out`` must be a real folder or a new name (a symlink or a file there is refused); ``tmp``'s files are
    fsync'ed into it first."""
    tmp, out = Path(tmp), check_output_dir(out)
    for p in tmp.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            fsync_dir(p)
    fsync_dir(tmp)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent if str(out.parent) else "."))
        os.replace(out, old / "previous")
    os.replace(tmp, out)
    fsync_dir(out.parent if str(out.parent) else ".")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
