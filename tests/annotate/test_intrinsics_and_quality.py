"""Intrinsics from each source (hand-computed references) and quality filters on crafted clips."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from sana_wm.annotate.decode import read_input
from sana_wm.annotate.intrinsics import IntrinsicsError, fov_from_35mm, resolve_intrinsics
from sana_wm.annotate.quality import QualityConfig, failed_checks, quality_scores


def test_fov_from_35mm_by_hand():
    # a 24 mm lens on a 36 mm wide frame: 2 atan(18 / 24) = 73.74 degrees
    assert fov_from_35mm(24.0) == pytest.approx(math.degrees(2 * math.atan(0.75)))
    assert fov_from_35mm(18.0) == pytest.approx(90.0)


def test_each_source_in_order(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    lens = resolve_intrinsics(video, 640, 360, fov=90.0)
    assert lens.source == "user" and lens.intrinsics.values[0] == pytest.approx([320, 320, 320, 180])
    lens = resolve_intrinsics(video, 640, 360, intrinsics=(500, 500, 300, 170))
    assert lens.source == "user" and lens.intrinsics.values[0] == pytest.approx([500, 500, 300, 170])
    # metadata: 18 mm equivalent -> 90 degrees -> fx = 320
    tag = "com.apple.quicktime.camera.focal_length.35mm_equivalent"
    lens = resolve_intrinsics(video, 640, 360, metadata={tag: "18"})
    assert lens.source == "metadata" and lens.fov_deg == pytest.approx(90.0)
    lens = resolve_intrinsics(video, 640, 360)
    assert lens.source == "estimated" and lens.fov_deg == pytest.approx(60.0)
    # a sidecar in pixels of another size is rescaled; it wins over metadata
    (tmp_path / "v.camera.json").write_text(json.dumps({"fx": 1000, "fy": 1000, "cx": 640, "cy": 360,
                                                         "width": 1280, "height": 720}))
    lens = resolve_intrinsics(video, 640, 360, metadata={"focal_length_35mm": 18})
    assert lens.source == "sidecar" and lens.intrinsics.values[0] == pytest.approx([500, 500, 320, 180])
    (tmp_path / "v.camera.json").write_text(json.dumps({"fov_deg": 70}))
    assert resolve_intrinsics(video, 640, 360).fov_deg == pytest.approx(70.0)
    (tmp_path / "v.camera.json").write_text(json.dumps({"fx": 1}))
    with pytest.raises(IntrinsicsError, match="v.camera.json"):
        resolve_intrinsics(video, 640, 360)


def test_exif_focal_length_of_an_image_sequence(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        img = Image.fromarray(np.full((36, 64, 3), 40 * i, np.uint8))
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0xA405] = 18  # FocalLengthIn35mmFilm
        img.save(folder / f"{i}.jpg", exif=exif)
    decoded = read_input(folder, fps=10.0)
    lens = resolve_intrinsics(folder, *decoded.source_size, metadata=decoded.metadata)
    assert lens.source == "metadata" and lens.fov_deg == pytest.approx(90.0)


@pytest.mark.parametrize("fov", [20.0, 130.0])
def test_fields_of_view_outside_25_to_120_are_refused(tmp_path, fov):
    with pytest.raises(IntrinsicsError, match="25-120"):
        resolve_intrinsics(tmp_path / "v.mp4", 640, 360, fov=fov)


def _clip(num=20, moving=True, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(30, 220, (num, 48, 64, 3), dtype=np.uint8)
    c2w = np.tile(np.eye(4), (num, 1, 1))
    if moving:
        c2w[:, 2, 3] = np.linspace(0, 2, num)  # 2 m in 2 s at 10 fps: 1 m/s
    return frames, c2w


def _scores(frames, c2w, **kw):
    args = {"registered_fraction": 1.0, "reprojection_px": 0.5, "scale_spread": 0.1, "scale_observable": True}
    args.update(kw)
    return quality_scores(frames, c2w, 10.0, **args)


def test_a_good_clip_passes_and_scores_are_exact():
    frames, c2w = _clip()
    s = _scores(frames, c2w)
    assert failed_checks(s, QualityConfig()) == []
    assert s["speed_m_s"] == pytest.approx(2 / 19 * 10) and s["motion"] == pytest.approx(2.0)
    assert s["rotation_deg_s"] == 0.0


def test_each_filter_rejects_its_crafted_clip():
    cfg = QualityConfig()
    frames, c2w = _clip()
    blurred = np.repeat(np.repeat(frames[:, ::8, ::8], 8, axis=1), 8, axis=2)
    blurred = np.stack([np.asarray(Image.fromarray(f).resize((8, 6)).resize((64, 48), Image.Resampling.BILINEAR))
                        for f in blurred])
    assert any(f.startswith("blur") for f in failed_checks(_scores(blurred, c2w), cfg))
    dark = (frames // 60).astype(np.uint8)
    assert any(f.startswith("exposure_dark") for f in failed_checks(_scores(dark, c2w), cfg))
    bright = np.full_like(frames, 255)
    assert any(f.startswith("exposure_bright") for f in failed_checks(_scores(bright, c2w), cfg))
    _, still = _clip(moving=False)
    assert any(f.startswith("motion") for f in failed_checks(_scores(frames, still), cfg))
    fast = c2w.copy()
    fast[:, 2, 3] *= 10  # 10 m/s
    assert any(f.startswith("speed_m_s") for f in failed_checks(_scores(frames, fast), cfg))
    spin = c2w.copy()
    angle = np.radians(np.arange(20) * 20.0)  # 20 degrees per frame = 200 deg/s
    spin[:, 0, 0], spin[:, 0, 2] = np.cos(angle), np.sin(angle)
    spin[:, 2, 0], spin[:, 2, 2] = -np.sin(angle), np.cos(angle)
    assert any(f.startswith("rotation_deg_s") for f in failed_checks(_scores(frames, spin), cfg))
    assert any(f.startswith("registered") for f in failed_checks(_scores(frames, c2w, registered_fraction=0.5), cfg))
    assert any(f.startswith("reprojection") for f in failed_checks(_scores(frames, c2w, reprojection_px=3.0), cfg))
    assert any(f.startswith("scale_spread") for f in failed_checks(_scores(frames, c2w, scale_spread=0.8), cfg))
    # an unobservable scale is not a failure by itself; speed is then not measured
    s = _scores(frames, spin, scale_observable=False, scale_spread=float("inf"))
    assert s["speed_m_s"] == 0.0 and not any(f.startswith("scale") for f in failed_checks(s, cfg))
