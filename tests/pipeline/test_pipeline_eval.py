"""`sana-wm eval synth` end to end with a tiny random model in the released layout."""

import json

from sana_wm.cli import main


def test_eval_synth_cli_runs_and_resumes(repos, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["eval", "synth", "--model", str(repos["streaming"]), "--text-encoder", str(repos["text_encoder"]),
            "--seeds", "1000", "--trajectories", "explore:walk", "--marks", "0.5,1", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    text = json.dumps(report)
    for name in ("model", "repeat_first", "static_camera", "autoencoder_ceiling"):
        assert name in text
    assert (out / "contact_sheet.png").stat().st_size > 1000
    plain = report["clips"][0]["methods"]["model"]["marks"]["1"]["psnr"]
    capsys.readouterr()
    # A rerun with the same settings loads the finished clip instead of generating it again.
    clip_files = list((out / "clips").glob("*.json"))
    mtimes = [f.stat().st_mtime_ns for f in clip_files]
    assert main(args) == 0
    assert [f.stat().st_mtime_ns for f in clip_files] == mtimes
    assert json.loads((out / "report.json").read_text())["settings"]["generator"] == {"variant": "streaming",
                                                                                      "seed": 0}
    # Other sampler settings (here camera guidance) make the clip again.
    assert main([*args, "--camera-cfg", "2"]) == 0
    assert [f.stat().st_mtime_ns for f in clip_files] != mtimes
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["generator"] == {"variant": "streaming", "seed": 0, "camera_cfg": 2.0}
    assert main([*args, "--camera-cfg", "2", "--camera-cfg-chunks", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["generator"] == {"variant": "streaming", "seed": 0, "camera_cfg": 2.0,
                                               "camera_cfg_chunks": 1}
    # So does another flow shift, and the model's video changes with it.
    assert main([*args, "--shift", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["generator"] == {"variant": "streaming", "seed": 0, "shift": 1.0}
    assert report["clips"][0]["methods"]["model"]["marks"]["1"]["psnr"] != plain


def test_autoencoder_ceiling_is_the_truth_through_the_vae(repos):
    """The ceiling row is the ground truth encoded and decoded by the model's own VAE, padded to 8k+1."""
    import numpy as np
    import torch

    from sana_wm.eval.model_adapter import autoencoder_roundtrip_fn
    from sana_wm.pipeline import SanaWMPipeline

    pipe = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32")
    H, W = pipe.image_size
    video = np.random.default_rng(0).integers(0, 256, (12, H, W, 3), dtype=np.uint8)
    out = autoencoder_roundtrip_fn(pipe)(video)
    assert out.shape == video.shape and out.dtype == np.uint8
    padded = np.concatenate([video, np.repeat(video[-1:], 5, axis=0)])  # 12 -> 17 = 8 * 2 + 1 frames
    x = torch.from_numpy(padded).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        ref = pipe.vae.decode(pipe.vae.encode(x))
    ref = ((ref[0].permute(1, 2, 3, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)[:12]
    np.testing.assert_array_equal(out, ref)
    assert np.abs(out.astype(int) - video).mean() > 1  # a random VAE does change the frames


def test_eval_synth_cache_follows_the_weights_not_the_folder(repos, tmp_path):
    """Retraining into the same folder evaluates again; the same weights in a renamed folder do not."""
    import shutil

    import torch

    model, renamed, out = tmp_path / "run", tmp_path / "renamed", tmp_path / "report"
    shutil.copytree(repos["streaming"], model)

    def run(folder):
        args = ["eval", "synth", "--model", str(folder), "--text-encoder", str(repos["text_encoder"]), "--seeds",
                "1000", "--trajectories", "pan", "--marks", "0.5", "--no-baselines", "--no-ceiling", "--out", str(out)]
        assert main(args) == 0
        report = json.loads((out / "report.json").read_text())
        return report["skipped"], report["settings"]["weights"]

    skipped, weights = run(model)
    assert skipped == [] and set(weights) == {"transformer", "codec", "settings"} and weights["codec"]
    model.rename(renamed)
    assert run(renamed) == (["seed01000_pan"], weights)
    renamed.rename(model)
    # "Retrain": new weights written over the old file, same folder, same file name and size.
    ckpt = torch.load(model / "sana_dit" / "model.pt", weights_only=True)
    ckpt["generator"]["final_layer.linear.bias"] += 0.1
    torch.save(ckpt, model / "sana_dit" / "model.pt")
    skipped, retrained = run(model)
    assert skipped == [] and retrained["transformer"] != weights["transformer"]
    assert retrained["codec"] == weights["codec"]
