"""Options are never silently ignored: each one that cannot act warns naming it (as a Python argument, or as
the CLI flag in `sana-wm generate`), stays out of the sidecar, or is an error where it cannot mean anything."""

import json

import numpy as np
import pytest

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.camera.formats import write_trajectory
from sana_wm.camera.trajectory import Intrinsics
from sana_wm.cli import main
from sana_wm.pipeline import OptionError, OptionWarning, SanaWMPipeline, read_sidecar, regenerate_from_sidecar


@pytest.fixture(scope="module")
def pipelines(repos):
    out = {}
    for variant in ("chunk-causal", "streaming"):
        vae = repos["bidirectional"] / "vae" if variant == "chunk-causal" else None
        out[variant] = SanaWMPipeline.from_pretrained(repos[variant], text_encoder=repos["text_encoder"], vae=vae,
                                                      dtype="fp32", device="cpu", refiner=None)
    return out


@pytest.fixture(scope="module")
def bundled():
    return SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu", dtype="fp32")


def _messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, OptionWarning)]


def _cli(repos, image_path, tmp_path, capsys, *args, model="streaming"):
    argv = ["generate", "--image", str(image_path), "--model", str(repos[model]), "--text-encoder",
            str(repos["text_encoder"]), "--no-progress", "--out", str(tmp_path / "cli.mp4"), *args]
    if model == "chunk-causal":
        argv += ["--vae", str(repos["bidirectional"] / "vae")]
    rc = main(argv)
    return rc, capsys.readouterr().err


# -- text on a text-free model --------------------------------------------------------------------
def test_text_options_on_a_text_free_model_warn_and_are_not_recorded(bundled, tmp_path):
    from sana_wm.bundled import example_files

    image = example_files()["room_walk"][0]
    traj = action_to_trajectory("w-24")
    plain = bundled.generate(image, traj, seed=1, progress=False).frames
    out = tmp_path / "text.mp4"
    with pytest.warns(OptionWarning) as record:
        texted = bundled.generate(image, traj, seed=1, progress=False, prompt="a red house",
                                  negative_prompt="blurry", cfg=4.0, output=out, keep_frames=True).frames
    messages = _messages(record)
    assert any(m.startswith("prompt is ignored: this model takes no text") for m in messages)
    assert any(m.startswith("negative_prompt is ignored: this model takes no text") for m in messages)
    assert any(m.startswith("cfg 4 is ignored: this model takes no text") for m in messages)
    np.testing.assert_array_equal(texted, plain)
    sidecar = read_sidecar(out)
    assert sidecar["prompt"] is None and sidecar["negative_prompt"] is None and sidecar["settings"]["cfg"] == 1.0
    again = regenerate_from_sidecar(out, tmp_path / "again.mp4", pipeline=bundled, keep_frames=True)
    np.testing.assert_array_equal(again.frames, plain)


