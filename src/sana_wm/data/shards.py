"""WebDataset-style tar shards of clips, their ``index.json``, and reading single clips back.

On disk (one dataset directory)::

    shard-000000.tar      members grouped by clip key, in this order:
                            <key>.json          metadata (written first: it lists the other members)
                            <key>.camera.npz    c2w (F,4,4), intrinsics (F,4), fps, intrinsics_size (W,H); float64
                            <key>.depth.npz     optional metric depth (F,H,W) float16/32
                            <key>.mp4 | <key>.frames.npz | <key>.f000000.png ... <key>.f{F-1:06d}.png
    shard-000001.tar
    index.json            per shard: name, bytes, clips (key, frames, fps, duration, size, quality,
                          and each member's [offset, size, crc32] inside the tar); dataset totals
    latents/              optional latent cache (see :mod:`sana_wm.data.latents`)

A shard is written as ``.shard-NNNNNN.tar.partial`` and renamed when complete, and ``index.json`` is
replaced atomically at close, so a crash never leaves a file that looks complete but is not. Readers use
the index's member offsets to seek straight to a clip (cheap resume, clip-level splitting) and its CRCs
to catch damaged bytes that a decoder would accept; :func:`rebuild_index` recovers an index from the
shards alone (e.g. after a writer crashed before ``close``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sana_wm.data import codecs
from sana_wm.data.clip import KEY_PATTERN, Clip, ClipError, to_numpy
from sana_wm.data.codecs import FRAMES_CODECS, DecodeError
from sana_wm.errors import InputError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "ClipEntry",
    "DatasetIndex",
    "SampleError",
    "ShardEntry",
    "ShardWriter",
    "StoredClip",
    "load_index",
    "read_clips",
    "rebuild_index",
    "shard_name",
    "write_clips",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "sana-wm-clips"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
_SHARD_PATTERN = re.compile(r"^shard-[0-9]{6,}\.tar$")
_BLOCK = tarfile.BLOCKSIZE  # 512: tar headers and member data are padded to this


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def _png_ext(frame: int) -> str:
    return f"f{frame:06d}.png"


class SampleError(Exception):
    """A stored clip cannot be used. ``reason`` is a short counter name (see ``SKIP_REASONS``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# -- the index ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipEntry:
    """Where one clip lives and what it holds, as recorded in ``index.json``."""

    key: str
    shard: str  # file name inside the dataset directory
    num_frames: int
    fps: float
    height: int
    width: int
    frames_codec: str
    has_depth: bool
    members: dict[str, tuple[int, int, int]]  # ext -> (data offset, size, crc32)
    quality: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Keys and shard names come from files someone else may have written, and become file names.
        if not isinstance(self.key, str) or not KEY_PATTERN.match(self.key):
            raise DecodeError(f"clip key {self.key!r} is not a plain name (letters, digits, '_' and '-' only)")
        _check_shard_name(self.shard)

    @property
    def duration(self) -> float:
        """Seconds of video, ``F / fps``."""
        return self.num_frames / self.fps

    def to_json(self) -> dict:
        return {"key": self.key, "num_frames": self.num_frames, "fps": self.fps, "duration_s": self.duration,
                "height": self.height, "width": self.width, "frames_codec": self.frames_codec,
                "has_depth": self.has_depth, "quality": self.quality,
                "members": {ext: list(loc) for ext, loc in self.members.items()}}

    @classmethod
    def from_json(cls, obj: dict, shard: str) -> ClipEntry:
        return cls(key=obj["key"], shard=shard, num_frames=int(obj["num_frames"]), fps=float(obj["fps"]),
                   height=int(obj["height"]), width=int(obj["width"]), frames_codec=obj["frames_codec"],
                   has_depth=bool(obj["has_depth"]), quality=dict(obj.get("quality", {})),
                   members={ext: tuple(int(v) for v in loc) for ext, loc in obj["members"].items()})


def _check_shard_name(name) -> None:
    if not isinstance(name, str) or not _SHARD_PATTERN.match(name):
        raise DecodeError(f"shard name {name!r} is not of the form shard-NNNNNN.tar")


@dataclass(frozen=True)
class ShardEntry:
    name: str
    bytes: int
    clips: tuple[ClipEntry, ...]

    def __post_init__(self) -> None:
        _check_shard_name(self.name)

    def to_json(self) -> dict:
        return {"name": self.name, "bytes": self.bytes, "num_clips": len(self.clips),
                "num_frames": sum(c.num_frames for c in self.clips),
                "duration_s": sum(c.duration for c in self.clips),
                "clips": [c.to_json() for c in self.clips]}


@dataclass(frozen=True)
class DatasetIndex:
    """All shards of a dataset directory. ``entries`` numbers every clip 0..N-1 in shard order; that
    number (the *item*) is what sampling plans and per-sample random streams are keyed on."""

    root: Path
    shards: tuple[ShardEntry, ...]

    @property
    def entries(self) -> tuple[ClipEntry, ...]:
        return tuple(c for s in self.shards for c in s.clips)

    def shard_items(self) -> list[list[int]]:
        """Item numbers of each shard's clips."""
        out, start = [], 0
        for s in self.shards:
            out.append(list(range(start, start + len(s.clips))))
            start += len(s.clips)
        return out

    def totals(self) -> dict:
        clips = self.entries
        return {"num_shards": len(self.shards), "num_clips": len(clips),
                "num_frames": sum(c.num_frames for c in clips),
                "duration_s": sum(c.duration for c in clips),
                "bytes": sum(s.bytes for s in self.shards)}

    def to_json(self) -> dict:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "totals": self.totals(),
                "shards": [s.to_json() for s in self.shards]}

    @classmethod
    def from_json(cls, obj: dict, root: Path) -> DatasetIndex:
        if obj.get("format") != FORMAT_NAME:
            raise InputError(f"{root / INDEX_NAME}: not a {FORMAT_NAME} index (format={obj.get('format')!r})")
        if int(obj.get("version", -1)) > FORMAT_VERSION:
            raise InputError(f"{root / INDEX_NAME}: index version {obj['version']} is newer than this reader "
                             f"({FORMAT_VERSION}); upgrade sana-wm")
        shards = tuple(ShardEntry(s["name"], int(s["bytes"]), tuple(ClipEntry.from_json(c, s["name"])
                                                                         for c in s["clips"]))
                       for s in obj["shards"])
        return cls(Path(root), shards)


