"""The synthetic-world VAE: it learns, resumes exactly, and its folder is a VideoVAE with fitted statistics."""

import json

import numpy as np
import pytest
import torch

from sana_wm.ae import VAETrainConfig, build_synth_vae, train_synth_vae
from sana_wm.vae import VideoVAE

SMALL = {"block_out_channels": (8, 16, 32), "decoder_block_out_channels": (8, 16, 32), "latent_channels": 8}


def _clips(n=6, frames=17, size=32, seed=0):
    """Smooth moving gradients: easy to compress, so a few steps visibly lower the loss."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    clips = []
    for _ in range(n):
        a, b, c = rng.uniform(0.5, 2.0, 3)
        vid = [np.stack([np.sin(a * xx * 3 + t * 0.1) , np.cos(b * yy * 3 - t * 0.1), np.sin(c * (xx + yy) * 2)], -1)
               for t in range(frames)]
        clips.append(((np.stack(vid) * 0.5 + 0.5) * 255).astype(np.uint8))
    return clips


def test_the_configured_strides():
    vae = build_synth_vae()
    assert (vae.spatial_compression_ratio, vae.temporal_compression_ratio) == (16, 8)
    x = torch.zeros(1, 3, 17, 32, 48)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    assert z.shape == (1, 64, 3, 2, 3)


def test_training_lowers_the_loss_and_writes_a_video_vae(tmp_path):
    cfg = VAETrainConfig(steps=40, batch_size=2, window=9, lr=3e-3, warmup_steps=5, checkpoint_every=20, held_out=2)
    report = train_synth_vae([], tmp_path / "run", cfg, clips=_clips(), vae_overrides=SMALL, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert report["held_out_psnr_db"] > 10
    vae = VideoVAE.from_pretrained(tmp_path / "run" / "vae")
    assert (vae.spatial_stride, vae.temporal_stride, vae.latent_channels) == (16, 8, 8)
    # The fitted statistics make the training clips' latents roughly zero-mean, unit-scale per channel.
    clip = _clips()[3]
    video = torch.from_numpy(clip[:9]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    z = vae.encode(video)
    per_channel_std = z.transpose(0, 1).flatten(1).std(1)
    assert z.mean().abs() < 0.5 and 0.3 < per_channel_std.mean() < 3


def test_interrupt_and_resume_is_exact(tmp_path):
    cfg = VAETrainConfig(steps=6, batch_size=2, window=9, lr=3e-3, warmup_steps=2, checkpoint_every=3, held_out=2)
    clips = _clips(n=4)
    train_synth_vae([], tmp_path / "a", cfg, clips=clips, vae_overrides=SMALL, progress=False)
    train_synth_vae([], tmp_path / "b", cfg, clips=clips, vae_overrides=SMALL, progress=False, stop_after=3)
    with pytest.raises(FileExistsError):
        train_synth_vae([], tmp_path / "b", cfg, clips=clips, vae_overrides=SMALL, progress=False)
    train_synth_vae([], tmp_path / "b", cfg, clips=clips, vae_overrides=SMALL, progress=False, resume=True)
    a = [json.loads(x)["loss"] for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    b = [json.loads(x)["loss"] for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(a, b, rtol=1e-5)
    sa = VideoVAE.from_pretrained(tmp_path / "a" / "vae").vae.state_dict()
    sb = VideoVAE.from_pretrained(tmp_path / "b" / "vae").vae.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)


def test_decoder_only_fine_tuning_keeps_the_latents(tmp_path):
    """--decoder-only from a trained VAE: encoder and latent statistics stay bit-identical (so a transformer
    trained on its latents stays valid), the decoder changes, and held-out PSNR does not get worse."""
    clips = _clips()
    base_cfg = VAETrainConfig(steps=20, batch_size=2, window=9, lr=3e-3, warmup_steps=5, checkpoint_every=10,
                              held_out=2)
    train_synth_vae([], tmp_path / "base", base_cfg, clips=clips, vae_overrides=SMALL, progress=False)
    with pytest.raises(ValueError, match="init_from"):
        train_synth_vae([], tmp_path / "x", VAETrainConfig(decoder_only=True), clips=clips, progress=False)
    cfg = VAETrainConfig(steps=30, batch_size=2, window=9, lr=2e-3, warmup_steps=2, checkpoint_every=10, held_out=2,
                         decoder_only=True)
    report = train_synth_vae([], tmp_path / "dec", cfg, clips=clips, progress=False,
                             init_from=tmp_path / "base" / "vae")
    before = VideoVAE.from_pretrained(tmp_path / "base" / "vae").vae.state_dict()
    after = VideoVAE.from_pretrained(tmp_path / "dec" / "vae").vae.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("decoder.") for k in changed), sorted(changed)[:5]
    assert not any(k.startswith("encoder.") or k.startswith("latents_") for k in changed)
    assert report["init"]["held_out_psnr_db"] == pytest.approx(
        json.loads((tmp_path / "base" / "report.json").read_text())["held_out_psnr_db"])
    assert report["held_out_psnr_db"] > report["init"]["held_out_psnr_db"] - 0.5


def test_eight_times_spatial_compression():
    """--spatial-compression 8: a 2x2 patch gives 4x the latent cells, and VideoVAE reads the stride."""
    from sana_wm.ae import SPATIAL_COMPRESSION

    vae = build_synth_vae(0, **SMALL, **SPATIAL_COMPRESSION[8])
    with torch.no_grad():
        z = vae.encode(torch.zeros(1, 3, 17, 32, 48)).latent_dist.mode()
        video = vae.decode(z, temb=None, return_dict=False)[0]
    assert z.shape == (1, 8, 3, 4, 6) and video.shape == (1, 3, 17, 32, 48)
    assert vae.spatial_compression_ratio == 8
