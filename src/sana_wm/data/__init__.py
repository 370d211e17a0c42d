"""Training data: clips (frames + camera + depth + metadata) in tar shards, the streaming
``ClipDataset`` that training reads, a latent cache and a dataset inspector.

Layout: :mod:`~sana_wm.data.clip` (the ``Clip`` type), :mod:`~sana_wm.data.codecs` (member encodings),
:mod:`~sana_wm.data.shards` (writing shards, the index, reading one clip), :mod:`~sana_wm.data.transforms`
(windows, frame rate, resize + crop with exact intrinsics), :mod:`~sana_wm.data.dataset` (splitting,
resume, skipping bad data), :mod:`~sana_wm.data.latents` and :mod:`~sana_wm.data.inspection`.
"""

from sana_wm.data.clip import Clip, ClipError, clip_fingerprint
from sana_wm.data.dataset import (
    PROGRESS_FIELDS,
    SKIP_REASONS,
    CachedLatentDataset,
    ClipDataset,
    DataStats,
    plan_streams,
)
from sana_wm.data.inspection import inspect_dataset
from sana_wm.data.latents import CachedLatents, LatentCache, prepare_clip
from sana_wm.data.shards import (
    DatasetIndex,
    SampleError,
    ShardWriter,
    StoredClip,
    load_index,
    read_clips,
    rebuild_index,
    write_clips,
)

__all__ = [
    "PROGRESS_FIELDS",
    "SKIP_REASONS",
    "CachedLatentDataset",
    "CachedLatents",
    "Clip",
    "ClipDataset",
    "ClipError",
    "DataStats",
    "DatasetIndex",
    "LatentCache",
    "SampleError",
    "ShardWriter",
    "StoredClip",
    "clip_fingerprint",
    "inspect_dataset",
    "load_index",
    "plan_streams",
    "prepare_clip",
    "read_clips",
    "rebuild_index",
    "write_clips",
]