def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        f.write(codecs.encode_json(obj))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_index(root) -> DatasetIndex:
    """Read ``root/index.json``; without one, scan the shards (slow, warned) via :func:`rebuild_index`."""
    root = Path(root)
    path = root / INDEX_NAME
    if not path.exists():
        if not any(root.glob("shard-*.tar")):
            raise FileNotFoundError(f"{root} holds no {INDEX_NAME} and no shard-*.tar files; is it a clip dataset?")
        log.warning("%s is missing (did the writer crash before close?); scanning the shards instead. "
                    "Run sana_wm.data.rebuild_index(%r) once to write it.", path, str(root))
        return rebuild_index(root, write=False)
    try:
        with open(path, "rb") as f:
            return DatasetIndex.from_json(codecs.decode_json(f.read()), root)
    except (DecodeError, KeyError, TypeError, ValueError) as err:
        raise DecodeError(f"{path} is damaged ({type(err).__name__}: {err}); delete it and run "
                         f"sana_wm.data.rebuild_index({str(root)!r}) to recover it from the shards") from None


# -- writing ------------------------------------------------------------------------------------------
def encode_clip(clip: Clip, frames_codec: str, *, mp4_crf: int = 18) -> list[tuple[str, bytes]]:
    """The tar members ``(ext, bytes)`` of one clip, metadata first."""
    clip.check()
    frames = clip.frames_numpy()
    F, H, W = frames.shape[:3]
    depth = clip.depth_numpy()
    if frames_codec == "mp4":
        frame_members = [("mp4", codecs.encode_mp4(frames, clip.fps, crf=mp4_crf))]
    elif frames_codec == "png":
        frame_members = [(_png_ext(i), codecs.encode_png(frames[i])) for i in range(F)]
    elif frames_codec == "npz":
        frame_members = [("frames.npz", codecs.encode_npz_frames(frames))]
    else:
        raise InputError(f"frames_codec must be one of {', '.join(FRAMES_CODECS)}, got {frames_codec!r}")
    body = [("camera.npz", codecs.encode_camera(to_numpy(clip.c2w), to_numpy(clip.intrinsics), clip.fps,
                                                clip.intrinsics_size or (W, H)))]
    if depth is not None:
        body.append(("depth.npz", codecs.encode_depth(depth)))
    body += frame_members
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "key": clip.key, "num_frames": F, "height": H,
            "width": W, "fps": float(clip.fps), "frames_codec": frames_codec, "has_depth": depth is not None,
            "caption": clip.caption, "source": clip.source, "licence": clip.licence,
            "quality": {k: float(v) for k, v in clip.quality.items()}, "meta": clip.meta,
            "intrinsics_size": list(clip.intrinsics_size) if clip.intrinsics_size else None,
            "members": [ext for ext, _ in body]}
    return [("json", codecs.encode_json(meta))] + body


