"""Training: the flow-matching objective, the config, the loop, checkpoints and data-parallel wrapping.

Layout: :mod:`~sana_wm.train.objective` (sigmas, noising, the loss, the chunk-causal mixture),
:mod:`~sana_wm.train.config` (the YAML schema), :mod:`~sana_wm.train.data` (samples -> model inputs,
synthetic VAE and text stand-ins), :mod:`~sana_wm.train.text_states` (Gemma-2 caption states computed once
and stored beside the dataset), :mod:`~sana_wm.train.loop` (``run_training``),
:mod:`~sana_wm.train.checkpoint`, :mod:`~sana_wm.train.distributed` and :mod:`~sana_wm.train.lora`
(peft LoRA adapters on a frozen base, adapter files, merging).
"""

from sana_wm.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from sana_wm.train.config import ConfigError, TrainConfig, config_from_dict, load_config
from sana_wm.train.loop import Trainer, TrainResult, run_training
from sana_wm.train.lora import merge_lora
from sana_wm.train.objective import ObjectiveConfig

__all__ = [
    "ConfigError",
    "ObjectiveConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "config_from_dict",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_config",
    "merge_lora",
    "run_training",
    "save_checkpoint",
]
