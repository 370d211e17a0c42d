"""The distillation stages end to end on tiny models: trajectories, exact resume, 2 ranks == 1 rank."""

import pytest
import torch
import torch.multiprocessing as mp
from distill_helpers import distill_config, free_port, rank_worker
from safetensors.torch import load_file

from sana_wm.distill import OdeTrajectories, run_distill, write_ode_data
from sana_wm.distill.checkpoint import distill_checkpoint_damage
from sana_wm.distill.ode_data import OdeDataError
from sana_wm.model.loading import CheckpointError
from sana_wm.train.checkpoint import CheckpointsExistError


def test_ode_data_resumes_and_ode_regression_trains(distill_dataset, teacher, tmp_path):
    cfg = distill_config(distill_dataset, tmp_path / "ode", teacher, ode_data={"max_clips": 2})
    folder = write_ode_data(cfg, progress=False)
    first = load_file(str(folder / "rank00000-00000.safetensors"))
    assert sorted(first) == ["clip000", "clip001"]
    cfg = distill_config(distill_dataset, tmp_path / "ode", teacher, steps=2)
    write_ode_data(cfg, progress=False)  # the rerun adds the other two clips and keeps the first shard
    assert load_file(str(folder / "rank00000-00000.safetensors")).keys() == first.keys()
    trajectories = OdeTrajectories(folder, cfg.denoising_steps)
    assert len(trajectories) == 4
    snapshots = trajectories["clip000"]  # (S, C, T, H, W)
    assert tuple(snapshots.shape) == (5, 16, 4, 2, 2)
    torch.testing.assert_close(snapshots, first["clip000"].float())
    assert torch.equal(snapshots[:, :, :1], snapshots[:1, :, :1].expand(5, -1, -1, -1, -1))  # frame 0 clean
    # snapshot 0 is the starting noise; the clean end differs from it
    assert 0.5 < float(snapshots[0, :, 1:].std()) < 1.5 and not torch.allclose(snapshots[-1], snapshots[0])

    other = distill_config(distill_dataset, tmp_path / "ode", teacher, ode_data={"teacher_steps": 7})
    with pytest.raises(OdeDataError, match="other settings"):
        write_ode_data(other, progress=False)

    result = run_distill(cfg)
    assert sorted(result.losses) == [1, 2] and all(r["generator_loss"] > 0 for r in result.losses.values())
    saved = torch.load(result.student / "sana_dit" / "model.pt", weights_only=True)
    assert sorted(saved) == ["critic", "denoising_step_list", "generator", "step"]
    assert saved["step"] == 2 and saved["denoising_step_list"] == [1000, 967, 908, 764, 0]
    with pytest.raises(CheckpointsExistError, match="--resume"):
        run_distill(cfg)


def _sf_config(dataset, out, teacher, **kw):
    return distill_config(dataset, out, teacher, stage="self_forcing",
                          **{"steps": 4, "checkpoint": {"every": 2}, **kw})


