"""The no-reference degradation measures against hand-made frames, the window rule, and the optional MUSIQ and
VBench adapters' plumbing and refusals."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from sana_wm.bench import quality
from sana_wm.bench.layout import BenchError
from sana_wm.bench.quality import frame_noise, frame_sharpness, quality_windows, temporal_degradation


def _texture(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.uniform(0, 255, (size, size)), 1.5)
    img = (img - img.min()) / (img.max() - img.min()) * 200 + 20
    return np.repeat(img[..., None], 3, axis=2).astype(np.uint8)


def test_sharpness_is_the_laplacian_variance_and_falls_with_blur():
    img = np.zeros((5, 5, 3), np.uint8)
    img[2, 2] = 100  # one bright pixel: the interior Laplacian is -400 at it, 100 at its 4 neighbours, 0 elsewhere
    lap = np.array([100, 100, 100, 100, -400] + [0] * 4, dtype=np.float64)
    assert frame_sharpness(img) == pytest.approx(np.var(lap))
    sharp = _texture()
    blurred = gaussian_filter(sharp.astype(float), (2, 2, 0)).astype(np.uint8)
    assert frame_sharpness(blurred) < 0.2 * frame_sharpness(sharp)


def test_noise_estimate_reads_the_added_noise():
    rng = np.random.default_rng(1)
    flat = np.full((200, 200, 3), 128.0)
    noisy = np.clip(flat + rng.normal(0, 5.0, (200, 200, 1)), 0, 255).astype(np.uint8)
    assert frame_noise(flat.astype(np.uint8)) == pytest.approx(0.0)
    assert frame_noise(noisy) == pytest.approx(5.0, rel=0.08)  # rounding to uint8 adds ~0.3 grey levels


def test_windows_are_10_s_for_a_minute_and_sixths_for_shorter_videos():
    first, last, rule = quality_windows(961, 16.0)
    assert (first, last) == (range(0, 160), range(801, 961)) and rule.startswith("first and last 10 s")
    first, last, rule = quality_windows(953, 16.0)  # a minute snapped to a streaming model's grid
    assert (first, last) == (range(0, 160), range(793, 953))
    first, last, rule = quality_windows(60, 16.0)
    assert (first, last) == (range(0, 10), range(50, 60)) and "sixth" in rule


def test_a_video_that_blurs_or_gets_noisier_at_the_end_shows_it():
    frames = np.stack([_texture(i) for i in range(12)])
    blurry, noisy = frames.copy(), frames.copy()
    rng = np.random.default_rng(2)
    for i in range(10, 12):  # the last sixth
        blurry[i] = gaussian_filter(frames[i].astype(float), (2, 2, 0)).astype(np.uint8)
        noisy[i] = np.clip(frames[i] + rng.normal(0, 6, frames[i].shape[:2])[..., None], 0, 255).astype(np.uint8)
    out = temporal_degradation(blurry, 16.0)
    assert out["windows"]["first"] == [0, 1] and out["windows"]["last"] == [10, 11]
    assert out["delta_log_sharpness"] > 1.0
    assert out["musiq"] == {"status": "not computed", "reason": "no --musiq-weights given"}
    # Noise raises the Laplacian variance too, which is why the noise estimate is reported beside it.
    assert temporal_degradation(noisy, 16.0)["delta_noise"] > 3.0


def test_musiq_runs_through_pyiqa_with_the_users_weights(monkeypatch, tmp_path):
    calls = {}

    def create_metric(name, **kw):
        calls.update(name=name, **kw)
        return lambda x: x.mean(dim=(1, 2, 3)) * 100  # a "MUSIQ" of the mean brightness, 0-100

    monkeypatch.setitem(sys.modules, "pyiqa", types.SimpleNamespace(create_metric=create_metric))
    weights = tmp_path / "musiq.pth"
    weights.write_bytes(b"x")
    frames = np.concatenate([np.full((6, 16, 16, 3), 200, np.uint8), np.full((6, 16, 16, 3), 100, np.uint8)])
    out = temporal_degradation(frames, 16.0, quality.MusiqScorer(weights))
    assert calls["name"] == "musiq-spaq" and calls["pretrained_model_path"] == str(weights)
    assert out["musiq"]["first"] == pytest.approx(200 / 255) and out["musiq"]["last"] == pytest.approx(100 / 255)
    assert out["musiq"]["delta_iq"] == pytest.approx(100 / 255)


def test_musiq_and_vbench_refuse_clearly_when_their_packages_are_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # import pyiqa -> ImportError
    weights = tmp_path / "musiq.pth"
    weights.write_bytes(b"x")
    with pytest.raises(BenchError, match="pip install pyiqa"):
        quality.MusiqScorer(weights)
    with pytest.raises(BenchError, match="no such file"):
        quality.MusiqScorer(tmp_path / "absent.pth")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert "pip install vbench" in quality.vbench_refusal()
