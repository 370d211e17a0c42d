"""Live driving (sana_wm.pipeline.live): a session's frames equal an offline streaming generate of the action string
its keys spell, bit for bit on the CPU; its state stays the same size however long it runs; refusals are user
errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sana_wm.bundled import example_files
from sana_wm.camera.actions import action_to_c2w, action_to_trajectory
from sana_wm.errors import UserError
from sana_wm.model.cache import cache_to_tensors
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.pipeline.live import LiveError, LiveSession
from sana_wm.pipeline.sidecar import read_sidecar, regenerate_from_sidecar
from sana_wm.pipeline.video import read_video


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")


@pytest.fixture(scope="module")
def example():
    return example_files()["room_walk"][0]


def _cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for t in cache_to_tensors(cache)[0].values())


def test_live_frames_equal_offline_generate(pipe, example, tmp_path):
    session = LiveSession(pipe, example, seed=5, output=tmp_path / "live.mp4")
    n = session.frames_per_chunk
    # Whole chunks of one key set, and a chunk whose keys change mid-way (the page samples keys per frame).
    steps = ["w", "w", ["aw"] * (n // 2) + [frozenset("a")] * (n - n // 2), "", "dl"]
    chunks = []
    for i, keys in enumerate(steps):
        chunks.append(session.step(keys))
        if i % 2 == 0:  # the clean pass run apart, as the server does, or left to the next step: same frames
            assert session.settle() > 0 and session.unsettled is None
            assert session.settle() == 0.0
    live = np.concatenate([c.frames for c in chunks])
    assert session.action == f"w-{2 * n},aw-{n // 2},a-{n - n // 2},none-{n},dl-{n}"
    offline = pipe.generate(example, action_to_trajectory(session.action, fps=pipe.fps), seed=5, progress=False,
                            keep_frames=True)
    assert live.shape == offline.frames.shape == (1 + len(steps) * n, 128, 128, 3)
    assert np.array_equal(live, offline.frames)
    # The poses the page draws are the action language's, frame for frame.
    poses = np.concatenate([c.poses for c in chunks])
    assert np.array_equal(poses, action_to_c2w(session.action))
    assert [c.frames.shape[0] for c in chunks] == [n + 1] + [n] * (len(steps) - 1)

    # The published MP4 and its sidecar: generate remakes the same video from the sidecar.
    assert session.finish() == tmp_path / "live.mp4"
    record = read_sidecar(tmp_path / "live.mp4")
    assert record["action"] == session.action and record["seed"] == 5 and record["num_frames"] == live.shape[0]
    again = regenerate_from_sidecar(tmp_path / "live.mp4", tmp_path / "again.mp4", pipeline=pipe)
    assert again.num_frames == live.shape[0]
    ours, _ = read_video(tmp_path / "live.mp4")
    theirs, _ = read_video(tmp_path / "again.mp4")
    assert np.array_equal(ours, theirs)
    assert not (tmp_path / "live.partial.mp4").exists()


def test_live_state_does_not_grow(pipe, example):
    """The streaming cache is the same size after 4 chunks as after 6 (the KV window is full by chunk 3), and the
    keys are kept run-length encoded."""
    session = LiveSession(pipe, example, seed=1)
    sizes = []
    for i in range(6):
        session.step("w" if i % 2 else "d")
        session.settle()
        sizes.append(_cache_bytes(session.cache))
    assert sizes[3] == sizes[-1] > 0
    assert len(session.held) == 6


def test_legacy_mapping_and_length_limit(pipe, example):
    session = LiveSession(pipe, example, mapping="legacy", max_seconds=3.0)
    assert session.max_chunks == 2
    chunk = session.step("w")
    assert np.array_equal(chunk.poses, action_to_c2w(f"w-{session.frames_per_chunk}", "legacy"))
    session.step("j")
    with pytest.raises(LiveError, match="length limit of 2 chunks"):
        session.step("w")


def test_length_limit_follows_the_position_table(pipe, example):
    """The bundled model's RoPE table holds 1024 latent frames: 4 + 3 * 340 = 1024, so 341 chunks (511.5 s)."""
    assert LiveSession(pipe, example).max_chunks == 341


def test_refusals_are_user_errors(pipe, example):
    session = LiveSession(pipe, example)
    with pytest.raises(LiveError, match="unknown keys \\['x'\\]"):
        session.step("wx")
    with pytest.raises(LiveError, match="got keys for 3"):
        session.step([frozenset("w")] * 3)
    with pytest.raises(LiveError, match="no chunk yet"):
        session.record()
    with pytest.raises(UserError, match="max_seconds"):
        LiveSession(pipe, example, max_seconds=0)

    class Bidirectional:
        variant = "bidirectional"

    with pytest.raises(LiveError, match="needs a streaming model"):
        LiveSession(Bidirectional(), example)


def test_close_removes_the_partial_video(pipe, example, tmp_path):
    session = LiveSession(pipe, example, output=tmp_path / "gone.mp4")
    session.step("w")
    assert (tmp_path / "gone.partial.mp4").is_file()
    session.close()
    assert not (tmp_path / "gone.partial.mp4").exists() and not (tmp_path / "gone.mp4").exists()
