"""Atomic file writes: a file is written under a temporary name in its own folder and renamed into place only
when complete, so a full disk, an exception or a kill midway leaves the previous file (or no file) at the
path, never a truncated one. The rename is atomic because the temporary file is in the same folder (the same
file system). Also the checks made before an output is written: free space, outputs that would replace inputs,
and a lock against two runs writing into one folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sana_wm.errors import UserError

__all__ = ["DiskSpaceError", "FolderLockedError", "atomic_write", "check_free_space", "folder_lock", "paths_overlap",
           "replace_folder", "same_file", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def _temporary_path(path: Path) -> Path:
    # Hidden and tagged with the process id, so two writers of the same file never share a temporary name
    # and a leftover from a killed run is recognisable.
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """``with atomic_write(path) as tmp: write(tmp)`` — yields a temporary path in ``path``'s folder; when the
    block ends normally it is renamed onto ``path`` (replacing what was there), and when it raises it is removed
    and ``path`` is left as it was. Creates the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`); returns ``path``."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`); returns ``path``."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1, **dumps_kwargs) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically; the JSON is made before anything is
    written, so an object that cannot be serialised leaves ``path`` untouched."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, **dumps_kwargs) + "\n")


def replace_folder(complete: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``complete`` (written beside ``final``) to ``final``. A folder already at
    ``final`` is first renamed aside and deleted only once the new one is in place, so it is never lost
    before its replacement is complete."""

    complete, final = Path(complete), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.{os.getpid()}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(complete, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same file once links and ``..`` are resolved (either may not exist yet;
    hard links to one file count as the same)."""
    a, b = Path(a), Path(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def paths_overlap(a: str | Path, b: str | Path) -> bool:
    """Whether replacing or deleting folder ``a`` would touch ``b`` or the other way round: they resolve to the
    same path, or one lies inside the other."""
    ra, rb = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return same_file(a, b) or ra in rb.parents or rb in ra.parents


class DiskSpaceError(UserError, OSError):
    """An output folder has less free space than the work about to start needs (:func:`check_free_space`)."""


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e10 else f"{n / 1e9:,.1f} GB"


def check_free_space(folder: str | Path, need: int, what: str) -> None:
    """Refuse, before any work, to write ``need`` bytes into ``folder`` (or the nearest folder of it that exists)
    when its file system has less free; ``what`` names the flag and the output, e.g. ``"--out v.mp4"``."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < need:
        raise DiskSpaceError(f"{what}: needs about {_megabytes(need)} free in {existing}, but only {_megabytes(free)} "
                             "is free; free space or choose another output folder")


class FolderLockedError(FileExistsError):
    """Another running process holds the folder's lock (:func:`folder_lock`)."""


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, name: str = ".sana-wm.lock") -> Iterator[Path]:
    """Hold ``folder/name`` while writing into ``folder``, so that two runs never write into one folder.

    The lock file names its owner (process id and host). A lock whose owner process no longer runs on this host
    (a killed run) is taken over, with a message on stderr; one held by a running process, or from another host
    (whose processes cannot be checked), raises :class:`FolderLockedError`. ``what`` names the writer in
    messages, e.g. ``"sana-wm data synth"``. The lock is removed when the block ends."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / name
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": what}
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text())
                pid, host = int(held["pid"]), str(held["host"])
            except (OSError, ValueError, KeyError, TypeError):
                held, pid, host = None, None, None
            if held is not None and host != owner["host"]:
                raise FolderLockedError(f"{folder} is being written by {held.get('command', 'another run')} "
                                        f"(pid {pid} on {host}); if that run is over, delete {lock}") from None
            if pid is not None and _pid_running(pid):
                raise FolderLockedError(f"{folder} is being written by {held.get('command', 'another run')} "
                                        f"(pid {pid}); wait for it to finish or choose another folder") from None
            was = f"pid {pid}, no longer running" if pid is not None else "unreadable"
            print(f"sana-wm: taking over the stale lock {lock} ({was})", file=sys.stderr)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(owner) + "\n")
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
