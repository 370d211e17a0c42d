"""Known inputs through the whole scorer (read_run -> videos -> pose backend -> metrics -> scene JSONs), with the
cheap OpenCV estimator on small synthetic renders:

* the ground-truth render along the requested path scores near the estimator's floor;
* a video of the first frame repeated scores as a static camera (the numbers of an identity path);
* a render along a path whose yaw drifts 8 deg/s away from the request scores that drift (the errors of the
  perturbed path itself, computed exactly) within a stated tolerance.

To keep renders cheap, these scenes are 13 frames at 4 fps scored with ``interval=1`` (the same sampled frames
a 16 fps video gives with the release's interval 4); one scene at 16 fps with the refiner checks the interval-4
path and the frame-0 drop.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from score_fixtures import render_along, synth_scene, write_bench, write_run

from sana_wm.bench.score import ScoreSettings, score_run
from sana_wm.eval.pose_metrics import camera_errors

YAW_RATE = 8.0  # deg/s of the perturbed path's drift


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    """Scene seed 1 (a corridor walk, 3 s) at 4 fps: ground truth, static, perturbed."""
    root = tmp_path_factory.mktemp("bench4")
    base, world = synth_scene("corridor_001", 1, seconds=3.0, fps=4.0, size=(192, 144), pairs=((0, 8), (2, 12)))
    t = np.arange(len(base.c2w)) / base.fps
    perturbed = base.c2w.copy()
    drift = Rotation.from_euler("y", YAW_RATE * t[:, None], degrees=True).as_matrix()
    perturbed[:, :3, :3] = perturbed[:, :3, :3] @ drift
    scenes = [base, *(type(base)(name, base.c2w, base.K, base.size, base.fps, base.first_frame, base.pairs)
                      for name in ("corridor_002", "corridor_003"))]
    write_bench(root, scenes)
    videos = {"corridor_001": base.truth, "corridor_002": np.repeat(base.truth[:1], len(base.truth), 0),
              "corridor_003": render_along(world, perturbed, base.K, base.size, base.fps)}
    run = write_run(root / "run", root, videos, fps=4.0)
    settings = ScoreSettings(estimator="opencv", interval=1)
    report = score_run(run, settings)
    return {"run": run, "report": report, "settings": settings, "c2w": base.c2w, "perturbed": perturbed,
            "scenes": {r["scene"]: r for r in report["scenes"]}}


def _scene(run4, name):
    return json.loads((run4["run"] / "scores" / "scenes" / f"{name}.json").read_text())


def test_ground_truth_render_scores_near_the_estimator_floor(run4):
    cam = run4["scenes"]["corridor_001"]["camera"]
    assert cam["status"] == "ok" and cam["frames_failed"] == 0
    assert cam["RotErr"] < 1.0 and cam["TransErr"] < 0.1 and cam["CamMC"] < 0.1  # floor measured: 0.2 deg, 0.02


def test_repeated_first_frame_scores_as_a_static_camera(run4):
    cam = run4["scenes"]["corridor_002"]["camera"]
    static = camera_errors(run4["c2w"], np.tile(np.eye(4), (len(run4["c2w"]), 1, 1)))
    assert cam["status"] == "ok"
    assert cam["RotErr"] == pytest.approx(static.RotErr, abs=0.5)
    assert cam["TransErr"] == pytest.approx(static.TransErr_rel, abs=0.05)
    assert cam["TransErr"] > 10 * run4["scenes"]["corridor_001"]["camera"]["TransErr"]


def test_a_perturbed_render_scores_the_perturbation(run4):
    cam = run4["scenes"]["corridor_003"]["camera"]
    exact = camera_errors(run4["c2w"], run4["perturbed"])
    assert exact.RotErr > 5.0  # the drift is not absorbed by the similarity fit
    # Tolerance: the estimator's floor on this scene (0.2 deg, 0.02) plus margin; measured off by 0.2 deg, 0.007.
    assert cam["RotErr"] == pytest.approx(exact.RotErr, abs=1.0)
    assert cam["TransErr"] == pytest.approx(exact.TransErr_rel, abs=0.05)
    assert cam["CamMC"] == pytest.approx(exact.CamMC_rel, abs=0.05)


def test_revisit_ground_truth_and_temporal_records(run4):
    gt = _scene(run4, "corridor_001")
    rev = gt["revisit"]
    assert [p[:2] for p in rev["pairs"]] == [[0, 8], [2, 12]] and rev["skipped_pairs"] == []
    assert rev["LPIPS"] is None and rev["lpips_status"].startswith("not computed")
    # The static video's revisit pairs are the same frame twice: identical frames.
    assert _scene(run4, "corridor_002")["revisit"]["PSNR"] == "inf"
    truth = gt["ground_truth"]
    assert truth["skipped_marks"] == [5.0, 10.0, 30.0, 60.0]  # the video lasts 3.25 s
    # The run's video and the ground truth are the same render through the same codec: identical frames.
    assert truth["marks"]["1"]["PSNR"] == "inf" and truth["marks"]["1"]["SSIM"] == pytest.approx(1.0)
    assert gt["temporal"]["musiq"]["status"] == "not computed"
    assert gt["temporal"]["windows"]["rule"].startswith("first and last sixth")


def test_rescoring_resumes_and_rescores_a_damaged_scene(run4):
    (run4["run"] / "scores" / "scenes" / "corridor_003.json").write_text("{not json")
    report = score_run(run4["run"], run4["settings"])
    assert report["resumed"] == ["corridor_001", "corridor_002"] and report["scored_now"] == ["corridor_003"]
    again = {r["scene"]: r for r in report["scenes"]}
    assert again["corridor_003"]["camera"]["RotErr"] == pytest.approx(
        run4["scenes"]["corridor_003"]["camera"]["RotErr"], abs=1e-9)
    # Other settings (another estimator) score everything again.
    assert run4["settings"].fingerprint() != ScoreSettings(estimator="colmap").fingerprint()


def test_sixteen_fps_with_refiner_drops_frame_zero(tmp_path):
    scene, _ = synth_scene("open_001", 7, seconds=3.0, fps=16.0, size=(160, 120))
    write_bench(tmp_path, [scene])
    run = write_run(tmp_path / "run", tmp_path, {"open_001": scene.truth}, fps=16.0, refiner=True)
    report = score_run(run, ScoreSettings(estimator="opencv"))
    cam = report["scenes"][0]["camera"]
    assert cam["status"] == "ok" and cam["frame0_dropped"]
    assert cam["sampled"] == 13 and cam["frames"] == 12  # frames 0, 4, ..., 48; frame 0 dropped
    assert cam["RotErr"] < 2.0


def test_the_default_estimator_pycolmap_places_every_frame(tmp_path):
    scene, _ = synth_scene("open_001", 7, seconds=3.0, fps=4.0, size=(160, 120))
    write_bench(tmp_path, [scene])
    run = write_run(tmp_path / "run", tmp_path, {"open_001": scene.truth}, fps=4.0)
    cam = score_run(run, ScoreSettings(interval=1))["scenes"][0]["camera"]
    assert cam["estimator"] == "pycolmap" and cam["status"] == "ok"
    assert cam["registered"] == 13 and cam["frames_failed"] == 0
    # pycolmap's floor on 160x120 frames is coarser than the odometry's (measured 3.9 deg, 0.23).
    assert cam["RotErr"] < 8.0


def test_settings_refuse_weights_without_the_learned_estimator():
    from sana_wm.bench.layout import BenchError

    with pytest.raises(BenchError, match="--weights"):
        ScoreSettings(estimator="opencv", estimator_weights="w")
    with pytest.raises(BenchError, match="--estimator"):
        ScoreSettings(estimator="pi3")
