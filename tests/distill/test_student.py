"""The distilled student is a streaming model folder that `sana-wm generate` runs with its own timesteps."""

import json

import numpy as np
import torch
from distill_helpers import distill_config
from PIL import Image

from sana_wm.camera.formats import write_trajectory
from sana_wm.camera.presets import make_preset
from sana_wm.cli import main
from sana_wm.distill import run_distill
from sana_wm.model import from_pretrained
from tiny_models import save_tiny_text_encoder, tiny_vae


def test_generate_streams_the_student_with_its_step_list(distill_dataset, teacher, tmp_path):
    vae = tmp_path / "vae"
    tiny_vae(causal_decoder=True).save_pretrained(vae)
    cfg = distill_config(distill_dataset, tmp_path / "sf", teacher, stage="self_forcing", steps=1,
                         denoising_steps=[1000, 700, 0], export={"vae": str(vae), "image_size": [64, 96]})
    student = run_distill(cfg).student
    assert (student / "ltx2_causal_vae" / "config.json").is_file()
    ours = from_pretrained(student / "transformer", dtype=torch.float32)
    released = from_pretrained(student / "sana_dit" / "model.pt", ours.config, dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), released.state_dict().values(),
                                                strict=True))

    Image.fromarray(np.full((64, 96, 3), 90, np.uint8)).save(tmp_path / "first.png")
    write_trajectory(make_preset("orbit", seconds=1.5, fps=16), tmp_path / "path.npz")
    text_encoder = save_tiny_text_encoder(tmp_path / "gemma")
    out = tmp_path / "video.mp4"
    code = main(["generate", "--variant", "streaming", "--model", str(student), "--image", str(tmp_path / "first.png"),
                 "--camera", str(tmp_path / "path.npz"), "--text-encoder", str(text_encoder), "--num-frames", "25",
                 "--no-refiner", "--no-progress", "--device", "cpu", "--out", str(out)])
    assert code == 0 and out.is_file()
    settings = json.loads(out.with_name("video.sana-wm.json").read_text())["settings"]
    assert settings["steps"] == 2  # the student's own list, not the released [1000, 960, 889, 727, 0]
    assert settings["sigmas"] == [1.0, 0.699999988079071, 0.0]  # float32 0.7, as the model reads it
