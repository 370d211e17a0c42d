"""``ClipDataset``: training samples streamed from clip shards, split across ranks and loader workers,
deterministic per (seed, epoch), resumable mid-epoch, and tolerant of damaged data.

Splitting. Every (rank, worker) pair is one *stream*, numbered ``rank * workers_per_rank + worker``.
Each epoch the shards are shuffled (seeded by ``(seed, epoch)``) and dealt greedily to the stream with
the fewest clips so far, so streams read whole shards sequentially. With fewer shards than streams the
clips themselves are shuffled and dealt round-robin. Either way each clip is in exactly one stream.
Random choices for a clip (window start, crop) are seeded by ``(seed, epoch, item)``, independent of
the split, so a sample is the same whichever stream produces it.

Resume contract (for the trainer):

1. Every sample carries ``sample["progress"]``, an int64 vector laid out as :data:`PROGRESS_FIELDS`
   (after default collation a ``(B, P)`` tensor).
2. Call ``dataset.update_progress(batch)`` on the dataset object in the *main* process for every batch
   (or sample) the training step has consumed. (With ``num_workers=0`` iterating the dataset records
   this itself; calling it again is harmless: it keeps the furthest position per stream.)
3. ``dataset.state_dict()`` (JSON-serialisable) then says how far each of this rank's streams got.
   Save one per rank.
4. To resume: build the dataset with the same root, seed, shuffle, window/fps/quality settings and
   world size, call ``load_state_dict(state)`` (it sets the epoch), then build the ``DataLoader`` with
   the same ``num_workers`` and iterate. Each stream skips the clips it already produced without
   reading them, and the worker rotation is shifted so the next sample is the one the interrupted
   loader would have yielded next: the resumed sequence continues the interrupted one exactly. This
   relies on the DataLoader's in-order round-robin over workers (the default ``in_order=True``).
5. ``set_epoch(e)`` before each epoch; with ``persistent_workers=True`` the workers keep their own copy,
   so recreate the loader after ``set_epoch``/``load_state_dict`` (or leave persistence off).

Bad data never stops a run: a clip that cannot be used is logged (shard path, key, reason), counted in
``dataset.stats`` and skipped. With workers the counts reach the main process through the progress
vectors, i.e. when the trainer calls ``update_progress``; clips skipped after a stream's last sample
are only logged.

Streams can differ in length by up to about one shard (shard-level split); trainers that need equal
step counts across ranks should run a fixed number of steps per epoch.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError
from sana_wm.data.latents import LatentCache
from sana_wm.data.shards import DatasetIndex, SampleError, ShardFiles, StoredClip, load_index
from sana_wm.data.transforms import (
    CROP_MODES,
    POSE_MODES,
    WINDOW_MODES,
    resize_and_crop,
    sample_trajectory,
    select_frames,
)
from sana_wm.errors import InputError

__all__ = ["PROGRESS_FIELDS", "SKIP_REASONS", "ClipDataset", "DataStats", "plan_streams"]

log = logging.getLogger(__name__)

SKIP_REASONS = ("shard_missing", "truncated", "checksum", "decode", "inconsistent", "invalid_poses", "too_short",
                "error")
"""Why a clip was skipped: its shard is missing; its bytes are cut short; its bytes fail their CRC; a member
does not decode; members disagree with each other or the index; its camera fails ``Trajectory.validate``;
it is shorter than the requested window; an unexpected error (logged with a traceback)."""

PROGRESS_FIELDS = ("epoch", "stream", "num_streams", "workers_per_rank", "cursor", "read",
                   *(f"skipped_{r}" for r in SKIP_REASONS))
"""Layout of ``sample["progress"]``. ``cursor``: clips of this stream's plan consumed so far (produced or
skipped), including this one; ``read``/``skipped_*``: the stream's running counts this epoch."""

_STATE_FORMAT = "sana-wm-clipdataset-state"


