"""Move a trained transformer to another autoencoder's latent space without starting from scratch.

Only two layers of a SANA-WM transformer touch latent channels: the input embedding ``x_embedder.proj``
(a 1x1x1 convolution, ``C_lat -> width``) and the output ``final_layer.linear`` (``width -> C_lat``). When
a model trained on one autoencoder's latents must work on another's with the same token grid (the same
spatial and temporal strides), every other weight can be kept, and these two can be initialised from a
least-squares fit between the two latent spaces on the same videos:

* ``z_old ~= z_new @ A + a`` (fitted on token rows): the new input embedding is ``W_in A^T`` with bias
  ``b_in + W_in a``, so the blocks see about what they saw before;
* ``z_new ~= z_old @ B + b``: the new output layer is ``B^T W_out`` with bias ``B^T b_out``, the old
  prediction mapped into the new space (the map of a velocity drops the offset ``b``, which cancels in
  ``noise - x_0``). When the new model predicts another target (``config.prediction``, e.g. ``x0`` where
  the old one predicted the velocity), the output layer starts at zero instead.

The result is a starting point for fine-tuning on the new latents (the bundled model's recipe), not a
finished model: the fit is linear, and noise in the new space is not the image of noise in the old one.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["fit_latent_map", "retarget_latent_channels"]


def _rows(z: Tensor) -> Tensor:
    """``(B, C, T, h, w)`` -> ``(B T h w, C)`` float64."""
    return z.permute(0, 2, 3, 4, 1).reshape(-1, z.shape[1]).double()


def _lstsq_affine(x: Tensor, y: Tensor, ridge: float) -> tuple[Tensor, Tensor]:
    """``y ~= x @ M + m`` by ridge-regularised least squares; returns ``(M, m)``."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    gram = xc.T @ xc
    gram = gram + ridge * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(gram.shape[0], dtype=gram.dtype)
    M = torch.linalg.solve(gram, xc.T @ yc)
    return M, ym - xm @ M


def fit_latent_map(pairs: Iterable[tuple[Tensor, Tensor]], *, ridge: float = 1e-4) -> dict[str, Tensor]:
    """Affine maps between two latent spaces from ``(z_old, z_new)`` pairs of the same videos, each
    ``(B, C, T, h, w)`` with equal ``B, T, h, w``. Returns ``{"A", "a", "B", "b"}`` (module docstring)."""
    olds, news = [], []
    for i, (z_old, z_new) in enumerate(pairs):
        if z_old.ndim != 5 or z_new.ndim != 5 or z_old.shape[0] != z_new.shape[0] or z_old.shape[2:] != z_new.shape[2:]:
            raise ValueError(f"fit_latent_map: pair {i}: latents must share (B, T, h, w), got "
                             f"{tuple(z_old.shape)} and {tuple(z_new.shape)}")
        olds.append(_rows(z_old))
        news.append(_rows(z_new))
    if not olds:
        raise ValueError("fit_latent_map: no latent pairs")
    old, new = torch.cat(olds), torch.cat(news)
    if old.shape[0] <= max(old.shape[1], new.shape[1]):
        raise ValueError(f"fit_latent_map: {old.shape[0]} token rows cannot fit maps between {old.shape[1]} and "
                         f"{new.shape[1]} channels; give more videos")
    A, a = _lstsq_affine(new, old, ridge)
    B, b = _lstsq_affine(old, new, ridge)
    return {"A": A, "a": a, "B": B, "b": b}


@torch.no_grad()
def retarget_latent_channels(model, new_config, latent_map: dict[str, Tensor]):
    """A new model of ``new_config`` (a :class:`~sana_wm.model.SanaWMConfig` that may differ from
    ``model.config`` only in ``in_channels``) with every weight of ``model`` except the two latent-channel
    layers, which are mapped by ``latent_map`` (:func:`fit_latent_map`)."""
    from dataclasses import asdict

    from sana_wm.model import build_model

    old_cfg = asdict(model.config)
    new_cfg = asdict(new_config)
    free = {"in_channels", "prediction", "sample_min_sigma"}
    differ = sorted(k for k in old_cfg if k not in free and old_cfg[k] != new_cfg[k])
    if differ:
        raise ValueError(f"retarget_latent_channels: the configs may differ only in in_channels and the "
                         f"prediction target, not {differ}")
    c_old, c_new = model.config.in_channels, new_config.in_channels
    A, a, B = latent_map["A"], latent_map["a"], latent_map["B"]
    if tuple(A.shape) != (c_new, c_old) or tuple(B.shape) != (c_old, c_new):
        raise ValueError(f"retarget_latent_channels: the latent map is for {B.shape[0]} -> {B.shape[1]} channels, "
                         f"the models have {c_old} -> {c_new}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    w_in = state["x_embedder.proj.weight"].double()  # (width, c_old, 1, 1, 1)
    kernel = w_in.shape[2:]
    if tuple(kernel) != (1, 1, 1):
        raise ValueError(f"retarget_latent_channels: x_embedder kernel {tuple(kernel)} is not 1x1x1")
    w_in2 = w_in.reshape(w_in.shape[0], c_old)
    dtype = state["x_embedder.proj.weight"].dtype
    state["x_embedder.proj.weight"] = (w_in2 @ A.T).reshape(w_in.shape[0], c_new, 1, 1, 1).to(dtype)
    state["x_embedder.proj.bias"] = (state["x_embedder.proj.bias"].double() + w_in2 @ a).to(dtype)
    w_out = state["final_layer.linear.weight"].double()  # (c_old, width)
    if new_config.prediction == model.config.prediction:
        state["final_layer.linear.weight"] = (B.T @ w_out).to(dtype)
        state["final_layer.linear.bias"] = (B.T @ state["final_layer.linear.bias"].double()).to(dtype)
    else:  # another target: the old output means nothing here; start from a zero prediction
        state["final_layer.linear.weight"] = torch.zeros(c_new, w_out.shape[1], dtype=dtype)
        state["final_layer.linear.bias"] = torch.zeros(c_new, dtype=dtype)
    new = build_model(new_config, dtype=dtype)
    new.load_state_dict(state)
    return new
