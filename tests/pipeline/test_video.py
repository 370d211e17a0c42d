import subprocess
import sys

import numpy as np
import pytest

from sana_wm.pipeline.video import VideoWriter, draw_action_overlay, read_video


def _frames(n, h=48, w=64, start=0):
    values = (np.arange(start, start + n) * 12 % 256).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (n, h, w, 3)).copy()


def test_progressive_writes_keep_count_and_fps(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=16) as writer:
        for k in range(3):
            writer.write(_frames(5, start=5 * k))
    frames, fps = read_video(path)
    assert frames.shape == (15, 48, 64, 3) and fps == 16
    # Flat grey frames survive H.264 within a couple of levels.
    assert np.abs(frames.astype(int) - _frames(15)).max() <= 3


def test_odd_size_is_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=8) as writer:
        writer.write(_frames(3, h=33, w=47))
    frames, fps = read_video(path)
    assert frames.shape == (3, 34, 48, 3) and fps == 8


def test_lossless_gives_back_exactly_the_frames_written(tmp_path):
    # Noise at an odd size: the hardest case for a codec and the case yuv420p would pad; not one level may move.
    frames = np.random.default_rng(0).integers(0, 256, (6, 33, 47, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "truth.mp4", 16, lossless=True) as w:
        w.write(frames[:2])
        w.write(frames[2:])
    back, fps = read_video(tmp_path / "truth.mp4")
    assert fps == 16
    np.testing.assert_array_equal(back, frames)


def test_exception_inside_with_keeps_written_frames(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=16) as writer:
            writer.write(_frames(9))
            raise RuntimeError("interrupted")
    assert read_video(path)[0].shape[0] == 9


def test_hard_kill_leaves_a_playable_file(tmp_path):
    path = tmp_path / "killed.mp4"
    script = (
        "import os, numpy as np\n"
        "from sana_wm.pipeline.video import VideoWriter\n"
        f"w = VideoWriter({str(path)!r}, fps=16)\n"
        "for k in range(2):\n"
        "    w.write(np.full((8, 32, 32, 3), 40 * k, np.uint8))\n"
        "os._exit(0)  # no close(): as if the process were killed\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    frames, _ = read_video(path)
    # Every frame but the last handed to the muxer survives (MP4 learns a duration from the next frame).
    assert frames.shape[0] >= 15


def test_action_overlay_lights_held_keys_only():
    frames = np.zeros((2, 64, 96, 3), np.uint8)
    out = draw_action_overlay(frames, [frozenset(), frozenset({"w"})])
    assert (frames == 0).all()  # input untouched
    assert out[1].sum() > out[0].sum()  # a lit key is brighter
    assert out[:, :20].sum() == 0  # only the bottom-left corner is drawn on
    with pytest.raises(ValueError, match="held keys for 1 frames"):
        draw_action_overlay(frames, [frozenset()])
