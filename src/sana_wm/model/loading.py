"""Checkpoint I/O for :class:`SanaWMTransformer`.

Reads the released stage-1 ``.safetensors`` (keys optionally prefixed ``model.``, a ``pos_embed``
entry that is ignored), the streaming student's ``model.pt`` (a ``generator`` wrapper, read with
``torch.load(weights_only=True)``), diffusers ``SanaWMTransformer3DModel`` directories and our own
directories; writes our format (``config.json`` + ``model.safetensors``) or the diffusers one.

Our parameter names are the released checkpoint's (reference §11.5). diffusers differs in two
places: the timestep MLP is ``t_embedder.linear_1/linear_2`` instead of ``t_embedder.mlp.0/mlp.2``,
and it has no ``y_embedder.y_embedding`` (the training-only null caption).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from sana_wm.errors import ConfigError, UserError
from sana_wm.limits import loads_json
from sana_wm.model.config import SanaWMConfig, get_config
from sana_wm.model.transformer import SanaWMTransformer

__all__ = [
    "CheckpointError",
    "build_model",
    "from_diffusers_state_dict",
    "from_pretrained",
    "load_weights",
    "normalize_state_dict",
    "read_state_dict",
    "resolve_dtype",
    "save_pretrained",
    "to_diffusers_state_dict",
]

_CLASS_NAME = "SanaWMTransformer"
_DIFFUSERS_CLASS = "SanaWMTransformer3DModel"
_WEIGHTS_NAME = "model.safetensors"
_DIFFUSERS_RENAMES = (("t_embedder.mlp.0.", "t_embedder.linear_1."), ("t_embedder.mlp.2.", "t_embedder.linear_2."))
_IGNORED_KEYS = ("pos_embed",)  # a fixed sin-cos table some checkpoints carry; we use RoPE
_WRAPPERS = ("generator", "state_dict", "model", "module")  # nesting of training checkpoints
_PREFIXES = ("model.", "module.", "_orig_mod.")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
           "fp32": torch.float32, "float32": torch.float32}


class CheckpointError(UserError, ValueError):
    """A checkpoint does not fit the model: lists every missing, unexpected and mis-shaped key."""


def _is_optional(key: str) -> bool:
    """Buffers the model never reads; a checkpoint without them (e.g. diffusers) still loads."""
    return key == "y_embedder.y_embedding" or key.endswith(".attn.recall_gate")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


# ------------------------------------------------------------------------------------------------
# Key layouts
# ------------------------------------------------------------------------------------------------
def to_diffusers_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our (released) key names -> diffusers' ``SanaWMTransformer3DModel`` names."""
    out = {}
    for key, value in state_dict.items():
        if key == "y_embedder.y_embedding":
            continue
        for ours, theirs in _DIFFUSERS_RENAMES:
            if key.startswith(ours):
                key = theirs + key[len(ours):]
        out[key] = value
    return out


def from_diffusers_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """diffusers key names -> ours (released)."""
    out = {}
    for key, value in state_dict.items():
        for ours, theirs in _DIFFUSERS_RENAMES:
            if key.startswith(theirs):
                key = ours + key[len(theirs):]
        out[key] = value
    return out


def normalize_state_dict(state_dict: Mapping) -> dict[str, Tensor]:
    """Unwrap training wrappers (``generator``, ``state_dict``, ...), strip ``model.``-style prefixes,
    drop ignored keys and translate diffusers names, giving our key layout."""
    sd = state_dict
    while not all(isinstance(v, Tensor) for v in sd.values()):
        wrapper = next((w for w in _WRAPPERS if isinstance(sd.get(w), Mapping)), None)
        if wrapper is None:
            non_tensor = sorted(k for k, v in sd.items() if not isinstance(v, Tensor))[:5]
            raise CheckpointError(f"checkpoint holds non-tensor entries {non_tensor} and none of the known "
                                  f"wrappers {list(_WRAPPERS)}; pass the model's state dict")
        sd = sd[wrapper]
    out = {}
    for key, value in sd.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        if key not in _IGNORED_KEYS:
            out[key] = value
    if any(k.startswith("t_embedder.linear_") for k in out):
        out = from_diffusers_state_dict(out)
    return out


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of one checkpoint file (``.safetensors``, or ``.pt``/``.pth``/``.bin`` read with
    ``weights_only=True``), in our key layout."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        raw = load_safetensors(path)
    else:
        raw = load_pt(path)
        if not isinstance(raw, Mapping):
            raise CheckpointError(f"{path}: expected a dict of tensors, got {type(raw).__name__}")
    return normalize_state_dict(raw)


def load_safetensors(path: str | Path) -> dict[str, Tensor]:
    """All tensors of a ``.safetensors`` file; a damaged or foreign file raises :class:`CheckpointError`
    naming it (the safetensors library's own error does not say which file)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: damaged or not a safetensors file ({exc}); replace it") from None


def load_pt(path: str | Path, *, mmap: bool = False):
    """A ``.pt`` / ``.pth`` / ``.bin`` file read with ``weights_only=True`` (no code in it runs); a damaged file
    or one that holds more than tensors raises :class:`CheckpointError` naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint of plain tensors ({first}); "
                              "replace the file, or convert it to .safetensors") from None


def check_finite_weights(state_dict: Mapping[str, Tensor], source: str | Path) -> None:
    """Refuse weights holding NaN or infinity, naming the first such tensor: such a model samples noise."""
    for key, value in state_dict.items():
        if value.is_floating_point() and not value.is_meta and not torch.isfinite(value).all():
            raise CheckpointError(f"{source}: tensor {key!r} holds NaN or infinite values; the checkpoint is "
                                  "damaged (or was saved after training diverged)")


