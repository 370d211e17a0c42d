"""LoRA fine-tuning through peft: which layers get adapters, wrapping, adapter files and merging.

A LoRA run freezes the base model (``model.init_from``) and trains low-rank adapters on the layers that
``lora.target_modules`` names, plus, in full, the modules that ``lora.trainable_modules`` names (peft's
``modules_to_save``). The layer's output becomes ``W x + (alpha / rank) B A x`` with ``A`` random and
``B`` zero at the start, so step 0 reproduces the base model exactly.

Adapters are written in peft's own format (``adapter_config.json`` + ``adapter_model.safetensors``), so
``peft.PeftModel.from_pretrained(base, directory)`` loads them too, plus ``sana_wm_base.json`` naming the
base they were trained on and a fingerprint of its weights. :func:`merge_lora` folds an adapter into its
base and writes an ordinary model directory that :func:`sana_wm.model.from_pretrained` and the pipeline
load.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from sana_wm.model.loading import CheckpointError
from sana_wm.train.config import ConfigError, LoraConfig

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "BASE_INFO",
    "LoraAdapter",
    "LoraModules",
    "apply_lora",
    "base_fingerprint",
    "check_fingerprint",
    "merge_lora",
    "read_adapter",
    "resolve_lora_modules",
    "write_adapter",
]

ADAPTER_CONFIG = "adapter_config.json"  # peft's names
ADAPTER_WEIGHTS = "adapter_model.safetensors"
BASE_INFO = "sana_wm_base.json"  # ours: the base model the adapter was trained on
_PEFT_PREFIX = "base_model.model."  # how peft's PeftModel names the wrapped model's parameters
_ADAPTER = "default"  # peft's adapter name; not stored in the files

# Layers peft could wrap but whose owner reads attributes that peft's LoRA layer does not expose:
# GLUMBConvTemp reads t_conv.kernel_size in its forward.
_UNWRAPPABLE = {"t_conv": "the FFN reads its kernel_size, which peft's LoRA conv layer does not expose"}


# ------------------------------------------------------------------------------------------------
# Which modules
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoraModules:
    targets: list[str]  # full module names that get an adapter
    trainable: list[str]  # full module names trained in full and saved with the adapter


def _why_not_adaptable(name: str, module: nn.Module) -> str | None:
    """None if peft can put a LoRA adapter on ``module``, else the reason it cannot."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _UNWRAPPABLE:
        return _UNWRAPPABLE[leaf]
    if isinstance(module, nn.Linear):
        return None
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return None if module.groups == 1 else f"a grouped {type(module).__name__} (groups={module.groups})"
    return f"a {type(module).__name__}, not an nn.Linear or nn.Conv layer"


def resolve_lora_modules(model: nn.Module, cfg: LoraConfig) -> LoraModules:
    """The module names ``cfg``'s patterns select in ``model`` (any device, ``meta`` included).

    Raises :class:`ConfigError` naming the pattern's key (``lora.target_modules[2]``) when a pattern
    selects no layer that can take an adapter, or when a module is both adapted and trained in full.
    """
    modules = [(n, m) for n, m in model.named_modules() if n]
    targets: list[str] = []
    for i, pattern in enumerate(cfg.target_modules):
        matched = [(n, m) for n, m in modules if fnmatch.fnmatchcase(n, pattern)]
        usable = [n for n, m in matched if _why_not_adaptable(n, m) is None]
        if not usable:
            if not matched:
                detail = "matches no module of the model (names look like blocks.0.attn.qkv, " \
                         "blocks.0.mlp.inverted_conv.conv, final_layer.linear)"
            else:
                n, m = matched[0]
                detail = f"matches only layers LoRA cannot wrap, e.g. {n}: {_why_not_adaptable(n, m)}"
            raise ConfigError(f"lora.target_modules[{i}]: {pattern!r} {detail}")
        targets += [n for n in usable if n not in targets]

    trainable: list[str] = []
    for i, pattern in enumerate(cfg.trainable_modules):
        matched = [n for n, m in modules if fnmatch.fnmatchcase(n, pattern) and any(True for _ in m.parameters())]
        if not matched:
            raise ConfigError(f"lora.trainable_modules[{i}]: {pattern!r} matches no module with parameters")
        for n in matched:
            clash = [t for t in targets if t == n or t.startswith(n + ".") or n.startswith(t + ".")]
            if clash:
                raise ConfigError(f"lora.trainable_modules[{i}]: {n} overlaps the LoRA target {clash[0]}; a module "
                                  "is either adapted or trained in full")
        trainable += [n for n in matched if n not in trainable]
    # Keep only the outermost of nested matches: training a module in full covers its children.
    trainable = [n for n in trainable if not any(n.startswith(o + ".") for o in trainable)]
    return LoraModules(targets, trainable)


