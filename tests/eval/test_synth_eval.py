import json
import math

import numpy as np
import pytest
from PIL import Image

from sana_wm.eval.baselines import identity_trajectory, repeat_first_frame, static_camera
from sana_wm.eval.pose_metrics import camera_errors
from sana_wm.eval.synth_eval import build_clip, evaluate_synth, make_oracle, mark_frames, report_markdown
from sana_wm.geometry.odometry import estimate_poses

SETUP = dict(seeds=[1], trajectories=["explore:walk", "explore:orbit"], size=(96, 128), fps=16,
             seconds_marks=(0.5, 1))


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_eval")
    oracle = make_oracle(**SETUP)
    return out, oracle, evaluate_synth(oracle, out_dir=out, **SETUP)


def test_oracle_is_perfect_and_beats_repeat_first(oracle_run):
    _, _, report = oracle_run
    agg = report["aggregate"]
    for t in ("0.5", "1"):
        assert agg["model"]["marks"][t]["psnr"] == "inf"
        assert agg["model"]["marks"][t]["ssim"] == pytest.approx(1.0)
        rep = agg["repeat_first"]["marks"][t]
        assert rep["psnr"] < 30 and rep["ssim"] < 0.8
    cam, rep_cam = agg["model"]["camera"], agg["repeat_first"]["camera"]
    assert cam["RotErr"] < 5.0 and cam["TransErr_rel"] < 0.3
    assert rep_cam["TransErr_rel"] > 2 * cam["TransErr_rel"]
    # the oracle re-renders the moving path exactly, so the estimator floor is the oracle's own error
    assert agg["estimator_floor"]["camera"]["RotErr"] == pytest.approx(cam["RotErr"])
    # the static-camera oracle renders the first view again and again: same as repeating frame 0
    assert agg["static_camera"]["marks"]["1"]["psnr"] == pytest.approx(agg["repeat_first"]["marks"]["1"]["psnr"])
    # image motion: the oracle moves exactly like the truth, the frozen videos not at all
    assert agg["model"]["motion"] == {"gain": pytest.approx(1.0), "corr": pytest.approx(1.0), "pairs": 32,
                                      "failed_pairs": 0}  # 2 clips x 16 frame pairs, all aligned
    assert abs(agg["repeat_first"]["motion"]["gain"]) < 1e-3 and agg["repeat_first"]["motion"]["corr"] is None
    assert agg["repeat_first"]["motion"]["failed_pairs"] == 0  # frozen is measured as frozen, not as failed
    table = (oracle_run[0] / "report.md").read_text()
    assert "| motion gain | motion corr | motion alignment failures |" in table
    # per trajectory: the walk and the orbit each have their own rows
    assert set(report["by_trajectory"]) == {"explore:walk", "explore:orbit"}
    walk = report["by_trajectory"]["explore:walk"]["model"]
    assert walk["num_clips"] == 1 and walk["motion"]["gain"] == pytest.approx(1.0)
    assert "| explore:orbit | repeat_first | 1 |" in table


def test_report_contact_sheet_and_resume(oracle_run):
    out, oracle, report = oracle_run
    on_disk = json.loads((out / "report.json").read_text())
    assert [c["key"] for c in on_disk["clips"]] == ["seed00001_explore-walk", "seed00001_explore-orbit"]
    assert set(on_disk["clips"][0]["methods"]) == {"model", "repeat_first", "static_camera", "estimator_floor"}
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height > 2 * 4 * 96 and sheet.width > 2 * 128
    assert (out / "contact" / "seed00001_explore-walk.png").is_file()
    table = (out / "report.md").read_text()
    assert "| model | 2 | inf | 1.000 | inf | 1.000 |" in table
    rep = report["aggregate"]["repeat_first"]["marks"]["1"]
    assert f"{rep['psnr']:.2f} | {rep['ssim']:.3f} |" in table

    calls = []

    def counting(first, traj, n):
        calls.append(n)
        return oracle(first, traj, n)

    again = evaluate_synth(counting, out_dir=out, **SETUP)
    assert calls == [] and len(again["skipped"]) == 2
    assert again["aggregate"] == report["aggregate"]
    # a new item is computed, the finished ones are still skipped
    more = evaluate_synth(counting, out_dir=out, **{**SETUP, "trajectories": [*SETUP["trajectories"], "pan"]})
    assert len(calls) == 2 and len(more["skipped"]) == 2  # model + static-camera call for the new clip
    pan = more["clips"][-1]["methods"]["model"]["camera"]
    assert pan["translation_defined"] is False and pan["TransErr_rel"] is None