def test_cli_names_the_text_flags_on_a_text_free_model(tmp_path, capsys):
    from sana_wm.bundled import example_files

    image = example_files()["room_walk"][0]
    rc = main(["generate", "--image", str(image), "--action", "w-24", "--prompt", "a red house", "--cfg", "3",
               "--no-progress", "--out", str(tmp_path / "t.mp4")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "sana-wm: warning: --prompt is ignored: this model takes no text" in err
    assert "sana-wm: warning: --cfg 3 is ignored: this model takes no text" in err


def test_negative_prompt_without_text_guidance_warns(pipelines, image_path, tmp_path):
    out = tmp_path / "neg.mp4"
    with pytest.warns(OptionWarning, match=r"^negative_prompt is ignored: text guidance is off \(cfg 1\)"):
        pipelines["streaming"].generate(image_path, action_to_trajectory("w-24"), negative_prompt="blurry",
                                        progress=False, output=out)
    assert read_sidecar(out)["negative_prompt"] is None


# -- refiner options without a refiner ------------------------------------------------------------
def test_refiner_options_without_a_refiner_warn_and_are_not_recorded(pipelines, image_path, tmp_path):
    out = tmp_path / "r.mp4"
    with pytest.warns(OptionWarning) as record:
        pipelines["streaming"].generate(image_path, action_to_trajectory("w-24"), progress=False, output=out,
                                        refiner_settings={"seed": 3, "keep_sink_frame": True},
                                        refiner_prompt="a house")
    assert sorted(_messages(record)) == [
        "refiner_prompt is ignored: no refiner is loaded",
        "refiner_settings['keep_sink_frame'] is ignored: no refiner is loaded",
        "refiner_settings['seed'] is ignored: no refiner is loaded",
    ]
    settings = read_sidecar(out)["settings"]
    assert settings["refiner"] is None and settings["refiner_prompt"] is None


def test_cli_names_each_refiner_flag_without_a_refiner(repos, image_path, tmp_path, capsys):
    rc, err = _cli(repos, image_path, tmp_path, capsys, "--action", "w-24", "--no-refiner", "--refiner-mode",
                   "streaming", "--refiner-seed", "3", "--refiner-block-frames", "3", "--refiner-kv-max-frames",
                   "11", "--keep-sink-frame", "--refiner-text-encoder", "gemma3/")
    assert rc == 0, err
    for name in ("--refiner-mode", "--refiner-seed", "--refiner-block-frames", "--refiner-kv-max-frames",
                 "--keep-sink-frame", "--refiner-text-encoder"):
        assert f"sana-wm: warning: {name} is ignored: no refiner is loaded" in err
    assert json.loads((tmp_path / "cli.sana-wm.json").read_text())["settings"]["refiner"] is None


# -- --fov with intrinsics ------------------------------------------------------------------------
def test_fov_with_intrinsics_warns_and_only_the_used_fov_is_recorded(pipelines, image_path, tmp_path):
    pipe = pipelines["streaming"]
    traj = action_to_trajectory("w-24")
    out = tmp_path / "fov.mp4"
    pipe.generate(image_path, traj, fov=50.0, progress=False, output=out)
    assert read_sidecar(out)["settings"]["fov"] == 50.0
    with_lens = traj.with_intrinsics(Intrinsics.from_fov(70.0, 120, 90, traj.num_frames))
    with pytest.warns(OptionWarning, match=r"^fov is ignored: the camera path has its own intrinsics"):
        pipe.generate(image_path, with_lens, fov=50.0, progress=False, output=out)
    assert read_sidecar(out)["settings"]["fov"] is None


def test_cli_names_fov_when_the_camera_file_has_intrinsics(repos, image_path, tmp_path, capsys):
    traj = action_to_trajectory("w-24")
    path = write_trajectory(traj.with_intrinsics(Intrinsics.from_fov(70.0, 120, 90, traj.num_frames)),
                            tmp_path / "path.npz")[0]
    rc, err = _cli(repos, image_path, tmp_path, capsys, "--camera", str(path), "--fov", "50")
    assert rc == 0, err
    assert "sana-wm: warning: --fov is ignored: the camera path has its own intrinsics" in err


# -- camera_cfg_chunks ----------------------------------------------------------------------------
def test_camera_cfg_chunks_without_camera_guidance_warns_and_is_not_recorded(pipelines, image_path, tmp_path):
    out = tmp_path / "c.mp4"
    with pytest.warns(OptionWarning, match=r"^camera_cfg_chunks is ignored: camera guidance is off \(camera_cfg 1\)"):
        pipelines["streaming"].generate(image_path, action_to_trajectory("w-24"), camera_cfg_chunks=1,
                                        progress=False, output=out)
    assert read_sidecar(out)["settings"]["camera_cfg_chunks"] is None
    with pytest.warns(OptionWarning, match="camera_cfg_chunks is ignored"):
        pipelines["chunk-causal"].generate(image_path, action_to_trajectory("w-8"), steps=1, camera_cfg_chunks=1,
                                           progress=False)


def test_cli_camera_cfg_chunks_messages_name_the_flags(repos, image_path, tmp_path, capsys):
    rc, err = _cli(repos, image_path, tmp_path, capsys, "--action", "w-24", "--camera-cfg-chunks", "1")
    assert rc == 0, err
    assert "sana-wm: warning: --camera-cfg-chunks is ignored: camera guidance is off (--camera-cfg 1)" in err
    rc, err = _cli(repos, image_path, tmp_path, capsys, "--action", "w-8", "--steps", "1", "--cfg", "1",
                   "--camera-cfg", "2", "--camera-cfg-chunks", "1", model="chunk-causal")
    assert rc == 2
    assert ("sana-wm: error: --camera-cfg-chunks limits guidance to the first chunks of a streamed video; the "
            "chunk-causal variant samples the whole clip at once") in err
    rc, err = _cli(repos, image_path, tmp_path, capsys, "--action", "w-8", "--steps", "1", "--cfg", "4",
                   "--camera-cfg", "2", model="chunk-causal")
    assert rc == 2 and "sana-wm: error: --camera-cfg 2 and text --cfg 4 are both on" in err


# -- frames cut to the grid -----------------------------------------------------------------------
def test_frames_cut_to_the_grid_say_how_many_and_offer_extend(pipelines, image_path):
    pipe = pipelines["streaming"]
    with pytest.warns(OptionWarning, match=r"^num_frames 40: the streaming variant makes 24k\+1 frames, so the "
                                           r"video has 25 \(15 dropped\); ask for num_frames 49 with extend hold"):
        assert pipe.generate(image_path, action_to_trajectory("w-40"), num_frames=40, progress=False).num_frames == 25
    with pytest.warns(OptionWarning, match=r"^the camera path's 31 poses: .* has 25 \(6 dropped\)"):
        pipe.generate(image_path, action_to_trajectory("w-30"), progress=False)


def test_cli_says_how_many_frames_were_dropped(repos, image_path, tmp_path, capsys):
    rc, err = _cli(repos, image_path, tmp_path, capsys, "--action", "w-40", "--num-frames", "40")
    assert rc == 0, err
    assert ("sana-wm: warning: --num-frames 40: the streaming variant makes 24k+1 frames, so the video has 25 "
            "(15 dropped); ask for --num-frames 49 with --extend hold to keep them all") in err


# -- --out ----------------------------------------------------------------------------------------
def test_out_must_be_an_mp4(pipelines, image_path, tmp_path, capsys, repos):
    with pytest.raises(OptionError, match=r"^output '.*video.avi': the video is written as H.264 MP4"):
        pipelines["streaming"].generate(image_path, action_to_trajectory("w-24"), output=tmp_path / "video.avi")
    argv = ["generate", "--image", str(image_path), "--action", "w-24", "--model", str(repos["streaming"]),
            "--out", str(tmp_path / "video.gif")]
    assert main(argv) == 2
    assert "sana-wm: error: --out " in capsys.readouterr().err
    assert not (tmp_path / "video.gif").exists()
