"""A per-row camera mask: one forward over rows with and without camera equals each row run on its own."""

import numpy as np
import pytest
import torch
from model_helpers import model_inputs, rel_err

from sana_wm.camera.conditioning import prepare_camera
from sana_wm.model import TokenLayout

FRAMES, HEIGHT, WIDTH = 7, 4, 6
MASK = torch.tensor([True, False, True, False])
TOL = 1e-5  # float32: rows batched together vs alone differ only by matmul rounding


def _inputs(config):
    """Four rows, each with its own camera path (a different turn and speed), so rows cannot be confused."""
    inputs = model_inputs(config, batch=len(MASK), frames=FRAMES, height=HEIGHT, width=WIDTH)
    n_raw = 8 * (FRAMES - 1) + 1
    s = np.linspace(0.0, 1.0, n_raw)
    vectors, pluckers = [], []
    for row in range(len(MASK)):
        yaw = 0.3 + 0.4 * row
        c2w = np.tile(np.eye(4), (n_raw, 1, 1))
        c2w[:, 0, 0] = c2w[:, 2, 2] = np.cos(yaw * s)
        c2w[:, 0, 2], c2w[:, 2, 0] = np.sin(yaw * s), -np.sin(yaw * s)
        c2w[:, :3, 3] = np.stack([0.2 * row * s, 0.05 * s, (1.0 + 0.5 * row) * s], -1)
        cam = prepare_camera(c2w, [150.0, 140.0, 96.0, 64.0], target_size=(32 * HEIGHT, 32 * WIDTH)).batched(1)
        vectors.append(cam.camera_vector)
        pluckers.append(cam.plucker)
    inputs["camera_vector"], inputs["plucker"] = torch.cat(vectors), torch.cat(pluckers)
    inputs["text_mask"] = inputs["text_mask"].bool()
    return inputs


def _row(inputs, i, camera: bool):
    out = {k: v[i:i + 1] for k, v in inputs.items()}
    if not camera:
        out["camera_vector"] = out["plucker"] = None
    return out


def _frames(inputs, a, b):
    out = dict(inputs)
    out["latents"], out["timestep"] = inputs["latents"][:, :, a:b], inputs["timestep"][..., a:b]
    for key, axis in (("camera_vector", 1), ("plucker", 2)):
        if inputs[key] is not None:
            out[key] = inputs[key].narrow(axis, a, b - a)
    return out


def _stream(model, inputs, **kwargs):
    layout = TokenLayout.build(FRAMES, HEIGHT, WIDTH, "chunk_causal")
    cache, parts = None, []
    for a, b in layout.chunks:
        out, cache = model.forward_chunk(**_frames(inputs, a, b), cache=cache, **kwargs)
        parts.append(out)
    return torch.cat(parts, dim=2)


def _forward(mode):
    if mode == "streaming":
        return _stream
    return lambda model, inputs, **kw: model(**inputs, mode=mode, **kw)


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal", "streaming"])
@torch.no_grad()
def test_masked_rows_run_without_camera(tiny_model, mode):
    run = _forward(mode)
    inputs = _inputs(tiny_model.config)
    mixed = run(tiny_model, inputs, camera_mask=MASK)
    for i, has_camera in enumerate(MASK.tolist()):
        alone = run(tiny_model, _row(inputs, i, has_camera))
        assert rel_err(mixed[i:i + 1], alone) <= TOL, (mode, i)
        # The camera matters here, so a mask that is ignored (or applied to the wrong row) fails.
        other = run(tiny_model, _row(inputs, i, not has_camera))
        assert rel_err(other, alone) > 1e-3, (mode, i)


@torch.no_grad()
def test_all_true_mask_is_no_mask(tiny_model):
    inputs = _inputs(tiny_model.config)
    torch.testing.assert_close(tiny_model(**inputs, camera_mask=torch.ones(len(MASK), dtype=torch.bool)),
                               tiny_model(**inputs), rtol=0, atol=0)


def test_masked_rows_get_no_camera_gradient(tiny_model):
    import copy

    model = copy.deepcopy(tiny_model).train()
    inputs = _inputs(model.config)
    mask = torch.tensor([False, False, True, True])
    model(**inputs, camera_mask=mask)[:2].square().sum().backward()  # only the rows without camera
    cam = [p.grad for n, p in model.named_parameters() if "_cam" in n or "plucker" in n]
    assert cam and all(g is None or not g.any() for g in cam)


def test_camera_mask_shape_is_checked(tiny_model):
    inputs = _inputs(tiny_model.config)
    with pytest.raises(ValueError, match="camera_mask"):
        tiny_model(**inputs, camera_mask=torch.ones(len(MASK)))
    with pytest.raises(ValueError, match="camera_mask"):
        tiny_model(**inputs, camera_mask=torch.ones(2, dtype=torch.bool))
