"""A generation pipeline seen as the ``generate_fn`` the synthetic-world protocol calls."""

from __future__ import annotations

import numpy as np

from sana_wm.camera.trajectory import Trajectory
from sana_wm.eval.baselines import GenerateFn

__all__ = ["autoencoder_roundtrip_fn", "pipeline_generate_fn", "weights_fingerprint"]


def pipeline_generate_fn(pipeline, *, variant: str | None = None, seed: int = 0, progress: bool = False,
                         **generate_kwargs) -> GenerateFn:
    """Wrap ``pipeline.generate``: the first ground-truth frame is the input image, the requested path
    (with its intrinsics, in pixels of that frame) is the camera. The model only makes 8k+1 frames (24k+1
    when streaming), so it is asked for the next count up, holding the last pose, and the video is
    trimmed to the requested length."""
    from sana_wm.camera.resample import fit_to_frames

    variant = variant or pipeline.variant
    granularity = 24 if variant == "streaming" else 8

    def generate(first_frame: np.ndarray, trajectory: Trajectory, num_frames: int) -> np.ndarray:
        want = 1 + granularity * -(-(num_frames - 1) // granularity)  # ceil to granularity*k + 1
        request = fit_to_frames(trajectory, want, extend="hold")
        result = pipeline.generate(first_frame, request, num_frames=want, variant=variant, seed=seed,
                                   progress=progress, keep_frames=True, **generate_kwargs)
        return result.frames[:num_frames]

    return generate


def weights_fingerprint(pipeline) -> dict:
    """What a pipeline's videos depend on besides the sampler settings, by content: the SHA-256 of the
    transformer file and of every file of the codec (VAE) folder, the model folder's settings and the
    quantization applied to the transformers, if any. The
    synthetic-world protocol keys its clip cache on it, so new weights written over old ones (a retrained
    model in the same folder) are evaluated afresh, and a renamed folder is not."""
    from sana_wm.pipeline.sidecar import sha256_file

    files = pipeline.files
    if files is None:
        raise ValueError("weights_fingerprint: this pipeline was built from modules, not loaded from a model folder; "
                         "pass evaluate_synth a weights fingerprint of your own")
    codec = sorted(p for p in files.vae.rglob("*") if p.is_file())
    fingerprint = {"transformer": sha256_file(files.dit),
                   "codec": {str(p.relative_to(files.vae)): sha256_file(p) for p in codec},
                   "settings": dict(files.settings)}
    quantized = {name: report.to_dict() for name, report in getattr(pipeline, "quantization", {}).items()
                 if report.precision != "bf16"}
    if quantized:  # the same files quantized make other videos (absent when not, so earlier caches still hit)
        fingerprint["quantization"] = quantized
    return fingerprint


def autoencoder_roundtrip_fn(pipeline):
    """The ``ceiling_fn`` of :func:`~sana_wm.eval.synth_eval.evaluate_synth` for a pipeline: a ground-truth
    video ``(F, H, W, 3)`` uint8 encoded and decoded, whole, by the pipeline's own video VAE (padded with its
    last frame to ``8k + 1`` frames, then trimmed back to ``F``)."""
    from sana_wm.data.latents import frames_to_vae_input
    from sana_wm.pipeline.video import to_uint8_frames

    vae = pipeline.vae
    stride = vae.temporal_stride

    def roundtrip(video: np.ndarray) -> np.ndarray:
        F = video.shape[0]
        k = 1 + stride * -(-(F - 1) // stride)
        padded = np.concatenate([video, np.repeat(video[-1:], k - F, axis=0)]) if k > F else video
        return to_uint8_frames(vae.decode(vae.encode(frames_to_vae_input(padded))))[:F]

    return roundtrip
