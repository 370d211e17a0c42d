"""The model shipped in the package: complete, small enough, loads offline, and generates from every example."""

import numpy as np
import pytest
import yaml

from sana_wm.bundled import bundled_model_dir, example_files
from sana_wm.cli import main
from sana_wm.pipeline.video import read_video

MAX_WEIGHT_BYTES = 40 * 2**20  # the budget for shipped weights


def test_bundled_model_is_complete_and_small():
    root = bundled_model_dir()
    weights = [p for p in root.rglob("*") if p.suffix in (".pt", ".safetensors")]
    assert {p.parent.name for p in weights} == {"sana_dit", "ltx2_causal_vae"}
    assert sum(p.stat().st_size for p in weights) <= MAX_WEIGHT_BYTES
    settings = yaml.safe_load((root / "config.yaml").read_text())["sana_wm"]
    assert settings["text_encoder"] == "none" and settings["image_size"] == [128, 128]
    # the transformer predicts x0 on the 128 channels of the linear patch codec, 8x8 tokens at 128x128
    assert settings["transformer"]["prediction"] == "sample_warp" and settings["transformer"]["in_channels"] == 128
    from sana_wm.ae.patch_pca import PatchPCACodec
    from sana_wm.pipeline.vae import VideoVAE

    codec = VideoVAE.from_pretrained(root / "ltx2_causal_vae")
    assert isinstance(codec, PatchPCACodec) and codec.latent_channels == 128 and codec.spatial_stride == 16


def test_examples_are_bundled():
    examples = example_files()
    assert len(examples) >= 3
    for image, camera in examples.values():
        assert image.is_file() and camera.is_file()


def test_generate_defaults_to_the_bundled_model(tmp_path, capsys):
    name = next(iter(example_files()))
    out = tmp_path / "bundled.mp4"
    assert main(["generate", "--example", name, "--num-frames", "25", "--no-progress", "--out", str(out)]) == 0
    frames, fps = read_video(out)
    assert frames.shape == (25, 128, 128, 3) and fps == 16
    # A trained model continues the scene: the first frame matches the input closely, and the video moves.
    from PIL import Image

    first = np.asarray(Image.open(example_files()[name][0]).convert("RGB"), dtype=np.float64)
    mse = np.mean((frames[0].astype(np.float64) - first) ** 2)
    assert 10 * np.log10(255**2 / mse) > 24  # frame 0 is the input through the codec (about 27 dB)
    assert np.abs(frames[-1].astype(np.int16) - frames[0].astype(np.int16)).mean() > 1.0


@pytest.mark.parametrize("bad", ["--seconds 0.5", "--action x-4"])
def test_clear_errors_with_the_bundled_model(tmp_path, capsys, bad):
    name = next(iter(example_files()))
    flag, value = bad.split()
    assert main(["generate", "--example", name, flag, value, "--out", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.startswith("sana-wm: error:")
