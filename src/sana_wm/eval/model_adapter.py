"""A generation pipeline seen as the ``generate_fn`` the synthetic-world protocol calls."""

from __future__ import annotations

import numpy as np

from sana_wm.camera.trajectory import Trajectory
from sana_wm.eval.baselines import GenerateFn

__all__ = ["pipeline_generate_fn"]


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