def test_camera_errors_up_to_each_mark(oracle_run):
    """camera_marks[t] is the estimator run on frames 0..round(t fps) alone, scored on the path up to there."""
    out, oracle, report = oracle_run
    clip = build_clip(1, "explore:walk", size=SETUP["size"], fps=16, num_frames=17)
    record = report["clips"][0]
    assert record["key"] == clip.key
    half = record["methods"]["model"]["camera_marks"]["0.5"]
    est = estimate_poses(clip.gt_rgb[:9], clip.request.intrinsics, fps=16)
    direct = camera_errors(clip.request, est.trajectory)
    assert half["num_frames"] == 9
    for k in ("RotErr", "TransErr_rel", "CamMC_rel", "ATE"):
        assert half[k] == pytest.approx(getattr(direct, k))
    # the last mark is the whole video
    assert record["methods"]["model"]["camera_marks"]["1"] == record["methods"]["model"]["camera"]
    agg = report["aggregate"]
    for t in ("0.5", "1"):
        model, rep = agg["model"]["camera_marks"][t], agg["repeat_first"]["camera_marks"][t]
        assert model["num_clips"] == 2 and model["RotErr"] < rep["RotErr"] + 1e-9
        assert model["TransErr_rel"] < rep["TransErr_rel"]
    floor = agg["estimator_floor"]["camera_marks"]["0.5"]
    assert floor["RotErr"] == pytest.approx(agg["model"]["camera_marks"]["0.5"]["RotErr"])
    table = report_markdown(report)  # (report.md on disk may be a later run's: the fixture is shared)
    assert "Camera following up to 0.5 s:" in table
    m = agg["model"]["camera_marks"]["0.5"]
    assert f"| model | 2 | {m['RotErr']:.3f} | {m['TransErr_rel']:.3f} |" in table


def test_camera_marks_too_short_or_past_the_end_are_none(tmp_path):
    setup = {**SETUP, "trajectories": ["explore:walk"], "seconds_marks": (0.0625, 1)}
    report = evaluate_synth(make_oracle(**setup), out_dir=tmp_path, baselines=False, estimator_floor=False, **setup)
    marks = report["clips"][0]["methods"]["model"]["camera_marks"]
    assert marks["0.0625"] is None and marks["1"] is not None  # frame 1 alone is too short a path
    assert report["aggregate"]["model"]["camera_marks"]["0.0625"] is None


def test_paired_comparison_signs_wins_and_interval():
    """Positive = model better: higher PSNR, lower camera error; the bootstrap interval brackets the mean."""
    from sana_wm.eval.synth_eval import _paired

    def clip(psnr_m, psnr_b, rot_m, rot_b):
        def method(psnr, rot):
            return {"marks": {"1": {"psnr": psnr, "ssim": 0.5}}, "camera_marks": {"1": {"RotErr": rot}}}
        return {"methods": {"model": method(psnr_m, rot_m), "repeat_first": method(psnr_b, rot_b)}}

    results = [clip(20.0, 18.0, 1.0, 2.0), clip(19.0, 19.5, 3.0, 2.5), clip(21.0, 18.0, 1.0, 1.5),
               clip("inf", 18.0, None, 1.0)]  # the last clip has no finite PSNR and no rotation: left out
    out = _paired(results, [1.0])
    assert set(out) == {"repeat_first"}  # no static-camera rows in these results
    psnr, rot, ssim = out["repeat_first"]["PSNR 1 s"], out["repeat_first"]["RotErr up to 1 s"], \
        out["repeat_first"]["SSIM 1 s"]
    assert psnr["clips"] == 3 and psnr["wins"] == 2 and psnr["mean"] == pytest.approx((2.0 - 0.5 + 3.0) / 3)
    assert rot["clips"] == 3 and rot["wins"] == 2 and rot["mean"] == pytest.approx((1.0 - 0.5 + 0.5) / 3)
    assert ssim["wins"] == 0 and ssim["mean"] == 0.0  # ties are not wins
    for c in (psnr, rot):
        lo, hi = c["ci95"]
        assert -0.5 - 1e-9 <= lo <= c["mean"] <= hi <= 3.0 + 1e-9 and lo < hi
    assert _paired(results, [1.0]) == out  # fixed seed: the same interval every time


