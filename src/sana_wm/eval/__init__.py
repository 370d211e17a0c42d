"""Evaluation: frame metrics, camera-following errors, camera paths estimated from video (OpenCV), and the
protocol that scores a model on the synthetic world against exact ground truth.

    frame_metrics(generated, reference)                  # PSNR / SSIM per frame and mean
    estimate_poses(frames, intrinsics).trajectory         # c2w from video, up to scale
    camera_errors(reference, estimate)                    # RotErr, TransErr_rel, CamMC_rel, ATE (SANA-WM alignment)
    evaluate_synth(generate_fn, seeds=..., trajectories=..., out_dir=...)

OpenCV is imported only by the pose estimator and the synthetic protocol (lazily from here).
"""

from sana_wm.eval.baselines import GenerateFn, identity_trajectory, repeat_first_frame, static_camera
from sana_wm.eval.metrics import frame_metrics, psnr, psnr_frames, revisit_consistency, ssim, ssim_frames
from sana_wm.eval.pose_metrics import ALIGNMENTS, CameraErrors, camera_errors, umeyama_sim3

_LAZY = {
    "PoseEstimate": "sana_wm.geometry.odometry",
    "PoseEstimatorConfig": "sana_wm.geometry.odometry",
    "estimate_poses": "sana_wm.geometry.odometry",
    "evaluate_synth": "sana_wm.eval.synth_eval",
    "make_oracle": "sana_wm.eval.synth_eval",
    "build_clip": "sana_wm.eval.synth_eval",
}

__all__ = [
    "ALIGNMENTS",
    "CameraErrors",
    "GenerateFn",
    "camera_errors",
    "frame_metrics",
    "identity_trajectory",
    "psnr",
    "psnr_frames",
    "repeat_first_frame",
    "revisit_consistency",
    "ssim",
    "ssim_frames",
    "static_camera",
    "umeyama_sim3",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sana_wm.eval' has no attribute {name!r}")
