"""What streaming carries from one chunk to the next (reference §2.5), as typed, immutable records.

A forward over one chunk reads the cache of the chunks before it and returns a new cache; nothing is
mutated, so a sampler can run several denoising steps against the same cache and keep only the cache
of the final clean pass (the released student re-runs the denoised chunk at t = 0 for that).

* GDN blocks keep the forward scan state of each branch (bounded: ``D x D`` per head) and the last
  ``K-1`` frames of each short-conv input.
* Softmax blocks keep K/V of earlier chunks (post-RoPE / post-UCPE) in a :class:`KVWindow`.
* Every block keeps the last frame(s) of the FFN temporal conv input.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from sana_wm.ops.gdn import GDNState

__all__ = [
    "BlockCache",
    "GDNCache",
    "KVWindow",
    "SoftmaxCache",
    "StreamCache",
    "batch_rows",
    "cache_from_tensors",
    "cache_to_tensors",
    "owned",
]


def owned(t: Tensor) -> Tensor:
    """``t`` itself if it fills its storage, else a compact copy. A cache must not hold a view into a
    chunk's activations (values sliced from the fused qkv projection, the last frames of a conv input):
    the view would keep the whole activation alive for as long as the cache lives. Inside a compiled
    block (``compile_blocks``) it always copies: storage sizes cannot be read while tracing, and a copy
    of one chunk's keys/values is cheap next to a graph break."""
    if not torch.compiler.is_compiling() and t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.clone(memory_format=torch.contiguous_format)


@dataclass(frozen=True)
class KVWindow:
    """Keys and values of earlier chunks that a softmax block attends to, one entry per chunk.

    ``max_chunks`` bounds how many earlier chunks are kept (None: all); with ``sink`` the first chunk
    stays as an attention sink once the window has slid past it, next to the ``max_chunks - 1`` most
    recent chunks (the released streaming default: ``max_chunks=2, sink=True``). The stage-2 refiner's
    history is a KVWindow too, with one entry per latent frame (:class:`~sana_wm.model.refiner.RefinerWindow`).
    """

    chunks: tuple[tuple[Tensor, Tensor], ...] = ()  # each (B, N_chunk, H, D) keys, values
    max_chunks: int | None = None
    sink: bool = False

    def __post_init__(self) -> None:
        if self.max_chunks is not None and self.max_chunks < 1:
            raise ValueError(f"KVWindow.max_chunks must be >= 1 or None, got {self.max_chunks}")

    def keys_values(self) -> tuple[Tensor, Tensor] | None:
        """All kept keys and values concatenated along tokens, ``(B, N_kept, H, D)`` each."""
        if not self.chunks:
            return None
        return torch.cat([k for k, _ in self.chunks], dim=1), torch.cat([v for _, v in self.chunks], dim=1)

    def push(self, keys: Tensor, values: Tensor) -> KVWindow:
        """The window after one more chunk (keeps compact copies of views, see :func:`owned`)."""
        chunks = self.chunks + ((owned(keys), owned(values)),)
        if self.max_chunks is not None and len(chunks) > self.max_chunks:
            recent = self.max_chunks - 1 if self.sink else self.max_chunks
            chunks = (chunks[:1] if self.sink else ()) + (chunks[len(chunks) - recent:] if recent else ())
        return KVWindow(chunks, self.max_chunks, self.sink)


@dataclass(frozen=True)
class GDNCache:
    state: GDNState  # main-branch forward state (with normalizer)
    conv_tail: Tensor  # (B*S, C, K-1) last K-1 frames of the main K short-conv input
    state_cam: GDNState | None = None  # camera-branch forward state (numerator only); None without camera
    conv_tail_cam: Tensor | None = None  # (B*S, C, K-1) same for the camera K short conv


@dataclass(frozen=True)
class SoftmaxCache:
    kv: KVWindow  # post-RoPE main-branch keys/values
    kv_cam: KVWindow | None = None  # post-UCPE camera-branch keys/values; None without camera


@dataclass(frozen=True)
class BlockCache:
    attn: GDNCache | SoftmaxCache
    ffn_tail: Tensor  # (B, C, k_t // 2, S) last frames of the FFN temporal conv input


@dataclass(frozen=True)
class StreamCache:
    """Per-block caches plus where the next chunk starts (RoPE keeps absolute frame indices)."""

    blocks: tuple[BlockCache, ...]
    next_frame: int


