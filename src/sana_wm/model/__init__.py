"""The SANA-WM transformer, its configs, streaming cache and checkpoint I/O."""

from sana_wm.model.cache import BlockCache, GDNCache, KVWindow, SoftmaxCache, StreamCache
from sana_wm.model.config import CONFIGS, SanaWMConfig, get_config
from sana_wm.model.layout import TokenLayout, chunk_schedule
from sana_wm.model.loading import (
    CheckpointError,
    build_model,
    from_pretrained,
    load_weights,
    read_state_dict,
    save_pretrained,
)
from sana_wm.model.transformer import SanaWMBlock, SanaWMTransformer

__all__ = [
    "CONFIGS",
    "BlockCache",
    "CheckpointError",
    "GDNCache",
    "KVWindow",
    "SanaWMBlock",
    "SanaWMConfig",
    "SanaWMTransformer",
    "SoftmaxCache",
    "StreamCache",
    "TokenLayout",
    "build_model",
    "chunk_schedule",
    "from_pretrained",
    "get_config",
    "load_weights",
    "read_state_dict",
    "save_pretrained",
]
