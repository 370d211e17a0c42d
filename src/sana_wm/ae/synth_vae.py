"""A small LTX-2-style video autoencoder for the synthetic world, trained by us.

The released LTX-2 VAE (2 GB, 32x spatial / 8x temporal, 128 channels) is far too heavy for a laptop CPU.
The bundled model uses the same diffusers class, ``AutoencoderKLLTX2Video``, at a small size, so every
part of the pipeline that handles the released VAE (normalisation, ``8k + 1`` frame counts, chunked causal
decoding for streaming) handles this one unchanged:

* 16x spatial and 8x temporal compression: a 128x128 clip of ``8k + 1`` frames becomes ``k + 1`` latent
  frames of ``8 x 8`` cells with :data:`LATENT_CHANNELS` channels (96x fewer numbers than pixels),
* a causal encoder and decoder (the streaming pipeline decodes chunk by chunk),
* per-channel ``latents_mean`` / ``latents_std`` fitted on the training data after training, so the
  transformer sees unit-scale latents exactly as it does with the released VAE.

Training (:func:`train_synth_vae`) is a plain deterministic autoencoder (the posterior mode, no KL term)
with an L1 + MSE pixel loss, a small latent L2 penalty that keeps the scale bounded, and Gaussian noise
added to the latents so that the decoder tolerates the imperfect latents a generator produces. It
checkpoints atomically and resumes exactly (model, optimizer, step, RNG states).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "LATENT_CHANNELS",
    "SPATIAL_COMPRESSION",
    "SYNTH_VAE_CONFIG",
    "VAETrainConfig",
    "build_synth_vae",
    "fit_latent_stats",
    "load_frames",
    "reconstruction_psnr",
    "train_synth_vae",
]

LATENT_CHANNELS = 64

# diffusers AutoencoderKLLTX2Video arguments: patchify 4x, then downsample (2x space + 2x time) twice and
# 2x time once: 16x space, 8x time. The decoder mirrors it. 1.4 M parameters: narrow, because it must train
# on two CPU cores (one step of 4 x 9 frames at 128x128 takes about 1.3 s there).
SYNTH_VAE_CONFIG: dict = {
    "latent_channels": LATENT_CHANNELS,
    "block_out_channels": (16, 32, 64),
    "down_block_types": ("LTX2VideoDownBlock3D",) * 3,
    "layers_per_block": (1, 1, 1, 1),
    "spatio_temporal_scaling": (True, True, True),
    "downsample_type": ("spatiotemporal", "spatiotemporal", "temporal"),
    "decoder_block_out_channels": (16, 32, 64),
    "decoder_layers_per_block": (1, 1, 1, 1),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "upsample_type": ("temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "decoder_inject_noise": (False, False, False, False),
    "patch_size": 4,
    "encoder_causal": True,
    "decoder_causal": True,
    "spatial_compression_ratio": 16,
    "temporal_compression_ratio": 8,
}


SPATIAL_COMPRESSION: dict[int, dict] = {16: {}, 8: {"patch_size": 2, "spatial_compression_ratio": 8}}
"""Overrides of :data:`SYNTH_VAE_CONFIG` per spatial compression: 16x (the bundled model's) or 8x (a 2x2
patch instead of 4x4: 4x the latent cells, so more detail and 4x the transformer's tokens)."""


def build_synth_vae(seed: int = 0, **overrides):
    """A freshly initialised ``AutoencoderKLLTX2Video`` with :data:`SYNTH_VAE_CONFIG` (``overrides`` change
    single arguments, e.g. smaller widths for tests)."""
    from diffusers import AutoencoderKLLTX2Video

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKLLTX2Video(**{**SYNTH_VAE_CONFIG, **overrides})


@dataclass
class VAETrainConfig:
    steps: int = 1500
    batch_size: int = 4
    window: int = 9  # raw frames per training sample (8k + 1): the first frame alone + one 8-frame group
    lr: float = 1e-3
    warmup_steps: int = 50
    latent_l2: float = 1e-4  # weight of mean(z^2): keeps the latent scale bounded without a KL term
    latent_noise: float = 0.1  # std of the noise added to latents before decoding, relative to their std
    checkpoint_every: int = 100
    seed: int = 0
    held_out: int = 8  # clips kept out of training and used to report reconstruction PSNR
    # Fine-tune only the decoder of the VAE given as ``init_from`` (train_synth_vae): the encoder, and so
    # every latent a transformer was trained on, stays bit-identical, and the fitted latent statistics
    # are kept; a sharper decoder then improves a shipped model without retraining its transformer.
    decoder_only: bool = False


def load_frames(roots: Sequence[str | Path], *, limit: int | None = None) -> list[np.ndarray]:
    """Every clip's frames ``(F, H, W, 3)`` uint8 from the datasets at ``roots``, in index order."""
    from sana_wm.data import read_clips

    clips = []
    for root in roots:
        for clip in read_clips(root):
            clips.append(clip.frames_numpy())
            if limit is not None and len(clips) >= limit:
                return clips
    if not clips:
        raise ValueError(f"no readable clips in {', '.join(map(str, roots))}")
    return clips


def _batch(clips: list[np.ndarray], rng: np.random.Generator, batch_size: int, window: int) -> Tensor:
    out = []
    for _ in range(batch_size):
        frames = clips[int(rng.integers(len(clips)))]
        if frames.shape[0] < window:
            raise ValueError(f"a clip has {frames.shape[0]} frames; the VAE trains on {window}-frame windows")
        start = int(rng.integers(frames.shape[0] - window + 1))
        x = frames[start:start + window]
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        out.append(torch.from_numpy(np.ascontiguousarray(x)))
    video = torch.stack(out).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # (B, 3, F, H, W)
    return video


def _save_checkpoint(path: Path, vae, optimizer, step: int, rng: np.random.Generator, losses: list) -> None:
    state = {"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
             "losses": torch.tensor(losses, dtype=torch.float64)}
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def fit_latent_stats(vae, clips: list[np.ndarray], *, window: int = 9, max_clips: int = 64) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of the raw latents of up to ``max_clips`` clips (first ``window`` frames)."""
    zs = []
    for frames in clips[:max_clips]:
        video = torch.from_numpy(frames[:window]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        video = video.to(vae.device)
        zs.append(vae.encode(video).latent_dist.mode().transpose(0, 1).flatten(1).cpu())  # (C, N)
    z = torch.cat(zs, dim=1)
    return z.mean(1), z.std(1).clamp_min(1e-4)


@torch.no_grad()
def reconstruction_psnr(vae, clips: list[np.ndarray], *, window: int = 17) -> float:
    """Mean PSNR (dB, 8-bit range) of encode-decode over the first ``window`` frames of each clip."""
    values = []
    for frames in clips:
        video = torch.from_numpy(frames[:window]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        video = video.to(vae.device)
        z = vae.encode(video).latent_dist.mode()
        rec = vae.decode(z, temb=None, return_dict=False)[0].clamp(-1, 1)
        mse = ((rec - video) * 127.5).pow(2).mean().item()
        values.append(10 * math.log10(255.0**2 / max(mse, 1e-10)))
    return float(np.mean(values))


def train_synth_vae(data_roots: Sequence[str | Path], out_dir: str | Path, config: VAETrainConfig | None = None, *,
                    resume: bool = False, progress: bool = True, clips: list[np.ndarray] | None = None,
                    vae_overrides: dict | None = None, stop_after: int | None = None,
                    init_from: str | Path | None = None, device: str | torch.device = "cpu") -> dict:
    """Train the synthetic-world VAE on the clips of ``data_roots`` and write ``out_dir/vae/`` (a diffusers
    folder with fitted latent statistics) plus ``out_dir/train_log.jsonl`` and ``out_dir/report.json``.
    ``out_dir/checkpoint.pt`` is written every ``checkpoint_every`` steps; ``resume=True`` continues from
    it exactly. ``stop_after`` ends the run early after that many steps (as if interrupted). ``init_from``
    (a VAE folder) starts from trained weights instead of a fresh initialisation; ``config.decoder_only``
    (which needs it) trains the decoder alone and keeps that VAE's encoder and latent statistics. ``device``:
    where to train (e.g. "cuda"); batches are drawn on the CPU either way, so the run is reproducible."""
    cfg = config or VAETrainConfig()
    if cfg.decoder_only and init_from is None:
        raise ValueError("decoder_only fine-tunes the decoder of a trained VAE: give init_from (a VAE folder)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists: pass resume=True (--resume) to continue it, or use a new "
                              "output folder")
    if clips is None:
        clips = load_frames(data_roots)
    if len(clips) <= cfg.held_out:
        raise ValueError(f"{len(clips)} clips: need more than held_out={cfg.held_out}")
    train_clips, held_out = clips[cfg.held_out:], clips[:cfg.held_out]

    if init_from is not None:
        from diffusers import AutoencoderKLLTX2Video

        if not (Path(init_from) / "config.json").is_file():
            raise FileNotFoundError(f"{init_from}: not a VAE folder (no config.json)")
        vae = AutoencoderKLLTX2Video.from_pretrained(str(init_from), torch_dtype=torch.float32)
    else:
        vae = build_synth_vae(cfg.seed, **(vae_overrides or {}))
    vae.to(device)
    if init_from is not None and not (resume and ckpt_path.exists()):  # the starting VAE's held-out score
        vae.eval()
        before = reconstruction_psnr(vae, held_out, window=cfg.window)
        (out / "init.json").write_text(json.dumps({"init_from": str(init_from), "held_out_psnr_db": before}) + "\n")
    vae.train()
    trained = vae.decoder.parameters() if cfg.decoder_only else vae.parameters()
    if cfg.decoder_only:
        vae.encoder.requires_grad_(False)
        vae.encoder.eval()
    trained = [p for p in trained if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    step, losses = 0, []
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        vae.load_state_dict(state["model"])  # (the optimizer's state follows its parameters' device)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        losses = state["losses"].tolist()

    log_path = out / "train_log.jsonl"
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="training the VAE", unit="step")
    started = time.perf_counter()
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    while step < end:
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
        lr *= 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) * 0.9 + 0.1  # cosine to 10%
        for group in optimizer.param_groups:
            group["lr"] = lr
        video = _batch(train_clips, rng, cfg.batch_size, cfg.window).to(device)
        with torch.set_grad_enabled(not cfg.decoder_only):
            z = vae.encode(video).latent_dist.mode()
        eps = torch.randn(z.shape).to(z.device)  # drawn on the CPU: the same run (and resume) on any device
        noisy = z + cfg.latent_noise * z.detach().std(dim=(0, 2, 3, 4), keepdim=True) * eps
        rec = vae.decode(noisy, temb=None, return_dict=False)[0]
        loss = (rec - video).abs().mean() + (rec - video).pow(2).mean() + cfg.latent_l2 * z.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        step += 1
        loss_value = float(loss.detach())
        losses.append(loss_value)
        with log_path.open("a") as f:
            f.write(json.dumps({"step": step, "loss": loss_value, "lr": lr}) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if step % cfg.checkpoint_every == 0 or step == end:
            _save_checkpoint(ckpt_path, vae, optimizer, step, rng, losses)
    if bar is not None:
        bar.close()
    report = {"steps_done": step, "seconds_this_run": time.perf_counter() - started,
              "config": asdict(cfg), "final_loss": losses[-1] if losses else None}
    if step < cfg.steps:
        return report

    vae.eval()
    if not cfg.decoder_only:  # the encoder changed: refit the statistics the transformer's latents use
        mean, std = fit_latent_stats(vae, train_clips, window=cfg.window)
        vae.latents_mean.copy_(mean)
        vae.latents_std.copy_(std)
    report["held_out_psnr_db"] = reconstruction_psnr(vae, held_out, window=cfg.window)
    if (out / "init.json").is_file():  # the starting VAE's score on the same held-out clips
        report["init"] = json.loads((out / "init.json").read_text())
    report["parameters"] = sum(p.numel() for p in vae.parameters())
    final = out / "vae"
    tmp = out / ".vae.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    vae.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
