"""Moving a transformer to another latent space (sana_wm.model.retarget): the fitted maps are exact when
the spaces are affinely related, and the retargeted model then reproduces the old one's prediction."""

from dataclasses import replace

import pytest
import torch
from model_helpers import model_inputs, randomize_

from sana_wm.model import build_model, get_config
from sana_wm.model.retarget import fit_latent_map, retarget_latent_channels


def _affine_pair(c: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(c, c, generator=g, dtype=torch.float64) + 2 * torch.eye(c, dtype=torch.float64)
    m = torch.randn(c, generator=g, dtype=torch.float64)
    return M, m


def _apply(z: torch.Tensor, M: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
    out = z.permute(0, 2, 3, 4, 1).double() @ M
    if m is not None:
        out = out + m
    return out.permute(0, 4, 1, 2, 3)


def test_fit_recovers_an_exact_affine_relation():
    M, m = _affine_pair(6)
    g = torch.Generator().manual_seed(1)
    news = [torch.randn(2, 6, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    pairs = [(_apply(z, M, m), z) for z in news]  # z_old = z_new @ M + m
    fit = fit_latent_map(pairs, ridge=0.0)
    torch.testing.assert_close(fit["A"], M)
    torch.testing.assert_close(fit["a"], m)
    torch.testing.assert_close(fit["B"], torch.linalg.inv(M))
    torch.testing.assert_close(fit["b"], -m @ torch.linalg.inv(M))


def test_retargeted_model_reproduces_the_old_prediction_in_the_new_space():
    config = get_config("tiny")
    old = build_model(config, dtype=torch.float64)
    randomize_(old, seed=4)
    M, m = _affine_pair(config.in_channels, seed=2)
    latent_map = {"A": M, "a": m, "B": torch.linalg.inv(M), "b": -m @ torch.linalg.inv(M)}
    new = retarget_latent_channels(old, config, latent_map)
    inputs = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v
              for k, v in model_inputs(config, batch=1).items()}
    z_new = inputs["latents"]
    v_old = old(**{**inputs, "latents": _apply(z_new, M, m)})
    v_new = new(**inputs)
    torch.testing.assert_close(v_new, _apply(v_old, torch.linalg.inv(M)), rtol=1e-7, atol=1e-9)
    # every other weight is the old model's
    so, sn = old.state_dict(), new.state_dict()
    changed = {k for k in so if not torch.equal(so[k], sn[k])}
    assert changed == {"x_embedder.proj.weight", "x_embedder.proj.bias", "final_layer.linear.weight",
                       "final_layer.linear.bias"}


def test_retarget_to_more_channels_and_errors():
    config = get_config("tiny")
    old = build_model(config)
    wider = replace(config, in_channels=24)
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(1, 16, 2, 3, 3, generator=g), torch.randn(1, 24, 2, 3, 3, generator=g)) for _ in range(8)]
    new = retarget_latent_channels(old, wider, fit_latent_map(pairs))
    assert new.config.in_channels == 24 and new.x_embedder.proj.weight.shape[1] == 24
    assert new.final_layer.linear.weight.abs().sum() > 0
    # another prediction target: the input side is mapped, the output starts at zero (an x0 of zero)
    to_x0 = retarget_latent_channels(old, replace(wider, prediction="sample"), fit_latent_map(pairs))
    torch.testing.assert_close(to_x0.x_embedder.proj.weight, new.x_embedder.proj.weight)
    assert to_x0.final_layer.linear.weight.abs().sum() == 0 and to_x0.final_layer.linear.bias.abs().sum() == 0
    with pytest.raises(ValueError, match="may differ only in in_channels and the prediction target, not \\[.depth.\\]"):
        retarget_latent_channels(old, replace(wider, depth=2), fit_latent_map(pairs))
    with pytest.raises(ValueError, match="latent map is for"):
        retarget_latent_channels(old, replace(config, in_channels=20), fit_latent_map(pairs))
    with pytest.raises(ValueError, match="pair 0: latents must share"):
        fit_latent_map([(torch.zeros(1, 16, 2, 3, 3), torch.zeros(1, 24, 2, 3, 4))])
    with pytest.raises(ValueError, match="token rows cannot fit"):
        fit_latent_map([(torch.zeros(1, 16, 1, 2, 2), torch.zeros(1, 24, 1, 2, 2))])
