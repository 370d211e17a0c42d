"""The trainer's hook for the bundled model: its model wrapper and the warp prior of every training batch.

A training config names it under ``model.wrapper`` (``{kind: warp_prior_x0, vae: CODEC_FOLDER, ...}``, the
other keys those of :class:`~sana_wm.bundled.WarpPriorSettings`); the trainer then calls the transformer
through :meth:`WarpPriorTraining.wrap`, passes each batch's :meth:`WarpPriorTraining.extra` as ``extra=``
(built once a step has drawn which clips drop their camera),
and writes :meth:`WarpPriorTraining.settings_dict` into every checkpoint (``wrapper.json``) so that
``sana-wm model export`` records the wrapper in the exported model folder.
"""

from __future__ import annotations

from torch import Tensor, nn

from sana_wm.bundled.model import WarpPrior, WarpPriorModel, WarpPriorSettings
from sana_wm.bundled.warp import warp_prior_latents

__all__ = ["WRAPPER_FILE", "WarpPriorTraining", "split_wrapper_spec"]

WRAPPER_FILE = "wrapper.json"  # beside a training checkpoint's config.json


def split_wrapper_spec(spec: dict, where: str = "model.wrapper") -> tuple[WarpPriorSettings, str]:
    """A training config's ``model.wrapper`` mapping -> (the wrapper's settings, the codec folder ``vae``)."""
    fields = dict(spec)
    vae = fields.pop("vae", None)
    if not isinstance(vae, str) or not vae:
        raise ValueError(f"{where}.vae: required, the folder of the codec the training latents were encoded with "
                         "(it builds each batch's warp prior)")
    return WarpPriorSettings.from_dict(fields, where), vae


class WarpPriorTraining:
    """The hook (module docstring). ``vae``: the codec folder (or a loaded codec) the latents come from."""

    def __init__(self, settings: WarpPriorSettings, vae) -> None:
        if isinstance(vae, str):
            from sana_wm.vae import VideoVAE

            vae = VideoVAE.from_pretrained(vae)
        self.settings, self.vae = settings, vae

    @classmethod
    def from_spec(cls, spec: dict, where: str = "model.wrapper") -> WarpPriorTraining:
        settings, vae = split_wrapper_spec(spec, where)
        return cls(settings, vae)

    def settings_dict(self) -> dict:
        return self.settings.to_dict()

    def wrap(self, model: nn.Module) -> WarpPriorModel:
        """What the loss calls: ``model`` (the transformer or its data-parallel wrapper) as an x0 predictor."""
        return WarpPriorModel(model, self.settings)

    def extra(self, latents: Tensor, poses: list) -> WarpPrior:
        """The priors of a batch: latents ``(B, C, T, h, w)``; poses per clip ``(c2w (F, 4, 4) relative,
        intrinsics (F, 4))``, or None for a clip without camera or one that drops it in this step (a standing
        camera) -> float32 on the CPU."""
        import torch

        T = latents.shape[2]
        F = (T - 1) * int(self.vae.temporal_stride) + 1
        still, unit = _standing(F)
        c2w = torch.stack([still if p is None else p[0][:F] for p in poses])
        intr = torch.stack([unit if p is None else p[1][:F] for p in poses])
        prior = warp_prior_latents(self.vae, latents[:, :, :1], c2w, intr, eye_height=self.settings.eye_height,
                                   far=self.settings.far_depth)
        return WarpPrior(prior.cpu())


def _standing(num_frames: int):
    import torch

    # A standing camera warps nothing whatever its intrinsics; any positive focal length will do.
    return (torch.eye(4, dtype=torch.float64).expand(num_frames, 4, 4),
            torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64).expand(num_frames, 4))
