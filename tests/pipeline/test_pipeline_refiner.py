"""Generation with the stage-2 refiner, end to end, for all three variants (tiny models, released layouts)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.cli import main
from sana_wm.pipeline import (
    DEFAULT_PROMPT,
    ModelFilesError,
    RefinerSettings,
    SanaWMPipeline,
    read_sidecar,
    read_video,
    regenerate_from_sidecar,
)
from sana_wm.pipeline.refiner import Refiner, RefinerTextEncoder

ACTION = "w-20,dw-20,a-10"  # 51 poses
VARIANTS = ("bidirectional", "chunk-causal", "streaming")
NUM_FRAMES = {"bidirectional": 25, "chunk-causal": 25, "streaming": 49}  # streaming: chunks of 4 + 3 latent frames
STEPS = {"bidirectional": 2, "chunk-causal": 2, "streaming": None}


@pytest.fixture(scope="module")
def pipelines(repos):
    out = {}
    for variant in VARIANTS:
        chunk_causal = variant == "chunk-causal"
        # The chunk-causal release ships neither a VAE nor a refiner: both come from the bidirectional folder.
        out[variant] = SanaWMPipeline.from_pretrained(
            repos[variant], text_encoder=repos["text_encoder"], vae=repos["bidirectional"] / "vae" if chunk_causal
            else None, dtype="fp32", device="cpu", refiner=repos["bidirectional"] if chunk_causal else True)
    return out


def generate(pipe, variant, image_path, **kwargs):
    return pipe.generate(image_path, action_to_trajectory(ACTION), num_frames=NUM_FRAMES[variant],
                         steps=STEPS[variant], seed=3, progress=False, **kwargs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_refined_video_and_regeneration_from_sidecar(pipelines, variant, image_path, tmp_path):
    pipe = pipelines[variant]
    n = NUM_FRAMES[variant]
    out = tmp_path / "video.mp4"
    result = generate(pipe, variant, image_path, output=out, keep_frames=True, action=ACTION, overlay_actions=True)
    frames, fps = read_video(out)
    # As released, the refined video drops the decoded sink frame: 8k frames for an 8k+1-frame stage 1.
    assert frames.shape == (n - 1, 64, 96, 3) and fps == 16
    assert result.num_frames == n - 1 and result.frames.shape == frames.shape

    record = read_sidecar(out)
    refiner = record["settings"]["refiner"]
    assert refiner["mode"] == ("streaming" if variant == "streaming" else "bidirectional")
    assert refiner["seed"] == 3 and refiner["sigmas"] == [0.909375, 0.725, 0.421875, 0.0]
    assert record["num_frames"] == n and record["video_frames"] == n - 1 and record["first_pose"] == 1
    assert record["model"]["refiner"]["weights"] and record["model"]["refiner"]["source"]

    again = regenerate_from_sidecar(out, tmp_path / "again.mp4", pipeline=pipe, keep_frames=True)
    np.testing.assert_array_equal(again.frames, result.frames)
    np.testing.assert_array_equal(read_video(tmp_path / "again.mp4")[0], frames)


def test_regeneration_loads_the_recorded_refiner(pipelines, image_path, tmp_path):
    """With no pipeline given, the sidecar's model and refiner folders (here the streaming release's
    ``refiner_diffusers/`` + ``gemma3_12b/``) are loaded again."""
    out = tmp_path / "video.mp4"
    result = generate(pipelines["streaming"], "streaming", image_path, output=out, keep_frames=True)
    assert read_sidecar(out)["settings"]["dtype"] == "float32"
    again = regenerate_from_sidecar(out, tmp_path / "again.mp4", keep_frames=True)
    np.testing.assert_array_equal(again.frames, result.frames)


@pytest.mark.parametrize("variant", VARIANTS)
def test_pipeline_refines_its_own_stage1_latents(pipelines, variant, image_path):
    """The refiner leaves stage 1 untouched (its noise has its own generator) and its output equals one call of
    the refiner on the stage-1 latents; for streaming this proves the chunk-by-chunk interleave changes nothing."""
    pipe = pipelines[variant]
    refined = generate(pipe, variant, image_path)
    plain = generate(pipe, variant, image_path, refine=False)
    torch.testing.assert_close(refined.stage1_latents, plain.latents, rtol=0, atol=0)
    assert plain.num_frames == NUM_FRAMES[variant] and plain.stage1_latents is None

    text = pipe.refiner.encode_prompt(DEFAULT_PROMPT)  # the prompt both runs used
    settings = RefinerSettings.for_variant(variant, seed=3)
    expected = pipe.refiner.refine(refined.stage1_latents, text, fps=16.0, settings=settings)
    torch.testing.assert_close(refined.latents, expected, rtol=0, atol=1e-6)


def test_keep_sink_frame_and_refiner_options(pipelines, image_path, tmp_path):
    pipe = pipelines["streaming"]
    kept = generate(pipe, "streaming", image_path, refiner_settings={"keep_sink_frame": True}, keep_frames=True)
    dropped = generate(pipe, "streaming", image_path, keep_frames=True)
    assert kept.num_frames == 49 and dropped.num_frames == 48
    np.testing.assert_array_equal(kept.frames[1:], dropped.frames)  # the same video with its first frame kept
    other_seed = generate(pipe, "streaming", image_path, refiner_settings={"seed": 4}, keep_frames=True)
    assert not np.array_equal(other_seed.frames, dropped.frames)
    with pytest.raises(ValueError, match="streaming variant refines each chunk"):
        generate(pipe, "streaming", image_path, refiner_settings={"mode": "bidirectional"})


def test_offload_moves_the_refiner_in_only_while_it_works(pipelines, image_path, monkeypatch):
    pipe = pipelines["bidirectional"]
    moves = []
    for cls, name in ((Refiner, "refiner"), (RefinerTextEncoder, "refiner text encoder")):
        original = cls.to

        def spy(self, device=None, _original=original, _name=name):
            moves.append((_name, str(device)))
            return _original(self, device)

        monkeypatch.setattr(cls, "to", spy)
    monkeypatch.setattr(pipe, "offload", True)
    generate(pipe, "bidirectional", image_path)
    assert moves == [("refiner text encoder", "cpu"), ("refiner text encoder", "cpu"),  # in, encode, out
                     ("refiner", "cpu"), ("refiner", "cpu")]  # in after stage 1, refine, out


def test_refiner_needs_a_text_prompt(pipelines, image_path):
    pipe = pipelines["bidirectional"]
    text = pipe.text_encoder.encode("a room")
    with pytest.raises(ValueError, match="no refiner is loaded"):
        SanaWMPipeline(pipe.transformer, pipe.vae, pipe.text_encoder, variant="bidirectional",
                       image_size=pipe.image_size).generate(image_path, action_to_trajectory(ACTION), num_frames=9,
                                                            refine=True, progress=False)
    r = generate(pipe, "bidirectional", image_path, prompt=text, refiner_prompt="a room")
    assert r.num_frames == 24


# -- a killed streaming run -----------------------------------------------------------------------
KILL_SCRIPT = """
import os, signal, sys
from sana_wm.camera.actions import action_to_trajectory
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.pipeline.video import VideoWriter

