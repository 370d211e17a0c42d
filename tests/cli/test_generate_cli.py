"""`sana-wm generate` refuses an --out that would replace one of its inputs, before any work."""

import os

import numpy as np
import pytest
from PIL import Image

from sana_wm.camera.formats import write_trajectory
from sana_wm.camera.presets import make_preset
from sana_wm.cli import main


@pytest.fixture
def inputs(tmp_path):
    Image.fromarray(np.full((64, 96, 3), 90, np.uint8)).save(tmp_path / "first.png")
    (tmp_path / "cams").mkdir()
    write_trajectory(make_preset("orbit", seconds=1.0, fps=16), tmp_path / "cams" / "path.npz")
    (tmp_path / "prompt.txt").write_text("a room")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.yaml").write_text("sana_wm: {}\n")
    return tmp_path


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("out, culprit", [
    ("first.png.mp4", None),  # not an input: the run goes on (and fails later, at the dummy model)
    ("link.mp4", "--image"),  # a link to the image
    ("cams/../first.mp4", "--prompt-file"),  # its sidecar, first.sana-wm.json, is made the prompt file
    ("cams/new.mp4", "--camera"),  # inside the --camera folder
    ("model/video.mp4", "--model"),
])
def test_out_that_replaces_an_input_is_refused(inputs, capsys, out, culprit):
    os.symlink(inputs / "first.png", inputs / "link.mp4")
    if out == "cams/../first.mp4":
        (inputs / "first.sana-wm.json").write_text("a room")
        prompt = inputs / "first.sana-wm.json"
    else:
        prompt = inputs / "prompt.txt"
    before = _snapshot(inputs)
    code = main(["generate", "--image", str(inputs / "first.png"), "--camera", str(inputs / "cams"),
                 "--prompt-file", str(prompt), "--model", str(inputs / "model"), "--no-progress",
                 "--out", str(inputs / out)])
    err = capsys.readouterr().err
    assert _snapshot(inputs) == before
    if culprit is None:
        assert "replace an input" not in err
        return
    assert code == 2
    assert f"{culprit} " in err and "would replace an input. Choose another --out" in err
    assert len(err.strip().splitlines()) == 1


def test_no_overlap_and_compile_say_they_do_not_take_effect_on_the_cpu(tmp_path, capsys):
    from sana_wm.pipeline import read_sidecar

    out = tmp_path / "v.mp4"
    code = main(["generate", "--example", "room_walk", "--num-frames", "25", "--no-overlap", "--compile",
                 "--device", "cpu", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert ("sana-wm: warning: --no-overlap does not take effect: the stages overlap on CUDA streams only, and this "
            "pipeline runs on the cpu") in err
    assert "sana-wm: warning: --compile does not take effect: " in err and "runs on the cpu" in err
    record = read_sidecar(out)
    assert record["settings"]["overlap"] is None and record["settings"]["compile"] is None
    assert len(record["timing"]["chunk_s"]) == 1 and record["timing"]["steady_chunk_s"] is None
