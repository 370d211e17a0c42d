import json

import numpy as np
import pytest

from sana_wm.cli import main
from sana_wm.data import read_clips
from sana_wm.synth import generate_scene, render
from sana_wm.synth.dataset import caption_for, synthetic_clip, write_synthetic_dataset
from sana_wm.synth.paths import exploration_path


def test_written_clips_are_the_exact_renders(tmp_path):
    write_synthetic_dataset(tmp_path / "ds", 3, seed=5, kinds=["room", "corridor", "open"], frames_codec="npz",
                            seconds=0.5, size=(24, 32))
    clips = sorted(read_clips(tmp_path / "ds"), key=lambda c: c.key)
    assert [c.meta["scene_kind"] for c in clips] == ["corridor", "open", "room"]
    for clip in clips:
        seed, kind = clip.meta["scene_seed"], clip.meta["scene_kind"]
        scene = generate_scene(seed, kind)
        path = exploration_path(scene, seconds=0.5, fps=16, style=clip.meta["path_style"], seed=seed)
        ref = render(scene, path, 32, 24, fov_deg=70.0)
        np.testing.assert_array_equal(clip.frames, ref.rgb)
        np.testing.assert_array_equal(clip.c2w, ref.c2w)
        np.testing.assert_array_equal(clip.depth, np.where(np.isfinite(ref.depth), ref.depth, 0.0))
        np.testing.assert_allclose(clip.intrinsics, ref.intrinsics.values)
        assert clip.fps == 16.0 and clip.num_frames == 9


def test_captions_describe_the_scene_not_the_camera():
    for seed in range(6):
        text = caption_for(generate_scene(seed)).lower()
        assert "static scene" in text
        for word in ("camera", "moving", "turn", "walk", "pan"):
            assert word not in text


def test_clip_is_deterministic():
    a = synthetic_clip(3, seconds=0.25, size=(16, 16))
    b = synthetic_clip(3, seconds=0.25, size=(16, 16))
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.key == b.key


def test_data_synth_and_inspect_cli(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "synth", "--out", str(out), "--scenes", "2", "--seconds", "0.5", "--size", "32x48",
                 "--codec", "png", "--style", "walk"]) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(out), "--scenes", "1", "--seconds", "0.5"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["data", "inspect", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_clips"] == 2 and info["clips_with_depth"] == 2
    assert (out / "inspect" / "contact_sheet.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as exc:  # argparse rejects a malformed size before anything runs
        main(["data", "synth", "--out", str(tmp_path / "x"), "--size", "12"])
    assert exc.value.code == 2


# -- interrupted runs and concurrent writers ----------------------------------------------------------
SYNTH = dict(seed=3, frames_codec="npz", seconds=0.25, size=(16, 24), max_clips_per_shard=2)
KILL_SCRIPT = """
import os, signal, sys
from sana_wm.data import ShardWriter
from sana_wm.synth.dataset import write_synthetic_dataset

write = ShardWriter.write
def write_then_die(self, clip):
    if self.num_clips == 3:  # shard 0 finished, clip 2 in shard 1: killed while rendering clip 3
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, clip)

ShardWriter.write = write_then_die
write_synthetic_dataset(sys.argv[1], 5, seed=3, frames_codec="npz", seconds=0.25, size=(16, 24), max_clips_per_shard=2)
"""


def _files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def test_a_killed_synth_run_resumes_to_the_same_dataset(tmp_path, monkeypatch):
    import subprocess
    import sys

    from sana_wm.synth import dataset

    whole = tmp_path / "whole"
    write_synthetic_dataset(whole, 5, **SYNTH)
    assert sorted(_files(whole)) == ["index.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]

    split = tmp_path / "split"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(split)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (split / "shard-000000.tar").is_file() and not (split / "index.json").exists()
    with pytest.raises(FileExistsError, match="unfinished .* pass --resume"):
        write_synthetic_dataset(split, 5, **SYNTH)  # a fresh run would start again: it must say so
    with pytest.raises(ValueError, match="--scenes was 5 in the run being resumed and is 6 now"):
        write_synthetic_dataset(split, 6, resume=True, **SYNTH)
    rendered = []
    monkeypatch.setattr(dataset, "synthetic_clip",
                        lambda seed, **kw: rendered.append(seed) or synthetic_clip(seed, **kw))
    index = write_synthetic_dataset(split, 5, resume=True, **SYNTH)  # takes over the killed run's lock
    assert len(index.entries) == 5 and rendered == [5, 6, 7]  # the two clips of the finished shard are kept
    assert _files(split) == _files(whole)  # same index, same shards, byte for byte; no lock or run file left
    with pytest.raises(FileNotFoundError, match="no unfinished .* to resume .the dataset there is complete"):
        write_synthetic_dataset(split, 5, resume=True, **SYNTH)


def test_data_synth_refuses_a_folder_another_run_is_writing(tmp_path, capsys):
    import os
    import socket

    from sana_wm.synth.dataset import LOCK_FILE

    out = tmp_path / "ds"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                             "command": "sana-wm data synth"}))
    assert main(["data", "synth", "--out", str(out), "--scenes", "1", "--seconds", "0.25", "--size", "16x16"]) == 2
    err = capsys.readouterr().err
    assert f"{out} is being written by sana-wm data synth (pid {os.getpid()})" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written


def test_data_synth_cli_resume(tmp_path, capsys, monkeypatch):
    from sana_wm.synth import dataset

    args = ["data", "synth", "--scenes", "3", "--seconds", "0.25", "--size", "16x16", "--codec", "npz"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    real = dataset.synthetic_clip

    def fail_on_the_third(seed, **kwargs):
        if seed == 2:
            raise KeyboardInterrupt
        return real(seed, **kwargs)

    monkeypatch.setattr(dataset, "synthetic_clip", fail_on_the_third)
    assert main([*args, "--out", str(tmp_path / "split")]) == 130  # the CLI reports Ctrl-C in one line
    monkeypatch.undo()
    assert main([*args, "--out", str(tmp_path / "split"), "--resume", "--overwrite"]) == 2
    assert "--resume keeps the shards already written and --overwrite deletes them" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "split"), "--resume"]) == 0
    assert _files(tmp_path / "split") == _files(tmp_path / "whole")