def _member_bytes(size: int) -> int:
    return _BLOCK + math.ceil(size / _BLOCK) * _BLOCK


class ShardWriter:
    """Write clips into ``shard-NNNNNN.tar`` files in ``out_dir`` and an ``index.json`` at :meth:`close`.

    A new shard starts when the current one holds ``max_clips_per_shard`` clips or the next clip would
    push it past ``max_shard_bytes`` (a single larger clip still gets a shard of its own). Use as a
    context manager; if the block raises, shards already finished are kept and indexed and the one in
    progress is discarded.

    ``resume``: keep the finished shards already in ``out_dir`` (those of an interrupted writer, read back
    and checked) and go on after their clips (:attr:`num_clips` says how many there are); the unfinished
    shard is discarded. Written with the same clips and settings, the dataset ends byte-identical to one
    written in a single run.
    """

    def __init__(self, out_dir, *, max_clips_per_shard: int = 64, max_shard_bytes: int = 1 << 30,
                 frames_codec: str = "mp4", mp4_crf: int = 18, overwrite: bool = False, resume: bool = False):
        if frames_codec not in FRAMES_CODECS:
            raise InputError(f"frames_codec must be one of {', '.join(FRAMES_CODECS)}, got {frames_codec!r}")
        if max_clips_per_shard < 1 or max_shard_bytes < 1:
            raise InputError("max_clips_per_shard and max_shard_bytes must be positive")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if overwrite and resume:
            raise InputError("resume keeps the shards already written and overwrite deletes them: choose one")
        existing = sorted(self.out_dir.glob("shard-*.tar")) + [p for p in [self.out_dir / INDEX_NAME] if p.exists()]
        if existing and not resume:
            if not overwrite:
                raise FileExistsError(f"{self.out_dir} already holds a dataset ({existing[0].name}, ...); "
                                      "choose an empty folder, or replace it with --overwrite (overwrite=True)")
            for p in existing + sorted(self.out_dir.glob(".*.partial")):
                p.unlink()
        self.frames_codec = frames_codec
        self.max_clips_per_shard = int(max_clips_per_shard)
        self.max_shard_bytes = int(max_shard_bytes)
        self.mp4_crf = mp4_crf
        self._shards: list[ShardEntry] = []
        self._keys: set[str] = set()
        if resume:
            for p in sorted(self.out_dir.glob(".*.partial")):
                p.unlink()
            self._shards = list(rebuild_index(self.out_dir, write=False).shards)
            names = [s.name for s in self._shards]
            if names != [shard_name(i) for i in range(len(names))]:
                raise InputError(f"{self.out_dir}: the shards are not numbered 0 to {len(names) - 1} "
                                 f"({', '.join(names[:4])}, ...); this folder cannot be resumed")
            self._keys = {c.key for shard in self._shards for c in shard.clips}
        self._tar: tarfile.TarFile | None = None
        self._tmp_path: Path | None = None
        self._clips: list[ClipEntry] = []
        self._closed = False

    # -- public ---------------------------------------------------------------------------------
    @property
    def num_clips(self) -> int:
        """Clips written so far, those kept by ``resume`` included."""
        return sum(len(s.clips) for s in self._shards) + len(self._clips)

    def write(self, clip: Clip) -> ClipEntry:
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        if clip.key in self._keys:
            raise ClipError(f"clip key {clip.key!r} was already written; keys must be unique in a dataset")
        members = encode_clip(clip, self.frames_codec, mp4_crf=self.mp4_crf)
        size = sum(_member_bytes(len(data)) for _, data in members)
        if self._tar is not None and (len(self._clips) >= self.max_clips_per_shard
                                      or self._tar.offset + size > self.max_shard_bytes):
            self._finish_shard()
        if self._tar is None:
            self._start_shard()
        locations = {}
        for ext, data in members:
            locations[ext] = self._add_member(f"{clip.key}.{ext}", data)
        meta = codecs.decode_json(members[0][1])
        entry = ClipEntry(key=clip.key, shard=shard_name(len(self._shards)), num_frames=meta["num_frames"],
                          fps=meta["fps"], height=meta["height"], width=meta["width"],
                          frames_codec=self.frames_codec, has_depth=meta["has_depth"], members=locations,
                          quality=meta["quality"])
        self._clips.append(entry)
        self._keys.add(clip.key)
        return entry

    def close(self) -> DatasetIndex:
        """Finish the open shard and write ``index.json``. Returns the index."""
        if not self._closed:
            if self._tar is not None:
                self._finish_shard()
            self._write_index()
            self._closed = True
        return DatasetIndex(self.out_dir, tuple(self._shards))

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._tar is not None:
            self._abandon_shard()
        self.close()

    # -- internals ------------------------------------------------------------------------------
    def _start_shard(self) -> None:
        self._tmp_path = self.out_dir / f".{shard_name(len(self._shards))}.partial"
        self._tar = tarfile.open(self._tmp_path, "w", format=tarfile.PAX_FORMAT)
        self._clips = []

    def _add_member(self, name: str, data: bytes) -> tuple[int, int, int]:
        import io

        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0  # fixed, so equal clips give byte-identical shards
        info.mode = 0o644
        before = self._tar.offset
        self._tar.addfile(info, io.BytesIO(data))
        header = self._tar.offset - before - math.ceil(len(data) / _BLOCK) * _BLOCK
        return before + header, len(data), zlib.crc32(data)

    def _finish_shard(self) -> None:
        tar, tmp = self._tar, self._tmp_path
        tar.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = self.out_dir / shard_name(len(self._shards))
        os.replace(tmp, final)
        self._shards.append(ShardEntry(final.name, final.stat().st_size, tuple(self._clips)))
        self._tar, self._tmp_path, self._clips = None, None, []

    def _abandon_shard(self) -> None:
        try:
            self._tar.close()
        finally:
            self._tmp_path.unlink(missing_ok=True)
            log.warning("ShardWriter: discarded the unfinished shard %s (%d clips) after an error",
                        self._tmp_path, len(self._clips))
            for c in self._clips:
                self._keys.discard(c.key)
            self._tar, self._tmp_path, self._clips = None, None, []

    def _write_index(self) -> None:
        _write_json_atomic(self.out_dir / INDEX_NAME, DatasetIndex(self.out_dir, tuple(self._shards)).to_json())