model, text_encoder, image, out, refine = sys.argv[1:]
write = VideoWriter.write
calls = []

def write_then_die(self, frames):
    write(self, frames)
    calls.append(len(frames))
    if len(calls) == 2:  # killed while the third chunk is being generated
        os.kill(os.getpid(), signal.SIGKILL)

VideoWriter.write = write_then_die
pipe = SanaWMPipeline.from_pretrained(model, text_encoder=text_encoder, dtype="fp32", device="cpu",
                                      refiner=refine == "1")
pipe.generate(image, action_to_trajectory("w-80"), num_frames=73, seed=1, output=out, progress=False)
"""


@pytest.mark.parametrize("refine", [True, False], ids=["refiner", "stage1"])
def test_killed_streaming_run_keeps_a_playable_partial_video_and_the_earlier_one(repos, image_path, tmp_path,
                                                                                 refine):
    from sana_wm.pipeline.sidecar import sidecar_path
    from sana_wm.pipeline.video import partial_video_path

    out = tmp_path / "killed.mp4"
    out.write_bytes(b"an earlier video")
    sidecar_path(out).write_text('{"an earlier": "sidecar"}')
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(repos["streaming"]), str(repos["text_encoder"]),
                           str(image_path), str(out), "1" if refine else "0"], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    # The earlier video and the sidecar describing it are untouched; the killed run's frames are kept under a
    # name that says the video is incomplete.
    assert out.read_bytes() == b"an earlier video"
    assert sidecar_path(out).read_text() == '{"an earlier": "sidecar"}'
    frames, fps = read_video(partial_video_path(out))
    finished = 24 + 24 if refine else 25 + 24  # two chunks written (the refined first one lost its sink frame)
    # Every finished frame but the last one muxed survives a SIGKILL (MP4 learns a duration from the next frame).
    assert finished - 1 <= frames.shape[0] <= finished and fps == 16
    assert frames.shape[1:] == (64, 96, 3)


# -- CLI ------------------------------------------------------------------------------------------
def cli(repos, image_path, out, *extra, model=None):
    return main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "17", "--steps", "2",
                 "--model", str(model or repos["bidirectional"]), "--text-encoder", str(repos["text_encoder"]),
                 "--no-progress", "--out", str(out), *extra])


def test_cli_uses_the_models_refiner_unless_told_not_to(repos, image_path, tmp_path, capsys):
    assert cli(repos, image_path, tmp_path / "a.mp4") == 0, capsys.readouterr().err
    assert "stage 1 + refiner" in capsys.readouterr().out
    assert read_video(tmp_path / "a.mp4")[0].shape[0] == 16
    assert read_sidecar(tmp_path / "a.mp4")["settings"]["refiner"]["mode"] == "bidirectional"

    assert cli(repos, image_path, tmp_path / "b.mp4", "--no-refiner") == 0
    assert read_video(tmp_path / "b.mp4")[0].shape[0] == 17
    assert read_sidecar(tmp_path / "b.mp4")["settings"]["refiner"] is None

    assert cli(repos, image_path, tmp_path / "c.mp4", "--keep-sink-frame", "--refiner-mode", "streaming",
               "--refiner-seed", "9") == 0
    assert read_video(tmp_path / "c.mp4")[0].shape[0] == 17
    settings = read_sidecar(tmp_path / "c.mp4")["settings"]["refiner"]
    assert settings["mode"] == "streaming" and settings["seed"] == 9 and settings["keep_sink_frame"]


def test_cli_names_the_missing_refiner_file(repos, image_path, tmp_path, capsys):
    broken = tmp_path / "model"
    shutil.copytree(repos["bidirectional"], broken)
    (broken / "refiner" / "connectors" / "config.json").unlink()
    assert cli(repos, image_path, tmp_path / "x.mp4", model=broken) == 2
    err = capsys.readouterr().err
    assert "refiner/connectors/config.json (refiner text connectors config)" in err


def test_explicit_refiner_must_exist(repos):
    with pytest.raises(ModelFilesError, match="has no refiner folder"):
        SanaWMPipeline.from_pretrained(repos["chunk-causal"], vae=repos["bidirectional"] / "vae",
                                       text_encoder=repos["text_encoder"], dtype="fp32", device="cpu", refiner=True)


def test_memory_estimate_counts_the_refiner(pipelines):
    """The refiner's weights (its transformer and Gemma-3 with connectors) and its activations are components of
    the estimate when it runs, and absent when it does not."""
    from sana_wm.pipeline.memory import module_bytes

    pipe = pipelines["bidirectional"]
    with_refiner = pipe.memory_estimate(49, guided=False, refine=True)
    without = pipe.memory_estimate(49, guided=False, refine=False)
    names = {c.name: c.bytes for c in with_refiner.components}
    assert names["refiner weights"] == module_bytes(pipe.refiner.transformer) > 0
    assert names["refiner text encoder weights"] == module_bytes(pipe.refiner.text_encoder) > 0
    assert names["refiner activations"] > 0
    assert not {n for n in (c.name for c in without.components) if n.startswith("refiner")}
    assert with_refiner.peak_bytes - without.peak_bytes >= names["refiner weights"] + names["refiner activations"]


def test_refiner_blocks_offloaded_make_the_same_video(pipelines, repos, image_path, tmp_path):
    """``refiner_offload="blocks"``: the refiner's blocks stay in host memory and come in one at a time; the video
    is the resident refiner's and the sidecar says how it ran (the device-side bytes: test_refiner_offload.py)."""
    resident = pipelines["streaming"]
    blocks = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32",
                                            device="cpu", refiner=True, refiner_offload="blocks")
    assert blocks.refiner.transformer.offloaded and not len(blocks.refiner.transformer.model.transformer_blocks)
    out = tmp_path / "blocks.mp4"
    got = generate(blocks, "streaming", image_path, output=out, keep_frames=True)
    expected = generate(resident, "streaming", image_path, keep_frames=True)
    np.testing.assert_array_equal(got.frames, expected.frames)
    assert read_sidecar(out)["settings"]["refiner_offload"] == "blocks"