# ------------------------------------------------------------------------------------------------
# Base fingerprint
# ------------------------------------------------------------------------------------------------
def base_fingerprint(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, list[float]]:
    """Per tensor of ``model``'s state dict, ``[sum, sum of squares]`` in float64 (after a cast to
    ``dtype``): cheap to compute on any device, and changed by any edit of the weights worth noticing."""
    out = {}
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t = (t if dtype is None else t.to(dtype)).double()
            out[name] = [float(t.sum()), float(t.square().sum())]
    return out


def check_fingerprint(expected: dict, actual: dict, what: str) -> None:
    """Raise ``ValueError`` unless two fingerprints agree (to 1e-6 relative: reduction order may differ
    between devices, a changed weight moves them far more)."""
    if expected.keys() != actual.keys():
        missing = sorted(expected.keys() - actual.keys())[:3]
        extra = sorted(actual.keys() - expected.keys())[:3]
        raise CheckpointError(f"{what}: the base model has other tensors than the one the adapter was trained on "
                         f"(missing {missing}, unexpected {extra})")
    for name, (s, q) in expected.items():
        s2, q2 = actual[name]
        if not (math.isclose(s, s2, rel_tol=1e-6, abs_tol=1e-6) and math.isclose(q, q2, rel_tol=1e-6, abs_tol=1e-6)):
            raise CheckpointError(f"{what}: the base weights differ from those the adapter was trained on (first at "
                             f"{name}); use the same base model (model.init_from)")


