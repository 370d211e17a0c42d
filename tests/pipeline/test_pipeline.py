import json
import shutil

import numpy as np
import pytest

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.camera.trajectory import TrajectoryError
from sana_wm.cli import main
from sana_wm.pipeline import ModelFilesError, SanaWMPipeline, read_sidecar, read_video, regenerate_from_sidecar
from sana_wm.pipeline.pipeline import resolve_model

ACTION = "w-10,dw-10,a-8"  # 29 poses


@pytest.fixture(scope="module")
def pipelines(repos):
    out = {}
    for variant in ("bidirectional", "chunk-causal", "streaming"):
        vae = repos["bidirectional"] / "vae" if variant == "chunk-causal" else None
        out[variant] = SanaWMPipeline.from_pretrained(repos[variant], text_encoder=repos["text_encoder"], vae=vae,
                                                      dtype="fp32", device="cpu")
    return out


@pytest.mark.parametrize("variant", ["bidirectional", "chunk-causal", "streaming"])
def test_generate_and_regenerate_from_sidecar(pipelines, variant, image_path, tmp_path):
    pipe = pipelines[variant]
    assert pipe.variant == variant and pipe.image_size == (64, 96)
    steps = None if variant == "streaming" else 3
    out = tmp_path / "video.mp4"
    result = pipe.generate(image_path, action_to_trajectory(ACTION), num_frames=25, steps=steps, seed=3,
                           output=out, progress=False, action=ACTION, overlay_actions=True, keep_frames=True)
    frames, fps = read_video(out)
    assert frames.shape == (25, 64, 96, 3) and fps == 16
    assert result.frames.shape == (25, 64, 96, 3)

    record = read_sidecar(out)
    assert record["num_frames"] == 25 and record["seed"] == 3 and record["settings"]["variant"] == variant
    assert np.asarray(record["trajectory"]["c2w"]).shape == (25, 4, 4)
    assert record["image"]["sha256"] and record["model"]["dit"]["size"] > 0
    if variant == "streaming":
        assert record["settings"]["sigmas"] == pytest.approx([1.0, 0.96, 0.889, 0.727, 0.0])
        assert record["settings"]["cfg"] == 1.0
    else:
        assert len(record["settings"]["sigmas"]) == 4 and record["settings"]["cfg"] == 5.0

    again = regenerate_from_sidecar(out, tmp_path / "again.mp4", pipeline=pipe, keep_frames=True)
    np.testing.assert_array_equal(again.frames, result.frames)  # the pre-encode frames, bit for bit
    np.testing.assert_array_equal(read_video(tmp_path / "again.mp4")[0], frames)  # and H.264 is deterministic


@pytest.mark.parametrize("fail_in", ["sampling", "sidecar"])
def test_failed_regeneration_keeps_the_earlier_video_and_sidecar(pipelines, image_path, tmp_path, monkeypatch,
                                                                 fail_in):
    from sana_wm.pipeline import sidecar as sidecar_module
    from sana_wm.pipeline.sidecar import sidecar_path
    from sana_wm.pipeline.video import VideoWriter, partial_video_path

    pipe, traj = pipelines["streaming"], action_to_trajectory(ACTION)
    out = tmp_path / "video.mp4"
    pipe.generate(image_path, traj, num_frames=49, seed=1, output=out, progress=False, extend="hold")
    video, record = out.read_bytes(), sidecar_path(out).read_bytes()

    if fail_in == "sampling":
        write = VideoWriter.write

        def write_then_fail(self, frames):
            write(self, frames)
            raise OSError("No space left on device")

        monkeypatch.setattr(VideoWriter, "write", write_then_fail)
    else:
        dumps = sidecar_module.json.dumps

        def fail_on_the_sidecar(obj, *args, **kwargs):  # other JSON (the resume file's record) still writes
            if isinstance(obj, dict) and obj.get("format") == sidecar_module.SIDECAR_FORMAT:
                raise OSError("disk full")
            return dumps(obj, *args, **kwargs)

        monkeypatch.setattr(sidecar_module.json, "dumps", fail_on_the_sidecar)
    with pytest.raises(OSError):
        pipe.generate(image_path, traj, num_frames=49, seed=2, output=out, progress=False, extend="hold")
    assert out.read_bytes() == video and sidecar_path(out).read_bytes() == record
    # What the failed run made is kept under a name that says it is incomplete.
    assert read_video(partial_video_path(out))[0].shape[0] == (49 if fail_in == "sidecar" else 25)
    # So is its resume file once a chunk was written (streaming: `generate --resume` could continue it).
    resume = ["video.resume.safetensors"] if fail_in == "sidecar" else []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4", "video.partial.mp4", *resume,
                                                          "video.sana-wm.json"]


