"""Video codecs: the LTX-2 video VAE with SANA-WM's latent normalisation, and chunked (streaming) decoding.

A leaf package: the pipeline, the trainer, evaluation and the bundled model's codec all import it, and it
imports none of them (nor any of ``sana_wm`` beyond the package root), so codec code can never pull in the
pipeline. Other codecs with the same interface are loaded by name through :data:`CODEC_CLASSES`.
"""

from sana_wm.vae.video_vae import CODEC_CLASSES, StreamingDecoder, VideoVAE, num_latent_frames, num_video_frames

__all__ = ["CODEC_CLASSES", "StreamingDecoder", "VideoVAE", "num_latent_frames", "num_video_frames"]