def test_paired_rows_in_the_report(oracle_run):
    _, _, report = oracle_run
    paired = report["paired"]
    assert set(paired) == {"repeat_first", "static_camera"}
    trans = paired["repeat_first"]["TransErr_rel up to 1 s"]
    assert trans["clips"] == 2 and trans["wins"] == 2 and trans["mean"] > 0  # the oracle follows the path
    assert "PSNR 1 s" not in paired["repeat_first"]  # the oracle's infinite PSNR is not a difference
    table = report_markdown(report)
    assert "| TransErr_rel up to 1 s | 2/2, " in table and "| quantity | vs repeat_first | vs static_camera |" in table


def _counting_setup():
    """One-trajectory evaluation settings without baselines, and an oracle generator that records each call."""
    setup = {**SETUP, "trajectories": ["pan"], "baselines": False, "estimator_floor": False}
    oracle, calls = make_oracle(**SETUP), []

    def counting(first, traj, n):
        calls.append(n)
        return oracle(first, traj, n)

    return setup, counting, calls


def test_other_sampler_settings_are_not_taken_from_the_cache(tmp_path):
    """Finished clips made with other generator settings (steps, seed, guidance) are computed again."""
    setup, counting, calls = _counting_setup()

    evaluate_synth(counting, out_dir=tmp_path, generator_settings={"steps": 3}, **setup)
    again = evaluate_synth(counting, out_dir=tmp_path, generator_settings={"steps": 3}, **setup)
    assert len(calls) == 1 and again["skipped"] == ["seed00001_pan"]
    other = evaluate_synth(counting, out_dir=tmp_path, generator_settings={"steps": 3, "camera_cfg": 2.0}, **setup)
    assert len(calls) == 2 and other["skipped"] == []
    assert other["settings"]["generator"] == {"steps": 3, "camera_cfg": 2.0}


def test_the_cache_is_keyed_on_the_weights_not_the_model_name(tmp_path):
    """New weights under the same model name are evaluated again; the same weights under another name are not."""
    setup, counting, calls = _counting_setup()

    first = evaluate_synth(counting, out_dir=tmp_path, model_name="run", weights={"transformer": "aa"}, **setup)
    assert len(calls) == 1 and first["settings"]["weights"] == {"transformer": "aa"}
    renamed = evaluate_synth(counting, out_dir=tmp_path, model_name="renamed", weights={"transformer": "aa"}, **setup)
    assert len(calls) == 1 and renamed["skipped"] == ["seed00001_pan"]
    retrained = evaluate_synth(counting, out_dir=tmp_path, model_name="run", weights={"transformer": "bb"}, **setup)
    assert len(calls) == 2 and retrained["skipped"] == []


def test_failed_motion_alignments_are_counted_in_the_report(tmp_path):
    """A frame pair the motion measure cannot align is a failure in the report, not a standing camera."""
    flat = []

    def flat_after_frame_3(first, traj, n):
        video = oracle(first, traj, n).copy()
        video[4:] = 128  # frames without texture: ECC cannot align 3->4, 4->5, ...
        flat.append(n - 4)
        return video

    setup = {**SETUP, "trajectories": ["pan"], "baselines": False, "estimator_floor": False}
    oracle = make_oracle(**SETUP)
    report = evaluate_synth(flat_after_frame_3, out_dir=tmp_path, **setup)
    motion = report["clips"][0]["methods"]["model"]["motion"]
    n = report["settings"]["num_frames"]
    assert motion["pairs"] == n - 1 and motion["failed_pairs"] == n - 4 == flat[0]
    assert report["aggregate"]["model"]["motion"]["failed_pairs"] == n - 4
    assert f"| {n - 4}/{n - 1} pairs |" in report_markdown(report)