def test_self_forcing_resumes_exactly_past_damaged_checkpoints(distill_dataset, teacher, tmp_path, caplog):
    straight = run_distill(_sf_config(distill_dataset, tmp_path / "a", teacher))
    cfg = _sf_config(distill_dataset, tmp_path / "b", teacher, checkpoint={"every": 1})
    first = run_distill(cfg, stop_after=3)
    assert first.student is None and first.checkpoint.name == "step-00000003"
    # The two newest are damaged as a kill or a full disk leaves them: weights cut short, a JSON file cut off.
    weights = cfg.checkpoint_dir / "step-00000003" / "critic" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (cfg.checkpoint_dir / "step-00000002" / "trainer.json").write_text('{"format": "sana-wm-distill')
    with caplog.at_level("WARNING"):
        resumed = run_distill(cfg, resume=True)
    assert f"skipping the damaged checkpoint {cfg.checkpoint_dir / 'step-00000003'}: critic/model.safetensors " \
           "cannot be read (ValueError: the header claims" in caplog.text
    assert f"skipping the damaged checkpoint {cfg.checkpoint_dir / 'step-00000002'}: trainer.json cannot be read " \
           "(JSONDecodeError" in caplog.text
    assert sorted(resumed.losses) == [2, 3, 4]  # continued from step 1
    for step in (2, 3, 4):
        assert resumed.losses[step] == straight.losses[step]  # same numbers, bit for bit
        assert resumed.exit_steps[step] == straight.exit_steps[step]
    assert "generator_loss" in straight.losses[3] and "generator_loss" not in straight.losses[4]
    a = torch.load(straight.student / "sana_dit" / "model.pt", weights_only=True)
    b = torch.load(resumed.student / "sana_dit" / "model.pt", weights_only=True)
    for part in ("generator", "critic"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    teacher_weights = load_file(str(teacher / "model.safetensors"))
    assert not torch.equal(a["generator"]["final_layer.linear.weight"], teacher_weights["final_layer.linear.weight"])

    for path in cfg.checkpoint_dir.glob("step-*"):
        (path / "exit_rng.pt").unlink()
    with pytest.raises(CheckpointError, match="every checkpoint is damaged .* exit_rng.pt cannot be read"):
        run_distill(cfg, resume=True)


def test_distill_checkpoint_damage_names_each_missing_or_cut_file(distill_dataset, teacher, tmp_path):
    cfg = _sf_config(distill_dataset, tmp_path / "b", teacher, steps=1, checkpoint={"every": 1})
    path = run_distill(cfg).checkpoint
    assert distill_checkpoint_damage(path) is None
    for name in ("generator/config.json", "critic_optimizer.pt", "generator/model.safetensors", "rng/rank-00000.pt"):
        file = path / name
        data = file.read_bytes()
        file.write_bytes(data[: len(data) // 2])
        assert distill_checkpoint_damage(path).startswith(f"{name} cannot be read")
        file.write_bytes(data)
    assert distill_checkpoint_damage(path) is None
    config = path / "trainer.json"
    config.write_text(config.read_text().replace("sana-wm-distill-checkpoint", "sana-wm-train-checkpoint"))
    assert "format is 'sana-wm-train-checkpoint'" in distill_checkpoint_damage(path)


def test_two_ranks_match_one_with_the_same_exit_steps(distill_dataset, teacher, tmp_path):
    kw = {"steps": 2, "checkpoint": {"every": 0}}
    single = run_distill(_sf_config(distill_dataset, tmp_path / "one", teacher, **kw))
    two = _sf_config(distill_dataset, tmp_path / "two", teacher, data={"batch_size": 1}, **kw)
    out = mp.Manager().dict()
    mp.spawn(rank_worker, args=(2, free_port(), two, out), nprocs=2)
    assert out["exit_steps_0"] == out["exit_steps_1"] == single.exit_steps
    for step, losses in single.losses.items():
        assert sorted(out["losses"][step]) == sorted(losses)
        for name in ("generator_loss", "critic_loss"):
            if name in losses:
                assert out["losses"][step][name] == pytest.approx(losses[name], rel=1e-4, abs=1e-6)
    a = torch.load(f"{single.student}/sana_dit/model.pt", weights_only=True)["generator"]
    b = torch.load(f"{out['student']}/sana_dit/model.pt", weights_only=True)["generator"]
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5



def test_ode_data_on_two_ranks_equals_one_rank(distill_dataset, teacher, tmp_path):
    one = write_ode_data(distill_config(distill_dataset, tmp_path / "one" / "run", teacher), progress=False)
    two = distill_config(distill_dataset, tmp_path / "two" / "run", teacher)
    out = mp.Manager().dict()
    mp.spawn(rank_worker, args=(2, free_port(), two, out), nprocs=2)
    assert sorted(p.name for p in (tmp_path / "two" / "ode_data").glob("*.safetensors")) == [
        "rank00000-00000.safetensors", "rank00001-00000.safetensors"]  # each rank sampled its share
    a = OdeTrajectories(one, two.denoising_steps)
    b = OdeTrajectories(out["folder"], two.denoising_steps)
    assert sorted(a.clips) == sorted(b.clips) == ["clip000", "clip001", "clip002", "clip003"]
    for key in a.clips:  # a clip's noise is seeded by its key, not its rank or batch
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)
