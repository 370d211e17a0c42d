"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a directory ``<dir>/step-XXXXXXXX/`` holding

* ``config.json`` + ``model.safetensors``: the full model (loadable by ``sana_wm.model.from_pretrained``);
  or, for a LoRA run, ``adapter/`` instead: the adapter in peft's format plus ``sana_wm_base.json`` (the
  frozen base is not copied; a resume rebuilds it from ``model.init_from`` and checks its fingerprint);
* ``wrapper.json``: the settings of the model wrapper the transformer is trained in (``model.wrapper``), if any;
* ``ema.safetensors``: the EMA weights, when EMA is on (LoRA: the adapter's, also as ``adapter-ema/``);
* ``optimizer.pt``: the full (unsharded) AdamW state;
* ``trainer.json``: step, stage, LR schedule, each rank's data position (``ClipDataset.state_dict()``),
  world size and the config it was written with;
* ``rng/rank-NNNNN.pt``: each rank's Python, NumPy and torch (CPU and CUDA) RNG states.

All ``.pt`` files hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``. The directory is written under a hidden temporary name and renamed
into place only when complete: a crash mid-write leaves the previous checkpoint the latest.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from sana_wm.errors import UserError
from sana_wm.model.loading import CheckpointError
from sana_wm.train.distributed import DistEnv, barrier
from sana_wm.train.lora import LoraAdapter, check_fingerprint, read_adapter, write_adapter

__all__ = ["CHECKPOINT_FORMAT", "CheckpointsExistError", "checkpoint_damage", "get_rng_state", "latest_checkpoint",
           "latest_intact_checkpoint", "list_checkpoints", "load_checkpoint", "prune_checkpoints", "resume_checkpoint",
           "save_checkpoint", "seed_everything", "set_rng_state", "write_checkpoint_folder"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sana-wm-train-checkpoint"
_PREFIX = "step-"
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
# Parameters the forward never reads (the legacy raymap input, GDN gates of softmax blocks) and frozen
# ones have no AdamW state, so the optimizer state is loaded non-strictly.
_FULL_OPTIM_LOAD = StateDictOptions(full_state_dict=True, cpu_offload=True, strict=False)
# A LoRA checkpoint holds the adapter only; the frozen base keeps the weights it was built with.
_ADAPTER_LOAD = StateDictOptions(full_state_dict=True, cpu_offload=True, strict=False)


class CheckpointsExistError(UserError, FileExistsError):
    """A fresh run (no ``--resume``) found checkpoints of an earlier run where it would write its own."""


# ------------------------------------------------------------------------------------------------
# RNG states as plain data
# ------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators, as a run does before it builds its models."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global RNG other libraries may draw from)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    version, state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002 (saving the global RNG)
    out = {"python": [version, list(state), gauss],
           "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                     float(np_gauss)],
           "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------
# Finding checkpoints
# ------------------------------------------------------------------------------------------------
def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary directories are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit()
             and (p / "trainer.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def _training_files(path: Path, state: dict) -> list[str]:
    """The files of a training checkpoint besides ``trainer.json`` and the RNG states: the optimizer state and
    every weights file (the model or, for LoRA, the adapter; the EMA when there is one)."""
    weights = [f for f in ("model.safetensors", "ema.safetensors") if (path / f).exists()]
    for adapter in ("adapter", "adapter-ema"):
        weights += [str(f.relative_to(path)) for f in sorted((path / adapter).glob("*.safetensors"))]
    return ["optimizer.pt", *(weights or ["model.safetensors"])]


def checkpoint_damage(path: str | Path, *, checkpoint_format: str = CHECKPOINT_FORMAT,
                      files: Callable[[Path, dict], list[str]] = _training_files) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from (a file missing, truncated or not parseable),
    naming the file, or None when it looks whole. Checked before anything is loaded, because the models and
    optimizers are loaded in place: the small files are read in full; the weights and the optimizer states,
    which can be tens of GB, only as far as their headers and sizes tell whether they are complete.

    ``trainer.json`` must be of ``checkpoint_format`` and every rank's RNG state must load; ``files(path,
    state)`` lists the other files the layout needs (``.safetensors``, ``.pt`` and ``.json``), relative to
    ``path``. The training checkpoint's list is the default; the distiller passes its own."""
    path = Path(path)

    def check(name: str, reader) -> Any:
        try:
            return reader(path / name)
        # How json, zipfile and torch.load(weights_only=True) report missing, truncated or corrupt files.
        except (OSError, ValueError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError,
                zipfile.BadZipFile) as err:
            first_line = (str(err).splitlines() or [""])[0]
            raise _Damaged(f"{name} cannot be read ({type(err).__name__}: {first_line})") from None

    readers = {".safetensors": _check_safetensors_complete, ".pt": _check_zip_complete,
               ".json": lambda file: json.loads(file.read_text())}
    try:
        state = check("trainer.json", lambda file: json.loads(file.read_text()))
        if not isinstance(state, dict):
            return "trainer.json does not hold a JSON object"
        if state.get("format") != checkpoint_format:
            return f"trainer.json's format is {state.get('format')!r}, not {checkpoint_format!r}"
        for key in ("step", "world_size", "data"):
            if key not in state:
                return f"trainer.json has no {key!r}"
        for rank in range(int(state["world_size"])):
            check(f"rng/rank-{rank:05d}.pt", lambda file: torch.load(file, map_location="cpu", weights_only=True))
        for name in files(path, state):
            check(name, readers[Path(name).suffix])
    except _Damaged as damage:
        return str(damage)
    return None


def _check_zip_complete(file: Path) -> None:
    """A ``torch.save`` file is a zip archive: its directory is written last, so a truncated file has none, and
    every member must end inside the file."""
    size = file.stat().st_size
    with zipfile.ZipFile(file) as archive:
        for member in archive.infolist():
            if member.header_offset + member.compress_size > size:
                raise zipfile.BadZipFile(f"member {member.filename} runs past the end of the file")


def _check_safetensors_complete(file: Path) -> None:
    """A safetensors file is an 8-byte header length, a JSON header giving each tensor's byte range, then the
    data: complete when the header parses and the file is exactly as long as the ranges say."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes, shorter than a header")
        length = int.from_bytes(head, "little")
        if length > size - 8:
            raise ValueError(f"the header claims {length} bytes but the file has {size}")
        header = json.loads(f.read(length))
    ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        raise ValueError(f"the file has {size} bytes but its header describes {expected} (truncated?)")


class _Damaged(Exception):
    """A checkpoint file that does not read back (:func:`checkpoint_damage`)."""


def latest_intact_checkpoint(root: str | Path, damage: Callable[[Path], str | None] = checkpoint_damage
                             ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint under ``root`` that reads back in full (``damage``: :func:`checkpoint_damage` of
    the layout), and the newer ones skipped as damaged, each with the reason."""
    skipped = []
    for path in reversed(list_checkpoints(root)):
        why = damage(path)
        if why is None:
            return path, skipped
        skipped.append((path, why))
    return None, skipped


def resume_checkpoint(root: str | Path, resume: bool, *, is_main: bool = True,
                      damage: Callable[[Path], str | None] = checkpoint_damage) -> Path | None:
    """The checkpoint a run continues from: None for a fresh start, else the newest intact one under ``root``
    (with ``resume``), each newer damaged one skipped with a warning that says why.

    Without ``resume`` a folder that holds checkpoints is refused (a fresh run would mix its checkpoints with
    an earlier run's); with it, an empty folder starts from step 0 with a warning, and a folder whose every
    checkpoint is damaged is refused. Shared by ``sana-wm train`` and ``sana-wm distill``."""
    newest = latest_checkpoint(root)
    if newest is None:
        if resume and is_main:
            log.warning("--resume: %s holds no checkpoint; starting from step 0", root)
        return None
    if not resume:
        raise CheckpointsExistError(f"{root} already holds checkpoints ({newest.name}); pass --resume to continue "
                                    "that run, or choose another output_dir")
    found, skipped = latest_intact_checkpoint(root, damage)
    if is_main:
        for path, why in skipped:
            log.warning("skipping the damaged checkpoint %s: %s", path, why)
    if found is None:
        raise CheckpointError(f"{root}: every checkpoint is damaged (newest: {skipped[0][0].name}: {skipped[0][1]}); "
                              "remove them to start again, or restore one from a copy")
    return found


def prune_checkpoints(root: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints; returns the deleted paths."""
    old = list_checkpoints(root)[:-keep_last] if keep_last > 0 else []
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return old


# ------------------------------------------------------------------------------------------------
# Saving and loading
# ------------------------------------------------------------------------------------------------
def _full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly FSDP2-sharded) tensor; a collective for DTensors."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().cpu().contiguous()


def write_checkpoint_folder(root: str | Path, step: int, env: DistEnv, write: Callable[[Path], None],
                            keep_last: int = 0) -> Path:
    """Write ``<root>/step-XXXXXXXX/`` atomically (every rank calls this): each rank its RNG state under
    ``rng/``, the main rank everything else by ``write(folder)``; the folder is written under a hidden name and
    renamed into place when complete, so a crash mid-write leaves the previous checkpoint the latest. A folder of
    the same step (re-saved after a resume) is replaced; all but the ``keep_last`` newest are deleted (0: none).
    Shared by the trainer's and the distiller's checkpoints."""
    root = Path(root)
    final = root / f"{_PREFIX}{step:08d}"
    tmp = root / f".tmp-{_PREFIX}{step:08d}"
    if env.is_main:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a crash
        (tmp / "rng").mkdir(parents=True)
    barrier(env)
    torch.save(get_rng_state(), tmp / "rng" / f"rank-{env.rank:05d}.pt")
    if env.is_main:
        write(tmp)
    barrier(env)
    if env.is_main:
        if final.exists():
            stale = root / f".old-{final.name}"
            shutil.rmtree(stale, ignore_errors=True)
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.rename(final)  # atomic on POSIX: the checkpoint appears complete or not at all
        prune_checkpoints(root, keep_last)
    barrier(env)
    return final


def save_checkpoint(root: str | Path, step: int, *, env: DistEnv, model: nn.Module, optimizer: torch.optim.Optimizer,
                    model_config: dict, trainer_state: dict, data_states: list, ema: dict | None = None,
                    keep_last: int | None = None, lora: LoraAdapter | None = None,
                    lora_base: dict | None = None, wrapper: dict | None = None) -> Path:
    """Write checkpoint ``step`` (every rank calls this: gathering sharded state is collective).

    ``lora``: the run trains this adapter on a frozen base described by ``lora_base``; only the adapter is
    written. ``wrapper``: the settings of the model wrapper the transformer was trained in (``model.wrapper``),
    written to ``wrapper.json`` for ``sana-wm model export``."""
    from safetensors.torch import save_file

    if lora is None:
        model_sd = get_model_state_dict(model, options=_FULL)
    else:
        params = dict(lora.model.named_parameters())
        adapter_sd = {n: _full_tensor(params[n]) for n in lora.param_names}  # same order on every rank
    optim_sd = get_optimizer_state_dict(model, optimizer, options=_FULL)
    ema_sd = {k: _full_tensor(v) for k, v in ema.items()} if ema is not None else None

    def write(tmp: Path) -> None:
        if lora is None:
            save_file({k: v.contiguous() for k, v in model_sd.items()}, str(tmp / "model.safetensors"),
                      metadata={"format": "pt"})
            (tmp / "config.json").write_text(json.dumps({"_class_name": "SanaWMTransformer", **model_config},
                                                        indent=2, sort_keys=True) + "\n")
        else:
            write_adapter(tmp / "adapter", lora.to_file_keys(adapter_sd), lora.peft_config, lora_base)
            if ema_sd is not None:
                write_adapter(tmp / "adapter-ema", lora.to_file_keys(ema_sd), lora.peft_config, lora_base)
        if wrapper is not None:
            (tmp / "wrapper.json").write_text(json.dumps(wrapper, indent=2, sort_keys=True) + "\n")
        if ema_sd is not None:
            save_file(ema_sd, str(tmp / "ema.safetensors"), metadata={"format": "pt"})
        torch.save(optim_sd, tmp / "optimizer.pt")
        state = {"format": CHECKPOINT_FORMAT, "version": 1, "step": step, "world_size": env.world_size,
                 "data": data_states, **trainer_state}
        (tmp / "trainer.json").write_text(json.dumps(state, indent=2) + "\n")

    return write_checkpoint_folder(root, step, env, write, keep_last or 0)


def load_checkpoint(path: str | Path, *, env: DistEnv, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    ema: dict | None = None, restore_rng: bool = True, lora: LoraAdapter | None = None,
                    lora_base: dict | None = None) -> dict:
    """Load a checkpoint into ``model``/``optimizer``/``ema`` (in place); returns ``trainer.json``.

    ``lora``: ``model`` carries this adapter on a frozen base described by ``lora_base``; the checkpoint
    must hold an adapter of the same layout, trained on a base with the same fingerprint."""
    from safetensors.torch import load_file

    path = Path(path)
    state = json.loads((path / "trainer.json").read_text())
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a sana-wm training checkpoint (trainer.json format "
                              f"{state.get('format')!r})")
    if state["world_size"] != env.world_size:
        raise CheckpointError(f"{path} was written by {state['world_size']} ranks but this run has {env.world_size}; "
                         "an exact resume needs the same world size (the data position is per rank)")
    has_adapter = (path / "adapter").is_dir()
    if lora is None and has_adapter:
        raise CheckpointError(f"{path} holds a LoRA adapter, not a full model; the config has no lora section (the run "
                         "that wrote it had one)")
    if lora is not None and not has_adapter:
        raise CheckpointError(f"{path} holds a full model, not a LoRA adapter; the config has a lora section (the run "
                         "that wrote it had none): remove it, or start the LoRA run in another output_dir")
    if lora is None:
        set_model_state_dict(model, load_file(str(path / "model.safetensors")), options=_FULL)
    else:
        file_state, _, saved_base = read_adapter(path / "adapter")
        if lora_base is not None and "fingerprint" in saved_base:
            check_fingerprint(saved_base["fingerprint"], lora_base["fingerprint"], f"resuming from {path}")
        set_model_state_dict(model, lora.from_file_keys(file_state), options=_ADAPTER_LOAD)
    if optimizer is not None:
        optim_sd = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        set_optimizer_state_dict(model, optimizer, optim_sd, options=_FULL_OPTIM_LOAD)
    if ema is not None:
        saved = load_file(str(path / "ema.safetensors"))
        for name, shadow in ema.items():
            full = saved[name]
            if hasattr(shadow, "device_mesh"):
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full.to(shadow.device), shadow.device_mesh, shadow.placements)
            shadow.copy_(full)
    if restore_rng:
        rng_file = path / "rng" / f"rank-{env.rank:05d}.pt"
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
    return state
