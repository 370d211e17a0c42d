"""Training checkpoints: atomic writes, keep-last-N, exact state round trips, weights_only loading."""

import random

import numpy as np
import pytest
import torch

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.train import checkpoint as ckpt_mod
from sana_wm.train.checkpoint import (
    get_rng_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from sana_wm.train.distributed import DistEnv

ENV = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), owns_group=False)


def trained(seed: int = 0):
    torch.manual_seed(seed)
    model = SanaWMTransformer(get_config("tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.final_layer.linear.weight.sum().backward()
    opt.step()
    return model, opt


def save(root, step, model, opt, **kwargs):
    return save_checkpoint(root, step, env=ENV, model=model, optimizer=opt, model_config=model.config.to_dict(),
                           trainer_state={"stage": 0}, data_states=[{"epoch": step}], **kwargs)


def test_rng_states_round_trip_through_weights_only(tmp_path):
    random.seed(1)
    np.random.seed(1)  # noqa: NPY002
    torch.manual_seed(1)
    torch.save(get_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand()) == expected[:2]  # noqa: NPY002
    assert torch.equal(torch.rand(3), expected[2])


def test_round_trip_and_weights_only(tmp_path):
    model, opt = trained()
    ema = {n: p.detach().clone() + 1 for n, p in model.named_parameters()}
    path = save(tmp_path, 5, model, opt, ema=ema)
    assert path.name == "step-00000005"
    for f in path.rglob("*.pt"):
        torch.load(f, weights_only=True)  # nothing but tensors and plain data

    model2, opt2 = trained(seed=1)
    ema2 = {n: torch.zeros_like(p) for n, p in model2.named_parameters()}
    state = load_checkpoint(path, env=ENV, model=model2, optimizer=opt2, ema=ema2)
    assert state["step"] == 5 and state["data"] == [{"epoch": 5}] and state["stage"] == 0
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    assert all(torch.equal(ema[n], ema2[n]) for n in ema)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_keep_last(tmp_path):
    model, opt = trained()
    for step in range(1, 6):
        save(tmp_path, step, model, opt, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004", "step-00000005"]


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = trained()
    save(tmp_path, 1, model, opt)
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            with open(f, "wb") as fh:
                fh.write(b"half a checkpo")
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path, 2, model, opt, keep_last=1)
    monkeypatch.undo()

    assert latest_checkpoint(tmp_path).name == "step-00000001"
    assert (tmp_path / ".tmp-step-00000002").exists()  # the debris is ignored ...
    model2, opt2 = trained(seed=1)
    assert load_checkpoint(latest_checkpoint(tmp_path), env=ENV, model=model2, optimizer=opt2)["step"] == 1
    save(tmp_path, 2, model, opt, keep_last=1)  # ... and replaced by the next save of that step
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]
    assert not (tmp_path / ".tmp-step-00000002").exists()


def test_world_size_mismatch_is_refused(tmp_path):
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    env2 = DistEnv(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), owns_group=False)
    with pytest.raises(ValueError, match="same world size"):
        load_checkpoint(path, env=env2, model=model, optimizer=opt)


@pytest.mark.parametrize("damage, reason", [
    ("model.safetensors", "model.safetensors cannot be read"),
    ("optimizer.pt", "optimizer.pt"),
    ("trainer.json", "JSONDecodeError"),
    ("rng/rank-00000.pt", "rank-00000.pt"),
])
def test_the_newest_intact_checkpoint_is_found_past_damaged_ones(tmp_path, damage, reason):
    from sana_wm.train.checkpoint import checkpoint_damage, latest_intact_checkpoint

    model, opt = trained()
    for step in (1, 2):
        save(tmp_path, step, model, opt)
    newest = list_checkpoints(tmp_path)[-1]
    assert checkpoint_damage(newest) is None
    data = (newest / damage).read_bytes()
    (newest / damage).write_bytes(data[: len(data) // 2])  # truncated, as by a full disk or a kill
    found, skipped = latest_intact_checkpoint(tmp_path)
    assert found.name == "step-00000001"
    assert [p.name for p, _ in skipped] == ["step-00000002"] and reason in skipped[0][1]
    (tmp_path / "step-00000001" / "trainer.json").write_text("{}")
    assert latest_intact_checkpoint(tmp_path)[0] is None
