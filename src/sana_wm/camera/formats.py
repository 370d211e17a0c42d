"""Camera trajectory files: one reader and one writer per format, converting at the edge.

Every reader returns a canonical :class:`~sana_wm.camera.trajectory.Trajectory` (camera-to-world
``(F, 4, 4)`` float64 poses in OpenCV camera axes, +X right, +Y down, +Z forward; optional per-frame
pixel intrinsics of a stated image size; fps) and every writer takes one. Conventions are converted
here and nowhere else.

=========== ================================ ============================================ ===================
format      files                            convention inside the file                   keeps size / fps
=========== ================================ ============================================ ===================
npy         ``<stem>.npy``                   (F,4,4) or (F,3,4) c2w, OpenCV axes          yes / yes (sidecar)
            ``<stem>_intrinsics.npy``        (F,4) [fx, fy, cx, cy] pixels; also read:
                                             (4,), (3,3), (F,3,3)
            ``<stem>_meta.json``             {"fps", "width", "height", "intrinsics"}
bench-npz   ``<name>.npz``                   SANA-WM-Bench: ``c2w`` (F,4,4) OpenCV,       optional / yes
                                             ``intrinsics`` (F,3,3) pixels, ``fps``,
                                             ``num_frames``; we add ``width``/``height``
re10k       ``<name>.txt``                   RealEstate10K / CameraCtrl: line 1 a URL,    no / yes
                                             then ``t_us fx fy cx cy 0 0`` + 3x4 **w2c**
                                             row-major, OpenCV axes, intrinsics divided
                                             by image size
colmap      ``<dir>/cameras.txt``,           COLMAP text model: per image a **w2c**       yes / no
            ``<dir>/images.txt``,            Hamilton quaternion ``QW QX QY QZ`` and
            ``<dir>/points3D.txt``           ``TX TY TZ``, OpenCV axes; frames ordered
                                             by image name
nerf        ``transforms.json``              NeRF / Nerfstudio: ``transform_matrix`` c2w  yes / yes (``fps``)
                                             in **OpenGL** axes (+X right, +Y up, +Z
                                             backward); ``fl_x fl_y cx cy w h`` global or
                                             per frame, or ``camera_angle_x``
lingbot     ``<dir>/poses.npy``,             LingBot-World: (N,4,4) c2w OpenCV, (N,4)     no / no
            ``<dir>/intrinsics.npy``         [fx, fy, cx, cy] pixels
worldplay   ``<name>.json``                  HY-WorldPlay: ``{"0": {"extrinsic": c2w      no / no
                                             4x4 OpenCV, "K": 3x3 pixels}, ...}``
=========== ================================ ============================================ ===================

Rules shared by all readers:

* ``fps`` passed by the caller overrides the file's; a format that stores none gets
  :data:`DEFAULT_FPS`. ``meta["fps_source"]`` says which: ``"argument"``, ``"file"`` or ``"default"``.
* ``width``/``height`` give the image size that pixel (or, for re10k, normalised) intrinsics refer to.
  Formats without a stored size need them whenever the file holds intrinsics; formats that store a
  size refuse a different one (rescale afterwards with :meth:`Intrinsics.rescaled`). Without
  intrinsics in the file they are not used.
* ``meta`` always has ``"format"``, ``"source"`` and ``"fps_source"``, plus ``"url"`` (re10k),
  ``"timestamps_us"`` (re10k), ``"image_names"`` (colmap) or ``"file_paths"`` (nerf). Writers reuse
  the url and names when they still fit the trajectory, and otherwise write ``frame_00000.png``, ...
* Readers check shapes and syntax and name the file and the line, key or frame at fault; they do not
  check orthonormality (that is :meth:`Trajectory.validate`). World-to-camera matrices are inverted in
  closed form (:func:`~sana_wm.camera.trajectory.invert_se3`), so a slightly non-rigid file keeps its
  error for validation to report.
* Frames named by images (colmap, nerf) are sorted in natural order (``frame_2`` before ``frame_10``);
  a transforms.json in which some frame lacks ``file_path`` keeps the file's order.
* Lens distortion (COLMAP SIMPLE_RADIAL / RADIAL / OPENCV / FULL_OPENCV, Nerfstudio ``k1 k2 p1 p2``) is
  dropped with a warning and only the pinhole part kept; fisheye and other models are refused.
* A COLMAP ``images.txt`` or ``cameras.txt`` path means its folder; a NeRF folder means its
  ``transforms.json``. Detection of folders looks for images.txt, then poses.npy, then transforms.json.

Writers write float64 arrays and shortest-round-trip decimal text, so reading back gives the same
numbers (re10k timestamps are whole microseconds, so its fps comes back to about 1e-6). colmap writes
one PINHOLE camera per distinct intrinsics and an empty points3D.txt; re10k and colmap need intrinsics.
The npy sidecar ``<stem>_meta.json`` names the intrinsics file it belongs to (or ``null``), so a stale
``<stem>_intrinsics.npy`` from an earlier write is not picked up; without a sidecar the reader takes
``<stem>_intrinsics.npy`` when it exists.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError, as_c2w_array, invert_se3
from sana_wm.io import atomic_write, write_text_atomic
from sana_wm.limits import check_json_depth

__all__ = ["DEFAULT_FPS", "FORMATS", "detect_format", "read_trajectory", "write_trajectory"]

StrPath = str | os.PathLike

FORMATS: tuple[str, ...] = ("npy", "bench-npz", "re10k", "colmap", "nerf", "lingbot", "worldplay")

DEFAULT_FPS = 16.0
"""fps given to trajectories read from formats that store none (colmap, lingbot, worldplay)."""

_FORMAT_HINTS = (
    "npy (.npy), bench-npz (.npz), re10k (.txt), colmap (folder with images.txt), "
    "nerf (transforms.json, or a .json with 'frames'), lingbot (folder with poses.npy), "
    "worldplay (.json keyed by frame index)"
)

# OpenGL/Blender camera axes (+Y up, +Z backward) and OpenCV axes differ by flipping Y and Z; the
# flip is its own inverse, so c2w_cv = c2w_gl @ _GL_TO_CV and c2w_gl = c2w_cv @ _GL_TO_CV.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])

_NPY_CONVENTION = "c2w (F, 4, 4), OpenCV camera axes (+X right, +Y down, +Z forward), metres"


@dataclass(frozen=True)
class _ReadArgs:
    """What the caller told the reader; each field completes or overrides what the file says."""

    width: int | None
    height: int | None
    fps: float | None
    intrinsics_path: Path | None


# -- public API -----------------------------------------------------------------------------------


def detect_format(path: StrPath) -> str:
    """The format of an existing trajectory file or folder, from its extension or contents."""
    p = Path(path)
    if p.is_dir():
        for name, fmt in (("images.txt", "colmap"), ("poses.npy", "lingbot"), ("transforms.json", "nerf")):
            if (p / name).is_file():
                return fmt
        raise TrajectoryError(
            f"{p}: cannot tell the trajectory format of this folder: it holds none of images.txt (colmap), "
            f"poses.npy (lingbot) or transforms.json (nerf); pass the format explicitly, one of "
            f"{', '.join(FORMATS)}"
        )
    if not p.exists():
        raise TrajectoryError(f"{p}: no such file or folder")
    if p.name in ("images.txt", "cameras.txt"):
        return "colmap"
    suffix = p.suffix.lower()
    by_suffix = {".npy": "npy", ".npz": "bench-npz", ".txt": "re10k"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if suffix == ".json":
        doc = _read_json(p)
        if isinstance(doc, dict) and "frames" in doc:
            return "nerf"
        if isinstance(doc, dict) and doc and all(_is_index_key(k) for k in doc):
            return "worldplay"
        raise TrajectoryError(
            f"{p}: JSON file is neither a transforms.json (no 'frames' list) nor a HY-WorldPlay file "
            "(keys are not frame indices \"0\", \"1\", ...); pass the format explicitly"
        )
    raise TrajectoryError(f"{p}: unknown trajectory format; known formats: {_FORMAT_HINTS}")


def read_trajectory(path: StrPath, fmt: str | None = None, *, width: int | None = None,
                    height: int | None = None, fps: float | None = None,
                    intrinsics_path: StrPath | None = None) -> Trajectory:
    """Read a trajectory file (or folder) into the canonical form.

    ``fmt`` is one of :data:`FORMATS`, detected with :func:`detect_format` when ``None``.
    ``width``/``height``: image size of the intrinsics when the file does not store it.
    ``fps`` overrides the file's. ``intrinsics_path`` (npy and lingbot only) names the intrinsics
    ``.npy`` instead of the default sibling file.
    """
    p = Path(path)
    fmt = _check_format(fmt) if fmt is not None else detect_format(p)
    if not p.exists():
        raise TrajectoryError(f"{p}: no such file or folder")
    args = _ReadArgs(*_check_size(width, height), _check_fps(fps),
                     None if intrinsics_path is None else Path(intrinsics_path))
    if args.intrinsics_path is not None:
        if fmt not in ("npy", "lingbot"):
            raise TrajectoryError(
                f"a separate intrinsics file is only read for the npy and lingbot formats, not {fmt}"
            )
        if not args.intrinsics_path.is_file():
            raise TrajectoryError(f"{args.intrinsics_path}: intrinsics file not found")
    return _READERS[fmt](p, args)


def write_trajectory(traj: Trajectory, path: StrPath, fmt: str | None = None) -> list[Path]:
    """Write ``traj`` in format ``fmt`` (from the path's extension when ``None``); return the files written.

    Single-file formats take a path with their extension (added when the path has none). colmap and
    lingbot take a folder, created if needed; nerf takes a ``.json`` path or a folder (then
    ``<folder>/transforms.json``).
    """
    if not isinstance(traj, Trajectory):
        raise TypeError(f"write_trajectory needs a Trajectory, got {type(traj).__name__}")
    as_dir = os.fspath(path).endswith(("/", os.sep)) or Path(path).is_dir()
    fmt = _check_format(fmt) if fmt is not None else _format_for_writing(Path(path), as_dir)
    return _WRITERS[fmt](traj, Path(path), as_dir)


# -- shared helpers -------------------------------------------------------------------------------


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise TrajectoryError(f"unknown trajectory format {fmt!r}; known formats: {_FORMAT_HINTS}")
    return fmt


def _format_for_writing(path: Path, as_dir: bool) -> str:
    if as_dir or not path.suffix:
        if path.is_dir():
            try:
                return detect_format(path)
            except TrajectoryError:
                pass
        raise TrajectoryError(
            f"{path}: a folder can hold a colmap, lingbot or nerf trajectory; pass the format"
        )
    suffix = path.suffix.lower()
    if suffix == ".json":
        if path.name == "transforms.json":
            return "nerf"
        raise TrajectoryError(f"{path}: a .json trajectory can be nerf or worldplay; pass the format")
    by_suffix = {".npy": "npy", ".npz": "bench-npz", ".txt": "re10k"}
    if suffix not in by_suffix:
        raise TrajectoryError(
            f"{path}: cannot tell the format from the extension; known formats: {_FORMAT_HINTS}"
        )
    return by_suffix[suffix]


def _check_size(width, height) -> tuple[int | None, int | None]:
    if (width is None) != (height is None):
        raise TrajectoryError(f"give both width and height or neither (got width={width}, height={height})")
    if width is None:
        return None, None
    for name, v in (("width", width), ("height", height)):
        if (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                or not math.isfinite(v) or v != int(v) or v <= 0):
            raise TrajectoryError(f"{name} must be a positive whole number of pixels, got {v!r}")
    return int(width), int(height)


def _check_fps(fps) -> float | None:
    if fps is None:
        return None
    if (isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating))
            or not math.isfinite(fps) or fps <= 0):
        raise TrajectoryError(f"fps must be a positive finite number, got {fps!r}")
    return float(fps)


def _resolve_fps(where: str, args: _ReadArgs, file_fps=None) -> tuple[float, str]:
    """``(fps, source)``: the caller's fps, else the file's, else :data:`DEFAULT_FPS`."""
    if args.fps is not None:
        return args.fps, "argument"
    if file_fps is None:
        return DEFAULT_FPS, "default"
    try:
        return _check_fps(file_fps), "file"
    except TrajectoryError:
        raise TrajectoryError(
            f"{where}: fps is {file_fps!r}, not a positive number; pass fps explicitly"
        ) from None


def _image_size(where: str, args: _ReadArgs, stored: tuple[int, int] | None = None,
                what: str = "intrinsics are in pixels") -> tuple[int, int]:
    """The image size the file's intrinsics refer to: the stored one, else the caller's."""
    given = None if args.width is None else (args.width, args.height)
    if stored is not None:
        if given is not None and given != stored:
            raise TrajectoryError(
                f"{where}: the file's intrinsics belong to a {stored[0]}x{stored[1]} image but "
                f"width x height {given[0]}x{given[1]} was passed; leave width/height out and rescale "
                "afterwards (Intrinsics.rescaled) if another size is wanted"
            )
        return stored
    if given is None:
        raise TrajectoryError(
            f"{where}: {what} but the file does not say of which image size; "
            "pass width and height (the size in pixels of the image the intrinsics belong to)"
        )
    return given


def _trajectory(path: Path, fmt: str, c2w: np.ndarray, intrinsics: Intrinsics | None,
                fps: tuple[float, str], **meta) -> Trajectory:
    meta = {"format": fmt, "source": str(path), "fps_source": fps[1], **meta}
    return Trajectory(c2w, intrinsics, fps[0], meta)


def _is_index_key(key) -> bool:
    return isinstance(key, str) and key.isascii() and key.isdigit()


def _natural_key(name: str) -> tuple:
    """Sort key that compares digit runs as numbers, so ``frame_2`` comes before ``frame_10``."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _frame_names(traj: Trajectory, key: str, pattern: str) -> list[str]:
    """Names kept in ``traj.meta[key]`` if they still fit (one per frame, unique, no spaces, already in
    natural order, so that reading sorts them back to the same frames); else ``pattern`` numbered."""
    names = traj.meta.get(key)
    F = traj.num_frames
    if (isinstance(names, (list, tuple)) and len(names) == F
            and all(isinstance(n, str) and n and not any(c.isspace() for c in n) for n in names)
            and len(set(names)) == F and sorted(names, key=_natural_key) == list(names)):
        return list(names)
    digits = max(5, len(str(F - 1)))
    return [pattern.format(f"{i:0{digits}d}") for i in range(F)]


def _num(v) -> str:
    """Shortest text that reads back to exactly the same float64 (adding 0.0 turns -0.0 into 0.0)."""
    return repr(float(v) + 0.0)


def _read_text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TrajectoryError(f"{path}: cannot read as text ({e})") from None


def _read_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TrajectoryError(f"{path}: cannot read ({e})") from None
    check_json_depth(text, str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"{path}, line {e.lineno}, column {e.colno}"
        raise TrajectoryError(f"{where}: not valid JSON ({e.msg})") from None


# Every writer goes through these three, which write atomically (sana_wm.io): a full disk or a kill midway
# leaves the earlier file at the path, never a truncated one.
def _write_text(path: Path, text: str) -> Path:
    return write_text_atomic(path, text)


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to tmp
        np.save(f, array)
    return path


def _save_npz(path: Path, **arrays) -> Path:
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise TrajectoryError(f"{path}: cannot read as a .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise TrajectoryError(f"{path}: expected a single .npy array, found an .npz archive")
    if arr.dtype.kind not in "iuf":
        raise TrajectoryError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _numeric(where: str, value, shapes: tuple[tuple[int, ...], ...], what: str) -> np.ndarray:
    """A JSON value as a float64 array of one of ``shapes``."""
    try:
        arr = np.asarray(value) if isinstance(value, list) else None
    except ValueError:  # ragged nested lists
        arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise TrajectoryError(f"{where}: expected {what} as nested lists of numbers, got {str(value)[:80]}")
    if arr.shape not in shapes:
        expected = " or ".join(map(str, shapes))
        raise TrajectoryError(f"{where}: expected {what} of shape {expected}, got {arr.shape}")
    return arr.astype(np.float64)


def _pose_4x4(pose: np.ndarray) -> np.ndarray:
    """A ``(4, 4)`` or ``(3, 4)`` pose as ``(4, 4)``."""
    return as_c2w_array(pose[None])[0]


def _number(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrajectoryError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _whole(where: str, value) -> int:
    v = _number(where, value)
    if not math.isfinite(v) or v != int(v) or v <= 0:
        raise TrajectoryError(f"{where}: expected a positive whole number of pixels, got {value!r}")
    return int(v)


def _pinhole_from_K(where: str, K: np.ndarray) -> np.ndarray:
    """``(F, 4)`` [fx, fy, cx, cy] from ``(F, 3, 3)`` matrices ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
    off = np.abs(np.stack([K[:, 0, 1], K[:, 1, 0], K[:, 2, 0], K[:, 2, 1], K[:, 2, 2] - 1.0], axis=-1))
    scale = np.maximum(1.0, np.abs(K[:, :2, :2]).max(axis=(1, 2)))
    bad = (off > 1e-6 * scale[:, None]).any(axis=1) | ~np.isfinite(off).all(axis=1)
    if bad.any():
        f = int(np.argmax(bad))
        raise TrajectoryError(
            f"{where}: frame {f}: K = {K[f].tolist()} is not a pinhole matrix "
            "[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]"
        )
    return np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], axis=-1)


def _intrinsics_from_array(where: str, arr: np.ndarray, num_frames: int, size: tuple[int, int]) -> Intrinsics:
    """Pixel intrinsics given as ``(4,)``, ``(F, 4)``, ``(3, 3)`` or ``(F, 3, 3)``."""
    if arr.shape == (4,) or (arr.ndim == 2 and arr.shape[1] == 4):
        values = arr.reshape(-1, 4)
    elif arr.shape == (3, 3) or (arr.ndim == 3 and arr.shape[1:] == (3, 3)):
        values = _pinhole_from_K(where, arr.reshape(-1, 3, 3))
    else:
        raise TrajectoryError(
            f"{where}: expected intrinsics of shape (4,), (F, 4) [fx, fy, cx, cy], (3, 3) or (F, 3, 3), "
            f"got {arr.shape}"
        )
    if values.shape[0] not in (1, num_frames):
        raise TrajectoryError(f"{where}: {values.shape[0]} frames of intrinsics for {num_frames} poses")
    return Intrinsics(values, *size).broadcast_to(num_frames)


def _singular(mats: np.ndarray) -> np.ndarray:
    """Which ``(F, 4, 4)`` poses cannot be inverted (non-finite or singular rotation block)."""
    finite = np.isfinite(mats).all(axis=(1, 2))
    det = np.where(finite[:, None, None], mats, 0.0)[:, :3, :3]
    return ~finite | (np.abs(np.linalg.det(det)) < 1e-12)


def _file_target(path: Path, as_dir: bool, suffix: str, fmt: str) -> Path:
    """The file a single-file writer writes: ``path`` with ``suffix`` added when it has none."""
    if as_dir:
        raise TrajectoryError(f"{path}: is a folder; the {fmt} format is a single {suffix} file")
    if not path.suffix:
        path = path.with_suffix(suffix)
    elif path.suffix.lower() != suffix:
        raise TrajectoryError(f"{path}: the {fmt} format is a {suffix} file; use that extension")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _folder_target(path: Path, fmt: str) -> Path:
    if path.exists() and not path.is_dir():
        raise TrajectoryError(f"{path}: is a file; the {fmt} format is a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- npy ------------------------------------------------------------------------------------------


def _npy_siblings(path: Path) -> tuple[Path, Path]:
    """``<stem>_intrinsics.npy`` and ``<stem>_meta.json`` beside ``<stem>.npy``."""
    return path.with_name(f"{path.stem}_intrinsics.npy"), path.with_name(f"{path.stem}_meta.json")


def _read_npy(path: Path, args: _ReadArgs) -> Trajectory:
    c2w = as_c2w_array(_load_npy(path), what=str(path))
    intr_sibling, meta_path = _npy_siblings(path)
    sidecar = _read_json(meta_path) if meta_path.is_file() else {}
    if not isinstance(sidecar, dict):
        raise TrajectoryError(f"{meta_path}: expected a JSON object with fps, width, height, intrinsics")
    stored = None
    if args.intrinsics_path is not None:
        intr_path = args.intrinsics_path  # the sidecar's size belongs to its own intrinsics, not these
    elif "intrinsics" in sidecar:
        # The sidecar names the intrinsics file (or null): a stale sibling from an earlier write is ignored.
        name = sidecar["intrinsics"]
        if name is not None and not isinstance(name, str):
            raise TrajectoryError(f"{meta_path}: key 'intrinsics' must be a file name or null, got {name!r}")
        intr_path = None if name is None else path.with_name(name)
        if "width" in sidecar or "height" in sidecar:
            stored = (_whole(f"{meta_path}: key 'width'", sidecar.get("width")),
                      _whole(f"{meta_path}: key 'height'", sidecar.get("height")))
    else:
        intr_path = intr_sibling if intr_sibling.is_file() else None
    intrinsics = None
    if intr_path is not None:
        if not intr_path.is_file():
            raise TrajectoryError(f"{intr_path}: intrinsics file named by {meta_path} not found")
        size = _image_size(str(intr_path), args, stored)
        intrinsics = _intrinsics_from_array(str(intr_path), _load_npy(intr_path), c2w.shape[0], size)
    fps = _resolve_fps(str(meta_path), args, sidecar.get("fps"))
    return _trajectory(path, "npy", c2w, intrinsics, fps)


def _write_npy(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    path = _file_target(path, as_dir, ".npy", "npy")
    intr_path, meta_path = _npy_siblings(path)
    _save_npy(path, traj.c2w)
    written = [path]
    sidecar: dict = {"convention": _NPY_CONVENTION, "fps": traj.fps, "intrinsics": None}
    if traj.intrinsics is not None:
        _save_npy(intr_path, traj.intrinsics.values)
        written.append(intr_path)
        sidecar.update(intrinsics=intr_path.name, width=traj.intrinsics.width, height=traj.intrinsics.height)
    written.append(_write_text(meta_path, json.dumps(sidecar, indent=2) + "\n"))
    return written


# -- bench-npz ------------------------------------------------------------------------------------


def _scalar(where: str, arr: np.ndarray) -> float:
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise TrajectoryError(
            f"{where}: expected a single number, got an array of shape {arr.shape}, dtype {arr.dtype}"
        )
    return float(arr.reshape(()))


def _read_bench_npz(path: Path, args: _ReadArgs) -> Trajectory:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise TrajectoryError(f"{path}: cannot read as an .npz archive ({e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TrajectoryError(f"{path}: expected an .npz archive, found a single .npy array")
    try:
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise TrajectoryError(f"{path}: cannot read the arrays of the .npz archive ({e})") from None
    if "c2w" not in arrays:
        raise TrajectoryError(
            f"{path}: no 'c2w' array (keys: {sorted(arrays)}); a SANA-WM-Bench file has c2w, intrinsics, "
            "fps, num_frames"
        )
    c2w = as_c2w_array(arrays["c2w"], what=f"{path}: key 'c2w'")
    F = c2w.shape[0]
    if "num_frames" in arrays and _scalar(f"{path}: key 'num_frames'", arrays["num_frames"]) != F:
        n = arrays["num_frames"].item()
        raise TrajectoryError(f"{path}: key 'num_frames' is {n} but 'c2w' has {F} poses")
    intrinsics = None
    if "intrinsics" in arrays:
        stored = None
        if "width" in arrays or "height" in arrays:  # our addition; official files have neither
            if "width" not in arrays or "height" not in arrays:
                raise TrajectoryError(f"{path}: has only one of the keys 'width' and 'height'")
            stored = (_whole(f"{path}: key 'width'", _scalar(f"{path}: key 'width'", arrays["width"])),
                      _whole(f"{path}: key 'height'", _scalar(f"{path}: key 'height'", arrays["height"])))
        where = f"{path}: key 'intrinsics'"
        intr = arrays["intrinsics"]
        if intr.dtype.kind not in "iuf":
            raise TrajectoryError(f"{where}: expected numbers, got dtype {intr.dtype}")
        size = _image_size(where, args, stored)
        intrinsics = _intrinsics_from_array(where, intr.astype(np.float64), F, size)
    file_fps = _scalar(f"{path}: key 'fps'", arrays["fps"]) if "fps" in arrays else None
    return _trajectory(path, "bench-npz", c2w, intrinsics, _resolve_fps(str(path), args, file_fps))


def _write_bench_npz(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    path = _file_target(path, as_dir, ".npz", "bench-npz")
    arrays = {"c2w": traj.c2w, "fps": np.float64(traj.fps), "num_frames": np.int64(traj.num_frames)}
    if traj.intrinsics is not None:
        # width/height are our addition: the official files leave the image size implicit.
        arrays.update(intrinsics=traj.intrinsics.matrices(), width=np.int64(traj.intrinsics.width),
                      height=np.int64(traj.intrinsics.height))
    _save_npz(path, **arrays)
    return [path]


# -- re10k ----------------------------------------------------------------------------------------

_RE10K_FIELDS = 19  # timestamp, fx fy cx cy, two zeros, 3x4 w2c


def _floats(tokens: list[str]) -> list[float] | str:
    """The tokens as floats, or the first token that is not a number."""
    out = []
    for tok in tokens:
        try:
            out.append(float(tok))
        except ValueError:
            return tok
    return out


def _fps_from_timestamps(ts_us: np.ndarray) -> float | None:
    """fps from microsecond timestamps; ``None`` when they do not increase."""
    if ts_us.size < 2:
        return None
    median = float(np.median(np.diff(ts_us)))
    if not median > 0:
        return None
    fps = 1e6 / median
    # The median interval ignores dropped frames; when the whole span agrees with it (no drops), the
    # span gives the rate without the 1 us rounding of each timestamp.
    span = float(ts_us[-1] - ts_us[0])
    if span > 0 and abs((ts_us.size - 1) * 1e6 / span / fps - 1.0) < 1e-3:
        fps = (ts_us.size - 1) * 1e6 / span
    return fps


def _read_re10k(path: Path, args: _ReadArgs) -> Trajectory:
    lines = _read_text_lines(path)
    rows, line_numbers, url = [], [], None
    for lineno, line in enumerate(lines, 1):
        tokens = line.split()
        if lineno == 1 and (not tokens or isinstance(_floats(tokens), str)):
            url = line.strip()  # the header; a first line of numbers is a frame of a file without one
            continue
        if not tokens:
            continue
        if len(tokens) != _RE10K_FIELDS:
            raise TrajectoryError(
                f"{path}, line {lineno}: expected {_RE10K_FIELDS} numbers (timestamp fx fy cx cy 0 0 and "
                f"a 3x4 world-to-camera matrix row by row), got {len(tokens)}"
            )
        values = _floats(tokens)
        if isinstance(values, str):
            raise TrajectoryError(f"{path}, line {lineno}: {values!r} is not a number")
        rows.append(values)
        line_numbers.append(lineno)
    if not rows:
        raise TrajectoryError(f"{path}: no camera lines (expected a URL line, then one line per frame)")
    table = np.array(rows, dtype=np.float64)  # (F, 19)
    F = table.shape[0]
    w2c = np.tile(np.eye(4), (F, 1, 1))
    w2c[:, :3, :] = table[:, 7:].reshape(F, 3, 4)
    singular = _singular(w2c)
    if singular.any():
        lineno = line_numbers[int(np.argmax(singular))]
        raise TrajectoryError(f"{path}, line {lineno}: world-to-camera rotation is singular or not finite")
    size = _image_size(str(path), args, None, what="intrinsics are normalised by the image size")
    intrinsics = Intrinsics.from_normalized(table[:, 1:5], *size)
    timestamps = table[:, 0]
    fps = _resolve_fps(str(path), args, _fps_from_timestamps(timestamps))
    return _trajectory(path, "re10k", invert_se3(w2c), intrinsics, fps, url=url, timestamps_us=timestamps)


def _write_re10k(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    if traj.intrinsics is None:
        raise TrajectoryError(
            "the re10k format stores intrinsics on every line and this trajectory has none; attach some "
            "(e.g. Intrinsics.from_fov) before writing"
        )
    path = _file_target(path, as_dir, ".txt", "re10k")
    url = traj.meta.get("url")
    header = url if isinstance(url, str) and url and "\n" not in url else "sana-wm"
    norm = traj.intrinsics.normalized()
    w2c = invert_se3(traj.c2w)
    timestamps = np.round(np.arange(traj.num_frames) * 1e6 / traj.fps).astype(np.int64)
    lines = [header]
    for i in range(traj.num_frames):
        fields = [str(timestamps[i]), *map(_num, norm[i]), "0", "0", *map(_num, w2c[i, :3, :].ravel())]
        lines.append(" ".join(fields))
    return [_write_text(path, "\n".join(lines) + "\n")]


# -- colmap ---------------------------------------------------------------------------------------

# Parameters of the COLMAP camera models we accept; the first three or four are the pinhole part.
_COLMAP_MODELS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
}


@dataclass(frozen=True)
class _ColmapCamera:
    model: str
    size: tuple[int, int]  # width, height
    pinhole: tuple[float, float, float, float]  # fx, fy, cx, cy
    distorted: bool  # has non-zero distortion coefficients


@dataclass(frozen=True)
class _ColmapImage:
    image_id: int
    quat_wxyz: tuple[float, float, float, float]  # w2c rotation, Hamilton
    translation: tuple[float, float, float]  # w2c translation
    camera_id: int
    name: str
    lineno: int


def _int_token(where: str, token: str, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise TrajectoryError(f"{where}: {what} must be an integer, got {token!r}") from None


def _read_colmap_cameras(path: Path) -> dict[int, _ColmapCamera]:
    cameras: dict[int, _ColmapCamera] = {}
    for lineno, line in enumerate(_read_text_lines(path), 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        where = f"{path}, line {lineno}"
        if len(tokens) < 4:
            raise TrajectoryError(
                f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {line.strip()!r}"
            )
        cam_id = _int_token(where, tokens[0], "CAMERA_ID")
        model = tokens[1]
        if model not in _COLMAP_MODELS:
            raise TrajectoryError(
                f"{where}: camera model {model!r} is not supported; supported: {', '.join(_COLMAP_MODELS)} "
                "(fisheye models cannot be reduced to a pinhole)"
            )
        size = (_int_token(where, tokens[2], "WIDTH"), _int_token(where, tokens[3], "HEIGHT"))
        if min(size) <= 0:
            raise TrajectoryError(f"{where}: image size {size[0]}x{size[1]} must be positive")
        names = _COLMAP_MODELS[model]
        params = _floats(tokens[4:])
        if isinstance(params, str):
            raise TrajectoryError(f"{where}: camera parameter {params!r} is not a number")
        if len(params) != len(names):
            raise TrajectoryError(
                f"{where}: model {model} takes {len(names)} parameters ({' '.join(names)}), got {len(params)}"
            )
        if names[0] == "f":
            pinhole, distortion = (params[0], params[0], params[1], params[2]), params[3:]
        else:
            pinhole, distortion = tuple(params[:4]), params[4:]
        if cam_id in cameras:
            raise TrajectoryError(f"{where}: camera {cam_id} is defined twice")
        cameras[cam_id] = _ColmapCamera(model, size, pinhole, any(d != 0 for d in distortion))
    return cameras


def _read_colmap_images(path: Path) -> list[_ColmapImage]:
    images: list[_ColmapImage] = []
    pending = None  # line number of an image line whose 2D-points line comes next
    for lineno, line in enumerate(_read_text_lines(path), 1):
        tokens = line.split()
        if tokens and tokens[0].startswith("#"):
            continue
        if pending is not None:
            # The second line of each image (X Y POINT3D_ID triples) may be empty but must be there.
            if len(tokens) % 3:
                raise TrajectoryError(
                    f"{path}, line {lineno}: expected the 2D points of the image on line {pending} "
                    f"(X Y POINT3D_ID triples, possibly none), got {len(tokens)} values; images.txt has two "
                    "lines per image"
                )
            pending = None
            continue
        if not tokens:
            continue
        where = f"{path}, line {lineno}"
        if len(tokens) < 10:
            raise TrajectoryError(
                f"{where}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {len(tokens)} values"
            )
        values = _floats(tokens[1:8])
        if isinstance(values, str):
            raise TrajectoryError(f"{where}: {values!r} is not a number")
        images.append(_ColmapImage(
            image_id=_int_token(where, tokens[0], "IMAGE_ID"),
            quat_wxyz=tuple(values[:4]),
            translation=tuple(values[4:]),
            camera_id=_int_token(where, tokens[8], "CAMERA_ID"),
            name=" ".join(tokens[9:]),
            lineno=lineno,
        ))
        pending = lineno
    return images


def _read_colmap(path: Path, args: _ReadArgs) -> Trajectory:
    root = path.parent if path.is_file() else path
    cameras_path, images_path = root / "cameras.txt", root / "images.txt"
    for p in (cameras_path, images_path):
        if not p.is_file():
            raise TrajectoryError(
                f"{p}: not found; a COLMAP text model folder has cameras.txt and images.txt"
            )
    cameras = _read_colmap_cameras(cameras_path)
    images = sorted(_read_colmap_images(images_path), key=lambda im: (_natural_key(im.name), im.image_id))
    if not images:
        raise TrajectoryError(f"{images_path}: no images")
    for im in images:
        if im.camera_id not in cameras:
            raise TrajectoryError(
                f"{images_path}, line {im.lineno}: camera {im.camera_id} is not in {cameras_path}"
            )
    used = sorted({im.camera_id for im in images})
    sizes = {cameras[c].size for c in used}
    if len(sizes) > 1:
        a, b = sorted(sizes)[:2]
        raise TrajectoryError(
            f"{cameras_path}: the images use cameras of different sizes ({a[0]}x{a[1]} and {b[0]}x{b[1]}); "
            "a trajectory has one image size"
        )
    distorted = [c for c in used if cameras[c].distorted]
    if distorted:
        warnings.warn(
            f"{cameras_path}: camera(s) {', '.join(f'{c} ({cameras[c].model})' for c in distorted)} have "
            "lens distortion; only their pinhole part (fx, fy, cx, cy) is used and the distortion is ignored",
            UserWarning, stacklevel=3,
        )
    quats = np.array([im.quat_wxyz for im in images])  # (F, 4) w, x, y, z
    norms = np.linalg.norm(quats, axis=1)
    bad = ~(norms > 1e-12) | ~np.isfinite(quats).all(axis=1)
    if bad.any():
        im = images[int(np.argmax(bad))]
        raise TrajectoryError(
            f"{images_path}, line {im.lineno}: quaternion {list(im.quat_wxyz)} is zero or not finite"
        )
    w2c = np.tile(np.eye(4), (len(images), 1, 1))
    # scipy's quaternions are Hamilton like COLMAP's but scalar-last; from_quat normalises them.
    w2c[:, :3, :3] = Rotation.from_quat(quats[:, [1, 2, 3, 0]]).as_matrix()
    w2c[:, :3, 3] = [im.translation for im in images]
    size = _image_size(str(cameras_path), args, sizes.pop())
    intrinsics = Intrinsics([cameras[im.camera_id].pinhole for im in images], *size)
    return _trajectory(
        root, "colmap", invert_se3(w2c), intrinsics, _resolve_fps(str(root), args),
        image_names=[im.name for im in images], image_ids=[im.image_id for im in images],
        camera_ids=[im.camera_id for im in images],
    )


def _write_colmap(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    if traj.intrinsics is None:
        raise TrajectoryError(
            "the colmap format needs a camera for every image and this trajectory has no intrinsics; "
            "attach some (e.g. Intrinsics.from_fov) before writing"
        )
    root = _folder_target(path, "colmap")
    intr = traj.intrinsics
    camera_ids: dict[tuple[float, ...], int] = {}  # identical intrinsics share one camera
    for row in intr.values:
        camera_ids.setdefault(tuple(row.tolist()), len(camera_ids) + 1)
    cam_lines = ["# Camera list with one line of data per camera:",
                 "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                 f"# Number of cameras: {len(camera_ids)}"]
    cam_lines += [f"{cid} PINHOLE {intr.width} {intr.height} {' '.join(map(_num, row))}"
                  for row, cid in camera_ids.items()]
    w2c = invert_se3(traj.c2w)
    quats = Rotation.from_matrix(w2c[:, :3, :3]).as_quat()[:, [3, 0, 1, 2]]  # scalar-first for COLMAP
    quats *= np.where(quats[:, :1] < 0, -1.0, 1.0)  # q and -q are the same rotation; keep QW >= 0
    names = _frame_names(traj, "image_names", "frame_{}.png")
    img_lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)",
                 f"# Number of images: {traj.num_frames}, mean observations per image: 0"]
    for i in range(traj.num_frames):
        cid = camera_ids[tuple(intr.values[i].tolist())]
        fields = [str(i + 1), *map(_num, quats[i]), *map(_num, w2c[i, :3, 3]), str(cid), names[i]]
        img_lines.append(" ".join(fields))
        img_lines.append("")
    return [
        _write_text(root / "cameras.txt", "\n".join(cam_lines) + "\n"),
        _write_text(root / "images.txt", "\n".join(img_lines) + "\n"),
        _write_text(root / "points3D.txt", "# 3D point list (empty: sana-wm writes cameras only)\n"),
    ]


# -- nerf -----------------------------------------------------------------------------------------

_NERF_PINHOLE_KEYS = ("fl_x", "fl_y", "cx", "cy")
_NERF_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_NERF_PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE")


def _read_nerf(path: Path, args: _ReadArgs) -> Trajectory:
    file = path / "transforms.json" if path.is_dir() else path
    doc = _read_json(file)
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise TrajectoryError(
            f"{file}: expected a JSON object with a 'frames' list (NeRF / Nerfstudio transforms.json)"
        )
    frames = doc["frames"]
    if not frames:
        raise TrajectoryError(f"{file}: 'frames' is empty")
    model = doc.get("camera_model")
    if model is not None and model not in _NERF_PINHOLE_MODELS:
        raise TrajectoryError(
            f"{file}: camera_model {model!r} is not a pinhole camera; "
            f"supported: {', '.join(_NERF_PINHOLE_MODELS)}"
        )
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise TrajectoryError(f"{file}: frames[{i}] has no 'transform_matrix'")
    paths = [frame.get("file_path") for frame in frames]
    order = list(range(len(frames)))
    if all(isinstance(p, str) for p in paths):
        order.sort(key=lambda i: _natural_key(paths[i]))
    c2w_gl = np.stack([
        _pose_4x4(_numeric(f"{file}: frames[{i}].transform_matrix", frames[i]["transform_matrix"],
                           ((4, 4), (3, 4)), "a c2w matrix"))
        for i in order
    ])

    # Intrinsics keys live at the top level or, per frame, inside the frame.
    def get(i: int, key: str):
        return frames[i].get(key, doc.get(key))

    def num(i: int, key: str) -> float | None:
        v = get(i, key)
        return None if v is None else _number(f"{file}: frames[{i}].{key}", v)

    def focal_from_angle(i: int, key: str, size: int) -> float:
        angle = num(i, key)
        if not 0.0 < angle < math.pi:
            raise TrajectoryError(f"{file}: frames[{i}].{key} = {angle!r}; expected a field of view in "
                                  "radians, between 0 and pi")
        return 0.5 * size / math.tan(0.5 * angle)

    stored_sizes: set[tuple[int, int]] = set()
    has_focal = []
    distorted = False
    for i in order:
        w, h = get(i, "w"), get(i, "h")
        if (w is None) != (h is None):
            raise TrajectoryError(f"{file}: frames[{i}] has only one of 'w' and 'h'")
        if w is not None:
            stored_sizes.add((_whole(f"{file}: frames[{i}].w", w), _whole(f"{file}: frames[{i}].h", h)))
        has_focal.append(get(i, "fl_x") is not None or get(i, "camera_angle_x") is not None)
        distorted |= any(num(i, k) for k in _NERF_DISTORTION_KEYS)
    if len(stored_sizes) > 1:
        a, b = sorted(stored_sizes)[:2]
        raise TrajectoryError(f"{file}: frames have different image sizes ({a[0]}x{a[1]} and {b[0]}x{b[1]})")
    intrinsics = None
    if any(has_focal):
        if not all(has_focal):
            i = order[has_focal.index(False)]
            raise TrajectoryError(f"{file}: frames[{i}] has no fl_x or camera_angle_x while other frames do")
        if distorted:
            warnings.warn(
                f"{file}: lens distortion (k1, k2, p1, p2, ...) is ignored; only the pinhole part is used",
                UserWarning, stacklevel=3,
            )
        W, H = _image_size(str(file), args, stored_sizes.pop() if stored_sizes else None)
        values = []
        for i in order:
            fx = num(i, "fl_x")
            if fx is None:
                fx = focal_from_angle(i, "camera_angle_x", W)
            fy = num(i, "fl_y")
            if fy is None:
                fy = fx if get(i, "camera_angle_y") is None else focal_from_angle(i, "camera_angle_y", H)
            cx, cy = num(i, "cx"), num(i, "cy")
            values.append([fx, fy, W / 2.0 if cx is None else cx, H / 2.0 if cy is None else cy])
        intrinsics = Intrinsics(values, W, H)
    file_fps = _number(f"{file}: key 'fps'", doc["fps"]) if "fps" in doc else None
    # Huge entries overflow in the product; _trajectory then refuses the non-finite pose, naming the frame.
    with np.errstate(over="ignore", invalid="ignore"):
        c2w = c2w_gl @ _GL_TO_CV
    return _trajectory(file, "nerf", c2w, intrinsics,
                       _resolve_fps(str(file), args, file_fps), file_paths=[paths[i] for i in order])


def _write_nerf(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    if as_dir or not path.suffix:
        file = _folder_target(path, "nerf") / "transforms.json"
    else:
        file = _file_target(path, False, ".json", "nerf")
    doc: dict = {}
    intr = traj.intrinsics
    shared = intr is not None and bool((intr.values == intr.values[0]).all())
    if intr is not None:
        doc.update(camera_model="OPENCV", w=intr.width, h=intr.height)
        if shared:
            doc.update(zip(_NERF_PINHOLE_KEYS, map(float, intr.values[0]), strict=True))
    doc["fps"] = traj.fps
    c2w_gl = traj.c2w @ _GL_TO_CV
    names = _frame_names(traj, "file_paths", "images/frame_{}.png")
    frames = []
    for i in range(traj.num_frames):
        frame: dict = {"file_path": names[i], "transform_matrix": c2w_gl[i].tolist()}
        if intr is not None and not shared:
            frame.update(zip(_NERF_PINHOLE_KEYS, map(float, intr.values[i]), strict=True))
        frames.append(frame)
    doc["frames"] = frames
    return [_write_text(file, json.dumps(doc, indent=2) + "\n")]


# -- lingbot --------------------------------------------------------------------------------------


def _read_lingbot(path: Path, args: _ReadArgs) -> Trajectory:
    root = path.parent if path.is_file() else path
    poses_path = root / "poses.npy"
    if not poses_path.is_file():
        raise TrajectoryError(
            f"{poses_path}: not found; a LingBot-World folder has poses.npy (and intrinsics.npy)"
        )
    c2w = as_c2w_array(_load_npy(poses_path), what=str(poses_path))
    intr_path = args.intrinsics_path
    if intr_path is None and (root / "intrinsics.npy").is_file():
        intr_path = root / "intrinsics.npy"
    intrinsics = None
    if intr_path is not None:
        size = _image_size(str(intr_path), args)
        intrinsics = _intrinsics_from_array(str(intr_path), _load_npy(intr_path), c2w.shape[0], size)
    return _trajectory(root, "lingbot", c2w, intrinsics, _resolve_fps(str(root), args))


def _write_lingbot(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    root = _folder_target(path, "lingbot")
    poses_path, intr_path = root / "poses.npy", root / "intrinsics.npy"
    if traj.intrinsics is None and intr_path.exists():
        raise TrajectoryError(
            f"{intr_path}: exists but this trajectory has no intrinsics, so it would be read back with the "
            "old ones; remove it or write to another folder"
        )
    _save_npy(poses_path, traj.c2w)
    written = [poses_path]
    if traj.intrinsics is not None:
        _save_npy(intr_path, traj.intrinsics.values)
        written.append(intr_path)
    return written


# -- worldplay ------------------------------------------------------------------------------------


def _read_worldplay(path: Path, args: _ReadArgs) -> Trajectory:
    doc = _read_json(path)
    if not isinstance(doc, dict) or not doc:
        raise TrajectoryError(
            f"{path}: expected a JSON object keyed by frame index: "
            '{"0": {"extrinsic": <4x4 c2w>, "K": <3x3>}, "1": ...}'
        )
    entries: dict[int, tuple[str, object]] = {}
    for key, entry in doc.items():
        if not _is_index_key(key):
            raise TrajectoryError(
                f"{path}: key {key!r} is not a frame index; keys must be the integers 0..N-1 written as "
                "strings"
            )
        if int(key) in entries:
            raise TrajectoryError(f"{path}: keys {entries[int(key)][0]!r} and {key!r} name the same frame")
        entries[int(key)] = (key, entry)
    for i in range(len(entries)):
        if i not in entries:
            raise TrajectoryError(
                f"{path}: frame {i} is missing; keys must be 0..{len(entries) - 1} without gaps"
            )
    c2w, Ks = [], []
    for i in range(len(entries)):
        key, entry = entries[i]
        if not isinstance(entry, dict) or "extrinsic" not in entry:
            raise TrajectoryError(f"{path}: key {key!r} has no 'extrinsic' (the 4x4 camera-to-world matrix)")
        where = f"{path}: key {key!r}"
        pose = _numeric(f"{where}: 'extrinsic'", entry["extrinsic"], ((4, 4), (3, 4)), "a c2w matrix")
        c2w.append(_pose_4x4(pose))
        Ks.append(None if "K" not in entry else _numeric(f"{where}: 'K'", entry["K"], ((3, 3),), "K"))
    intrinsics = None
    if any(K is not None for K in Ks):
        if any(K is None for K in Ks):
            key = entries[Ks.index(None)][0]
            raise TrajectoryError(f"{path}: key {key!r} has no 'K' while other frames do")
        size = _image_size(str(path), args)
        intrinsics = Intrinsics(_pinhole_from_K(str(path), np.stack(Ks)), *size)
    return _trajectory(path, "worldplay", np.stack(c2w), intrinsics, _resolve_fps(str(path), args))


def _write_worldplay(traj: Trajectory, path: Path, as_dir: bool) -> list[Path]:
    path = _file_target(path, as_dir, ".json", "worldplay")
    K = None if traj.intrinsics is None else traj.intrinsics.matrices()
    doc = {}
    for i in range(traj.num_frames):
        entry: dict = {"extrinsic": traj.c2w[i].tolist()}
        if K is not None:
            entry["K"] = K[i].tolist()
        doc[str(i)] = entry
    return [_write_text(path, json.dumps(doc, indent=2) + "\n")]


_READERS: dict[str, Callable[[Path, _ReadArgs], Trajectory]] = {
    "npy": _read_npy,
    "bench-npz": _read_bench_npz,
    "re10k": _read_re10k,
    "colmap": _read_colmap,
    "nerf": _read_nerf,
    "lingbot": _read_lingbot,
    "worldplay": _read_worldplay,
}

_WRITERS: dict[str, Callable[[Trajectory, Path, bool], list[Path]]] = {
    "npy": _write_npy,
    "bench-npz": _write_bench_npz,
    "re10k": _write_re10k,
    "colmap": _write_colmap,
    "nerf": _write_nerf,
    "lingbot": _write_lingbot,
    "worldplay": _write_worldplay,
}
