"""The linear patch codec end to end: `sana-wm vae fit-pca` and `vae encode` on a synthetic dataset, then a
model folder whose autoencoder is the codec (as the bundled model's is) generates, streams and evaluates."""

import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import yaml
from pipeline_helpers import randomized_transformer

from sana_wm.bundled.codec import PatchPCACodec
from sana_wm.camera.presets import make_preset
from sana_wm.cli import main
from sana_wm.data import LatentCache, read_clips
from sana_wm.data.latents import frames_to_vae_input, prepare_clip
from sana_wm.model import save_pretrained
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.pipeline.export import export_model_folder
from sana_wm.pipeline.video import read_video, to_uint8_frames
from sana_wm.synth.dataset import write_synthetic_dataset
from sana_wm.vae import VideoVAE


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    base = tmp_path_factory.mktemp("codec")
    data = base / "data"
    write_synthetic_dataset(data, 10, seconds=1.0, size=(32, 48), frames_codec="npz", with_depth=False)
    assert main(["vae", "fit-pca", "--data", str(data), "--out", str(base / "codec"), "--patch-size", "16",
                 "--channels", "16", "--frames", "17", "--max-clips", "8", "--held-out", "2"]) == 0
    return {"base": base, "data": data, "codec": base / "codec"}


def test_fit_pca_cli_writes_a_loadable_codec_and_a_report(fitted):
    report = json.loads((fitted["codec"] / "report.json").read_text())
    assert report["held_out_clips"] == 2 and report["config"]["fitted_on"]["clips"] == 8
    assert 0 < report["config"]["explained_variance"] < 1
    codec = VideoVAE.from_pretrained(fitted["codec"])
    assert isinstance(codec, PatchPCACodec) and codec.latent_channels == 16 and codec.spatial_stride == 16
    # the reported held-out PSNR is that of the last two clips through the codec
    clips = list(read_clips(fitted["data"]))[8:]
    psnrs = []
    for clip in clips:
        x = frames_to_vae_input(clip.frames_numpy()[:17])
        mse = ((codec.decode(codec.encode(x)) - x) ** 2).mean(dim=(0, 1, 3, 4)) / 4
        psnrs.extend((10 * torch.log10(1 / mse)).tolist())
    assert report["held_out_psnr"] == pytest.approx(float(np.mean(psnrs)), rel=1e-5)


def test_encode_cli_fills_the_cache_with_codec_latents(fitted):
    assert main(["vae", "encode", str(fitted["data"]), "--vae", str(fitted["codec"]), "--frames", "17"]) == 0
    codec = VideoVAE.from_pretrained(fitted["codec"])
    clip = prepare_clip(list(read_clips(fitted["data"]))[3], num_frames=17)
    cached = LatentCache(fitted["data"]).load(clip.key)
    assert cached.latents.shape == (1, 16, 3, 2, 3)
    torch.testing.assert_close(cached.latents, codec.encode(frames_to_vae_input(clip.frames_numpy())))


def test_fit_pca_cli_errors(fitted, tmp_path, capsys):
    assert main(["vae", "fit-pca", "--data", str(fitted["data"]), "--out", str(tmp_path / "x"), "--frames", "16"]) == 2
    assert "--frames must be 8k+1" in capsys.readouterr().err
    assert main(["vae", "fit-pca", "--data", str(fitted["data"]), "--out", str(tmp_path / "x"), "--frames", "25"]) == 2
    assert "has 17 frames; --frames is 25" in capsys.readouterr().err


