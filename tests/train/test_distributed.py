"""Data parallelism on CPU: 2 gloo ranks with FSDP2 match 1 process with the same global batch, with camera
and caption dropout on and with gradient accumulation."""

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from train_helpers import free_port, rank_worker, tiny_config

from sana_wm.data import ClipDataset
from sana_wm.train import run_training
from sana_wm.train.objective import sample_noise_plan, sample_seed

STEPS = 3


def _config(dataset, out, batch_size, accumulation=1, world_size=1):
    # shuffle off: one shard read by one rank, or dealt round-robin to two, gives the same global batches;
    # validation covers the same 8 clips either way.
    validation = {"every": 3, "num_batches": 2, "batch_size": 4 // world_size, "at_start": False}
    return tiny_config(dataset, out, data={"batch_size": batch_size, "accumulation": accumulation, "shuffle": False},
                       stages=[{"steps": STEPS}], validation=validation,
                       checkpoint={"every": 0}, objective={"caption_dropout_prob": 0.3, "camera_dropout_prob": 0.5})


def _camera_drops(cfg, rank: int, world_size: int) -> list[list[list[bool]]]:
    """Which rows drop their camera, per step and micro-batch, on ``rank``: the trainer's draws, redone."""
    d = cfg.data
    dataset = ClipDataset(d.root, window=d.window, fps=d.fps, size=tuple(d.size), seed=cfg.seed, shuffle=False,
                          window_mode=d.window_mode, load_depth=False, rank=rank, world_size=world_size)
    samples, out = iter(dataset), []
    for step in range(STEPS):
        micro = []
        for _ in range(d.accumulation):
            keys = []
            while len(keys) < d.batch_size:
                try:
                    keys.append(next(samples)["key"])
                except StopIteration:
                    dataset.set_epoch(dataset.epoch + 1)
                    samples = iter(dataset)
            micro.append([sample_noise_plan(cfg.objective, 2, torch.Generator().manual_seed(
                sample_seed(cfg.seed, "train", step, key, 0))).drop_camera for key in keys])
        out.append(micro)
    return out


@pytest.mark.parametrize("batch_size,accumulation", [(2, 1), (1, 2)])
def test_two_ranks_match_one(tiny_dataset, tmp_path, batch_size, accumulation):
    two = _config(tiny_dataset, tmp_path / "two", batch_size, accumulation, world_size=2)
    # The case that once split each rank's batch into a different number of forwards: in some step one
    # rank mixes rows with and without camera while the other does not (or drops none while it drops some).
    drops = [_camera_drops(two, rank, 2) for rank in range(2)]
    assert any(drops[0][s] != drops[1][s] for s in range(STEPS))
    if batch_size > 1:
        assert any(len({*sum(drops[0][s], [])}) != len({*sum(drops[1][s], [])}) for s in range(STEPS))

    single = run_training(_config(tiny_dataset, tmp_path / "one", batch_size=4))
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(rank_worker, args=(2, free_port(), two, out), nprocs=2)
    assert sorted(out["losses"]) == [1, 2, 3]
    for step, loss in single.losses.items():
        assert out["losses"][step] == pytest.approx(loss, abs=1e-5, rel=1e-5)
    assert out["val_losses"][3] == pytest.approx(single.val_losses[3], abs=1e-5, rel=1e-5)
    a, b = load_file(single.checkpoint / "model.safetensors"), load_file(f"{out['checkpoint']}/model.safetensors")
    assert a.keys() == b.keys()
    # Losses agree to 1e-5, but AdamW (eps 1e-10) turns the rounding differences of near-zero gradients
    # (summed in another order across ranks and micro-batches) into steps of up to lr: after 3 steps at lr
    # 2e-3 a handful of weights (of ~1e6) differ by up to ~8e-5, under 2% of the largest possible move
    # (6e-3); all but one in 10^4 agree to 1e-5.
    diff = torch.cat([(b[k] - a[k]).abs().flatten() for k in a])
    assert float(diff.max()) < 1e-4
    assert int((diff > 1e-5).sum()) <= diff.numel() // 10_000
