"""Distillation checkpoints: both models, both optimizers, the exit-step generator, the data position and the
RNG states, written atomically.

A checkpoint is ``<checkpoint_dir>/step-XXXXXXXX/`` holding ``generator/`` and, for Self-Forcing,
``critic/`` (each ``config.json`` + ``model.safetensors``: a model folder ``sana_wm.model.from_pretrained``
loads), ``generator_optimizer.pt`` / ``critic_optimizer.pt`` (full AdamW states), ``exit_rng.pt``,
``rng/rank-NNNNN.pt`` and ``trainer.json`` (step, stage, world size, each rank's data position). Every ``.pt``
loads with ``weights_only=True``. Writing (a hidden folder renamed when complete), listing, pruning, the damage
check and the choice of the checkpoint to resume from (past damaged ones) are the trainer's
(:mod:`sana_wm.train.checkpoint`); this module names the files and fills the models.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from sana_wm.errors import UserError
from sana_wm.train.checkpoint import checkpoint_damage, resume_checkpoint, set_rng_state, write_checkpoint_folder

__all__ = ["FORMAT", "DistillCheckpointError", "distill_checkpoint_damage", "resume_point", "save_distill_checkpoint"]

log = logging.getLogger(__name__)

FORMAT = "sana-wm-distill-checkpoint"
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
# Parameters the forward never reads (the legacy raymap input, GDN gates of softmax blocks) have no AdamW state.
_FULL_OPTIM_LOAD = StateDictOptions(full_state_dict=True, cpu_offload=True, strict=False)


class DistillCheckpointError(UserError):
    """A checkpoint that this run cannot continue from (another stage or world size)."""


def _trained(trainer) -> dict:
    models = {"generator": (trainer.generator, trainer.gen_optimizer)}
    if trainer.critic is not None:
        models["critic"] = (trainer.critic, trainer.critic_optimizer)
    return models


def _files(path: Path, state: dict) -> list[str]:
    """The files of a checkpoint of ``state["stage"]`` besides ``trainer.json`` and the RNG states."""
    names = ["generator"] + (["critic"] if state.get("stage") == "self_forcing" else [])
    return ["exit_rng.pt"] + [f for name in names
                              for f in (f"{name}/config.json", f"{name}/model.safetensors", f"{name}_optimizer.pt")]


def distill_checkpoint_damage(path: str | Path) -> str | None:
    """Why the distillation checkpoint at ``path`` cannot be resumed from (a file missing, truncated or not
    parseable, naming it), or None (:func:`sana_wm.train.checkpoint.checkpoint_damage` with this layout)."""
    return checkpoint_damage(path, checkpoint_format=FORMAT, files=_files)


def save_distill_checkpoint(trainer, step: int, data_states: list) -> Path:
    """Write checkpoint ``step`` (every rank calls this: gathering sharded state is collective)."""
    from safetensors.torch import save_file

    cfg, env = trainer.cfg, trainer.env
    states = {name: (get_model_state_dict(model, options=_FULL), get_optimizer_state_dict(model, opt, options=_FULL))
              for name, (model, opt) in _trained(trainer).items()}

    def write(tmp: Path) -> None:
        config = json.dumps({"_class_name": "SanaWMTransformer", **trainer.model_config.to_dict()}, indent=2,
                            sort_keys=True) + "\n"
        for name, (model_sd, optim_sd) in states.items():
            (tmp / name).mkdir()
            save_file({k: v.contiguous() for k, v in model_sd.items()}, str(tmp / name / "model.safetensors"),
                      metadata={"format": "pt"})
            (tmp / name / "config.json").write_text(config)
            torch.save(optim_sd, tmp / f"{name}_optimizer.pt")
        torch.save({"exit_rng": trainer.exit_rng.get_state()}, tmp / "exit_rng.pt")
        state = {"format": FORMAT, "version": 1, "step": step, "stage": cfg.stage, "world_size": env.world_size,
                 "data": data_states}
        (tmp / "trainer.json").write_text(json.dumps(state, indent=2) + "\n")

    return write_checkpoint_folder(cfg.checkpoint_dir, step, env, write, cfg.checkpoint.keep_last)


def resume_point(trainer, resume: bool) -> int:
    """The step to start from: 0, or (``resume``) the newest intact checkpoint's, loaded into ``trainer``; newer
    damaged checkpoints are skipped with a warning that says why."""
    from safetensors.torch import load_file

    cfg, env = trainer.cfg, trainer.env
    path = resume_checkpoint(cfg.checkpoint_dir, resume, is_main=env.is_main, damage=distill_checkpoint_damage)
    if path is None:
        return 0
    state = json.loads((path / "trainer.json").read_text())
    if state["stage"] != cfg.stage:
        raise DistillCheckpointError(f"{path} is a {state['stage']!r} checkpoint, the config's stage is "
                                     f"{cfg.stage!r}; give each stage its own output_dir")
    if state["world_size"] != env.world_size:
        raise DistillCheckpointError(f"{path} was written by {state['world_size']} ranks, this run has "
                                     f"{env.world_size}; an exact resume needs the same number")
    for name, (model, optimizer) in _trained(trainer).items():
        set_model_state_dict(model, load_file(str(path / name / "model.safetensors")), options=_FULL)
        optim_sd = torch.load(path / f"{name}_optimizer.pt", map_location="cpu", weights_only=True)
        set_optimizer_state_dict(model, optimizer, optim_sd, options=_FULL_OPTIM_LOAD)
    trainer.exit_rng.set_state(torch.load(path / "exit_rng.pt", weights_only=True)["exit_rng"])
    trainer.data.dataset.load_state_dict(state["data"][env.rank])
    set_rng_state(torch.load(path / "rng" / f"rank-{env.rank:05d}.pt", map_location="cpu", weights_only=True))
    if env.is_main:
        log.info("resumed from %s at step %d", path, state["step"])
    return int(state["step"])