def test_model_with_the_codec_generates_streams_and_evaluates(fitted, tmp_path):
    from sana_wm.eval.model_adapter import autoencoder_roundtrip_fn

    tiny = randomized_transformer()
    assert tiny.config.in_channels == 16  # the codec's channel count, so the tiny config fits unchanged
    ckpt = tmp_path / "step-1"
    save_pretrained(tiny, ckpt)
    out = export_model_folder(ckpt, fitted["codec"], tmp_path / "model", image_size=(32, 48), fps=16,
                              sampler={"steps": 2, "shift": 2.0}, use_ema=False, dtype=torch.float32)
    assert (out / "patch_codec" / "codec.safetensors").is_file() and not (out / "ltx2_causal_vae").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["sana_wm"]["vae"] == "patch_codec"
    pipe = SanaWMPipeline.from_pretrained(out, device="cpu", dtype="fp32")
    assert isinstance(pipe.vae, PatchPCACodec)
    first = list(read_clips(fitted["data"]))[9].frames_numpy()[0]
    result = pipe.generate(first, make_preset("dolly", seconds=3.0, fps=16), num_frames=49,
                           output=tmp_path / "v.mp4", progress=False, keep_frames=True)
    frames, fps = read_video(tmp_path / "v.mp4")
    assert frames.shape == (49, 32, 48, 3) and fps == 16 and result.frames.shape == (49, 32, 48, 3)
    # frame 0 is the clean conditioning latent decoded: the image through the codec
    codec = pipe.vae
    expected = to_uint8_frames(codec.decode(codec.encode(frames_to_vae_input(first[None]))))[0]
    assert np.abs(result.frames[0].astype(int) - expected.astype(int)).max() <= 1
    # later frames are generated (they differ from frame 0) and finite
    assert np.abs(result.frames[30].astype(int) - result.frames[0].astype(int)).mean() > 1
    # the evaluation's autoencoder ceiling runs through the codec
    video = list(read_clips(fitted["data"]))[9].frames_numpy()[:17]
    ceiling = autoencoder_roundtrip_fn(pipe)(video)
    assert ceiling.shape == video.shape
    direct = to_uint8_frames(codec.decode(codec.encode(frames_to_vae_input(video))))
    np.testing.assert_array_equal(ceiling, direct)


WRAPPER = {"kind": "warp_prior_x0", "min_sigma": 0.05, "eye_height": 1.2, "far_depth": 5.0}


def _warp_model(fitted, tmp_path, *, zero_output: bool):
    """A tiny warp-prior model folder on the fitted codec (output layer zeroed on request, so the model returns
    its prior exactly), exported from a checkpoint that records its wrapper."""
    model = randomized_transformer()
    if zero_output:
        torch.nn.init.zeros_(model.final_layer.linear.weight)
        torch.nn.init.zeros_(model.final_layer.linear.bias)
    save_pretrained(model, tmp_path / "step-1")
    (tmp_path / "step-1" / "wrapper.json").write_text(json.dumps(WRAPPER))
    out = export_model_folder(tmp_path / "step-1", fitted["codec"], tmp_path / "model", image_size=(32, 48), fps=16,
                              sampler={"steps": 3, "shift": 2.0}, use_ema=False, dtype=torch.float32)
    return SanaWMPipeline.from_pretrained(out, device="cpu", dtype="fp32")