# ------------------------------------------------------------------------------------------------
# Wrapping
# ------------------------------------------------------------------------------------------------
class LoraAdapter:
    """The peft wrapping of one model: names of its adapter parameters and their peft file keys.

    ``model`` (the :class:`SanaWMTransformer` peft modified in place) is what trains; parameter names are
    its own (``blocks.0.attn.qkv.lora_A.default.weight``), so stage ``trainable`` patterns and FSDP see
    the usual names. ``peft_model`` holds peft's config and is what :mod:`peft` functions take.
    """

    def __init__(self, peft_model, model: nn.Module, modules: LoraModules):
        from peft import get_peft_model_state_dict

        self.peft_model, self.model, self.modules = peft_model, model, modules
        self.param_names = [n for n, p in model.named_parameters() if p.requires_grad]  # peft froze the rest
        # peft's file keys drop the adapter name and, for trained-in-full modules, the wrapper's names.
        # Let peft itself compute them: pass each parameter's index in place of its value.
        marked = {_PEFT_PREFIX + n: torch.tensor([i]) for i, n in enumerate(self.param_names)}
        keyed = get_peft_model_state_dict(peft_model, state_dict=marked, save_embedding_layers=False)
        self.file_keys = {self.param_names[int(v)]: k for k, v in keyed.items()}  # param name -> file key
        if len(self.file_keys) != len(self.param_names):
            lost = sorted(set(self.param_names) - set(self.file_keys))[:3]
            raise RuntimeError(f"peft does not save some adapter parameters: {lost}")

    @property
    def peft_config(self):
        return self.peft_model.peft_config[_ADAPTER]

    def num_trainable(self) -> int:
        params = dict(self.model.named_parameters())
        return sum(params[n].numel() for n in self.param_names)

    def to_file_keys(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Parameter names -> peft file keys."""
        return {self.file_keys[n]: t for n, t in state.items()}

    def from_file_keys(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """peft file keys -> parameter names; refuses files of another adapter layout."""
        names = {k: n for n, k in self.file_keys.items()}
        missing = sorted(names.keys() - state.keys())
        unexpected = sorted(state.keys() - names.keys())
        if missing or unexpected:
            raise CheckpointError(f"the adapter file does not fit this LoRA config (rank, targets): missing "
                                  f"{missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        out = {names[k]: t for k, t in state.items()}
        params = dict(self.model.named_parameters())
        for n, t in out.items():
            shape = tuple(params[n].shape)  # a DTensor's shape is the full one
            if tuple(t.shape) != shape:
                raise CheckpointError(f"the adapter file does not fit this LoRA config: {self.file_keys[n]} has shape "
                                 f"{tuple(t.shape)}, the model expects {shape} (another lora.rank?)")
        return out


def apply_lora(model: nn.Module, cfg: LoraConfig, *, base: str | None = None) -> LoraAdapter:
    """Put ``cfg``'s adapters on ``model`` (in place) and freeze everything else.

    Adapter weights are float32 whatever the base dtype (peft upcasts LoRA matrices; the trained-in-full
    copies are cast here), so AdamW never updates bfloat16 values.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    modules = resolve_lora_modules(model, cfg)
    peft_cfg = PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=modules.targets, modules_to_save=modules.trainable or None)
    peft_model = get_peft_model(model, peft_cfg)
    # Set afterwards: get_peft_model overwrites it with the model's own (absent) name_or_path.
    peft_model.peft_config[_ADAPTER].base_model_name_or_path = base
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return LoraAdapter(peft_model, model, modules)


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def write_adapter(directory: str | Path, file_state: dict[str, Tensor], peft_config, base_info: dict) -> Path:
    """Write an adapter directory (peft format + ``sana_wm_base.json``); each file appears whole or not at all."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{ADAPTER_WEIGHTS}.partial"
    save_file({k: v.detach().cpu().contiguous() for k, v in file_state.items()}, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, directory / ADAPTER_WEIGHTS)
    config = peft_config.to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    for name, payload in ((BASE_INFO, base_info), (ADAPTER_CONFIG, config)):
        tmp = directory / f".{name}.partial"
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, directory / name)
    return directory


def read_adapter(directory: str | Path) -> tuple[dict[str, Tensor], dict, dict]:
    """``(file_state, adapter_config, base_info)`` of an adapter directory (base_info may be ``{}``)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a LoRA adapter directory (no {name}); pass a training "
                                    "checkpoint's adapter/ folder")
    base_file = directory / BASE_INFO
    base_info = json.loads(base_file.read_text()) if base_file.is_file() else {}
    return (load_file(str(directory / ADAPTER_WEIGHTS)), json.loads((directory / ADAPTER_CONFIG).read_text()),
            base_info)


def merge_lora(adapter: str | Path, out_dir: str | Path, *, base: str | Path | None = None,
               dtype: torch.dtype | str | None = None, check_base: bool = True, overwrite: bool = False) -> Path:
    """Fold the adapter in ``adapter`` into its base model and write a model directory to ``out_dir``.

    ``base`` defaults to the one recorded in the adapter (the training run's ``model.init_from``). The
    merge runs in float32; ``dtype`` (e.g. ``"bf16"``) is the dtype written (default float32).
    ``check_base`` refuses a base whose weights differ from those the adapter was trained on. The
    directory is written under a temporary name and renamed into place when complete.
    """
    from peft import PeftModel

    from sana_wm.model import SanaWMConfig, from_pretrained, save_pretrained

    adapter, out_dir = Path(adapter), Path(out_dir)
    _, adapter_config, base_info = read_adapter(adapter)
    if base is None:
        base = base_info.get("init_from") or adapter_config.get("base_model_name_or_path")
        if not base:
            raise CheckpointError(f"{adapter} does not record its base model; pass base=")
    base = Path(base)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another directory or pass overwrite")
    config = SanaWMConfig.from_dict(base_info["model_config"]) if "model_config" in base_info else None
    model = from_pretrained(base, config, dtype=torch.float32)
    if check_base and "fingerprint" in base_info:
        fp_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[base_info.get("dtype", "fp32")]
        check_fingerprint(base_info["fingerprint"], base_fingerprint(model, fp_dtype), f"merging {adapter} into {base}")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(merged, tmp, dtype=dtype)
    if out_dir.exists():
        stale = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(stale, ignore_errors=True)
        out_dir.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
