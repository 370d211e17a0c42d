"""Tiny random-weight models shared by the test directories."""

import torch

from sana_wm.vae import VideoVAE


def tiny_vae(*, latent_channels: int = 16, causal_decoder: bool = True, seed: int = 0) -> VideoVAE:
    """A random-weight ``AutoencoderKLLTX2Video`` with the released strides (8 in time, 32 in space) and
    small widths (~0.4 M parameters), with random non-trivial ``latents_mean`` / ``latents_std``."""
    from diffusers import AutoencoderKLLTX2Video

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLLTX2Video(
            latent_channels=latent_channels, block_out_channels=(8, 16, 32, 32),
            decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1), decoder_causal=causal_decoder,
            spatial_compression_ratio=32, temporal_compression_ratio=8,
        )
        vae.latents_mean.copy_(torch.randn(latent_channels) * 0.1)
        vae.latents_std.copy_(torch.rand(latent_channels) * 0.5 + 0.75)
    return VideoVAE(vae)
