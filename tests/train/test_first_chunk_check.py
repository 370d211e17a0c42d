"""scripts/first_chunk_check.py: the first-chunk diagnosis of the bundled model (docs/models/sana-wm-synth.md).

A residual-x0 transformer whose output layer is zero predicts the conditioning latent frame for every frame,
whatever the noise. So the script's "model" PSNR must equal the PSNR of decoding that latent repeated, and
its "repeat frame 0" PSNR that of the decoded frame 0 held; both are recomputed here from the encoded clips.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sana_wm.cli import main as cli
from sana_wm.data import LatentCache, read_clips
from sana_wm.model import SanaWMTransformer, get_config, save_pretrained
from sana_wm.synth.dataset import write_synthetic_dataset
from sana_wm.vae import VideoVAE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "first_chunk_check.py"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a - b) / 2).pow(2).mean().clamp_min(1e-12)
    return float(-10 * torch.log10(mse))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("first-chunk")
    data, codec = base / "data", base / "codec"
    write_synthetic_dataset(data, 4, seconds=1.6, size=(32, 32), frames_codec="npz", with_depth=False)
    assert cli(["vae", "fit-pca", "--data", str(data), "--out", str(codec), "--patch-size", "16",
                "--channels", "16", "--frames", "25", "--max-clips", "4", "--held-out", "0"]) == 0
    assert cli(["vae", "encode", str(data), "--vae", str(codec), "--frames", "25"]) == 0
    config = dataclasses.replace(get_config("tiny"), in_channels=16, prediction="sample_residual")
    config.save_json(base / "model.json")
    torch.manual_seed(0)
    model = SanaWMTransformer(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
        model.final_layer.linear.weight.zero_()
        model.final_layer.linear.bias.zero_()
    weights = save_pretrained(model, base / "model")
    train = {
        "output_dir": str(base / "unused"), "seed": 0, "precision": "fp32",
        "model": {"name": None, "config_path": str(base / "model.json")},
        "data": {"root": str(data), "window": 25, "fps": 16.0, "size": [32, 32], "spatial_stride": 16,
                 "batch_size": 2, "window_mode": "start", "latents": "latent_cache", "text": "none"},
        "objective": {"recipe": "chunk_causal", "shift": 3.0, "image_condition_prob": 1.0},
        "stages": [{"steps": 1}],
        "validation": {"every": 1, "num_batches": 2},
        "logging": {"progress_bar": False},
    }
    (base / "train.yaml").write_text(yaml.safe_dump(train))
    return {"data": data, "codec": codec, "weights": weights, "config": base / "train.yaml"}


def test_zero_residual_model_scores_as_its_repeated_anchor(setup):
    done = subprocess.run([sys.executable, str(SCRIPT), str(setup["weights"]), "--config", str(setup["config"]),
                           "--codec", str(setup["codec"]), "--sigmas", "1,0.3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["sigma"] for r in rows] == [1.0, 0.3]

    vae = VideoVAE.from_pretrained(setup["codec"])
    cache = LatentCache(setup["data"])
    anchored = {g: [] for g in (1, 2, 3)}
    held = {g: [] for g in (1, 2, 3)}
    for clip in read_clips(setup["data"]):
        z = cache.load(clip.key).latents[:, :, :4]
        truth = vae.decode(z)
        pred = vae.decode(z[:, :, :1].expand_as(z).contiguous())
        for g in (1, 2, 3):
            frames = slice(8 * g - 7, 8 * g + 1)
            anchored[g].append(_psnr(pred[:, :, frames], truth[:, :, frames]))
            held[g].append(_psnr(truth[:, :, :1].expand_as(truth[:, :, frames]), truth[:, :, frames]))
    for row in rows:  # the noise level cannot matter: the prediction is the anchor
        for g in (1, 2, 3):
            name = f"frames {8 * g - 7}-{8 * g}"
            assert row["model_psnr"][name] == pytest.approx(round(float(np.mean(anchored[g])), 2), abs=0.011)
            assert row["repeat_frame0_psnr"][name] == pytest.approx(round(float(np.mean(held[g])), 2), abs=0.011)


def test_val_loss_weightings_scores_each_checkpoint_on_the_same_clips_and_noise(setup, tmp_path):
    """scripts/val_loss_weightings.py: power 0 weighs every channel 1, so it must equal the plain loss; the
    same weights given twice must score the same (same clips, same noise); power 1 weighs channels by their
    variance, which changes the loss."""
    script = SCRIPT.with_name("val_loss_weightings.py")
    out = tmp_path / "weightings.json"
    done = subprocess.run([sys.executable, str(script), str(setup["weights"]), str(setup["weights"]), "--config",
                           str(setup["config"]), "--codec", str(setup["codec"]), "--powers", "0,1", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0]["power 0"] == pytest.approx(rows[0]["plain"], rel=1e-6)
    assert abs(rows[0]["power 1"] - rows[0]["plain"]) > 1e-3 * rows[0]["plain"]