def test_seed_changes_the_video(pipelines, image_path):
    pipe = pipelines["bidirectional"]
    traj = action_to_trajectory(ACTION)
    a = pipe.generate(image_path, traj, num_frames=9, steps=2, seed=1, progress=False).frames
    b = pipe.generate(image_path, traj, num_frames=9, steps=2, seed=2, progress=False).frames
    assert a.shape == (9, 64, 96, 3) and not np.array_equal(a, b)


def test_camera_guidance(pipelines, image_path, tmp_path):
    """camera_cfg contrasts the path with a standing camera of the same lens: at 0 the video is the standing
    camera's, on a standing path any scale changes nothing, and the scale is recorded and replayed."""
    pipe = pipelines["streaming"]
    moving, standing = action_to_trajectory("wd-24"), action_to_trajectory("none-24")
    assert not np.allclose(moving.c2w, standing.c2w)

    def run(traj, w, **kw):
        return pipe.generate(image_path, traj, num_frames=25, seed=3, progress=False, keep_frames=True,
                             camera_cfg=w, **kw)

    plain, still = run(moving, 1.0).frames.astype(np.int16), run(standing, 1.0).frames.astype(np.int16)
    assert np.abs(plain - still).mean() > 1.0
    assert np.abs(run(moving, 0.0).frames.astype(np.int16) - still).max() <= 1
    assert np.abs(run(standing, 3.0).frames.astype(np.int16) - still).max() <= 1
    out = tmp_path / "guided.mp4"
    guided = run(moving, 3.0, output=out).frames
    assert np.abs(guided.astype(np.int16) - plain).mean() > 1.0
    assert read_sidecar(out)["settings"]["camera_cfg"] == 3.0
    assert np.array_equal(regenerate_from_sidecar(out, tmp_path / "again.mp4", pipeline=pipe,
                                                  progress=False, keep_frames=True).frames, guided)
    with pytest.raises(ValueError, match="set one of them to 1"):
        run(moving, 3.0, cfg=5.0)


def test_camera_guidance_on_the_first_chunk_only(pipelines, image_path, tmp_path):
    """camera_cfg_chunks=1 guides the first streamed chunk (frames 0-24) exactly as full guidance does and
    leaves the rest unguided; it is recorded and replayed, and other variants refuse it."""
    pipe = pipelines["streaming"]
    moving = action_to_trajectory("wd-48")

    def run(**kw):
        return pipe.generate(image_path, moving, num_frames=49, seed=3, progress=False, keep_frames=True,
                             **kw).frames

    plain, everywhere = run(), run(camera_cfg=3.0)
    out = tmp_path / "first.mp4"
    first = pipe.generate(image_path, moving, num_frames=49, seed=3, progress=False, keep_frames=True,
                          camera_cfg=3.0, camera_cfg_chunks=1, output=out).frames
    assert np.array_equal(first[:25], everywhere[:25])
    assert np.abs(first[:25].astype(np.int16) - plain[:25]).mean() > 1.0
    assert np.abs(first[25:].astype(np.int16) - everywhere[25:]).mean() > 0.5
    assert read_sidecar(out)["settings"]["camera_cfg_chunks"] == 1
    assert np.array_equal(regenerate_from_sidecar(out, tmp_path / "again.mp4", pipeline=pipe,
                                                  progress=False, keep_frames=True).frames, first)
    assert np.array_equal(run(camera_cfg=3.0, camera_cfg_chunks=2), everywhere)  # the video has 2 chunks
    with pytest.raises(ValueError, match="camera_cfg_chunks 0: must be >= 1"):  # the request's number rules
        run(camera_cfg=3.0, camera_cfg_chunks=0)
    with pytest.raises(ValueError, match="the chunk-causal variant samples the whole clip at once"):
        pipelines["chunk-causal"].generate(image_path, moving, num_frames=25, steps=2, progress=False,
                                           camera_cfg=3.0, camera_cfg_chunks=1)


