"""Decoding at a chosen fps and size, and shot cuts on spliced videos with known cut frames."""

import numpy as np
import pytest
from PIL import Image

from sana_wm.annotate.decode import DecodeError, find_inputs, read_input
from sana_wm.annotate.shots import ShotConfig, detect_cuts, split_shots
from sana_wm.data.codecs import encode_mp4


def _pan(seed: int, frames: int, size=(96, 160), speed=3) -> np.ndarray:
    """A camera panning over a random textured image: ``(frames, H, W, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 255, (size[0], size[1] + speed * frames, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(big).resize((big.shape[1] // 4, big.shape[0] // 4)).resize(
        (big.shape[1], big.shape[0]), Image.Resampling.BILINEAR))
    return np.stack([big[:, i * speed:i * speed + size[1]] for i in range(frames)])


def _spliced(tmp_path, fps=10.0):
    """Four shots: a 30-frame pan, a 25-frame pan of another texture, 25 black frames, 30 static frames,
    and a 10-frame pan (too short). Cuts at 30, 55, 80, 110."""
    parts = [_pan(1, 30), _pan(2, 25), np.zeros((25, 96, 160, 3), np.uint8),
             np.repeat(_pan(3, 1), 30, axis=0), _pan(4, 10)]
    video = np.concatenate(parts)
    path = tmp_path / "spliced.mp4"
    path.write_bytes(encode_mp4(video, fps, crf=18))
    return path, video


def test_cuts_of_a_spliced_video_are_found_exactly(tmp_path):
    path, _ = _spliced(tmp_path)
    decoded = read_input(path, fps=10.0)
    assert decoded.frames.shape == (120, 96, 160, 3) and decoded.source_fps == pytest.approx(10.0)
    assert detect_cuts(decoded.frames, 10.0) == [30, 55, 80, 110]
    shots = split_shots(decoded.frames, 10.0, ShotConfig(min_seconds=2.0))
    assert [(s.start, s.stop, s.dropped) for s in shots] == [
        (0, 30, ""), (30, 55, ""), (55, 80, "black"), (80, 110, "static"), (110, 120, "short")]


def test_decoding_picks_frames_by_time_and_resizes(tmp_path):
    path, video = _spliced(tmp_path, fps=20.0)
    decoded = read_input(path, fps=10.0, width=80)
    assert decoded.fps == 10.0 and decoded.frames.shape == (60, 48, 80, 3)
    assert decoded.source_size == (160, 96)
    # every second source frame (compare against the source at its own rate, resized the same way)
    full = read_input(path, fps=20.0, width=80).frames
    np.testing.assert_array_equal(decoded.frames, full[::2])
    # a slower source keeps its own rate
    assert read_input(path, fps=50.0).fps == pytest.approx(20.0)
    assert len(read_input(path, fps=10.0, max_frames=7).frames) == 7


def test_image_folders_and_inputs(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, f in enumerate(_pan(5, 6)):
        Image.fromarray(f).save(folder / f"{i:03d}.png")
    decoded = read_input(folder, fps=12.0)
    assert decoded.frames.shape == (6, 96, 160, 3) and decoded.fps == 12.0 and decoded.source_fps is None
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "b.mp4").write_bytes(encode_mp4(_pan(6, 4), 10.0))
    (videos / "a.mp4").write_bytes(encode_mp4(_pan(7, 4), 10.0))
    assert [p.name for p in find_inputs([videos, folder])] == ["a.mp4", "b.mp4", "seq"]
    with pytest.raises(DecodeError, match="no such file"):
        find_inputs([tmp_path / "missing.mp4"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DecodeError, match="no videos"):
        find_inputs([tmp_path / "empty"])
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(DecodeError, match="bad.mp4"):
        read_input(tmp_path / "bad.mp4", fps=10.0)
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(folder / "999.png")
    with pytest.raises(DecodeError, match="one size"):
        read_input(folder, fps=10.0)
