"""The learned feed-forward backend: loading user weights (tiny random ones here) and chaining its output."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy.spatial.transform import Rotation

from sana_wm.camera.trajectory import Intrinsics
from sana_wm.geometry import make_backend
from sana_wm.geometry.learned import ARCHITECTURE, LearnedWeightsError, RelativePoseNet, compose_relative


def _weights(folder, channels=(4, 8), head_bias=None, seed=0):
    torch.manual_seed(seed)
    net = RelativePoseNet(list(channels))
    if head_bias is not None:  # a network that always answers the same motion
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.copy_(torch.tensor(head_bias))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architecture": ARCHITECTURE, "image_size": [16, 24],
                                                    "channels": list(channels)}))
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    return folder


def test_compose_relative_by_hand():
    step = np.eye(4)
    step[:3, :3] = Rotation.from_euler("y", 10, degrees=True).as_matrix()
    step[:3, 3] = [0, 0, 1]
    c2w = compose_relative(np.stack([step] * 3))
    assert np.allclose(c2w[0], np.eye(4)) and np.allclose(c2w[3], np.linalg.matrix_power(step, 3))


def test_random_weights_load_and_give_a_path(tmp_path):
    backend = make_backend("learned", weights=_weights(tmp_path / "w"))
    frames = np.random.default_rng(0).integers(0, 255, (5, 30, 40, 3), dtype=np.uint8)
    res = backend.estimate(frames, Intrinsics.from_fov(60, 40, 30), 10.0)
    assert res.c2w.shape == (5, 4, 4) and np.isfinite(res.c2w).all() and res.registered.all()
    np.testing.assert_allclose(res.c2w[:, :3, :3] @ np.swapaxes(res.c2w[:, :3, :3], 1, 2),
                               np.tile(np.eye(3), (5, 1, 1)), atol=1e-9)


def test_the_network_output_is_chained_exactly(tmp_path):
    motion = [0.0, 0.05, 0.0, 0.1, 0.0, 0.2]  # 0.05 rad yaw and (0.1, 0, 0.2) per frame
    backend = make_backend("learned", weights=_weights(tmp_path / "w", head_bias=motion))
    frames = np.zeros((4, 30, 40, 3), np.uint8)
    res = backend.estimate(frames, Intrinsics.from_fov(60, 40, 30), 10.0)
    step = np.eye(4)
    step[:3, :3] = Rotation.from_rotvec(motion[:3]).as_matrix()
    step[:3, 3] = motion[3:]
    np.testing.assert_allclose(res.c2w[3], np.linalg.matrix_power(step, 3), atol=1e-6)


def test_bad_weight_folders_are_refused(tmp_path):
    with pytest.raises(LearnedWeightsError, match="needs --pose-weights"):
        make_backend("learned")
    with pytest.raises(LearnedWeightsError, match="config.json"):
        make_backend("learned", weights=tmp_path)
    folder = _weights(tmp_path / "w", channels=(4, 8))
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "channels": [4, 16]}))
    with pytest.raises(LearnedWeightsError, match="do not fit"):
        make_backend("learned", weights=folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(LearnedWeightsError, match="not a readable safetensors file"):
        make_backend("learned", weights=folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "architecture": "other"}))
    with pytest.raises(LearnedWeightsError, match="architecture"):
        make_backend("learned", weights=folder)
