"""``SanaWMPipeline.compile_blocks`` (``generate --compile``): a compiled run makes the same video, records that it
was compiled, and keeps the first chunk's time (which holds the compilation) apart from the steady per-chunk time."""

import pytest
import torch

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.pipeline import OptionWarning, SanaWMPipeline, read_sidecar
from sana_wm.pipeline.pipeline import STEADY_FROM_CHUNK, chunk_timing


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield torch._dynamo.utils.counters
    torch._dynamo.reset()


def test_compiled_blocks_make_the_same_video_and_are_recorded(repos, image_path, tmp_path, fresh_dynamo):
    pipe = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32",
                                          device="cpu", refiner=None)
    options = dict(num_frames=97, seed=2, progress=False, keep_frames=True)  # 4 chunks
    trajectory = action_to_trajectory("w-40,dw-40,a-20")
    eager = pipe.generate(image_path, trajectory, output=tmp_path / "eager.mp4", **options)
    assert read_sidecar(tmp_path / "eager.mp4")["settings"]["compile"] is None

    # TorchDynamo's eager backend on the CPU: the blocks are captured as graphs and run op by op, so the numbers stay
    # exactly the eager ones (Inductor's fused kernels, on CUDA, round differently).
    fresh_dynamo.clear()
    pipe.compile_blocks(backend="eager")
    compiled = pipe.generate(image_path, trajectory, output=tmp_path / "compiled.mp4", **options)
    assert fresh_dynamo["stats"]["unique_graphs"] >= 3  # one per chunk shape while the K/V window fills, at least
    assert (compiled.frames == eager.frames).all() and compiled.latents.equal(eager.latents)
    record = read_sidecar(tmp_path / "compiled.mp4")
    assert record["settings"]["compile"] is True
    timing = record["timing"]
    assert timing == compiled.timing and len(timing["chunk_s"]) == 4
    assert timing["first_chunk_s"] == timing["chunk_s"][0] > 0
    assert timing["steady_chunk_s"] == timing["chunk_s"][3]


def test_chunk_timing_keeps_the_first_chunk_apart():
    timing = chunk_timing(10.0, [15.0, 16.0, 16.5, 17.0, 17.5, 18.25])
    assert timing["first_chunk_s"] == 5.0
    assert timing["chunk_s"] == [5.0, 1.0, 0.5, 0.5, 0.5, 0.75]
    assert STEADY_FROM_CHUNK == 3 and timing["steady_chunk_s"] == 0.5  # median of 0.5, 0.5, 0.75
    assert chunk_timing(1.0, [2.0])["steady_chunk_s"] is None


def test_compile_on_the_cpu_says_it_does_not_take_effect(repos):
    with pytest.warns(OptionWarning, match=r"^compile does not take effect: .* this pipeline runs on the cpu$"):
        pipe = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32",
                                              device="cpu", refiner=None, compile=True)
    assert not pipe.compiled
