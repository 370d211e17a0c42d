"""Gradient accumulation: N micro-batches per optimizer step equal one batch N times larger."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import tiny_config

from sana_wm.train import run_training
from sana_wm.train.config import ConfigError
from sana_wm.train.distributed import init_distributed
from sana_wm.train.loop import Trainer

# Dropout of caption and camera on: the micro-batches must draw the same per-sample decisions as the big batch.
OBJECTIVE = {"caption_dropout_prob": 0.3, "camera_dropout_prob": 0.5}


def _config(dataset, out, batch_size, accumulation, steps=2):
    return tiny_config(dataset, out, data={"batch_size": batch_size, "accumulation": accumulation, "shuffle": False},
                       stages=[{"steps": steps}], validation={"every": 0}, checkpoint={"every": 0},
                       objective=OBJECTIVE)


def _gradients(cfg) -> tuple[float, dict[str, torch.Tensor]]:
    trainer = Trainer(cfg, init_distributed())
    trainer._enter_stage(0)
    loss, _ = trainer.accumulate_gradients(0)
    return float(loss), {n: p.grad.clone() for n, p in trainer.raw_model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("batch_size,accumulation", [(2, 2), (1, 4)])
def test_accumulated_gradients_equal_the_large_batch(tiny_dataset, tmp_path, batch_size, accumulation):
    big_loss, big = _gradients(_config(tiny_dataset, tmp_path / "big", 4, 1))
    loss, acc = _gradients(_config(tiny_dataset, tmp_path / "acc", batch_size, accumulation))
    assert loss == pytest.approx(big_loss, rel=1e-6)
    assert acc.keys() == big.keys() and len(big) > 50
    scale = max(g.abs().max() for g in big.values())
    for name, g in big.items():
        # float32 sums in another order: differences at the level of rounding of the largest gradient.
        torch.testing.assert_close(acc[name], g, rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_accumulated_run_matches_the_large_batch(tiny_dataset, tmp_path):
    big = run_training(_config(tiny_dataset, tmp_path / "big", 4, 1))
    acc = run_training(_config(tiny_dataset, tmp_path / "acc", 2, 2))
    for step, loss in big.losses.items():
        assert acc.losses[step] == pytest.approx(loss, rel=1e-5)
    a, b = load_file(big.checkpoint / "model.safetensors"), load_file(acc.checkpoint / "model.safetensors")
    # AdamW normalises each gradient element, so near-zero gradients summed in another order can move a
    # weight by up to lr (2e-3); after 2 steps the weights agree far below that.
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=3e-5, rtol=0, msg=k)
    records = [json.loads(line) for line in (tmp_path / "acc" / "metrics.jsonl").read_text().splitlines()]
    assert {r["global_batch"] for r in records if "loss" in r} == {4}


def test_accumulation_is_checked(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"data\.accumulation"):
        _config(tiny_dataset, tmp_path, 1, 0)
    with pytest.raises(ConfigError, match=r"stages\[0\]\.accumulation"):
        tiny_config(tiny_dataset, tmp_path, stages=[{"steps": 1, "accumulation": 0}])


def test_resume_with_accumulation_reproduces_the_run(tiny_dataset, tmp_path, caplog):
    def config(out, accumulation=2):
        return tiny_config(tiny_dataset, out, data={"batch_size": 2, "accumulation": accumulation},
                           stages=[{"steps": 4}], validation={"every": 0}, checkpoint={"every": 2},
                           objective=OBJECTIVE)

    full = run_training(config(tmp_path / "full"))
    first = run_training(config(tmp_path / "split"), stop_after=3)
    assert first.checkpoint.name == "step-00000002"
    state = json.loads((first.checkpoint / "trainer.json").read_text())
    assert state["batch"] == {"batch_size": 2, "accumulation": 2, "global_batch": 4}
    second = run_training(config(tmp_path / "split"), resume=True)
    for step in (3, 4):
        assert second.losses[step] == pytest.approx(full.losses[step], abs=1e-6, rel=0)
    a, b = load_file(full.checkpoint / "model.safetensors"), load_file(second.checkpoint / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
    # Resuming with another accumulation changes the global batch: allowed, and said in the log.
    with caplog.at_level("WARNING", logger="sana_wm.train.loop"):
        run_training(config(tmp_path / "split", accumulation=1), resume=True)
    assert "global batch changes at this resume: 4 samples per step before, 2 now" in caplog.text