def test_warp_prior_latents_frame_zero_blocks_and_a_standing_camera(fitted):
    from sana_wm.bundled.warp import warp_first_frame, warp_prior_latents

    codec = VideoVAE.from_pretrained(fitted["codec"])
    first = list(read_clips(fitted["data"]))[9].frames_numpy()[:1]
    latent = codec.encode(frames_to_vae_input(first))  # (1, C, 1, h, w)
    traj = make_preset("orbit", seconds=2.0, fps=16, num_frames=25)
    c2w = torch.from_numpy(traj.c2w)[None]
    intr = torch.tensor([40.0, 40.0, 23.5, 15.5], dtype=torch.float64).expand(1, 25, 4)
    prior = warp_prior_latents(codec, latent, c2w, intr, eye_height=1.2, far=5.0)
    assert prior.shape == (1, 16, 4, 2, 3)
    torch.testing.assert_close(prior[:, :, :1], latent)
    # one block or one latent frame at a time: the same as encoding the whole warped video at once
    image = codec.decode(latent)[:, :, 0]
    warped = warp_first_frame(image, c2w[:, 1:], intr[:, 1:], first_c2w=c2w[:, 0], first_intrinsics=intr[:, 0],
                              eye_height=1.2, far=5.0)
    torch.testing.assert_close(warped, warp_first_frame(image, c2w, intr, eye_height=1.2, far=5.0)[:, :, 1:])
    whole = codec.encode(torch.cat([image[:, :, None], warped], dim=2))
    torch.testing.assert_close(prior[:, :, 1:], whole[:, :, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(warp_prior_latents(codec, latent, c2w, intr, eye_height=1.2, far=5.0,
                                                  block_latent_frames=1), prior)
    assert (prior[:, :, 3] - latent[:, :, 0]).abs().mean() > 0.05  # the orbit moved the image
    # a standing camera: the decoded first frame, held, at every latent frame after the first
    still = torch.eye(4, dtype=torch.float64).expand(1, 25, 4, 4)
    standing = warp_prior_latents(codec, latent, still, intr)
    held = codec.encode(image[:, :, None].expand(-1, -1, 9, -1, -1))[:, :, 1:]
    torch.testing.assert_close(standing[:, :, 1:], held.expand(-1, -1, 3, -1, -1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs 8k \\+ 1"):
        warp_prior_latents(codec, latent, c2w[:, :24], intr[:, :24])


@pytest.mark.parametrize("camera_cfg, source", [(1.0, "same"), (2.0, "same"), (1.0, "wide")])
def test_warp_model_generates_its_prior_along_the_camera(fitted, tmp_path, camera_cfg, source):
    """With a zero output layer a sample_warp model's video is its warp prior decoded; camera guidance pits it
    against the standing camera's prior: x0 = standing + cfg (prior - standing). A wider, larger image is
    resized and centre-cropped, and the prior's intrinsics follow the crop."""
    from sana_wm.bundled.warp import warp_prior_latents
    from sana_wm.camera.conditioning import center_crop_geometry
    from sana_wm.camera.trajectory import Intrinsics

    pipe = _warp_model(fitted, tmp_path, zero_output=True)
    first = list(read_clips(fitted["data"]))[9].frames_numpy()[0]  # 32 x 48
    if source == "wide":  # 64 x 128: scaled to 32 x 64, then 8 columns cut on each side
        first = np.concatenate([first[:, ::-1], first, first[:, ::-1]], axis=1)[:, 16:-16].repeat(2, 0).repeat(2, 1)
    h, w = first.shape[:2]
    traj = make_preset("dolly", seconds=3.0, fps=16).with_intrinsics(Intrinsics.from_fov(70.0, w, h, 49))
    # one step from sigma 1 (an integer timestep, so the model's flooring changes nothing) lands on x0 exactly
    result = pipe.generate(first, traj, num_frames=49, progress=False, keep_frames=True, camera_cfg=camera_cfg,
                           steps=1)
    codec = pipe.vae
    latent = result.latents[:, :, :1]  # the image's latent, as the pipeline encoded it
    if source == "same":
        torch.testing.assert_close(latent, codec.encode(frames_to_vae_input(first[None])))
    crop = center_crop_geometry(w, h, target_w=48, target_h=32).apply_to(traj.intrinsics)
    intr = torch.from_numpy(crop.values)[None]
    kw = dict(eye_height=1.2, far=5.0)
    prior = warp_prior_latents(codec, latent, torch.from_numpy(traj.c2w)[None], intr, **kw)
    standing = warp_prior_latents(codec, latent, torch.eye(4, dtype=torch.float64).expand(1, 49, 4, 4), intr, **kw)
    expected = standing + camera_cfg * (prior - standing)
    torch.testing.assert_close(result.latents, expected, rtol=1e-4, atol=1e-4)
    assert (prior - standing).abs().mean() > 0.05  # the dolly moved the prior
    if source == "wide":  # the uncropped intrinsics would give another prior
        wrong = torch.from_numpy(traj.intrinsics.values)[None] / 2
        other = warp_prior_latents(codec, latent, torch.from_numpy(traj.c2w)[None], wrong, **kw)
        assert (other - prior).abs().max() > 1e-2


@contextmanager
def _warp_trainer(fitted, tmp_path, model, steps: int):
    """A trainer of a warp-prior model over the fitted dataset (its latents encoded), camera dropout 0.5, seed 3,
    entered in its first stage: ``(config dict, trainer, its first 4 samples)``."""
    from sana_wm.train import config_from_dict
    from sana_wm.train.distributed import init_distributed, shutdown
    from sana_wm.train.loop import Trainer

    model.config.save_json(tmp_path / "warp.json")
    wrapper = {"kind": "warp_prior_x0", "vae": str(fitted["codec"]), "min_sigma": 0.1}
    assert main(["vae", "encode", str(fitted["data"]), "--vae", str(fitted["codec"]), "--frames", "17"]) == 0
    raw = {"output_dir": str(tmp_path / "run"), "seed": 3,
           "model": {"name": None, "config_path": str(tmp_path / "warp.json"), "wrapper": wrapper},
           "data": {"root": str(fitted["data"]), "window": 17, "size": [32, 48], "spatial_stride": 16,
                    "batch_size": 4, "window_mode": "start", "latents": "latent_cache", "text": "none"},
           "objective": {"recipe": "chunk_causal", "camera_dropout_prob": 0.5, "image_condition_prob": 1.0},
           "stages": [{"steps": steps}], "validation": {"every": 0}, "checkpoint": {"every": 0},
           "logging": {"progress_bar": False}}
    cfg = config_from_dict(raw)
    env = init_distributed(cfg.distributed.backend, cfg.distributed.device)
    try:
        trainer = Trainer(cfg, env)
        trainer._enter_stage(0)
        yield raw, trainer, trainer._next_samples(4)
    finally:
        shutdown(env)


def test_warp_model_trains_with_the_codec_prior(fitted, tmp_path):
    """The trainer builds each clip's prior through model.wrapper: with a zero output layer the loss is exactly
    the flow loss of predicting the prior, for clips with their camera and for camera-dropped ones; the
    checkpoint records the wrapper for the export."""
    from sana_wm.bundled.warp import warp_prior_latents
    from sana_wm.train import config_from_dict
    from sana_wm.train.config import ConfigError
    from sana_wm.train.objective import flow_loss, make_noisy

    with _warp_trainer(fitted, tmp_path, randomized_transformer(), steps=2) as (raw, trainer, samples):
        wrapper = raw["model"]["wrapper"]
        batch = trainer._batch(samples)
        codec = VideoVAE.from_pretrained(fitted["codec"])
        from sana_wm.camera.conditioning import relative_poses

        s = samples[1]
        c2w = torch.from_numpy(relative_poses(s["c2w"].numpy()))[None]
        intr = torch.as_tensor(s["intrinsics"], dtype=torch.float64).reshape(-1, 4).expand(17, 4)[None]
        expected = warp_prior_latents(codec, batch.latents[1:2, :, :1], c2w, intr)  # default depth guess
        along = trainer.wrapper.extra(batch.latents, batch.cameras)
        torch.testing.assert_close(along.latents[1:2], expected)
        assert (along.latents - batch.latents[:, :, :1]).abs().mean() > 1e-3  # the clips' cameras move
        torch.nn.init.zeros_(trainer.raw_model.final_layer.linear.weight)
        torch.nn.init.zeros_(trainer.raw_model.final_layer.linear.bias)
        plans, noise = trainer._plans(batch, 0, train=True)
        dropped = [p.drop_camera for p in plans]
        assert any(dropped) and not all(dropped)  # seed 3 mixes both paths
        with torch.no_grad():
            loss = trainer._loss(trainer._conditioned(batch, plans), plans, noise)[0]
        sigma = torch.stack([p.sigma for p in plans])
        x_t, target = make_noisy(batch.latents, sigma, noise)
        standing = torch.eye(4, dtype=torch.float64).expand(1, 17, 4, 4)
        prior = torch.cat([warp_prior_latents(codec, batch.latents[i:i + 1, :, :1], standing, intr) if d
                           else along.latents[i:i + 1] for i, d in enumerate(dropped)])
        assert (prior - along.latents).abs().amax(dim=(1, 2, 3, 4)).gt(1e-3).tolist() == dropped
        floor = (sigma * 1000).floor() / 1000
        v = (x_t - prior) / floor.clamp_min(0.1)[:, None, :, None, None]
        mask = torch.stack([p.loss_mask for p in plans])
        torch.testing.assert_close(loss, flow_loss(v, target, mask)[0], rtol=1e-5, atol=1e-6)
        ckpt = trainer.save(0)
        assert json.loads((ckpt / "wrapper.json").read_text()) == {"kind": "warp_prior_x0", "min_sigma": 0.1,
                                                                  "eye_height": 1.6, "far_depth": 7.0}
    # the export records the wrapper, and the pipeline samples through it
    from sana_wm.bundled import WarpPriorModel, WarpPriorSettings

    out = export_model_folder(ckpt, fitted["codec"], tmp_path / "model", image_size=(32, 48), use_ema=False)
    pipe = SanaWMPipeline.from_pretrained(out, device="cpu", dtype="fp32")
    assert isinstance(pipe.model, WarpPriorModel) and pipe.model.transformer is pipe.transformer
    assert pipe.model.settings == WarpPriorSettings(min_sigma=0.1)
    for wrapper_spec, message in (({"kind": "warp_prior_x0"}, "model.wrapper.vae: required"),
                                  ({**wrapper, "kind": "flow"}, "model.wrapper.kind: the only model wrapper"),
                                  ({**wrapper, "depth": 3.0}, r"model.wrapper: unknown field\(s\) depth")):
        with pytest.raises(ConfigError, match=message):
            config_from_dict({**raw, "model": {**raw["model"], "wrapper": wrapper_spec}})


def test_warp_model_training_step_builds_each_clips_prior_once(fitted, tmp_path, monkeypatch):
    """A training step builds each clip's warp prior once, from its camera or, where the clip drops its camera,
    from a standing camera; its loss and gradients are those of priors built along every camera and then
    rebuilt standing for the dropped clips (the order the trainer used to take)."""
    import dataclasses

    import sana_wm.bundled.training as training
    from sana_wm.bundled.model import WarpPrior
    from sana_wm.bundled.warp import warp_prior_latents
    from sana_wm.camera.conditioning import relative_poses

    with _warp_trainer(fitted, tmp_path, randomized_transformer(seed=4), steps=1) as (_, trainer, samples):
        monkeypatch.setattr(trainer, "_next_samples", lambda n: samples)
        params = dict(trainer.raw_model.named_parameters())

        # the reference: priors along every clip's camera, the dropped clips' rebuilt for a standing camera
        batch = trainer._batch(samples)
        latents = batch.latents
        plans, noise = trainer._plans(batch, "train", 0, train=True, seen={})  # those of step 0
        dropped = [p.drop_camera for p in plans]
        assert any(dropped) and not all(dropped)  # seed 3 mixes both paths
        codec = VideoVAE.from_pretrained(fitted["codec"])
        intr = torch.stack([torch.as_tensor(s["intrinsics"], dtype=torch.float64).reshape(-1, 4).expand(17, 4)
                            for s in samples])
        c2w = torch.stack([torch.from_numpy(relative_poses(s["c2w"].numpy())) for s in samples])
        prior = warp_prior_latents(codec, latents[:, :, :1], c2w, intr)
        rows = [i for i, d in enumerate(dropped) if d]
        standing = torch.eye(4, dtype=torch.float64).expand(len(rows), 17, 4, 4)
        unit = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64).expand(len(rows), 17, 4)
        prior[rows] = warp_prior_latents(codec, latents[rows, :, :1], standing, unit)
        reference = dataclasses.replace(batch, extra=WarpPrior(prior))
        ref_loss, _ = trainer._loss(reference, plans, noise)
        ref_loss.backward()
        ref_grads = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
        assert len(ref_grads) > 10
        trainer.optimizer.zero_grad(set_to_none=True)

        built_rows = []

        def counting(vae, first, c2w, *args, **kwargs):
            built_rows.append(c2w.shape[0])
            return warp_prior_latents(vae, first, c2w, *args, **kwargs)

        monkeypatch.setattr(training, "warp_prior_latents", counting)
        loss, _ = trainer.accumulate_gradients(0)
        torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-6, atol=1e-7)
        assert {name for name, p in params.items() if p.grad is not None} == set(ref_grads)
        for name, ref in ref_grads.items():
            torch.testing.assert_close(params[name].grad, ref, rtol=1e-5, atol=1e-7)
        assert built_rows == [4]  # one prior per clip, in one call
