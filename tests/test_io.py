"""sana_wm.io: a write that fails midway leaves the previous file as it was, and no temporary file behind."""

import json
import os
import socket

import pytest

from sana_wm.io import atomic_write, write_json_atomic, write_text_atomic


def test_atomic_write_replaces_on_success(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_text_atomic(path, "old")
    with atomic_write(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
        assert path.read_text() == "old"  # nothing visible until the block ends
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_atomic_write_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("previous")
    with pytest.raises(OSError, match="disk full"):
        with atomic_write(path) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_json_atomic_unserialisable_leaves_file(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(path, {"x": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_same_file_and_overlap(tmp_path):
    from sana_wm.io import paths_overlap, same_file

    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "f.txt")
    assert same_file(tmp_path / "link.txt", tmp_path / "f.txt")
    assert same_file(tmp_path / "d" / ".." / "f.txt", tmp_path / "f.txt")
    assert not same_file(tmp_path / "new.txt", tmp_path / "f.txt")
    assert paths_overlap(tmp_path / "d", tmp_path / "d" / "e") and paths_overlap(tmp_path / "d" / "e", tmp_path / "d")
    assert not paths_overlap(tmp_path / "d" / "e", tmp_path / "d2")
    assert not paths_overlap(tmp_path / "de", tmp_path / "d")  # a shared prefix is not a parent


def test_folder_lock_refuses_a_running_owner_and_takes_over_a_dead_one(tmp_path, capsys):
    import subprocess
    import sys

    from sana_wm.io import FolderLockedError, folder_lock

    with folder_lock(tmp_path, "test writer") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(FolderLockedError, match=rf"being written by test writer \(pid {os.getpid()}\)"):
            with folder_lock(tmp_path, "another"):
                pass
    assert not lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "command": "x"}))
    with folder_lock(tmp_path, "test writer"):
        assert f"taking over the stale lock {lock} (pid {pid}, no longer running)" in capsys.readouterr().err
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "x"}))
    with pytest.raises(FolderLockedError, match="on elsewhere"):
        with folder_lock(tmp_path, "test writer"):
            pass


def test_replace_folder_keeps_the_old_one_until_the_new_one_is_in(tmp_path, monkeypatch):
    from sana_wm import io

    final, new = tmp_path / "model", tmp_path / ".model.partial"
    final.mkdir()
    (final / "w").write_text("old")
    new.mkdir()
    (new / "w").write_text("new")
    real = os.replace

    def fail_moving_the_new_one(src, dst):
        if str(src) == str(new):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", fail_moving_the_new_one)
    with pytest.raises(OSError):
        io.replace_folder(new, final)
    assert (final / "w").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.partial", "model"]
    monkeypatch.undo()
    io.replace_folder(new, final)
    assert (final / "w").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_check_free_space_refuses_naming_the_folder_the_need_and_what_is_free(tmp_path, monkeypatch):
    import shutil

    from sana_wm.errors import UserError
    from sana_wm.io import DiskSpaceError, check_free_space

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=5_000_000))
    check_free_space(tmp_path / "not" / "yet" / "made", 4_000_000, "--out x")  # the nearest existing folder counts
    with pytest.raises(DiskSpaceError) as caught:
        check_free_space(tmp_path / "out", 6_000_000, "--out x")
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    assert "--out x" in message and str(tmp_path) in message and "6.0 MB" in message and "5.0 MB" in message