def write_clips(clips: Iterable[Clip], out_dir, **writer_kwargs) -> DatasetIndex:
    """Write every clip of ``clips`` into a dataset at ``out_dir`` (see :class:`ShardWriter` for options)."""
    with ShardWriter(out_dir, **writer_kwargs) as writer:
        for clip in clips:
            writer.write(clip)
    return writer.close()


# -- recovering an index --------------------------------------------------------------------------------
def _scan_shard(path: Path) -> ShardEntry:
    """Index one shard by streaming through it; stops quietly (with a warning) where the file is damaged."""
    groups: dict[str, dict[str, tuple[int, int, int]]] = {}
    metas: dict[str, dict] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, "r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, _, ext = info.name.partition(".")
                f = tar.extractfile(info)
                data = f.read() if f is not None else b""
                if len(data) != info.size:
                    raise EOFError(f"member {info.name} is cut short")
                if key not in groups:
                    groups[key] = {}
                    order.append(key)
                groups[key][ext] = (info.offset_data, info.size, zlib.crc32(data))
                if ext == "json":
                    try:
                        metas[key] = codecs.decode_json(data)
                    except DecodeError as err:
                        log.warning("%s: clip %r has damaged metadata (%s); not indexed", path, key, err)
    except (tarfile.TarError, EOFError, OSError) as err:
        log.warning("%s: the tar is damaged or truncated (%s); indexing the clips before that point", path, err)
    clips = []
    for key in order:
        meta = metas.get(key)
        if meta is None:
            continue
        members = groups[key]
        if not all(ext in members for ext in meta.get("members", [])):
            log.warning("%s: clip %r is incomplete (members missing); not indexed", path, key)
            continue
        clips.append(ClipEntry(key=key, shard=path.name, num_frames=int(meta["num_frames"]), fps=float(meta["fps"]),
                               height=int(meta["height"]), width=int(meta["width"]),
                               frames_codec=meta["frames_codec"], has_depth=bool(meta["has_depth"]),
                               quality=dict(meta.get("quality", {})),
                               members={"json": members["json"], **{e: members[e] for e in meta["members"]}}))
    return ShardEntry(path.name, path.stat().st_size, tuple(clips))


