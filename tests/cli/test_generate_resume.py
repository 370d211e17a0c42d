"""`sana-wm generate --resume OUT.mp4`: a SIGKILLed streaming run of the bundled model continues to the video an
uninterrupted run makes, from its resume file alone."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sana_wm.cli import main
from sana_wm.pipeline import resume_path

SRC = Path(__file__).resolve().parents[2] / "src"
# 5 chunks. --extend is recorded but has no effect here (the path has 169 poses): the resumed run, rebuilt from the
# record, must not take that for other settings.
ARGS = ["generate", "--example", "room_walk", "--num-frames", "121", "--extend", "hold", "--no-progress"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecar(video: Path) -> dict:
    record = json.loads(video.with_name(video.stem + ".sana-wm.json").read_text())
    record.pop("created")
    record.pop("timing")  # measured, so never equal
    return record


def _next_chunk(path: Path) -> int | None:
    """The position a resume file holds, or None while there is none (or it is being replaced)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return int(f.metadata()["next_chunk"])
    except Exception:  # not there yet, or renamed into place right now
        return None


def test_a_sigkilled_generation_resumes_to_the_uninterrupted_video(tmp_path, capsys):
    whole = tmp_path / "whole.mp4"
    assert main([*ARGS, "--out", str(whole)]) == 0, capsys.readouterr().err
    killed = tmp_path / "killed.mp4"
    # One torch thread, as in this test process (tests/conftest.py): float sums split over another number of
    # threads round differently, and the resumed video would differ from the uninterrupted one in its last bits.
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "sana_wm", *ARGS, "--out", str(killed)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while (_next_chunk(resume_path(killed)) or 0) < 2:  # the resume file of chunk 2 (or later) is there
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no resume file appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert resume_path(killed).is_file() and not killed.with_name("killed.sana-wm.json").exists()

    assert main(["generate", "--resume", str(killed), "--no-progress"]) == 0, capsys.readouterr().err
    assert "resumed" in capsys.readouterr().out
    assert _sha(killed) == _sha(whole)
    assert _sidecar(killed) == _sidecar(whole)
    assert not resume_path(killed).exists()


def test_resume_takes_no_generation_flags_and_needs_a_resume_file(tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert main(["generate", "--resume", str(out), "--seed", "3", "--cfg", "2"]) == 2
    err = capsys.readouterr().err
    assert "--resume continues the recorded run with its own inputs and settings; drop --cfg, --seed" in err
    assert main(["generate", "--resume", str(out), "--no-progress", "--no-overlap"]) == 2  # how to run: may come
    err = capsys.readouterr().err
    assert "v.resume.safetensors: no resume file" in err and "Traceback" not in err
    assert main(["generate", "--resume", str(tmp_path / "v.avi")]) == 2
    assert "give the video the interrupted run was writing" in capsys.readouterr().err