def _read_directory_config(path: Path) -> tuple[SanaWMConfig, list[Path]]:
    """The config and weight files of a sana-wm or diffusers model directory."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} has no config.json; pass a checkpoint file or a model directory")
    raw = loads_json(config_file.read_text(), config_file)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object of config fields")
    class_name = raw.pop("_class_name", None)
    if class_name == _DIFFUSERS_CLASS:
        config = SanaWMConfig.from_diffusers(raw)
        files = sorted(path.glob("diffusion_pytorch_model*.safetensors"))
    elif class_name == _CLASS_NAME:
        config = SanaWMConfig.from_dict(raw)
        files = [path / _WEIGHTS_NAME]
    else:
        raise CheckpointError(f"{config_file}: unknown _class_name {class_name!r}; expected {_CLASS_NAME!r} "
                              f"(sana-wm) or {_DIFFUSERS_CLASS!r} (diffusers)")
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"{path}: weights not found ({[f.name for f in files] or 'no *.safetensors'})")
    return config, files


def _read_directory(path: Path) -> tuple[SanaWMConfig, dict[str, Tensor]]:
    config, files = _read_directory_config(path)
    state_dict = {}
    for f in files:
        state_dict.update(read_state_dict(f))
    return config, state_dict


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def build_model(config: SanaWMConfig | str, *, device: torch.device | str = "cpu",
                dtype: torch.dtype | str | None = None) -> SanaWMTransformer:
    """A randomly initialised model; ``device="meta"`` allocates nothing (shapes and counts only)."""
    if isinstance(config, str):
        config = get_config(config)
    with torch.device(device):
        model = SanaWMTransformer(config)
    dtype = resolve_dtype(dtype)
    return model if dtype is None else model.to(dtype)


def load_weights(model: SanaWMTransformer, state_dict: Mapping[str, Tensor], *, strict: bool = True,
                 source: str | Path | None = None) -> None:
    """Copy ``state_dict`` (any supported layout) into ``model``, cast to the model's dtype.

    Raises :class:`CheckpointError` naming ``source`` (the file) and the first few shape mismatches, and with
    ``strict`` missing or unexpected keys. A model on the meta device receives the tensors themselves (no
    copy); buffers the checkpoint lacks and the model never reads are then filled with zeros.
    """
    sd = normalize_state_dict(state_dict)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not _is_optional(k)]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sd if k in expected and sd[k].shape != expected[k].shape]
    def listed(what: str, keys: list[str]) -> str:  # a few names say enough; hundreds would bury the message
        more = f", ... ({len(keys) - 4} more)" if len(keys) > 4 else ""
        return f"{what} ({len(keys)}): {', '.join(keys[:4])}{more}"

    problems = []
    if mismatched:
        problems.append(listed("shape mismatches", mismatched))
    if strict and missing:
        problems.append(listed("missing keys", missing))
    if strict and unexpected:
        problems.append(listed("unexpected keys", unexpected))
    if problems:
        where = f"{source}: " if source is not None else ""
        raise CheckpointError(f"{where}checkpoint does not fit the model config; check that the config matches the "
                              "checkpoint (e.g. 'official-2.6b' for the released weights).\n" + "; ".join(problems))

    on_meta = any(t.is_meta for t in expected.values())
    device = None if on_meta else next(iter(expected.values())).device
    to_load = {k: v.to(dtype=expected[k].dtype, device=device) for k, v in sd.items() if k in expected}
    model.load_state_dict(to_load, strict=False, assign=on_meta)
    if on_meta:
        for name, buf in list(model.named_buffers()):
            if buf.is_meta:
                owner, _, attr = name.rpartition(".")
                model.get_submodule(owner)._buffers[attr] = torch.zeros(buf.shape, dtype=buf.dtype)


def from_pretrained(path: str | Path, config: SanaWMConfig | str | None = None, *,
                    dtype: torch.dtype | str = torch.bfloat16, device: torch.device | str = "cpu",
                    strict: bool = True) -> SanaWMTransformer:
    """Load a model from a checkpoint file (config default: ``official-2.6b``) or a sana-wm / diffusers
    model directory (config read from its ``config.json``; an explicit ``config`` overrides it)."""
    path = Path(path)
    if path.is_dir():
        dir_config, state_dict = _read_directory(path)
        config = config or dir_config
    else:
        state_dict = read_state_dict(path)
    if config is None:
        config = "official-2.6b"
    check_finite_weights(state_dict, path)
    model = build_model(config, device="meta", dtype=resolve_dtype(dtype))
    load_weights(model, state_dict, strict=strict, source=path)
    return model.to(device).eval()


def save_pretrained(model: SanaWMTransformer, directory: str | Path, *, format: str = "sana-wm",
                    dtype: torch.dtype | str | None = None) -> Path:
    """Write ``config.json`` + weights to ``directory``: ``format="sana-wm"`` (``model.safetensors``,
    released key names) or ``"diffusers"`` (``diffusion_pytorch_model.safetensors``)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = resolve_dtype(dtype)
    sd = {k: (v if dtype is None else v.to(dtype)).detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if format == "sana-wm":
        config = {"_class_name": _CLASS_NAME, **model.config.to_dict()}
        weights = _WEIGHTS_NAME
    elif format == "diffusers":
        config = model.config.to_diffusers()
        sd = to_diffusers_state_dict(sd)
        weights = "diffusion_pytorch_model.safetensors"
    else:
        raise ValueError(f"format must be 'sana-wm' or 'diffusers', got {format!r}")
    # Write each file under a temporary name and rename it, so an interrupted save never leaves a
    # truncated checkpoint that looks complete. Weights first: a config.json implies its weights exist.
    tmp = directory / f".{weights}.partial"
    save_file(sd, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, directory / weights)
    tmp = directory / ".config.json.partial"
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / "config.json")
    return directory