def rebuild_index(root, *, write: bool = True) -> DatasetIndex:
    """Index every ``shard-*.tar`` in ``root`` from the shards themselves; with ``write``, save ``index.json``."""
    root = Path(root)
    index = DatasetIndex(root, tuple(_scan_shard(p) for p in sorted(root.glob("shard-*.tar"))))
    if write:
        _write_json_atomic(root / INDEX_NAME, index.to_json())
    return index


# -- reading one clip -----------------------------------------------------------------------------------
class StoredClip:
    """Lazy access to one indexed clip: each method reads (and checks) only the members it needs.

    Raises :class:`SampleError` with reason ``"truncated"``, ``"checksum"``, ``"decode"`` or
    ``"inconsistent"``; ``f`` is an open binary file of the clip's shard.
    """

    def __init__(self, entry: ClipEntry, f, shard_path: Path):
        self.entry = entry
        self._f = f
        self._where = f"{shard_path} clip {entry.key!r}"
        self._meta: dict | None = None

    def _read(self, ext: str) -> bytes:
        loc = self.entry.members.get(ext)
        if loc is None:
            raise SampleError("inconsistent", f"{self._where}: the index lists no {ext!r} member")
        offset, size, crc = loc
        self._f.seek(offset)
        data = self._f.read(size)
        if len(data) != size:
            raise SampleError("truncated", f"{self._where}: member {ext!r} is cut short "
                                           f"({len(data)} of {size} bytes; the shard is truncated)")
        if zlib.crc32(data) != crc:
            raise SampleError("checksum", f"{self._where}: member {ext!r} fails its CRC check (damaged bytes)")
        return data

    def _decode(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DecodeError as err:
            raise SampleError("decode", f"{self._where}: {err}") from None

    def meta(self) -> dict:
        if self._meta is None:
            meta = self._decode(codecs.decode_json, self._read("json"))
            e = self.entry
            if (meta.get("key"), meta.get("num_frames"), meta.get("height"), meta.get("width")) != (
                    e.key, e.num_frames, e.height, e.width):
                raise SampleError("inconsistent", f"{self._where}: metadata disagrees with index.json "
                                                  "(rebuild the index with sana_wm.data.rebuild_index)")
            self._meta = meta
        return self._meta

    def camera(self) -> dict[str, np.ndarray]:
        cam = self._decode(codecs.decode_camera, self._read("camera.npz"))
        F = self.entry.num_frames
        if cam["c2w"].shape != (F, 4, 4) or cam["intrinsics"].shape != (F, 4):
            raise SampleError("inconsistent", f"{self._where}: camera arrays {cam['c2w'].shape} / "
                                              f"{cam['intrinsics'].shape} do not match {F} frames")
        return cam

    def frames(self, indices=None) -> np.ndarray:
        """``(len(indices) or F, H, W, 3)`` uint8 frames; ``indices`` may repeat and be unordered."""
        e = self.entry
        idx = None if indices is None else np.asarray(indices, dtype=np.int64)
        if idx is not None and (idx.min() < 0 or idx.max() >= e.num_frames):
            raise IndexError(f"{self._where}: frame indices outside 0..{e.num_frames - 1}")
        if e.frames_codec == "mp4":
            return self._decode(codecs.decode_mp4, self._read("mp4"), num_frames=e.num_frames, height=e.height,
                                width=e.width, indices=idx)
        if e.frames_codec == "npz":
            frames = self._decode(codecs.decode_npz_frames, self._read("frames.npz"), num_frames=e.num_frames,
                                  height=e.height, width=e.width)
            return frames if idx is None else frames[idx]
        if e.frames_codec == "png":
            wanted = range(e.num_frames) if idx is None else idx.tolist()
            cache: dict[int, np.ndarray] = {}
            for i in wanted:
                if i not in cache:
                    cache[i] = self._decode(codecs.decode_png, self._read(_png_ext(i)), height=e.height,
                                            width=e.width)
            return np.stack([cache[i] for i in wanted])
        raise SampleError("inconsistent", f"{self._where}: unknown frames codec {e.frames_codec!r}")

    def depth(self, indices=None) -> np.ndarray | None:
        if not self.entry.has_depth:
            return None
        depth = self._decode(codecs.decode_depth, self._read("depth.npz"))
        e = self.entry
        if depth.shape != (e.num_frames, e.height, e.width) or depth.dtype not in (np.float16, np.float32):
            raise SampleError("inconsistent", f"{self._where}: depth is {depth.dtype} {tuple(depth.shape)}, "
                                              f"expected float ({e.num_frames}, {e.height}, {e.width})")
        return depth if indices is None else depth[np.asarray(indices, dtype=np.int64)]

    def clip(self) -> Clip:
        """The whole clip, exactly as written (frames lossy only for mp4)."""
        meta, cam = self.meta(), self.camera()
        size = meta.get("intrinsics_size")
        return Clip(key=self.entry.key, frames=self.frames(), c2w=cam["c2w"], intrinsics=cam["intrinsics"],
                    fps=float(cam["fps"]), depth=self.depth(), caption=meta.get("caption", ""),
                    source=meta.get("source", ""), licence=meta.get("licence", ""),
                    quality=dict(meta.get("quality", {})), meta=meta.get("meta", {}),
                    intrinsics_size=None if size is None else (int(size[0]), int(size[1])))


class ShardFiles:
    """A few open shard files, reopened on demand; reports a missing or short shard once."""

    def __init__(self, root: Path, index: DatasetIndex, max_open: int = 4):
        self.root = Path(root)
        self._sizes = {s.name: s.bytes for s in index.shards}
        self._open: dict[str, object] = {}
        self._max_open = max_open
        self._reported: set[str] = set()

    def get(self, shard: str, key: str = ""):
        """The open file of ``shard``; ``key`` (the clip wanted) only names the clip in errors."""
        f = self._open.pop(shard, None)
        if f is None:
            path = self.root / shard
            try:
                f = open(path, "rb")
            except OSError as err:
                raise SampleError("shard_missing", f"{path} clip {key!r}: cannot open the shard ({err})") from None
            actual = os.fstat(f.fileno()).st_size
            if actual < self._sizes.get(shard, 0) and shard not in self._reported:
                self._reported.add(shard)
                log.warning("%s is %d bytes but index.json says %d: the shard is truncated; its later clips "
                            "will be skipped", path, actual, self._sizes[shard])
        self._open[shard] = f  # most recently used last
        while len(self._open) > self._max_open:
            self._open.pop(next(iter(self._open))).close()
        return f

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()


def read_clips(root, *, index: DatasetIndex | None = None, on_skip=None) -> Iterator[Clip]:
    """Every readable clip of the dataset at ``root`` in index order. Unreadable clips are logged with
    their shard and key and skipped; ``on_skip(reason, message)`` is called for each if given."""
    root = Path(root)
    index = index or load_index(root)
    files = ShardFiles(root, index)
    try:
        for entry in index.entries:
            try:
                yield StoredClip(entry, files.get(entry.shard, entry.key), root / entry.shard).clip()
            except SampleError as err:
                log.warning("skipping clip (%s): %s", err.reason, err)
                if on_skip is not None:
                    on_skip(err.reason, str(err))
    finally:
        files.close()
