"""Metric depth from a transformers depth-estimation model (Depth Anything metric, Depth Pro, ...), loaded
from a local folder or a hub id the user names with ``--depth-model``.

Only metric models can give a scale: a model whose config declares relative depth
(``depth_estimation_type == "relative"``) is refused with a message saying so.
"""

from __future__ import annotations

import numpy as np

from sana_wm.errors import UserError

__all__ = ["DepthModel", "DepthModelError"]


class DepthModelError(UserError, ValueError):
    """The depth model cannot be loaded or is not a metric depth model."""


class DepthModel:
    def __init__(self, name_or_path: str, *, device: str = "cpu", batch_size: int = 4):
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            self.processor = AutoImageProcessor.from_pretrained(name_or_path)
            self.model = AutoModelForDepthEstimation.from_pretrained(name_or_path).to(device).eval()
        except (OSError, ValueError, KeyError) as err:
            raise DepthModelError(f"--depth-model {name_or_path}: cannot load a transformers depth-estimation "
                                  f"model and its image processor ({err})") from None
        kind = getattr(self.model.config, "depth_estimation_type", "metric")
        if kind == "relative":
            raise DepthModelError(f"--depth-model {name_or_path}: predicts relative depth, which has no scale; "
                                  "use a metric model (e.g. a Depth Anything V2 Metric checkpoint)")
        self.name = str(name_or_path)
        self.device = device
        self.batch_size = batch_size
        self._torch = torch

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` float32 metres for ``(N, H, W, 3)`` uint8 frames."""
        torch = self._torch
        H, W = frames.shape[1:3]
        out = []
        with torch.inference_mode():
            for i in range(0, len(frames), self.batch_size):
                batch = list(frames[i:i + self.batch_size])
                inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
                pred = self.model(**inputs).predicted_depth  # (B, h, w)
                pred = torch.nn.functional.interpolate(pred[:, None].float(), size=(H, W), mode="bilinear",
                                                       align_corners=False)[:, 0]
                out.append(pred.cpu().numpy())
        return np.concatenate(out).astype(np.float32)
