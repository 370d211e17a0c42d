"""report.json / report.md / plots from a scored run, the CLI (score, then --report-only without estimating),
a scene whose camera the estimator cannot place, and LPIPS's plumbing (a stand-in lpips package: the real one
needs torchvision and AlexNet weights the tests cannot download)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from score_fixtures import synth_scene, write_bench, write_run

from sana_wm.bench.layout import BenchError
from sana_wm.cli import main


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    scene, _ = synth_scene("open_001", 7, seconds=3.0, fps=4.0, size=(128, 96), pairs=((0, 8), (1, 12)))
    flat = type(scene)("indoor_001", scene.c2w, scene.K, scene.size, scene.fps, scene.first_frame, [(0, 4)])
    write_bench(root, [scene, flat])
    grey = np.full_like(scene.truth, 128)  # nothing for the estimator to match
    # The run was shortened to 2.25 s (as `bench run --seconds` does): the path goes on past the video's end.
    run = write_run(root / "run", root, {"open_001": scene.truth[:10], "indoor_001": grey}, fps=4.0, refiner=True)
    out = root / "scores"
    assert main(["bench", "score", str(run), "--estimator", "opencv", "--out", str(out)]) == 0
    return run, out


def test_report_files_and_table(scored):
    run, out = scored
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    for name in ("open_001", "indoor_001"):
        assert (out / "plots" / f"{name}_contact.png").is_file()
    assert (out / "plots" / "open_001_path.png").is_file() and (out / "plots" / "open_001_error.png").is_file()
    assert not (out / "plots" / "indoor_001_path.png").exists()  # no camera result, no path to draw
    assert "| SANA-WM (published) | simple_60s, refiner | 4.50 | 1.39 | 1.41 |" in md
    assert "| ours: test-model | simple_60s, refiner |" in md
    split = report["aggregate"]["split"]
    assert split["scenes"] == 2 and split["camera"]["scenes"] == 1 and split["camera"]["scenes_failed"] == 1
    assert split["revisit"]["lpips"] == "not computed" and "not computed" in md
    assert split["temporal"]["musiq"] == "not computed"
    assert set(report["aggregate"]["categories"]) == {"open", "indoor"}
    # The failed scene is in the table with its reason, not silently left out.
    assert "| indoor_001 | indoor | - | - | - | failed: the pose estimator placed fewer than 2 frames |" in md
    # A revisit pair past the shortened video's end is skipped and listed.
    open_scene = next(s for s in report["scenes"] if s["scene"] == "open_001")
    assert open_scene["revisit"]["skipped_pairs"] == [[1, 12]] and open_scene["revisit"]["pairs"][0][:2] == [0, 8]
    # The camera mean over scenes is the mean of the scenes that have one.
    assert split["camera"]["RotErr"] == pytest.approx(open_scene["camera"]["RotErr"])


def test_report_only_rebuilds_without_estimating(scored, monkeypatch):
    run, out = scored
    before = json.loads((out / "report.json").read_text())
    (out / "report.md").unlink()

    def no_estimation(*args, **kwargs):
        raise AssertionError("--report-only must not estimate poses")

    monkeypatch.setattr("sana_wm.bench.score.make_backend", no_estimation)
    assert main(["bench", "score", str(run), "--out", str(out), "--report-only"]) == 0
    after = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file()
    assert after["aggregate"] == before["aggregate"]
    # Scoring again resumes every scene: nothing is estimated either.
    assert main(["bench", "score", str(run), "--estimator", "opencv", "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["resumed"] == ["open_001", "indoor_001"]
    # A subset of the scenes: the report covers those only.
    assert main(["bench", "score", str(run), "--out", str(out), "--report-only", "--scenes", "open_001"]) == 0
    assert [s["scene"] for s in json.loads((out / "report.json").read_text())["scenes"]] == ["open_001"]


def test_cli_refusals(scored, capsys, monkeypatch):
    run, out = scored
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vbench" else find_spec(name, *a))
    assert main(["bench", "score", str(run), "--estimator", "opencv", "--out", str(out), "--vbench"]) == 2
    assert "--vbench needs the vbench package" in capsys.readouterr().err
    assert main(["bench", "score", str(run), "--out", str(out), "--report-only", "--lpips-weights", "x.pth"]) == 2
    assert "--lpips-weights has no effect with --report-only" in capsys.readouterr().err
    assert main(["bench", "score", str(run), "--estimator", "opencv", "--weights", "w"]) == 2
    assert "--weights goes with --estimator learned" in capsys.readouterr().err
    assert main(["bench", "score", str(run.parent / "nowhere")]) == 2
    assert "no run.json" in capsys.readouterr().err


def _fake_lpips(seen: dict):
    """A stand-in for the lpips package: LPIPS(net="alex") with AlexNet's layer indices in two slices (as lpips
    slices torchvision's features), distance = mean squared difference of the first conv's features."""
    import torch
    from torch import nn

    class LPIPS(nn.Module):
        def __init__(self, net, pretrained, pnet_rand, verbose):
            super().__init__()
            seen.update(net=net, pretrained=pretrained, pnet_rand=pnet_rand)
            self.net = nn.Module()
            self.net.slice1 = nn.Sequential()
            self.net.slice1.add_module("0", nn.Conv2d(3, 4, 3))
            self.net.slice1.add_module("1", nn.ReLU())
            self.net.slice2 = nn.Sequential()
            self.net.slice2.add_module("2", nn.MaxPool2d(2))
            self.net.slice2.add_module("3", nn.Conv2d(4, 4, 3))

        def forward(self, x, y):
            seen["range"] = (float(torch.minimum(x.min(), y.min())), float(torch.maximum(x.max(), y.max())))
            fx, fy = self.net.slice1(x), self.net.slice1(y)
            return ((fx - fy) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    return types.SimpleNamespace(LPIPS=LPIPS)


def test_lpips_loads_the_users_backbone_and_scores_in_minus_one_to_one(monkeypatch, tmp_path):
    import torch

    from sana_wm.bench.score import LpipsScorer, revisit_scores

    seen: dict = {}
    monkeypatch.setitem(sys.modules, "lpips", _fake_lpips(seen))
    g = torch.Generator().manual_seed(0)
    state = {"features.0.weight": torch.randn(4, 3, 3, 3, generator=g), "features.0.bias": torch.randn(4, generator=g),
             "features.3.weight": torch.randn(4, 4, 3, 3, generator=g), "features.3.bias": torch.randn(4, generator=g),
             "classifier.1.weight": torch.randn(2, 2, generator=g)}
    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    scorer = LpipsScorer(path)
    assert seen == {"net": "alex", "pretrained": True, "pnet_rand": True}
    assert torch.equal(scorer.net.net.slice2[1].weight, state["features.3.weight"])
    frames = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    frames[5] = 0
    frames[4] = 255
    out = revisit_scores(frames, [(0, 0), (4, 5)], path_fps=16.0, video_fps=16.0, lpips=scorer)
    assert seen["range"] == (-1.0, 1.0)
    assert out["lpips_status"] == "computed" and out["lpips_per_pair"][0] == 0.0 and out["lpips_per_pair"][1] > 0
    torch.save({"features.0.weight": state["features.0.weight"]}, path)
    with pytest.raises(BenchError, match="features.0.bias"):
        LpipsScorer(path)


def test_lpips_refuses_clearly_without_the_package(monkeypatch, tmp_path):
    from sana_wm.bench.score import LpipsScorer

    monkeypatch.setitem(sys.modules, "lpips", None)
    path = tmp_path / "alexnet.pth"
    path.write_bytes(b"x")
    with pytest.raises(BenchError, match="pip install lpips"):
        LpipsScorer(path)


def test_bench_synth_run_score_end_to_end_with_the_bundled_model(tmp_path):
    """The three commands one after the other, as a user runs them: a 1.5 s bench synth scene, the bundled model
    on it, then the scorer against the exact ground truth."""
    bench, run = tmp_path / "synth", tmp_path / "run"
    assert main(["bench", "synth", "--out", str(bench), "--scenes", "1", "--seconds", "1.5", "--quiet"]) == 0
    assert main(["bench", "run", "--bench", str(bench), "--split", "simple_60s", "--model", "sana-wm-synth",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["bench", "score", str(run), "--estimator", "opencv"]) == 0
    report = json.loads((run / "scores" / "report.json").read_text())
    scene = report["scenes"][0]
    assert scene["scene"] == "room_001" and scene["video"]["frames"] == 25
    gt = report["aggregate"]["split"]["ground_truth"]
    assert set(gt) == {"1"} and report["aggregate"]["split"]["ground_truth_skipped_marks"] == [5.0, 10.0, 30.0, 60.0]
    assert 10.0 < gt["1"]["PSNR"] < 60.0  # a generated frame against the exact render: neither noise nor a copy
    assert "ours: sana-wm-synth" in (run / "scores" / "report.md").read_text()
