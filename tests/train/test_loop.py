"""The training loop on CPU: it learns, it resumes exactly, and every recipe and option runs."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import tiny_config

from sana_wm.model import from_pretrained
from sana_wm.train import run_training


def test_validation_loss_drops(tiny_dataset, tmp_path):
    """30 steps of the tiny model at global batch 4 at least halve the fixed-noise validation loss
    (seed 0 gives 1.50 -> 0.36)."""
    cfg = tiny_config(tiny_dataset, tmp_path / "run")
    result = run_training(cfg)
    first, last = result.val_losses[0], result.val_losses[30]
    assert last <= 0.5 * first, result.val_losses
    records = [json.loads(line) for line in cfg.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 31))
    assert {"loss", "grad_norm", "lr", "samples_per_s", "epoch"} <= set(records[1])
    # The final checkpoint holds a model that sana_wm.model loads like any other.
    model = from_pretrained(result.checkpoint, dtype=torch.float32)
    assert model.config.depth == 4


def resume_config(dataset, out):
    return tiny_config(dataset, out, stages=[{"steps": 4, "trainable": ["*"]},
                                             {"steps": 4, "lr": 1e-3, "trainable": ["blocks.*", "final_layer.*"]}],
                       checkpoint={"every": 3, "keep_last": 2}, validation={"every": 0}, ema={"decay": 0.9},
                       objective={"camera_dropout_prob": 0.3, "caption_dropout_prob": 0.3})


def test_interrupt_and_resume_reproduce_the_run(tiny_dataset, tmp_path):
    """Two stages, EMA, dropout and a data position mid-epoch: a run killed after step 7 (newest
    checkpoint: step 6) and resumed ends exactly where the uninterrupted run does."""
    full = run_training(resume_config(tiny_dataset, tmp_path / "full"))
    cfg = resume_config(tiny_dataset, tmp_path / "split")
    first = run_training(cfg, stop_after=7)
    assert first.step == 7 and first.checkpoint.name == "step-00000006"
    second = run_training(cfg, resume=True)
    assert sorted(second.losses) == [7, 8]
    for step in (7, 8):
        assert second.losses[step] == pytest.approx(full.losses[step], abs=1e-6, rel=0)
    assert first.losses[7] == pytest.approx(full.losses[7], abs=1e-6, rel=0)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(full.checkpoint / name), load_file(second.checkpoint / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=f"{name}: {k}")


def test_frozen_parameters_stay_put(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", stages=[{"steps": 2, "trainable": ["blocks.0.*"]}],
                      validation={"every": 0})
    result = run_training(cfg)
    torch.manual_seed(cfg.seed)
    from sana_wm.model import SanaWMTransformer, get_config

    init = SanaWMTransformer(get_config("tiny")).state_dict()
    trained = load_file(result.checkpoint / "model.safetensors")
    assert torch.equal(init["final_layer.linear.weight"], trained["final_layer.linear.weight"])
    assert not torch.equal(init["blocks.0.attn.qkv.weight"], trained["blocks.0.attn.qkv.weight"])


def test_chunk_causal_recipe_with_camera_dropout(long_dataset, tmp_path):
    from sana_wm.model import chunk_schedule, get_config
    from sana_wm.train.distributed import init_distributed
    from sana_wm.train.loop import Trainer

    # A model with chunks of 1 latent frame: the recipe's chunk sigmas follow the model's config.
    config_path = tmp_path / "tiny-chunk1.json"
    get_config("tiny").replace(chunk_frames=1).save_json(config_path)
    cfg = tiny_config(long_dataset, tmp_path / "run", data={"window": 25, "batch_size": 2},
                      objective={"recipe": "chunk_causal", "camera_dropout_prob": 0.5},
                      stages=[{"steps": 3}], validation={"every": 3, "num_batches": 1}, checkpoint={"every": 0},
                      model={"name": None, "config_path": str(config_path), "gradient_checkpointing": True})
    trainer = Trainer(cfg, init_distributed())
    trainer._enter_stage(0)
    batch = trainer._batch(trainer._next_samples(4))
    plans = [p for step in range(20) for p in trainer._plans(batch, "train", step, train=True)[0]]
    assert chunk_schedule(4, 1) == [2, 1, 1]
    assert all(p.sigma[0] == p.sigma[1] or p.image_condition for p in plans)  # frames 0-1: one chunk
    assert any(p.sigma[2] != p.sigma[3] for p in plans)  # frames 2 and 3: chunks of their own
    result = run_training(cfg)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())
    records = [json.loads(line) for line in cfg.metrics_path.read_text().splitlines() if '"loss"' in line]
    used = {s for r in records for s in r["strategies"]}
    assert used and used <= {"same_t", "incremental", "last_chunk_anchor", "teacher_forcing_clean"}


def test_bf16_autocast(tiny_dataset, tmp_path):
    # The camera branch stays on: its ray geometry must run in float32 under autocast.
    cfg = tiny_config(tiny_dataset, tmp_path / "run", precision="bf16", stages=[{"steps": 2}],
                      objective={"camera_dropout_prob": 0.0}, validation={"every": 0}, checkpoint={"every": 0})
    result = run_training(cfg)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())


def test_a_fresh_run_refuses_to_overwrite_checkpoints(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", stages=[{"steps": 1}], validation={"every": 0})
    run_training(cfg)
    with pytest.raises(FileExistsError, match="resume"):
        run_training(cfg)
    assert run_training(cfg, resume=True).losses == {}  # already complete: nothing left to do


def test_latents_from_the_latent_cache(tiny_dataset, tmp_path):
    """Latents precomputed with sana_wm.data.LatentCache train exactly like latents encoded on the fly."""
    import shutil

    from sana_wm.data import LatentCache, prepare_clip, read_clips
    from sana_wm.train.data import SyntheticEncoder

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    encoder = SyntheticEncoder(16, 8)
    clips = (prepare_clip(c, size=(32, 32), fps=16.0, num_frames=9) for c in read_clips(root))
    LatentCache(root).encode_all(clips, encoder, encoder.id)
    common = {"stages": [{"steps": 2}], "validation": {"every": 0}, "checkpoint": {"every": 0}}
    cached = run_training(tiny_config(root, tmp_path / "cached", data={"latents": "latent_cache"}, **common))
    direct = run_training(tiny_config(root, tmp_path / "direct", **common))
    assert cached.losses == pytest.approx(direct.losses, abs=1e-6)


def test_training_from_the_latent_cache_alone(tiny_dataset, tmp_path):
    """data.latents 'latent_cache_only' trains exactly like 'latent_cache' and never opens a shard, so a
    dataset can travel as index.json + latents/ (e.g. to a GPU machine)."""
    import shutil

    from sana_wm.data import LatentCache, prepare_clip, read_clips
    from sana_wm.train.data import SyntheticEncoder

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    encoder = SyntheticEncoder(16, 8)
    clips = (prepare_clip(c, size=(32, 32), fps=16.0, num_frames=9) for c in read_clips(root))
    LatentCache(root).encode_all(clips, encoder, encoder.id)
    common = {"stages": [{"steps": 3}], "validation": {"every": 2, "num_batches": 1}, "checkpoint": {"every": 0}}
    with_shards = run_training(tiny_config(root, tmp_path / "a", data={"latents": "latent_cache", "text": "none",
                                                                       "window_mode": "start"}, **common))
    for shard in root.glob("*.tar"):
        shard.unlink()
    alone = run_training(tiny_config(root, tmp_path / "b", data={"latents": "latent_cache_only", "text": "none",
                                                                 "window_mode": "start"}, **common))
    assert len(alone.losses) == 3
    assert alone.losses == pytest.approx(with_shards.losses, abs=1e-6)
    assert alone.val_losses == pytest.approx(with_shards.val_losses, abs=1e-6)


def test_text_free_model_sees_only_the_null_caption(tiny_dataset, tmp_path):
    """data.text 'none': every sample, in training and validation, is conditioned on y_embedding."""
    from sana_wm.train.distributed import init_distributed, shutdown
    from sana_wm.train.loop import Trainer

    cfg = tiny_config(tiny_dataset, tmp_path / "run", data={"text": "none"}, stages=[{"steps": 2}],
                      validation={"every": 0})
    env = init_distributed(cfg.distributed.backend, cfg.distributed.device)
    try:
        trainer = Trainer(cfg, env)
        trainer._enter_stage(0)
        batch = trainer._batch(trainer._next_samples(3))
        y = trainer.raw_model.y_embedder.y_embedding.detach()
        assert batch.text.shape == (3, *y.shape)
        assert torch.equal(batch.text, y.expand(3, -1, -1)) and batch.text_mask.all()
    finally:
        shutdown(env)
    assert run_training(cfg).val_losses is not None


def test_x0_loss_weighting_reaches_the_loss(tiny_dataset, tmp_path):
    """Same seed, same noise: the first step's loss under ``loss_weighting: x0`` (velocity error times
    sigma^2 <= 1) is below the plain velocity loss, and the run trains."""
    losses = {}
    for weighting in ("flow", "x0"):
        cfg = tiny_config(tiny_dataset, tmp_path / weighting, stages=[{"steps": 3}], validation={"every": 0},
                          checkpoint={"every": 0}, objective={"loss_weighting": weighting})
        losses[weighting] = run_training(cfg).losses
    assert all(torch.isfinite(torch.tensor(v)) for v in losses["x0"].values())
    assert losses["x0"][1] < losses["flow"][1]


def test_channel_weights_reach_the_loss(tiny_dataset, tmp_path):
    """Same seed, same noise: weights of power 0 give exactly the plain loss; uneven weights change it."""
    from safetensors.torch import save_file

    std = torch.linspace(3.0, 0.2, 16)  # the tiny model's 16 latent channels
    save_file({"latents_std": std}, str(tmp_path / "codec.safetensors"))
    losses = {}
    for name, objective in {"plain": {}, "power0": {"channel_weights": str(tmp_path), "channel_weight_power": 0.0},
                            "power1": {"channel_weights": str(tmp_path), "channel_weight_power": 1.0}}.items():
        cfg = tiny_config(tiny_dataset, tmp_path / name, stages=[{"steps": 2}], validation={"every": 0},
                          checkpoint={"every": 0}, objective=objective)
        losses[name] = run_training(cfg).losses
    assert losses["power0"][1] == pytest.approx(losses["plain"][1], rel=1e-6)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses["power1"].values())
    assert abs(losses["power1"][1] - losses["plain"][1]) > 1e-3 * losses["plain"][1]


def test_resume_skips_a_damaged_checkpoint_and_never_duplicates_metrics(tiny_dataset, tmp_path, caplog):
    cfg = resume_config(tiny_dataset, tmp_path / "run")
    first = run_training(cfg, stop_after=7)  # checkpoints at steps 3 and 6; metrics for steps 1-7
    weights = first.checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with caplog.at_level("WARNING", logger="sana_wm.train.loop"):
        second = run_training(cfg, resume=True)
    assert f"skipping the damaged checkpoint {first.checkpoint}: model.safetensors cannot be read" in caplog.text
    assert sorted(second.losses) == [4, 5, 6, 7, 8]  # continued from step 3
    steps = [json.loads(line)["step"] for line in cfg.metrics_path.read_text().splitlines()]
    assert steps == list(range(1, 9))  # steps 4-7 of the first run were dropped, not logged twice

    second.checkpoint.joinpath("trainer.json").write_text('{"format": "sana-wm-train')  # cut off
    (second.checkpoint.parent / "step-00000006" / "trainer.json").write_text("")
    with pytest.raises(ValueError, match="every checkpoint is damaged"):
        run_training(cfg, resume=True)
