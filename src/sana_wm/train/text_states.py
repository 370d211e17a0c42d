"""Real caption states for training: Gemma-2 prompt states computed once per caption, stored beside the
latent cache and read by the trainer (``data.text: text_cache``).

Layout: ``<dataset>/text_states/`` is a :class:`~sana_wm.pipeline.text.PromptCache` directory, one
``<sha256>.safetensors`` per distinct caption, keyed by the encoder id, the instruction prefix, the caption and
the token window, plus ``encoder.json`` naming the encoder that wrote it. The states are exactly what
:meth:`TextEncoder.encode <sana_wm.pipeline.text.TextEncoder.encode>` returns at generation time (the
instruction-prefixed 300-token window), so a fine-tuned model sees the same text interface as at inference.
The empty negative prompt (no prefix) is stored too: the ``objective.null_caption: empty_prompt`` caption; other
negative prompts (the distiller's ``negative_prompt`` settings) are stored, also without prefix, when named
(``--negative-prompt``).

Write the cache with ``sana-wm data encode-text DATASET --text-encoder DIR`` (:func:`encode_captions`); the
trainer then needs neither the text encoder nor its memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.pipeline.text import PromptCache, TextEmbedding, TextEncoder

__all__ = ["TEXT_STATES_DIR", "CaptionStates", "encode_captions", "read_captions"]

TEXT_STATES_DIR = "text_states"
_MANIFEST = "encoder.json"
_FORMAT = "sana-wm-text-states"


def read_captions(root: str | Path) -> Iterator[str]:
    """The caption of every clip of the dataset at ``root``, in index order (reads only each clip's metadata)."""
    from sana_wm.data.shards import SampleError, ShardFiles, StoredClip, load_index

    root = Path(root)
    index = load_index(root)
    files = ShardFiles(root, index)
    try:
        for entry in index.entries:
            try:
                yield StoredClip(entry, files.get(entry.shard, entry.key), root / entry.shard).meta().get("caption", "")
            except SampleError:
                continue  # an unreadable clip never reaches training either
    finally:
        files.close()


def encode_captions(root: str | Path, encoder: TextEncoder, *, captions: Iterable[str] | None = None,
                    negative_prompts: Iterable[str] = (), progress: bool = False) -> dict:
    """Encode every distinct caption of the dataset at ``root`` (or ``captions``), the empty negative prompt and
    ``negative_prompts`` (as negatives: no instruction prefix, as generation encodes them) into
    ``<root>/text_states``; captions already there for the same encoder are kept. Returns counts."""
    from tqdm import tqdm

    directory = Path(root) / TEXT_STATES_DIR
    cache = PromptCache(directory)
    todo = sorted(set(read_captions(root) if captions is None else captions))
    computed = 0
    previous, encoder.cache = encoder.cache, None  # this function decides what is stored, and where
    try:
        jobs = [(c, False) for c in todo] + [(n, True) for n in dict.fromkeys(["", *negative_prompts])]
        for caption, negative in tqdm(jobs, disable=not progress, desc="encoding captions", unit="caption"):
            key = cache.key(encoder.model_id, "" if negative else encoder.instruction, caption, encoder.max_tokens)
            if cache.path(key).is_file():
                continue
            cache.put(key, encoder.encode(caption, negative=negative))
            computed += 1
    finally:
        encoder.cache = previous
    channels = int(TextEmbedding.load(cache.path(cache.key(encoder.model_id, "", "", encoder.max_tokens)))
                   .embeds.shape[-1])
    manifest = {"format": _FORMAT, "model_id": encoder.model_id, "instruction": encoder.instruction,
                "max_tokens": encoder.max_tokens, "channels": channels}
    tmp = directory / f".{_MANIFEST}.{os.getpid()}.partial"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, directory / _MANIFEST)
    return {"captions": len(todo), "computed": computed, "cached": len(jobs) - computed}


class CaptionStates:
    """Reads the caption states of ``<root>/text_states`` for each of ``roots`` (the training and validation
    datasets, written with one encoder): ``(captions) -> (states (B, L, C), mask (B, L) bool)``.

    ``channels``: the model's caption width, checked against the stored states."""

    def __init__(self, roots: list[str | Path], channels: int | None = None):
        self.caches, manifests = [], []
        for root in dict.fromkeys(str(r) for r in roots):
            directory = Path(root) / TEXT_STATES_DIR
            path = directory / _MANIFEST
            if not path.is_file():
                raise FileNotFoundError(
                    f"data.text: text_cache needs the caption states in {directory} (no {_MANIFEST} there); "
                    f"write them once with `sana-wm data encode-text {root} --text-encoder DIR`")
            manifest = json.loads(path.read_text())
            if manifest.get("format") != _FORMAT:
                raise InputError(f"{path}: not a caption-state manifest (format {manifest.get('format')!r})")
            manifests.append((path, manifest))
            self.caches.append(PromptCache(directory))
        (first_path, first), *rest = manifests
        for path, other in rest:
            if other != first:
                raise InputError(f"{path} and {first_path} hold caption states of different encoders "
                                 f"({other['model_id']} and {first['model_id']}); encode both datasets with one")
        self.model_id, self.instruction = first["model_id"], first["instruction"]
        self.max_tokens, self.channels = int(first["max_tokens"]), int(first["channels"])
        if channels is not None and channels != self.channels:
            raise InputError(f"{first_path}: the caption states have {self.channels} channels (encoder "
                             f"{self.model_id}), the model reads {channels}; encode with the model's text encoder")

    def _load(self, caption: str, instruction: str) -> TextEmbedding:
        key = PromptCache.key(self.model_id, instruction, caption, self.max_tokens)
        for cache in self.caches:
            found = cache.get(key)
            if found is not None:
                return found
        raise FileNotFoundError(
            f"{', '.join(str(c.directory) for c in self.caches)}: no states for the caption {caption[:80]!r} "
            f"(encoder {self.model_id}); the dataset changed since they were written: run `sana-wm data "
            "encode-text` on it again")

    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        found = [self._load(c, self.instruction) for c in captions]
        return torch.cat([f.embeds for f in found]), torch.cat([f.mask for f in found]).bool()

    def empty_prompt(self) -> tuple[Tensor, Tensor]:
        """The empty negative prompt (no instruction prefix): ``states (1, L, C)``, ``mask (1, L)``."""
        return self.negative_prompt("")

    def negative_prompt(self, prompt: str) -> tuple[Tensor, Tensor]:
        """A negative prompt's states (no instruction prefix): ``states (1, L, C)``, ``mask (1, L)``."""
        key = PromptCache.key(self.model_id, "", prompt, self.max_tokens)
        for cache in self.caches:
            found = cache.get(key)
            if found is not None:
                return found.embeds, found.mask.bool()
        raise FileNotFoundError(
            f"{', '.join(str(c.directory) for c in self.caches)}: no states for the negative prompt {prompt[:80]!r} "
            f"(encoder {self.model_id}); store them with `sana-wm data encode-text DATASET --text-encoder DIR "
            "--negative-prompt TEXT`")
