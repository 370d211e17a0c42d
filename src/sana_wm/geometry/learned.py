"""The interface for learned feed-forward pose estimators whose weights the user provides.

A learned backend is a network that reads two frames and returns their relative camera motion; the backend
runs it on consecutive frames and chains the motions into a path. The folder the user names holds:

    config.json         {"architecture": "sana-wm-relpose", "image_size": [H, W], "channels": [c1, c2, ...]}
    model.safetensors   the weights of :class:`RelativePoseNet` built from that config

:class:`RelativePoseNet` is a small convolutional encoder over the two frames stacked on channels
(``6 x H x W``, RGB in [0, 1]), global-average pooled, then a linear head to 6 numbers: an axis-angle
rotation and a translation of the second camera in the first camera's frame (``x_1 = R x_2 + t``, the
relative c2w). Any network with this contract can be put in its place by subclassing :class:`LearnedBackend`
and overriding :meth:`LearnedBackend.load`. A monocular network's translations carry its training data's
units, so the path still goes through the scale stage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sana_wm.camera.trajectory import Intrinsics
from sana_wm.errors import UserError
from sana_wm.geometry.backends import PoseResult

__all__ = ["ARCHITECTURE", "LearnedBackend", "LearnedWeightsError", "RelativePoseNet", "compose_relative"]

ARCHITECTURE = "sana-wm-relpose"


FORMAT = (f'a folder with config.json {{"architecture": "{ARCHITECTURE}", "image_size": [H, W], "channels": '
          '[c1, c2, ...]} and model.safetensors (the weights of sana_wm.geometry.learned.RelativePoseNet)')


class LearnedWeightsError(UserError, ValueError):
    """The learned estimator's folder is missing, has another architecture, or its weights do not fit."""


def compose_relative(rel_c2w: np.ndarray) -> np.ndarray:
    """``(F, 4, 4)`` c2w from ``(F - 1, 4, 4)`` relative motions ``frame i -> frame i+1`` (frame 0: identity)."""
    c2w = np.tile(np.eye(4), (len(rel_c2w) + 1, 1, 1))
    for i, rel in enumerate(rel_c2w):
        c2w[i + 1] = c2w[i] @ rel
    return c2w


def _net_class():
    import torch
    from torch import nn

    class _RelativePoseNet(nn.Module):
        def __init__(self, channels: list[int]):
            super().__init__()
            layers, c_in = [], 6
            for c in channels:
                layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU()]
                c_in = c
            self.encoder = nn.Sequential(*layers)
            self.head = nn.Linear(c_in, 6)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            """``(B, 3, H, W)`` x2 in [0, 1] -> ``(B, 6)`` axis-angle rotation and translation."""
            return self.head(self.encoder(torch.cat([a, b], dim=1)).mean(dim=(2, 3)))

    return _RelativePoseNet


def RelativePoseNet(channels: list[int]):  # noqa: N802 - a factory that reads like the class it builds
    """The reference architecture (see the module doc); torch is imported only when it is built."""
    return _net_class()(channels)


class LearnedBackend:
    name = "learned"

    def __init__(self, weights: str | Path | None = None, *, batch_size: int = 8):
        if weights is None:
            raise LearnedWeightsError(f"the learned pose backend needs --pose-weights: {FORMAT}")
        from sana_wm.pipeline.prompt_embeds import encoder_fingerprint

        self.folder = Path(weights)
        self.batch_size = batch_size
        self.model, self.image_size = self.load(self.folder)
        self.fingerprint = encoder_fingerprint(self.folder)  # recorded with every path it makes

    @staticmethod
    def load(folder: Path):
        """``(model, (H, W))`` from ``folder`` (see the module doc), with errors that name the file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        if not config_path.is_file() or not weights_path.is_file():
            raise LearnedWeightsError(f"--pose-weights {folder}: missing config.json or model.safetensors; "
                                      f"expected {FORMAT}")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            arch, size, channels = config["architecture"], config["image_size"], config["channels"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LearnedWeightsError(f"{config_path}: needs \"architecture\", \"image_size\" and \"channels\" "
                                      f"({type(err).__name__}: {err})") from None
        if arch != ARCHITECTURE:
            raise LearnedWeightsError(f"{config_path}: architecture {arch!r} is not {ARCHITECTURE!r}; load other "
                                      "networks by subclassing LearnedBackend")
        if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and 8 <= v <= 4096 for v in size)
                or not isinstance(channels, list) or not 1 <= len(channels) <= 16
                or not all(isinstance(c, int) and 1 <= c <= 4096 for c in channels)):
            raise LearnedWeightsError(f"{config_path}: image_size must be [H, W] (8-4096) and channels 1-16 "
                                      "positive widths")
        model = RelativePoseNet(channels)
        try:
            model.load_state_dict(load_file(str(weights_path)), strict=True)
        except SafetensorError as err:
            raise LearnedWeightsError(f"{weights_path}: not a readable safetensors file ({err}); expected "
                                      f"{FORMAT}") from None
        except (RuntimeError, OSError) as err:
            raise LearnedWeightsError(f"{weights_path}: these weights do not fit the config's network "
                                      f"({str(err).splitlines()[0]})") from None
        return model.eval(), (int(size[0]), int(size[1]))

    def estimate(self, frames: np.ndarray, intrinsics: Intrinsics, fps: float) -> PoseResult:
        import torch
        from scipy.spatial.transform import Rotation

        H, W = self.image_size
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
        out = []
        with torch.inference_mode():
            for i in range(0, len(frames) - 1, self.batch_size):
                j = min(i + self.batch_size, len(frames) - 1)
                out.append(self.model(x[i:j], x[i + 1:j + 1]).double().numpy())
        pred = np.concatenate(out) if out else np.zeros((0, 6))
        rel = np.tile(np.eye(4), (len(pred), 1, 1))
        rel[:, :3, :3] = Rotation.from_rotvec(pred[:, :3]).as_matrix()
        rel[:, :3, 3] = pred[:, 3:]
        return PoseResult(compose_relative(rel), np.ones(len(frames), bool), self.name, math.nan,
                          {"weights": str(self.folder), "fingerprint": self.fingerprint})
