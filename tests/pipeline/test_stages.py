"""The pipeline's stages against the samplers called by hand, its diffusers-like call, and loading by name."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.camera.conditioning import center_crop_geometry, conditioning_from_trajectory
from sana_wm.camera.trajectory import Intrinsics
from sana_wm.pipeline import DEFAULT_PROMPT, SanaWMPipeline
from sana_wm.pipeline.pipeline import default_dtype
from sana_wm.pipeline.video import read_video, to_uint8_frames
from sana_wm.samplers import Conditioning, Guidance, SigmaSchedule, euler_sample, stream_sample

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def pipelines(repos):
    return {variant: SanaWMPipeline.from_pretrained(repos[variant], text_encoder=repos["text_encoder"],
                                                    dtype="fp32", device="cpu")
            for variant in ("bidirectional", "streaming")}


def _by_hand(pipe, image_path, traj, num_frames):
    """First latent, camera conditioning and text states built here, from the image and the library's camera
    and text code, not through the pipeline's prepare stage."""
    pil = Image.open(image_path).convert("RGB")
    H, W = pipe.image_size
    geometry = center_crop_geometry(*pil.size, target_w=W, target_h=H)
    pixels = torch.from_numpy(np.asarray(geometry.apply_to_image(pil), dtype=np.float32))
    first = pipe.vae.encode(pixels.permute(2, 0, 1)[None, :, None] / 127.5 - 1.0)
    camera = conditioning_from_trajectory(traj, src_image_size=pil.size, target_size=(H, W),
                                          temporal_stride=pipe.vae.temporal_stride,
                                          spatial_stride=pipe.vae.spatial_stride)
    text = pipe.text_encoder.encode(DEFAULT_PROMPT)
    cond = Conditioning(text.embeds, text.mask, camera.camera_vector[None], camera.plucker[None])
    return first, cond, pipe.vae.num_latent_frames(num_frames)


def test_generate_equals_the_sampler_on_conditioning_built_by_hand(pipelines, image_path):
    """Bidirectional with text guidance (cfg 5 against the empty prompt, 3 shifted steps) and streaming
    (the distilled 4-step list, chunk by chunk through the causal decoder): the pipeline's latents and frames
    are bit-identical to the sampler's on the same inputs."""
    traj = action_to_trajectory("w-24,dw-24")  # 49 poses: two streamed chunks
    traj = traj.with_intrinsics(Intrinsics.from_fov(55.0, 120, 90, traj.num_frames))

    pipe = pipelines["bidirectional"]
    first, cond, T = _by_hand(pipe, image_path, traj, 49)
    negative = pipe.text_encoder.encode("", negative=True)
    latents = euler_sample(pipe.transformer, cond, first, T, SigmaSchedule.shifted(3, 8.0),
                           guidance=Guidance(5.0, negative.embeds, negative.mask),
                           generator=torch.Generator().manual_seed(3), progress=False).latents
    frames = to_uint8_frames(pipe.vae.decode(latents))
    result = pipe.generate(image_path, traj, steps=3, seed=3, progress=False)
    assert result.frames.shape == (49, 64, 96, 3)
    assert torch.equal(result.latents, latents)
    np.testing.assert_array_equal(result.frames, frames)

    pipe = pipelines["streaming"]
    first, cond, T = _by_hand(pipe, image_path, traj, 49)
    chunks = [c.latents for c in stream_sample(pipe.transformer, cond, first, T,
                                               SigmaSchedule.from_timesteps((1000.0, 960.0, 889.0, 727.0, 0.0)),
                                               generator=torch.Generator().manual_seed(4), progress=False)]
    decoder = pipe.vae.stream_decoder()
    frames = to_uint8_frames(torch.cat([decoder.decode_chunk(c) for c in chunks], dim=2))
    result = pipe.generate(image_path, traj, seed=4, progress=False)
    assert len(chunks) == 2 and sum(c.shape[2] for c in chunks) == T
    assert torch.equal(result.latents, torch.cat(chunks, dim=2))
    np.testing.assert_array_equal(result.frames, frames)


def test_the_pipeline_is_callable_like_a_diffusers_pipeline(pipelines, image_path, tmp_path):
    pipe = pipelines["bidirectional"]
    traj = action_to_trajectory("w-8")
    called = pipe(image=image_path, trajectory=traj, steps=1, seed=5, progress=False)
    assert called.frames.dtype == np.uint8 and called.frames.shape == (9, 64, 96, 3)
    assert called.video_path is None and called.sidecar is None
    np.testing.assert_array_equal(called.frames, pipe.generate(image_path, traj, steps=1, seed=5,
                                                               progress=False).frames)
    out = tmp_path / "called.mp4"
    written = pipe(image=image_path, trajectory=traj, steps=1, seed=5, progress=False, output=out)
    assert written.video_path == out and read_video(out)[0].shape == (9, 64, 96, 3)
    np.testing.assert_array_equal(written.frames, called.frames)  # frames come back with a file too
    with pytest.raises(TypeError, match=r"pipe\(image=..., trajectory=...\) needs both"):
        pipe(image=image_path)


def test_default_dtype_is_float32_on_cpu_and_bf16_on_cuda(repos):
    assert default_dtype(torch.device("cpu")) == "fp32"
    assert default_dtype(torch.device("cuda")) == "bf16"
    pipe = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], device="cpu")
    assert pipe.transformer.dtype == torch.float32


def test_from_pretrained_loads_the_bundled_model_by_name():
    from sana_wm.bundled import bundled_model_dir

    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")
    assert pipe.files.root == bundled_model_dir() and pipe.files.source == "sana-wm-synth"
    assert pipe.variant == "streaming" and pipe.transformer.dtype == torch.float32


def _readme_snippet() -> str:
    text = README.read_text()
    match = re.search(r"<!-- generate-from-python -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its '<!-- generate-from-python -->' example"
    return match.group(1)


def test_readme_generation_example_runs(tmp_path, monkeypatch, capsys):
    """The README's "From Python" generation example, run as written on the bundled model (its image name
    pointed at a bundled example's first frame)."""
    from sana_wm.bundled import example_files

    image = example_files()["room_walk"][0]
    code = _readme_snippet()
    assert '"my.png"' in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace('"my.png"', repr(str(image))), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "(25, 128, 128, 3)" in printed and "walk.mp4" in printed
    assert read_video(tmp_path / "walk.mp4")[0].shape == (25, 128, 128, 3)
    assert (tmp_path / "walk.sana-wm.json").is_file()
