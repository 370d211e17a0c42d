"""--stage1-precision / --refiner-precision through the CLI and the pipeline on the tiny released-layout models."""

import pytest

from sana_wm.cli import main
from sana_wm.pipeline.sidecar import read_sidecar
from sana_wm.quant import DeviceInfo, quantization_of
from sana_wm.quant.modules import EmulatedLinear


def cli(repos, image_path, out, *extra):
    return main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "17", "--steps", "2",
                 "--model", str(repos["bidirectional"]), "--text-encoder", str(repos["text_encoder"]),
                 "--no-progress", "--out", str(out), *extra])


def test_cli_quantizes_both_stages_records_it_and_says_it_is_an_emulation(repos, image_path, tmp_path, capsys):
    out = tmp_path / "q.mp4"
    assert cli(repos, image_path, out, "--stage1-precision", "nvfp4", "--refiner-precision", "int8") == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "emulated on the CPU" in line]
    assert len(notes) == 2, err  # one line per quantized model
    assert "stage1: nvfp4 with the Hadamard transform and stochastic rounding on 40 GEMMs" in notes[0]
    settings = read_sidecar(out)["settings"]
    assert settings["stage1_precision"] == "nvfp4" and settings["refiner_precision"] == "int8"
    q = settings["quantization"]
    assert q["stage1"]["quantized"] == 40 and q["stage1"]["hadamard"] and q["stage1"]["backend"] == "emulate"
    assert q["refiner"]["precision"] == "int8" and not q["refiner"]["hadamard"]


def test_refiner_precision_without_a_refiner_is_a_warning(repos, image_path, tmp_path, capsys):
    out = tmp_path / "w.mp4"
    assert cli(repos, image_path, out, "--no-refiner", "--refiner-precision", "fp8") == 0
    assert "--refiner-precision is ignored: no refiner is loaded" in capsys.readouterr().err
    settings = read_sidecar(out)["settings"]
    assert settings["stage1_precision"] == "bf16" and settings["refiner_precision"] is None
    assert settings["quantization"] == {}


def test_a_gpu_that_cannot_run_the_precision_is_refused_before_loading(repos, image_path, tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(DeviceInfo, "of", classmethod(lambda cls, device: cls("cuda", (9, 0))))
    rc = cli(repos, image_path, tmp_path / "r.mp4", "--device", "cuda", "--stage1-precision", "nvfp4")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == ("sana-wm: error: nvfp4 needs a Blackwell GPU (sm_100 or newer); this GPU is sm_90: use "
                           "--stage1-precision fp8")


def test_from_pretrained_quantizes_and_the_sidecar_regenerates_it(repos, image_path, tmp_path):
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline import SanaWMPipeline
    from sana_wm.pipeline.sidecar import regenerate_from_sidecar

    with pytest.warns(UserWarning, match="emulated on the CPU"):
        pipe = SanaWMPipeline.from_pretrained(repos["bidirectional"], text_encoder=repos["text_encoder"],
                                              stage1_precision="fp8")
    assert quantization_of(pipe.transformer).precision == "fp8"
    assert isinstance(pipe.transformer.blocks[0].attn.qkv, EmulatedLinear)
    out = tmp_path / "a.mp4"
    first = pipe.generate(image_path, action_to_trajectory("w-30"), num_frames=9, steps=2, output=out,
                          progress=False, keep_frames=True)
    with pytest.warns(UserWarning, match="emulated on the CPU"):
        again = regenerate_from_sidecar(out, tmp_path / "b.mp4", device="cpu")
    assert read_sidecar(tmp_path / "b.mp4")["settings"]["stage1_precision"] == "fp8"
    assert (again.latents == first.latents).all()
