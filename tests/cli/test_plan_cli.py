"""`sana-wm plan` and `generate --gpu-memory`."""

import json

import pytest
import torch

from sana_wm.cli import CLIError, build_parser, main
from sana_wm.pipeline import read_sidecar


def test_plan_prints_the_settings_that_fit_chosen_first(capsys):
    assert main(["plan", "--gpu-memory", "24", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    chosen = plan["chosen"]
    assert plan["budget_gib"] == 24 and chosen["fits"] and chosen["peak_gib"] < 24
    assert plan["rows"][0] == chosen and chosen["setting"]["refiner_precision"] is not None
    assert set(chosen["stage_peaks_gib"]) <= {"first", "sample"} and chosen["flags"][0] == "--stage1-precision"
    assert main(["plan", "--gpu-memory", "24", "--device-capability", "8.0"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("GPU compute capability 8.0") and "[chosen]" in text and "fp8" not in text


def test_plan_says_when_nothing_fits_and_names_the_nearest(capsys):
    assert main(["plan", "--gpu-memory", "6", "--seconds", "10"]) == 0
    text = capsys.readouterr().out
    assert "nothing fits in 6.0 GiB: the nearest setting (stage 1" in text and "more" in text


@pytest.mark.parametrize("argv, words", [
    (["--gpu-memory", "0"], "--gpu-memory 0"),
    (["--gpu-memory", "24", "--device-capability", "nine"], "--device-capability nine"),
    (["--gpu-memory", "24", "--seconds", "0"], "--seconds 0: must be > 0"),
    (["--gpu-memory", "24", "--num-frames", "1"], "at least 2 frames")])
def test_plan_refuses_bad_numbers(argv, words, capsys):
    assert main(["plan", *argv]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the default budget is the GPU's free memory")
def test_plan_without_a_budget_on_a_machine_without_gpu(capsys):
    assert main(["plan"]) == 2
    assert "--gpu-memory GIB" in capsys.readouterr().err


def test_generate_gpu_memory_on_the_cpu_says_it_does_not_take_effect(tmp_path, capsys):
    out = tmp_path / "v.mp4"
    code = main(["generate", "--example", "room_walk", "--seconds", "1.5", "--out", str(out), "--no-progress",
                 "--device", "cpu", "--gpu-memory", "24"])
    err = capsys.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if "--gpu-memory" in line]
    assert lines == ["sana-wm: --gpu-memory 24 does not take effect: this run is on the cpu, not a GPU (the "
                     "settings are the ones given)"]
    assert read_sidecar(out)["settings"]["memory_plan"] is None


def _gpu_args(monkeypatch, *argv):
    """generate's arguments and a pretend Hopper GPU, to plan as on one."""
    from sana_wm.bundled import bundled_model_dir

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    args = build_parser().parse_args(["generate", "--out", "v.mp4", *argv])
    args.model = str(bundled_model_dir())
    return args


def test_generate_gpu_memory_applies_the_plan_and_keeps_the_flags_set(monkeypatch, capsys):
    from sana_wm.cli.generate import _apply_memory_plan

    args = _gpu_args(monkeypatch, "--gpu-memory", "8")
    record = _apply_memory_plan(args, torch.device("cuda"), 49, "auto")
    assert args.stage1_precision == "bf16" and record["setting"]["stage1_precision"] == "bf16"
    assert record["estimated_peak_gib"] < 8 and record["set_by_user"] == []
    assert "--gpu-memory 8: stage 1 bf16" in capsys.readouterr().err
    args = _gpu_args(monkeypatch, "--gpu-memory", "8", "--stage1-precision", "int4")
    record = _apply_memory_plan(args, torch.device("cuda"), 49, "auto")
    assert args.stage1_precision == "int4" and record["set_by_user"] == ["stage1_precision"]


def test_generate_gpu_memory_refuses_naming_the_nearest_setting(monkeypatch):
    from sana_wm.cli.generate import _apply_memory_plan

    args = _gpu_args(monkeypatch, "--gpu-memory", "0.1")
    with pytest.raises(CLIError) as caught:
        _apply_memory_plan(args, torch.device("cuda"), 961, "auto")
    message = str(caught.value)
    assert message.startswith("--gpu-memory 0.1: nothing fits; the nearest setting (stage 1 int4")
    assert "GiB more" in message and "--no-refiner" not in message  # the bundled model has no refiner


def test_generate_refuses_a_text_encoder_device_that_is_not_one(tmp_path, capsys):
    code = main(["generate", "--example", "room_walk", "--seconds", "1.5", "--out", str(tmp_path / "v.mp4"),
                 "--device", "cpu", "--text-encoder-device", "gpu0"])
    assert code == 2 and "--text-encoder-device gpu0: not a torch device" in capsys.readouterr().err