@dataclass
class DataStats:
    """Clips read and skipped (by reason)."""

    read: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict:
        return {"read": self.read, "skipped": dict(self.skipped), "total_skipped": self.total_skipped}


def plan_streams(index: DatasetIndex, num_streams: int, *, seed: int, epoch: int, shuffle: bool,
                 items: set[int] | None = None) -> list[list[int]]:
    """The ordered items (clip numbers of ``index``) of each stream for one epoch. ``items`` restricts
    the plan to those clips (e.g. after quality filtering); shards left empty are dropped."""
    shards = [[i for i in s if items is None or i in items] for s in index.shard_items()]
    shards = [s for s in shards if s]
    rng = np.random.default_rng([seed, epoch])
    if shuffle:
        shards = [shards[j] for j in rng.permutation(len(shards))]
        shards = [[s[j] for j in rng.permutation(len(s))] for s in shards]
    streams: list[list[int]] = [[] for _ in range(num_streams)]
    if len(shards) >= num_streams:
        for shard in shards:
            target = min(range(num_streams), key=lambda s: (len(streams[s]), s))
            streams[target].extend(shard)
    else:
        flat = [i for s in shards for i in s]
        if shuffle:
            flat = [flat[j] for j in rng.permutation(len(flat))]
        for s in range(num_streams):
            streams[s] = flat[s::num_streams]
    return streams


