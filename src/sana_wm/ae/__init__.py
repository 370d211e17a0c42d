"""Autoencoders we train ourselves: the small LTX-2-style video VAE of the bundled synthetic-world model."""

from sana_wm.ae.synth_vae import (
    LATENT_CHANNELS,
    SPATIAL_COMPRESSION,
    SYNTH_VAE_CONFIG,
    VAETrainConfig,
    build_synth_vae,
    fit_latent_stats,
    load_frames,
    reconstruction_psnr,
    train_synth_vae,
)

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