def test_frame_counts_are_snapped(pipelines, image_path):
    traj = action_to_trajectory("w-40")
    with pytest.warns(UserWarning, match=r"num_frames 20: .* has 17 \(3 dropped\)"):
        r = pipelines["bidirectional"].generate(image_path, traj, num_frames=20, steps=1, progress=False)
    assert r.num_frames == 17  # 8k+1, rounded down
    with pytest.warns(UserWarning, match=r"num_frames 40: .* has 25 \(15 dropped\)"):
        r = pipelines["streaming"].generate(image_path, traj, num_frames=40, progress=False)
    assert r.num_frames == 25  # whole 3-latent-frame chunks: 24k+1


def test_too_short_trajectory_says_how_many_frames(pipelines, image_path):
    with pytest.raises(TrajectoryError, match=r"has 11 frames but 17 are needed.*at most 9 frames.*--extend"):
        pipelines["bidirectional"].generate(image_path, action_to_trajectory("w-10"), num_frames=17, steps=1,
                                            progress=False)
    r = pipelines["bidirectional"].generate(image_path, action_to_trajectory("w-10"), num_frames=17, steps=1,
                                            progress=False, extend="hold")
    assert r.num_frames == 17


def test_missing_files_are_named(repos, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(repos["bidirectional"], broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ModelFilesError, match=r"missing files for the bidirectional variant: .*vae/config.json"):
        resolve_model(broken)
    with pytest.raises(ModelFilesError, match="chunk-causal release ships no VAE"):
        resolve_model(repos["chunk-causal"])
    with pytest.raises(ModelFilesError, match=r"sana_dit/model.pt"):
        resolve_model(repos["bidirectional"], "streaming")
    with pytest.raises(ModelFilesError, match="no transformer weights found"):
        resolve_model(tmp_path)


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_generate_streaming(repos, image_path, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    rc = main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "25",
               "--model", str(repos["streaming"]), "--text-encoder", str(repos["text_encoder"]),
               "--no-refiner", "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert read_video(out)[0].shape[0] == 25
    assert json.loads((tmp_path / "cli.sana-wm.json").read_text())["action"] == "w-30"


@pytest.mark.parametrize("args, message", [
    (["--image", "missing.png", "--action", "w-30"], "--image missing.png: file not found"),
    (["--action", "w-30,x-4"], "segment 2 of 2 'x-4': unknown key 'x'"),
    (["--action", "w-5"], "has 6 frames but 9 are needed"),
    (["--action", "w-30", "--refiner", "r/"], "refiner 'r/' is neither a folder nor a hub id"),
    (["--action", "w-30", "--model", None], "the bundled model is incomplete"),
])
def test_cli_errors(repos, image_path, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr("sana_wm.bundled.ASSETS_DIR", tmp_path / "no-assets")  # as if the weights were missing
    argv = ["generate", "--image", str(image_path), "--model", str(repos["bidirectional"]), "--num-frames", "9",
            "--text-encoder", str(repos["text_encoder"]), "--no-progress", "--out", str(tmp_path / "x.mp4")]
    if "--model" in args:
        argv = [a for i, a in enumerate(argv) if a != "--model" and argv[i - 1] != "--model"]
        args = args[:2]
    argv += args
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_image(repos, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    argv = ["generate", "--image", str(bad), "--action", "w-30", "--model", str(repos["streaming"]),
            "--out", str(tmp_path / "x.mp4")]
    assert main(argv) == 2
    assert "not a readable image" in capsys.readouterr().err
