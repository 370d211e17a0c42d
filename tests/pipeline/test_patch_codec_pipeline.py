"""The linear patch codec end to end: `sana-wm vae fit-pca` and `vae encode` on a synthetic dataset, then a
model folder whose autoencoder is the codec (as the bundled model's is) generates, streams and evaluates."""

import json

import numpy as np
import pytest
import torch
from pipeline_helpers import randomized_transformer

from sana_wm.ae.patch_pca import PatchPCACodec
from sana_wm.camera.presets import make_preset
from sana_wm.cli import main
from sana_wm.data import LatentCache, read_clips
from sana_wm.data.latents import frames_to_vae_input, prepare_clip
from sana_wm.model import save_pretrained
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.pipeline.export import export_model_folder
from sana_wm.pipeline.vae import VideoVAE
from sana_wm.pipeline.video import read_video, to_uint8_frames
from sana_wm.synth.dataset import write_synthetic_dataset


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    base = tmp_path_factory.mktemp("codec")
    data = base / "data"
    write_synthetic_dataset(data, 10, seconds=1.0, size=(32, 48), frames_codec="npz", with_depth=False)
    assert main(["vae", "fit-pca", "--data", str(data), "--out", str(base / "codec"), "--patch-size", "16",
                 "--channels", "16", "--frames", "17", "--max-clips", "8", "--held-out", "2"]) == 0
    return {"base": base, "data": data, "codec": base / "codec"}


def test_fit_pca_cli_writes_a_loadable_codec_and_a_report(fitted):
    report = json.loads((fitted["codec"] / "report.json").read_text())
    assert report["held_out_clips"] == 2 and report["config"]["fitted_on"]["clips"] == 8
    assert 0 < report["config"]["explained_variance"] < 1
    codec = VideoVAE.from_pretrained(fitted["codec"])
    assert isinstance(codec, PatchPCACodec) and codec.latent_channels == 16 and codec.spatial_stride == 16
    # the reported held-out PSNR is that of the last two clips through the codec
    clips = list(read_clips(fitted["data"]))[8:]
    psnrs = []
    for clip in clips:
        x = frames_to_vae_input(clip.frames_numpy()[:17])
        mse = ((codec.decode(codec.encode(x)) - x) ** 2).mean(dim=(0, 1, 3, 4)) / 4
        psnrs.extend((10 * torch.log10(1 / mse)).tolist())
    assert report["held_out_psnr"] == pytest.approx(float(np.mean(psnrs)), rel=1e-5)


def test_encode_cli_fills_the_cache_with_codec_latents(fitted):
    assert main(["vae", "encode", str(fitted["data"]), "--vae", str(fitted["codec"]), "--frames", "17"]) == 0
    codec = VideoVAE.from_pretrained(fitted["codec"])
    clip = prepare_clip(list(read_clips(fitted["data"]))[3], num_frames=17)
    cached = LatentCache(fitted["data"]).load(clip.key)
    assert cached.latents.shape == (1, 16, 3, 2, 3)
    torch.testing.assert_close(cached.latents, codec.encode(frames_to_vae_input(clip.frames_numpy())))


def test_fit_pca_cli_errors(fitted, tmp_path, capsys):
    assert main(["vae", "fit-pca", "--data", str(fitted["data"]), "--out", str(tmp_path / "x"), "--frames", "16"]) == 2
    assert "--frames must be 8k+1" in capsys.readouterr().err
    assert main(["vae", "fit-pca", "--data", str(fitted["data"]), "--out", str(tmp_path / "x"), "--frames", "25"]) == 2
    assert "has 17 frames; --frames is 25" in capsys.readouterr().err


def test_model_with_the_codec_generates_streams_and_evaluates(fitted, tmp_path):
    from sana_wm.eval.model_adapter import autoencoder_roundtrip_fn

    tiny = randomized_transformer()
    assert tiny.config.in_channels == 16  # the codec's channel count, so the tiny config fits unchanged
    ckpt = tmp_path / "step-1"
    save_pretrained(tiny, ckpt)
    out = export_model_folder(ckpt, fitted["codec"], tmp_path / "model", image_size=(32, 48), fps=16,
                              sampler={"steps": 2, "shift": 2.0}, use_ema=False, dtype=torch.float32)
    assert (out / "ltx2_causal_vae" / "codec.safetensors").is_file()
    pipe = SanaWMPipeline.from_pretrained(out, device="cpu", dtype="fp32")
    assert isinstance(pipe.vae, PatchPCACodec)
    first = list(read_clips(fitted["data"]))[9].frames_numpy()[0]
    result = pipe.generate(first, make_preset("dolly", seconds=3.0, fps=16), num_frames=49,
                           output=tmp_path / "v.mp4", progress=False, keep_frames=True)
    frames, fps = read_video(tmp_path / "v.mp4")
    assert frames.shape == (49, 32, 48, 3) and fps == 16 and result.frames.shape == (49, 32, 48, 3)
    # frame 0 is the clean conditioning latent decoded: the image through the codec
    codec = pipe.vae
    expected = to_uint8_frames(codec.decode(codec.encode(frames_to_vae_input(first[None]))))[0]
    assert np.abs(result.frames[0].astype(int) - expected.astype(int)).max() <= 1
    # later frames are generated (they differ from frame 0) and finite
    assert np.abs(result.frames[30].astype(int) - result.frames[0].astype(int)).mean() > 1
    # the evaluation's autoencoder ceiling runs through the codec
    video = list(read_clips(fitted["data"]))[9].frames_numpy()[:17]
    ceiling = autoencoder_roundtrip_fn(pipe)(video)
    assert ceiling.shape == video.shape
    direct = to_uint8_frames(codec.decode(codec.encode(frames_to_vae_input(video))))
    np.testing.assert_array_equal(ceiling, direct)
