"""The metric depth stage: a transformers depth-estimation model built from a tiny random config."""

import numpy as np
import pytest


def _tiny_depth_model(folder, kind="metric"):
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type=kind, max_depth=20)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)
    return folder


def test_a_metric_model_loads_and_predicts_per_pixel_metres(tmp_path):
    from sana_wm.annotate.depth import DepthModel

    model = DepthModel(str(_tiny_depth_model(tmp_path / "metric")), batch_size=2)
    frames = np.random.default_rng(0).integers(0, 255, (3, 36, 64, 3), dtype=np.uint8)
    depth = model.predict(frames)
    assert depth.shape == (3, 36, 64) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth >= 0).all() and depth.max() <= 20.0 + 1e-4


def test_relative_models_and_missing_folders_are_refused(tmp_path):
    from sana_wm.annotate.depth import DepthModel, DepthModelError

    with pytest.raises(DepthModelError, match="relative depth"):
        DepthModel(str(_tiny_depth_model(tmp_path / "relative", kind="relative")))
    with pytest.raises(DepthModelError, match="--depth-model"):
        DepthModel(str(tmp_path / "nothing-here"))


def test_the_pipeline_takes_the_scale_from_the_depth_model(tmp_path, footage):
    from sana_wm.annotate.pipeline import AnnotateConfig, annotate_video

    folder = str(_tiny_depth_model(tmp_path / "metric"))
    res = annotate_video(footage, AnnotateConfig(fps=10.0, width=192, fov=70.0, depth_model=folder,
                                                 use_depth_sidecar=False))
    scale = res.shots[0].clip.meta["annotate"]["provenance"]["scale"]
    assert scale["source"] == f"depth:{folder}" and scale["observable"] and scale["num_samples"] > 20, (
        scale, res.shots[0].clip.quality)