class ClipDataset(IterableDataset):
    """Samples of clips stored by :class:`~sana_wm.data.ShardWriter` in ``root``.

    ``window``: output frames per sample (``None``: the whole clip); ``fps``: output frame rate (``None``:
    the clip's own); ``size = (H, W)``: resize to cover and crop (``None``: keep the stored size);
    ``crop``: "center" or "random"; ``window_mode``: "random" start or the clip's "start";
    ``pose_mode``: "nearest" (poses of the frames shown) or "interpolate" (slerp at the exact output
    times; see :func:`~sana_wm.data.transforms.sample_trajectory`); ``quality_ranges``: keep only clips
    whose score ``name`` lies in ``[lo, hi]`` for every ``{name: (lo, hi)}`` (a missing score excludes);
    ``load_depth``: include ``"depth"`` for clips that have it; ``validate``: keyword arguments for
    :meth:`Trajectory.validate`. ``rank``/``world_size`` default to torch.distributed's when initialised.

    Each sample is a dict: ``key`` (str), ``frames`` uint8 ``(T, H, W, 3)``, ``c2w`` float64 ``(T, 4, 4)``,
    ``intrinsics`` float64 ``(T, 4)`` in pixels of the output frames, ``fps`` (float), ``frame_indices``
    int64 ``(T,)`` (source frames shown), ``caption`` (str), ``depth`` float ``(T, H, W)`` if present, and
    ``progress`` (see the module docstring for the resume contract).
    """

    def __init__(self, root, *, window: int | None = None, fps: float | None = None,
                 size: tuple[int, int] | None = None, crop: str = "center", seed: int = 0, shuffle: bool = True,
                 window_mode: str = "random", pose_mode: str = "nearest",
                 quality_ranges: dict[str, tuple[float, float]] | None = None, load_depth: bool = True,
                 validate: dict | None = None, rank: int | None = None, world_size: int | None = None):
        super().__init__()
        if crop not in CROP_MODES:
            raise InputError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
        if window_mode not in WINDOW_MODES:
            raise InputError(f"window_mode must be one of {', '.join(WINDOW_MODES)}, got {window_mode!r}")
        if pose_mode not in POSE_MODES:
            raise InputError(f"pose_mode must be one of {', '.join(POSE_MODES)}, got {pose_mode!r}")
        if window is not None and window < 1:
            raise InputError(f"window must be a positive frame count, got {window}")
        if fps is not None and not fps > 0:
            raise InputError(f"fps must be positive, got {fps}")
        self.root = Path(root)
        self.index = load_index(self.root)
        self.window, self.fps, self.size = window, fps, None if size is None else (int(size[0]), int(size[1]))
        self.crop, self.seed, self.shuffle = crop, int(seed), bool(shuffle)
        self.window_mode, self.pose_mode = window_mode, pose_mode
        self.load_depth = load_depth
        self.validate_kwargs = dict(validate or {})
        self.quality_ranges = dict(quality_ranges or {})
        self.items = self._filter_items()
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        self.epoch = 0
        self._progress: dict[int, dict[int, list[int]]] = {}  # epoch -> stream -> progress vector
        self._resume: dict | None = None
        self._last_stream: int | None = None  # stream of the last consumed sample: fixes the worker rotation

    # -- configuration -----------------------------------------------------------------------------
    def _filter_items(self) -> set[int]:
        keep = set()
        for item, entry in enumerate(self.index.entries):
            if all(name in entry.quality and lo <= entry.quality[name] <= hi
                   for name, (lo, hi) in self.quality_ranges.items()):
                keep.add(item)
        return keep

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def num_clips(self) -> int:
        """Clips in an epoch across all ranks and workers (before any are skipped as unreadable). Not
        ``__len__``: a DataLoader would take it for this rank's sample count."""
        return len(self.items)

    # -- progress and resume -------------------------------------------------------------------------
    def update_progress(self, batch) -> None:
        """Record that the training loop consumed ``batch`` (a sample, a collated batch, or a progress tensor)."""
        progress = batch["progress"] if isinstance(batch, dict) else batch
        rows = torch.as_tensor(progress).reshape(-1, len(PROGRESS_FIELDS)).tolist()
        cursor = PROGRESS_FIELDS.index("cursor")
        for row in rows:
            streams = self._progress.setdefault(int(row[0]), {})
            old = streams.get(int(row[1]))
            if old is None or row[cursor] >= old[cursor]:
                streams[int(row[1])] = [int(v) for v in row]
                self._last_stream = int(row[1])

    @property
    def stats(self) -> DataStats:
        """Clips read and skipped, over every epoch recorded by this object (see the module docstring)."""
        out = DataStats()
        for streams in self._progress.values():
            for row in streams.values():
                rec = dict(zip(PROGRESS_FIELDS, row, strict=True))
                out.read += rec["read"]
                for r in SKIP_REASONS:
                    out.skipped[r] += rec[f"skipped_{r}"]
        out.skipped = +out.skipped  # drop zero counts
        return out

    def state_dict(self) -> dict:
        streams = self._progress.get(self.epoch, {})
        workers = {dict(zip(PROGRESS_FIELDS, row, strict=True))["workers_per_rank"] for row in streams.values()}
        last = self._last_stream
        return {"format": _STATE_FORMAT, "version": 1, "seed": self.seed, "shuffle": self.shuffle,
                "epoch": self.epoch, "rank": self.rank, "world_size": self.world_size,
                "workers_per_rank": workers.pop() if len(workers) == 1 else None,
                "last_stream": last if last in streams else None,
                "streams": {str(s): row for s, row in sorted(streams.items())}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != _STATE_FORMAT:
            raise InputError("not a ClipDataset state (expected the dict returned by ClipDataset.state_dict())")
        mismatched = [f"{name}: saved {state[name]!r}, now {getattr(self, name)!r}"
                      for name in ("seed", "shuffle", "rank", "world_size") if state[name] != getattr(self, name)]
        if mismatched:
            raise InputError("cannot resume: the dataset differs from the saved one (" + "; ".join(mismatched)
                             + "). Each rank must load its own state with the same seed and world size.")
        self.epoch = int(state["epoch"])
        self._progress[self.epoch] = {int(s): list(row) for s, row in state["streams"].items()}
        self._last_stream = state.get("last_stream")
        self._resume = dict(state)

    # -- iteration ---------------------------------------------------------------------------------
    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = self.epoch
        num_streams = self.world_size * workers
        local = worker
        resume = self._resume if self._resume is not None and self._resume["epoch"] == epoch else None
        if resume is not None and resume["streams"]:
            saved = resume["workers_per_rank"]
            if saved is not None and saved != workers:
                now = "iterates in the main process" if info is None else f"has {workers} workers"
                raise RuntimeError(f"cannot resume: the state was saved with {saved} loader worker stream(s) per "
                                   f"rank but this loader {now}; use num_workers={saved if saved > 1 else 0} "
                                   "(a resume must keep the world size and num_workers)")
            if resume.get("last_stream") is not None:
                # The interrupted loader would next have asked the worker after the last one consumed;
                # a new loader starts its round-robin at worker 0, so worker 0 plays that stream.
                local = (worker + resume["last_stream"] - self.rank * workers + 1) % workers
        stream = self.rank * workers + local
        plan = plan_streams(self.index, num_streams, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
                            items=self.items)[stream]
        counts = [0] * (1 + len(SKIP_REASONS))  # read, skipped per reason
        cursor = 0
        if resume is not None and str(stream) in resume["streams"]:
            rec = dict(zip(PROGRESS_FIELDS, resume["streams"][str(stream)], strict=True))
            cursor = rec["cursor"]
            counts = [rec["read"]] + [rec[f"skipped_{r}"] for r in SKIP_REASONS]
        files = ShardFiles(self.root, self.index)
        try:
            while cursor < len(plan):
                item = plan[cursor]
                cursor += 1
                try:
                    sample = self._load(item, files, epoch)
                except SampleError as err:
                    counts[1 + SKIP_REASONS.index(err.reason)] += 1
                    (log.info if err.reason == "too_short" else log.warning)("skipping clip (%s): %s", err.reason, err)
                    continue
                except Exception:  # a bug or an unforeseen damage must not end a week-long run
                    entry = self.index.entries[item]
                    counts[1 + SKIP_REASONS.index("error")] += 1
                    log.warning("skipping clip (error): %s clip %r", self.root / entry.shard, entry.key, exc_info=True)
                    continue
                counts[0] += 1
                sample["progress"] = torch.tensor([epoch, stream, num_streams, workers, cursor, *counts],
                                                  dtype=torch.int64)
                if info is None:
                    self.update_progress(sample)
                yield sample
            if info is None and counts[0] < cursor:  # in-process: also count the skips after the last sample
                row = [epoch, stream, num_streams, workers, cursor, *counts]
                last = self._progress.setdefault(epoch, {}).get(stream)
                if last is None or last[PROGRESS_FIELDS.index("cursor")] <= cursor:
                    self._progress[epoch][stream] = row
        finally:
            files.close()

    def _load(self, item: int, files: ShardFiles, epoch: int) -> dict:
        entry = self.index.entries[item]
        path = self.root / entry.shard
        stored = StoredClip(entry, files.get(entry.shard, entry.key), path)
        meta = stored.meta()
        cam = stored.camera()
        try:
            w, h = (int(v) for v in cam["intrinsics_size"])
            traj = Trajectory(cam["c2w"], Intrinsics(cam["intrinsics"], w, h), float(cam["fps"]))
            traj.validate(**self.validate_kwargs)
        except TrajectoryError as err:
            raise SampleError("invalid_poses", f"{path} clip {entry.key!r}: camera rejected: {err}") from None
        rng = np.random.default_rng([self.seed, epoch, item])
        selection = select_frames(entry.num_frames, traj.fps, window=self.window, fps=self.fps,
                                  mode=self.window_mode, rng=rng)
        if selection is None:
            raise SampleError("too_short", f"{path} clip {entry.key!r}: {entry.num_frames} frames at "
                                           f"{traj.fps:g} fps cannot give {self.window} frames at "
                                           f"{self.fps or traj.fps:g} fps")
        out_traj = sample_trajectory(traj, selection, self.pose_mode)
        frames = stored.frames(selection.indices)
        depth = stored.depth(selection.indices) if self.load_depth else None
        intr = out_traj.intrinsics
        if self.size is not None:
            frames, intr, depth = resize_and_crop(frames, intr, self.size, depth=depth, crop=self.crop, rng=rng)
        elif (intr.width, intr.height) != (entry.width, entry.height):
            intr = intr.rescaled(entry.width, entry.height)
        out_traj = replace(out_traj, intrinsics=intr)
        sample = {"key": entry.key, "frames": torch.from_numpy(frames),
                  "c2w": torch.from_numpy(out_traj.c2w), "intrinsics": torch.from_numpy(intr.values),
                  "fps": out_traj.fps, "frame_indices": torch.from_numpy(selection.indices),
                  "caption": meta.get("caption", "")}
        if depth is not None:
            sample["depth"] = torch.from_numpy(depth)
        return sample


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    rank, world_size = int(rank or 0), int(world_size or 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..world_size-1, got rank {rank} of world size {world_size}")
    return rank, world_size


class CachedLatentDataset(ClipDataset):
    """A :class:`ClipDataset` that reads each clip from its :class:`~sana_wm.data.LatentCache` entry alone.

    The shards are never opened: the cache entry holds the latents, the camera of the encoded frames and
    their size, so a dataset can travel as ``index.json`` plus its ``latents/`` folder. It serves windows
    from the clip's first frame only (the cache encodes clips from there; ``window_mode`` must be
    "start"), of exactly the frame rate and size that were encoded. A sample has no ``frames``; instead
    ``frame_shape = (T, H, W)`` and ``latents`` (the cached tensor, cut to the window by the consumer).
    Captions live in the shards, so every caption is ``""`` (for text-free training). Order, sharding
    across ranks and workers, and resume are those of :class:`ClipDataset`.
    """

    def __init__(self, root, *, subdir: str = "latents", **kwargs):
        if kwargs.get("window_mode", "random") != "start":
            raise InputError("CachedLatentDataset serves windows from each clip's first frame (as the latent cache "
                             "encodes them); pass window_mode='start'")
        kwargs["load_depth"] = False
        super().__init__(root, **kwargs)
        self.cache = LatentCache(root, subdir=subdir)

    def _load(self, item: int, files: ShardFiles, epoch: int) -> dict:
        entry = self.index.entries[item]
        where = str(self.cache.path(entry.key))
        try:
            cached = self.cache.load(entry.key)
        except Exception as err:  # a damaged file: skip it like an undecodable member
            raise SampleError("decode", f"{where}: cannot read the cached latents ({err})") from None
        if cached is None:
            raise SampleError("shard_missing", f"clip {entry.key!r}: no cached latents at {where}; "
                                               "encode the dataset first (sana-wm vae encode)")
        if self.fps is not None and abs(cached.fps - self.fps) > 1e-6:
            raise SampleError("inconsistent", f"{where}: encoded at {cached.fps:g} fps, the dataset asks for "
                                              f"{self.fps:g}")
        if self.size is not None and (cached.height, cached.width) != self.size:
            raise SampleError("inconsistent", f"{where}: encoded at {cached.height}x{cached.width}, the dataset asks "
                                              f"for {self.size[0]}x{self.size[1]}")
        stored = cached.c2w.shape[0]
        window = stored if self.window is None else self.window
        if window > stored:
            raise SampleError("too_short", f"{where}: {stored} frames were encoded, the window needs {window}")
        try:
            traj = Trajectory(cached.c2w[:window].numpy(),
                              Intrinsics(cached.intrinsics[:window].numpy(), cached.width, cached.height), cached.fps)
            traj.validate(**self.validate_kwargs)
        except TrajectoryError as err:
            raise SampleError("invalid_poses", f"{where}: camera rejected: {err}") from None
        return {"key": entry.key, "frame_shape": (window, cached.height, cached.width), "latents": cached.latents,
                "c2w": cached.c2w[:window], "intrinsics": cached.intrinsics[:window], "fps": cached.fps,
                "frame_indices": torch.arange(window), "caption": ""}