def test_autoencoder_ceiling_row(tmp_path):
    """ceiling_fn's video is scored like a model: the identity is perfect, a blur is not, and the report names it."""
    setup = {**SETUP, "trajectories": ["explore:walk"]}
    oracle = make_oracle(**setup)

    def blur(video):
        v = video.astype(np.float32)
        v = (v + np.roll(v, 1, axis=1) + np.roll(v, 1, axis=2) + np.roll(v, (1, 1), axis=(1, 2))) / 4
        return v.round().astype(np.uint8)

    exact = evaluate_synth(oracle, out_dir=tmp_path / "a", ceiling_fn=lambda v: v, baselines=False, **setup)
    assert exact["aggregate"]["autoencoder_ceiling"]["marks"]["1"]["psnr"] == "inf"
    blurred = evaluate_synth(oracle, out_dir=tmp_path / "b", ceiling_fn=blur, baselines=False, **setup)
    row = blurred["aggregate"]["autoencoder_ceiling"]
    assert 15 < row["marks"]["1"]["psnr"] < 40 and row["marks"]["1"]["ssim"] < 1
    assert "| autoencoder_ceiling | 1 |" in (tmp_path / "b" / "report.md").read_text()
    assert blurred["settings"]["autoencoder_ceiling"] is True


def test_baselines_and_marks():
    frame = np.full((8, 8, 3), 7, np.uint8)
    from sana_wm.camera.presets import make_preset

    path = make_preset("dolly", num_frames=5, fps=16)
    assert repeat_first_frame(frame, path, 5).shape == (5, 8, 8, 3)
    seen = []
    static_camera(lambda f, t, n: seen.append(t) or repeat_first_frame(f, t, n))(frame, path, 5)
    np.testing.assert_array_equal(seen[0].c2w, identity_trajectory(path).c2w)
    assert mark_frames(1.0, 16, 161).tolist() == [16]
    assert mark_frames(1.0, 16, 161, window=2).tolist() == [14, 15, 16, 17, 18]
    assert mark_frames(10.0, 16, 100) is None
    assert math.isclose(len(mark_frames(0.0, 16, 10, window=3)), 4)


def test_generate_fn_output_is_checked(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        evaluate_synth(lambda f, t, n: np.zeros((n, 96, 128, 3), np.float32), out_dir=tmp_path,
                       **{**SETUP, "trajectories": ["pan"]})


def test_report_records_its_environment(oracle_run, tmp_path):
    """Camera rows near the start move with the generator's last bits (CPU, thread count): each clip and the
    report say which libraries and how many threads made them, and a reused clip from elsewhere is named."""
    import shutil

    import cv2
    import torch

    out, oracle, report = oracle_run
    env = report["environment"]
    assert env["opencv"] == cv2.__version__ and env["numpy"] == np.__version__
    assert env["torch"] == torch.__version__ and env["torch_threads"] == torch.get_num_threads()
    assert all(c["environment"] == env for c in report["clips"]) and report["clips_from_other_environments"] == []
    assert f"OpenCV {cv2.__version__}" in (out / "report.md").read_text()
    # A finished clip written in another environment is reused (same settings) but named in the report.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    path = copy / "clips" / "seed00001_explore-orbit.json"
    clip = json.loads(path.read_text())
    clip["environment"] = {**clip["environment"], "torch_threads": 97}
    path.write_text(json.dumps(clip))
    again = evaluate_synth(oracle, out_dir=copy, **SETUP)
    assert len(again["skipped"]) == 2 and again["clips_from_other_environments"] == ["seed00001_explore-orbit"]
    assert "1 of the clips were scored earlier in another environment" in (copy / "report.md").read_text()


def test_a_report_write_that_fails_midway_keeps_the_earlier_report(tmp_path, monkeypatch):
    import os

    setup, counting, _ = _counting_setup()
    evaluate_synth(counting, out_dir=tmp_path, **setup)
    before = {name: (tmp_path / name).read_bytes() for name in ("report.json", "report.md", "contact_sheet.png")}
    real = os.replace

    def full_disk(src, dst):
        if os.path.basename(dst) in before:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        evaluate_synth(counting, out_dir=tmp_path, **{**setup, "seconds_marks": (0.5,)})
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