def batch_rows(cache, start: int, end: int):
    """The same cache for batch rows ``[start, end)`` of the batch it was built for.

    Every tensor in a cache is batch-major (``(B, ...)``, or ``(B*S, ...)`` with the batch outermost), so
    each is cut to rows ``[start * n, end * n)`` where ``n = rows / B``. Used when guidance stops after some
    chunks: the sampler keeps the conditional half of a ``[uncond; cond]`` cache.
    """
    if not isinstance(cache, StreamCache):
        raise TypeError(f"batch_rows expects a StreamCache, got {type(cache).__name__}")
    batch = cache.blocks[0].ffn_tail.shape[0]
    if not 0 <= start < end <= batch:
        raise ValueError(f"batch_rows: rows [{start}, {end}) are outside a batch of {batch}")

    def cut(value):
        if isinstance(value, Tensor):
            if value.shape[0] % batch:
                raise ValueError(f"batch_rows: a cached tensor of shape {tuple(value.shape)} is not batch-major "
                                 f"for a batch of {batch}")
            n = value.shape[0] // batch
            return value[start * n:end * n]
        if isinstance(value, tuple):
            return tuple(cut(v) for v in value)
        if value is None or isinstance(value, (int, float, bool)):
            return value
        if hasattr(value, "__dataclass_fields__"):
            return replace(value, **{f.name: cut(getattr(value, f.name)) for f in fields(value) if f.init})
        raise TypeError(f"batch_rows: cannot cut a cached {type(value).__name__}")

    return cut(cache)


# Every record type a cache may hold, by name: the structure read back from a file names only these, so a
# resume file cannot make the loader build anything else.
_CACHE_TYPES = {cls.__name__: cls for cls in (StreamCache, BlockCache, GDNCache, SoftmaxCache, KVWindow, GDNState)}


def cache_to_tensors(cache: StreamCache) -> tuple[dict[str, Tensor], dict]:
    """Flatten ``cache`` into named tensors and a JSON-able structure that :func:`cache_from_tensors` rebuilds
    it from (no pickle: the structure names record types, fields, ints, bools and the tensors' keys)."""
    tensors: dict[str, Tensor] = {}

    def flat(value, name: str):
        if isinstance(value, Tensor):
            # A compact copy: safetensors refuses tensors that share storage (a cache may hold views).
            tensors[name] = value.detach().to("cpu", copy=True).contiguous()
            return {"tensor": name}
        if isinstance(value, tuple):
            return {"tuple": [flat(v, f"{name}.{i}") for i, v in enumerate(value)]}
        if value is None or isinstance(value, (bool, int)):
            return {"value": value}
        kind = type(value).__name__
        if _CACHE_TYPES.get(kind) is not type(value):
            raise TypeError(f"cache_to_tensors: cannot store a cached {kind}")
        return {"record": kind,
                "fields": {f.name: flat(getattr(value, f.name), f"{name}.{f.name}") for f in fields(value)}}

    return tensors, flat(cache, "cache")


def cache_from_tensors(tensors: dict[str, Tensor], structure: dict, *, device: torch.device | str = "cpu",
                       where: str = "cache") -> StreamCache:
    """The :class:`StreamCache` that :func:`cache_to_tensors` flattened (``where`` names the file in errors)."""

    def build(node):
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise ValueError(f"{where}: the stored cache structure is damaged ({str(node)[:80]})")
        if "tensor" in node:
            if node["tensor"] not in tensors:
                raise ValueError(f"{where}: the cached tensor {node['tensor']!r} is missing")
            return tensors[node["tensor"]].to(device)
        if "tuple" in node:
            return tuple(build(v) for v in node["tuple"])
        if "value" in node:
            if node["value"] is not None and not isinstance(node["value"], (bool, int)):
                raise ValueError(f"{where}: a stored cache value must be an integer, a bool or null")
            return node["value"]
        cls = _CACHE_TYPES.get(node.get("record"))
        if cls is None or not isinstance(node.get("fields"), dict):
            raise ValueError(f"{where}: unknown cached record {node.get('record')!r}")
        names = {f.name for f in fields(cls)}
        if set(node["fields"]) != names:
            raise ValueError(f"{where}: a stored {cls.__name__} has fields {sorted(node['fields'])}, expected "
                             f"{sorted(names)}")
        return cls(**{key: build(value) for key, value in node["fields"].items()})

    cache = build(structure)
    if not isinstance(cache, StreamCache):
        raise ValueError(f"{where}: the stored cache is a {type(cache).__name__}, not a StreamCache")
    return cache
