"""How well a transformer predicts the first generated chunk from the conditioning frame, by input noise level.

For each clip of a training config's validation set: frame 0 clean, latent frames 1-3 (video frames 1-24)
noised to ``sigma``, every later frame pure noise (chunk-causal, so they cannot affect the first chunk). The
model's clean-latent prediction of frames 1-3 is decoded with the codec and scored (PSNR) against the
decoded truth, beside the trivial predictor that repeats frame 0. Used for the session-9 diagnosis in
docs/models/sana-wm-synth.md ("Why the first second was hard"):

    python scripts/first_chunk_check.py --config configs/train/bundled_synth_residual.yaml \\
        --codec src/sana_wm/assets/sana-wm-synth/ltx2_causal_vae src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt

The config's ``model`` section decides how the weights are read (``synth-pca`` or ``synth-pca-residual``);
its ``validation`` (or ``data``) root must hold the encoded clips.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np
import torch
import yaml

from sana_wm.ops.gdn import released_chunk_lengths
from sana_wm.train.loop import Trainer
from sana_wm.train.objective import make_noisy
from sana_wm.vae import VideoVAE


def _psnr(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per-sample PSNR of two ``(B, 3, F, H, W)`` videos in [-1, 1]."""
    mse = ((a - b) / 2).pow(2).mean(dim=(1, 2, 3, 4)).clamp_min(1e-12)
    return (-10 * torch.log10(mse)).tolist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="transformer weights (model.pt, model.safetensors or a checkpoint folder)")
    p.add_argument("--config", required=True, help="training config: model section and validation clips")
    p.add_argument("--codec", required=True, help="the codec (VAE folder) the latents were encoded with")
    p.add_argument("--sigmas", default="1,0.857,0.6,0.3,0.1", help="noise levels of the first chunk")
    args = p.parse_args()

    raw = yaml.safe_load(open(args.config))
    vae = VideoVAE.from_pretrained(args.codec)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer.for_weights(raw, args.checkpoint, scratch)
        val_set = trainer._build_val_set()
        groups = (1, 2, 3)
        for s in (float(x) for x in args.sigmas.split(",")):
            model_psnr = {g: [] for g in groups}
            repeat_psnr = {g: [] for g in groups}
            for batch, _, noise in val_set:
                x0 = batch.latents
                B, T = x0.shape[0], x0.shape[2]
                sigma = torch.ones(B, T)
                sigma[:, 1:4] = s
                sigma[:, 0] = 0.0
                x_t, _ = make_noisy(x0, sigma, noise)
                with torch.no_grad():
                    v = trainer.model(x_t, (1000 * sigma)[:, None], batch.text, batch.text_mask, batch.camera_vector,
                                      batch.plucker, mode="chunk_causal",
                                      chunk_lengths=released_chunk_lengths(T, first=4, size=3))
                x0_hat = (x_t - sigma[:, None, :, None, None] * v)[:, :, :4]
                x0_hat[:, :, 0] = x0[:, :, 0]
                pred = vae.decode(x0_hat).clamp(-1, 1)
                truth = vae.decode(x0[:, :, :4]).clamp(-1, 1)
                for g in groups:
                    frames = slice(8 * g - 7, 8 * g + 1)
                    model_psnr[g] += _psnr(pred[:, :, frames], truth[:, :, frames])
                    repeat_psnr[g] += _psnr(truth[:, :, :1].expand_as(truth[:, :, frames]), truth[:, :, frames])
            def table(scores: dict) -> dict:
                return {f"frames {8 * g - 7}-{8 * g}": round(float(np.mean(scores[g])), 2) for g in groups}

            print(json.dumps({"sigma": s, "model_psnr": table(model_psnr), "repeat_frame0_psnr": table(repeat_psnr)}),
                  flush=True)


if __name__ == "__main__":
    main()
