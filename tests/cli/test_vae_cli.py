"""`sana-wm vae fit-pca` and `sana-wm vae encode` end to end on a tiny synthetic dataset."""

import json

import pytest
import torch

from sana_wm.cli import main
from sana_wm.data import LatentCache, read_clips
from sana_wm.data.latents import frames_to_vae_input, prepare_clip
from sana_wm.synth.dataset import write_synthetic_dataset
from sana_wm.vae import VideoVAE


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae-data") / "data"
    write_synthetic_dataset(root, 12, seconds=1.0, size=(32, 32), frames_codec="npz", with_depth=False)
    return root


def test_fit_then_encode_in_two_parts(dataset, tmp_path, capsys):
    out = tmp_path / "codec"
    assert main(["vae", "fit-pca", "--data", str(dataset), "--out", str(out), "--patch-size", "16", "--channels", "8",
                 "--frames", "17", "--max-clips", "10", "--held-out", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["held_out_clips"] == 2 and report["held_out_psnr"] > 0
    for part in ("1/2", "2/2"):
        assert main(["vae", "encode", str(dataset), "--vae", str(out), "--frames", "17", "--part", part]) == 0
    vae = VideoVAE.from_pretrained(out)
    cache = LatentCache(dataset)
    clips = list(read_clips(dataset))
    assert len(list(cache.dir.glob("*.safetensors"))) == len(clips) == 12
    clip = prepare_clip(clips[5], num_frames=17)
    torch.testing.assert_close(cache.load(clip.key).latents, vae.encode(frames_to_vae_input(clip.frames_numpy())))


@pytest.mark.parametrize("args, message", [
    (["--frames", "16"], "--frames must be 8k+1"),
    (["--frames", "17", "--part", "3/2"], "--part '3/2'"),
])
def test_encode_errors(dataset, tmp_path, capsys, args, message):
    assert main(["vae", "encode", str(dataset), "--vae", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def _fit(dataset, out, *extra):
    return main(["vae", "fit-pca", "--data", str(dataset), "--out", str(out), "--patch-size", "16", "--channels",
                 "8", "--frames", "17", "--max-clips", "4", "--held-out", "0", *extra])


def test_fit_pca_refuses_existing_out_without_overwrite(dataset, tmp_path, capsys):
    out = tmp_path / "codec"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _fit(dataset, out) == 2
    assert f"--out {out} exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert _fit(dataset, out, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "report.json").is_file()


@pytest.mark.parametrize("where", ["same", "parent", "child"])
def test_fit_pca_never_replaces_its_data(dataset, where, capsys):
    out = {"same": dataset, "parent": dataset.parent, "child": dataset / "codec"}[where]
    before = sorted(p.name for p in dataset.iterdir())
    assert _fit(dataset, out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert f"--out {out} overlaps the --data folder {dataset}" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in dataset.iterdir()) == before
