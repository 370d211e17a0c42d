"""Realistic test footage: degradations are off -> the plain render; on -> written MP4 + ground truth."""

import numpy as np

from sana_wm.camera.trajectory import Intrinsics
from sana_wm.synth import generate_scene, render
from sana_wm.synth.footage import FootageConfig, make_footage, write_footage
from sana_wm.synth.paths import exploration_path

SIZE = (36, 64)


def test_without_degradations_the_footage_is_the_render():
    cfg = FootageConfig(seconds=0.5, fps=10.0, size=SIZE, style="walk", blur_subframes=1, exposure_drift=0.0,
                        k1=0.0, read_noise=0.0, shot_noise=0.0)
    fo = make_footage(2, cfg)
    scene = generate_scene(2, "room")
    path = exploration_path(scene, seconds=0.5, fps=10.0, style="walk", seed=2)
    lens = Intrinsics.from_fov(70.0, SIZE[1], SIZE[0], len(path.c2w))
    plain = render(scene, path.with_intrinsics(lens))
    np.testing.assert_array_equal(fo.frames, plain.rgb)
    np.testing.assert_allclose(fo.c2w, path.c2w)
    np.testing.assert_allclose(fo.K, plain.intrinsics.matrices()[0])
    np.testing.assert_allclose(fo.depth, np.where(np.isfinite(plain.depth), plain.depth, 0.0))


def test_degraded_footage_is_written_with_its_ground_truth(tmp_path):
    from sana_wm.annotate.decode import read_input

    cfg = FootageConfig(seconds=0.5, fps=10.0, size=SIZE, style="walk")
    out = write_footage(tmp_path / "clip.mp4", 2, cfg)
    clean = make_footage(2, FootageConfig(seconds=0.5, fps=10.0, size=SIZE, style="walk", blur_subframes=1,
                                          exposure_drift=0.0, k1=0.0, read_noise=0.0, shot_noise=0.0))
    decoded = read_input(out, fps=10.0)
    assert decoded.frames.shape == (6, *SIZE, 3) and decoded.metadata.get("comment") is None
    assert np.abs(decoded.frames.astype(float) - clean.frames).mean() > 1.0  # degraded, not the render
    with np.load(tmp_path / "clip.truth.npz") as z:
        np.testing.assert_allclose(z["c2w"], clean.c2w)
        assert float(z["k1"]) == cfg.k1 and tuple(z["size"]) == (SIZE[1], SIZE[0])
    with np.load(tmp_path / "clip.depth.npz") as z:
        assert z["depth"].shape == (6, *SIZE) and z["depth"].dtype == np.float16
