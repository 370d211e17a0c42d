"""benchmarks/gpu_suite.py: the tiny run works end to end on CPU, and one section's failure spares the others."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_every_section(tmp_path):
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(SUITE_PATH), "--out", str(tmp_path), "--tiny", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_suite.json").read_text())
    sections = [name for name, _, _ in load_suite().SECTIONS]
    assert list(results) == ["settings", *sections]
    for name in sections:
        assert results[name]["status"] == "ok", (name, results[name])
    # The kernel checks really compared numbers: twelve rows (2 dtypes x 3 modes x 2 branches), all passed.
    rows = results["kernel_correctness"]["rows"]
    assert len(rows) == 12 and all(row["passed"] for row in rows)
    assert all(0 < row["forward_rel_error"] < 1e-2 for row in rows)
    assert results["kernel_speed"]["interpreted"] is True  # and therefore labelled as not a speed
    assert "not kernel speed" in results["kernel_speed"]["note"]
    assert len(results["streaming"]["rows"]) == 2
    assert results["streaming_compiled"]["max_rel_diff_vs_eager"] == 0.0  # Dynamo's capture, run op by op
    assert results["streaming_graphs"]["note"] == "CUDA graphs need a GPU: not run"
    assert results["vae_decode"]["output_shape"] == [1, 3, 24, 64, 96]  # 3 latent frames -> 24 frames, x32
    pipeline = results["pipeline"]
    assert pipeline["chunk_s"] == pytest.approx(pipeline["stage1_s"] + pipeline["refiner_s"] + pipeline["vae_decode_s"])
    overlap = results["pipeline_overlap"]  # on the CPU both runs are in order: the section's dry run
    assert [row["overlap"] for row in overlap["rows"]] == [False, True]
    assert not any(row["took_effect"] for row in overlap["rows"]) and "dry run" in overlap["note"]
    assert overlap["frames_identical"] is True and overlap["latents_identical"] is True
    markdown = (tmp_path / "gpu_suite.md").read_text()
    assert all(f"## {name}" in markdown for name in sections)


def make_suite(module, tmp_path, budget_s=60.0):
    args = argparse.Namespace(out=str(tmp_path), tiny=True, device="cpu", budget_s=budget_s, sections=None)
    return module.Suite(args)


def test_a_failing_section_is_recorded_and_the_next_one_runs(tmp_path):
    module = load_suite()
    suite = make_suite(module, tmp_path)

    def broken(suite, result):
        result["partial"] = 1
        raise RuntimeError("boom\nsecond line")

    module.run_section(suite, "broken", broken, 0)
    module.run_section(suite, "fine", lambda suite, result: result.update(value=2), 0)
    results = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert results["broken"]["status"] == "error: RuntimeError: boom"
    assert results["broken"]["partial"] == 1 and "Traceback" in results["broken"]["traceback"]
    assert results["fine"] == {"value": 2, "status": "ok", "section_s": results["fine"]["section_s"]}


def test_the_time_budget_skips_and_stops_sections(tmp_path):
    module = load_suite()
    suite = make_suite(module, tmp_path, budget_s=5.0)
    module.run_section(suite, "too_long", lambda suite, result: None, min_seconds=30)
    assert suite.results["too_long"]["status"].startswith("skipped: ")

    def looping(suite, result):
        result["rows"] = [{"row": 1}]
        suite.deadline = 0.0  # the budget runs out inside the section: its rows so far are kept
        suite.check_time()
        result["rows"].append({"row": 2})

    module.run_section(suite, "looping", looping, 0)
    assert suite.results["looping"]["status"].startswith("stopped: time budget")
    assert suite.results["looping"]["rows"] == [{"row": 1}]


def test_full_suite_refuses_cpu(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_suite().main(["--out", str(tmp_path), "--device", "cpu"])
    assert "needs a GPU" in capsys.readouterr().err
