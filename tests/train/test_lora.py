"""LoRA fine-tuning (peft): only the adapter trains, it learns, it resumes exactly, it merges into the base."""

import json

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from train_helpers import camera_path, free_port, lora_config, rank_worker, write_base_model

from sana_wm.camera.conditioning import prepare_camera
from sana_wm.camera.trajectory import Intrinsics
from sana_wm.model import build_model, from_pretrained, get_config
from sana_wm.train import Trainer, TrainResult, merge_lora, run_training
from sana_wm.train.config import LoraConfig
from sana_wm.train.distributed import init_distributed
from sana_wm.train.lora import apply_lora

QUICK = {"validation": {"every": 0}, "checkpoint": {"every": 0}}


def trained_trainer(cfg) -> tuple[Trainer, TrainResult]:
    trainer = Trainer(cfg, init_distributed("auto", "cpu"))
    return trainer, trainer.run()


def model_inputs(config, seed: int = 3) -> dict:
    """One batch of random latents and captions with a moving camera, for a ``config``-shaped model."""
    g = torch.Generator().manual_seed(seed)
    frames, size, stride = 9, 32, 8
    rng = np.random.default_rng(seed)
    cond = prepare_camera(camera_path(frames, rng), Intrinsics.from_fov(60.0, size, size, frames).values,
                          target_size=(size, size), spatial_stride=stride)
    T = (frames - 1) // 8 + 1
    return {"latents": torch.randn(1, config.in_channels, T, size // stride, size // stride, generator=g),
            "timestep": torch.tensor([[[0.0, 700.0]]]),
            "text": torch.randn(1, config.caption_length, config.caption_channels, generator=g),
            "text_mask": torch.ones(1, config.caption_length, dtype=torch.bool),
            "camera_vector": torch.as_tensor(cond.camera_vector)[None].float(),
            "plucker": torch.as_tensor(cond.plucker)[None].float()}


def test_only_the_adapter_changes(tiny_dataset, tiny_base, tmp_path):
    """Three steps: every adapter matrix moves, every base tensor stays bit-identical to the file, and
    AdamW holds the adapter only. The checkpoint holds the adapter in peft's format, not the model."""
    cfg = lora_config(tiny_dataset, tmp_path / "run", tiny_base, stages=[{"steps": 3}], validation={"every": 0},
                      checkpoint={"every": 0})
    trainer = Trainer(cfg, init_distributed("auto", "cpu"))
    before = {n: p.detach().clone() for n, p in trainer.raw_model.named_parameters()}
    result = trainer.run()
    adapter = set(trainer.lora.param_names)
    assert adapter and all(".lora_A." in n or ".lora_B." in n for n in adapter)
    for name, p in trainer.raw_model.named_parameters():
        if name in adapter:
            assert not torch.equal(p, before[name]), f"{name} did not train"
        else:
            assert torch.equal(p, before[name]) and not p.requires_grad, name
    base_file = load_file(tiny_base / "model.safetensors")
    state = {k.replace(".base_layer", ""): v for k, v in trainer.raw_model.state_dict().items() if "lora_" not in k}
    assert state.keys() == base_file.keys()
    for k, v in base_file.items():
        assert torch.equal(state[k], v), k
    in_optimizer = sum(p.numel() for group in trainer.optimizer.param_groups for p in group["params"])
    assert in_optimizer == trainer.lora.num_trainable()

    files = sorted(p.name for p in result.checkpoint.iterdir())
    assert files == ["adapter", "optimizer.pt", "rng", "trainer.json"]
    saved = load_file(result.checkpoint / "adapter" / "adapter_model.safetensors")
    assert len(saved) == len(adapter) and all(k.startswith("base_model.model.blocks.") for k in saved)
    base_info = json.loads((result.checkpoint / "adapter" / "sana_wm_base.json").read_text())
    assert base_info["init_from"] == str(tiny_base.resolve()) and base_info["dtype"] == "fp32"


def test_validation_loss_falls(tiny_dataset, tiny_base, tmp_path):
    """30 steps of rank-4 adapters on a random tiny base cut the fixed-noise validation loss by over 20%
    (seed 0: 1.50 -> 1.09)."""
    result = run_training(lora_config(tiny_dataset, tmp_path / "run", tiny_base))
    first, last = result.val_losses[0], result.val_losses[30]
    assert last <= 0.8 * first, result.val_losses
    assert result.val_losses[10] < first and result.val_losses[20] < result.val_losses[10]


def resume_config(dataset, base, out):
    # Two stages (the second trains only the blocks' adapters, not the output layer trained in full),
    # adapter dropout (RNG), EMA and camera/caption dropout.
    return lora_config(dataset, out, base,
                       lora={"rank": 4, "alpha": 8.0, "dropout": 0.1, "trainable_modules": ["final_layer.linear"]},
                       stages=[{"steps": 4, "trainable": ["*"]}, {"steps": 4, "lr": 2e-3, "trainable": ["blocks.*"]}],
                       checkpoint={"every": 3, "keep_last": 2}, validation={"every": 0}, ema={"decay": 0.9},
                       objective={"camera_dropout_prob": 0.3, "caption_dropout_prob": 0.3})


def test_interrupt_and_resume_reproduce_the_run(tiny_dataset, tiny_base, tmp_path):
    full = run_training(resume_config(tiny_dataset, tiny_base, tmp_path / "full"))
    cfg = resume_config(tiny_dataset, tiny_base, tmp_path / "split")
    first = run_training(cfg, stop_after=7)
    assert first.step == 7 and first.checkpoint.name == "step-00000006"
    second = run_training(cfg, resume=True)
    assert sorted(second.losses) == [7, 8]
    for step in range(1, 8):
        assert first.losses[step] == pytest.approx(full.losses[step], abs=1e-6, rel=0)
    for step in (7, 8):
        assert second.losses[step] == pytest.approx(full.losses[step], abs=1e-6, rel=0)
    for name in ("adapter/adapter_model.safetensors", "adapter-ema/adapter_model.safetensors", "ema.safetensors"):
        a, b = load_file(full.checkpoint / name), load_file(second.checkpoint / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=f"{name}: {k}")
    # The output layer trained in full is saved with the adapter and froze in stage 2 (steps 5-8).
    saved = load_file(full.checkpoint / "adapter" / "adapter_model.safetensors")
    assert "base_model.model.final_layer.linear.weight" in saved


def test_resume_refuses_another_base_or_a_full_checkpoint(tiny_dataset, tiny_base, tmp_path):
    cfg = lora_config(tiny_dataset, tmp_path / "run", tiny_base, stages=[{"steps": 2}], **QUICK)
    run_training(cfg, stop_after=1)  # no checkpoint yet: nothing to refuse
    run_training(lora_config(tiny_dataset, tmp_path / "run", tiny_base, stages=[{"steps": 1}], **QUICK))
    other = write_base_model(tmp_path / "other-base", seed=1)
    with pytest.raises(ValueError, match="base weights differ"):
        run_training(lora_config(tiny_dataset, tmp_path / "run", other, stages=[{"steps": 2}], **QUICK), resume=True)
    from train_helpers import tiny_config

    full_run = tiny_config(tiny_dataset, tmp_path / "full", stages=[{"steps": 1}], **QUICK)
    run_training(full_run)
    with pytest.raises(ValueError, match="holds a full model, not a LoRA adapter"):
        run_training(lora_config(tiny_dataset, tmp_path / "full", tiny_base, stages=[{"steps": 2}], **QUICK),
                     resume=True)


def test_merged_model_equals_the_wrapped_model(tiny_dataset, tiny_base, tmp_path):
    """The merged model directory loads with from_pretrained and predicts what the peft-wrapped base
    predicts (and what the trainer's model predicted), to float32 rounding."""
    from peft import PeftModel

    cfg = lora_config(tiny_dataset, tmp_path / "run", tiny_base, stages=[{"steps": 3}],
                      lora={"rank": 4, "alpha": 8.0, "trainable_modules": ["final_layer.linear"]},
                      optimizer={"lr": 2e-2}, **QUICK)
    trainer, result = trained_trainer(cfg)
    adapter = result.checkpoint / "adapter"
    out = merge_lora(adapter, tmp_path / "merged")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    merged = from_pretrained(out, dtype=torch.float32)
    wrapped = PeftModel.from_pretrained(from_pretrained(tiny_base, dtype=torch.float32), str(adapter)).eval()
    base = from_pretrained(tiny_base, dtype=torch.float32)
    inputs = model_inputs(merged.config)
    with torch.no_grad():
        y_merged, y_wrapped, y_base = merged(**inputs), wrapped(**inputs), base(**inputs)
        y_trainer = trainer.raw_model.eval()(**inputs)
    assert (y_wrapped - y_base).abs().max() > 1e-2  # the adapter matters, so the comparison means something
    torch.testing.assert_close(y_merged, y_wrapped, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(y_trainer, y_wrapped, atol=2e-5, rtol=1e-5)

    with pytest.raises(FileExistsError, match="not empty"):
        merge_lora(adapter, out)
    with pytest.raises(ValueError, match="base weights differ"):
        merge_lora(adapter, tmp_path / "wrong", base=write_base_model(tmp_path / "other", seed=1))


@pytest.mark.parametrize(("name", "rank"), [("tiny", 4), ("official-2.6b", 16)])
def test_trainable_count_is_analytic(name, rank):
    """Default targets, per block: qkv C->3C, proj C->C, the camera branch's four C->C, cross-attention
    q C->C, kv C->2C and proj C->C, the FFN's 1x1 convs C->2F and F->C. A rank-r adapter on an
    n_in->n_out layer has r (n_in + n_out) parameters: r (23 C + 3 F) per block."""
    config = get_config(name)
    C, F = config.hidden_size, config.mlp_hidden
    model = build_model(config, device="meta" if name != "tiny" else "cpu")
    adapter = apply_lora(model, LoraConfig(rank=rank))
    assert adapter.num_trainable() == config.depth * rank * (23 * C + 3 * F)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == adapter.num_trainable()
    if name == "official-2.6b":
        assert adapter.num_trainable() == 22_937_600  # 0.86% of the 2.66B model
    # Modules trained in full add their own parameters.
    model = build_model(config, device="meta")
    with_output = apply_lora(model, LoraConfig(rank=rank, trainable_modules=["final_layer.linear"]))
    assert with_output.num_trainable() == adapter.num_trainable() + C * config.out_channels + config.out_channels


def test_bf16_base(tiny_dataset, tiny_base, tmp_path):
    """base_dtype bf16: the frozen base is held in bfloat16 (unchanged), adapters train in float32."""
    cfg = lora_config(tiny_dataset, tmp_path / "run", tiny_base, precision="bf16", stages=[{"steps": 2}],
                      lora={"base_dtype": "bf16"}, objective={"camera_dropout_prob": 0.0}, **QUICK)
    trainer, result = trained_trainer(cfg)
    assert all(np.isfinite(v) for v in result.losses.values())
    base_file = load_file(tiny_base / "model.safetensors")
    for name, p in trainer.raw_model.named_parameters():
        if name in trainer.lora.param_names:
            assert p.dtype == torch.float32
        else:
            assert p.dtype == torch.bfloat16
            assert torch.equal(p, base_file[name.replace(".base_layer", "")].bfloat16()), name


def test_fsdp2_two_ranks_match_one(tiny_dataset, tiny_base, tmp_path):
    """LoRA under FSDP2 (2 gloo ranks, batch 2 each) matches one process with batch 4."""
    def config(out, batch_size):
        return lora_config(tiny_dataset, out, tiny_base, data={"batch_size": batch_size, "shuffle": False},
                           stages=[{"steps": 3}], validation={"every": 0}, checkpoint={"every": 0},
                           distributed={"strategy": "fsdp2"})

    single = run_training(config(tmp_path / "one", 4))
    out = mp.Manager().dict()
    mp.spawn(rank_worker, args=(2, free_port(), config(tmp_path / "two", 2), out), nprocs=2)
    for step, loss in single.losses.items():
        assert out["losses"][step] == pytest.approx(loss, abs=1e-5, rel=1e-5)
    a = load_file(single.checkpoint / "adapter" / "adapter_model.safetensors")
    b = load_file(f"{out['checkpoint']}/adapter/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:  # see test_distributed.py for why AdamW turns 1e-7 gradient differences into ~1e-5 weights
        torch.testing.assert_close(b[k], a[k], atol=3e-5, rtol=0, msg=k)
