"""One input video -> annotated clips: decode, cut, intrinsics, poses, metric scale, quality, captions.

Each stage is a function of its own module, replaceable on its own (:mod:`.decode`, :mod:`.shots`,
:mod:`.intrinsics`, :mod:`sana_wm.geometry` for poses and scale, :mod:`.quality`, :mod:`.captions`); this
module only chains them for one input and records where every estimate came from
(``Clip.meta["provenance"]``: the lens, the pose backend and, for the learned one, its weights' fingerprint,
the scale, and the caption's model, fingerprint, prompt and frames).

Poses come from ``config.backend`` (the learned backend reads ``config.pose_weights``); where it registers
fewer than half of a shot's frames (COLMAP under a pure rotation), the OpenCV odometry is tried as a
fallback and kept if it does better.

Scale sources, the first available in this order: ``--scale``, ``--camera-height``, a ground-truth depth
sidecar ``VIDEO.depth.npz`` (``depth (F, H, W)`` metres per source frame, as our synthetic footage
has), ``--depth-model``. A shot whose camera only rotates has no observable scale whatever the source:
its camera centre is then held at the first frame's and the clip says so.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sana_wm.annotate.captions import CaptionConfig
from sana_wm.annotate.decode import Decoded, read_input
from sana_wm.annotate.intrinsics import LensEstimate, resolve_intrinsics
from sana_wm.annotate.quality import QualityConfig, failed_checks, quality_scores
from sana_wm.annotate.shots import ShotConfig, split_shots
from sana_wm.camera.trajectory import relative_poses
from sana_wm.data.clip import Clip
from sana_wm.errors import UserError
from sana_wm.geometry.backends import make_backend
from sana_wm.geometry.scale import (
    ScaleEstimate,
    scale_from_camera_height,
    scale_from_depth_ratios,
    scale_unobservable,
    user_scale,
)
from sana_wm.geometry.triangulation import AnchorPoints, triangulate_anchors

__all__ = ["AnnotateConfig", "ShotResult", "VideoResult", "annotate_video", "depth_sidecar_path", "video_key"]


@dataclass(frozen=True)
class AnnotateConfig:
    fps: float = 10.0
    width: int | None = 640  # frames are resized to this width (None: the source's)
    max_frames: int | None = None  # per input
    backend: str = "pycolmap"
    pose_weights: str | None = None  # the learned backend's weights folder (geometry.learned)
    fov: float | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    scale: float | None = None
    camera_height: float | None = None
    depth_model: str | None = None
    use_depth_sidecar: bool = True
    shots: ShotConfig = ShotConfig()
    quality: QualityConfig = QualityConfig()
    captions: CaptionConfig = CaptionConfig()  # off unless captions.model names a VLM folder
    source: str = ""  # recorded per clip; default: the input's file name
    licence: str = ""
    frames_codec: str = "mp4"  # how clips store frames: mp4 (small) or png (lossless, reproducible bytes)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ShotResult:
    start: int
    stop: int
    kept: bool
    reasons: list[str]
    clip: Clip | None = None  # the annotated clip (kept or not, when it got that far)


@dataclass
class VideoResult:
    input: str
    key: str
    num_frames: int
    fps: float
    shots: list[ShotResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def clips(self) -> list[Clip]:
        return [s.clip for s in self.shots if s.kept and s.clip is not None]

    def record(self) -> dict:
        return {"input": self.input, "key": self.key, "num_frames": self.num_frames, "fps": self.fps,
                "seconds": self.seconds, "error": self.error,
                "shots": [{"start": s.start, "stop": s.stop, "kept": s.kept, "reasons": s.reasons,
                           "clip": s.clip.key if s.clip is not None else None,
                           "quality": s.clip.quality if s.clip is not None else {}} for s in self.shots]}


def video_key(path: Path) -> str:
    """A clip-key-safe name for an input: its sanitised stem and 8 hex digits of its resolved path's hash
    (two inputs of one name in different folders stay apart)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem)[:48] or "input"
    digest = hashlib.blake2b(str(Path(path).resolve()).encode(), digest_size=4).hexdigest()
    return f"{stem}-{digest}"


def depth_sidecar_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".depth.npz") if path.is_dir() else path.with_suffix(".depth.npz")


def _source_indices(decoded: Decoded) -> np.ndarray:
    """Source frame index of every decoded frame (decoding picks frames by time at the output fps)."""
    rate = decoded.source_fps or decoded.fps
    return np.round(np.arange(len(decoded.frames)) * rate / decoded.fps).astype(int)


def _world_points(anchors: list[AnchorPoints], c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    pts = []
    Kinv = np.linalg.inv(K)
    for a in anchors:
        rays = np.concatenate([a.pixels, np.ones((len(a.pixels), 1))], axis=1) @ Kinv.T
        cam = rays * a.depth[:, None]
        pts.append(cam @ c2w[a.frame, :3, :3].T + c2w[a.frame, :3, 3])
    return np.concatenate(pts) if pts else np.zeros((0, 3))


def _sample(depth: np.ndarray, pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth at ``pixels`` (x, y in frames of ``size = (W, H)``) from a map of possibly another size."""
    h, w = depth.shape
    x = np.clip(np.round((pixels[:, 0] + 0.5) * w / size[0] - 0.5).astype(int), 0, w - 1)
    y = np.clip(np.round((pixels[:, 1] + 0.5) * h / size[1] - 0.5).astype(int), 0, h - 1)
    return depth[y, x].astype(np.float64)


class _DepthSources:
    """Lazily opened metric-depth sources of one input (the sidecar, the model)."""

    def __init__(self, path: Path, cfg: AnnotateConfig):
        self.path, self.cfg = path, cfg
        self._sidecar = None
        self._model = None

    def sidecar(self) -> np.ndarray | None:
        if not self.cfg.use_depth_sidecar:
            return None
        side = depth_sidecar_path(self.path)
        if self._sidecar is None and side.is_file():
            try:
                with np.load(side, allow_pickle=False) as z:
                    self._sidecar = z["depth"]
            except (OSError, KeyError, ValueError) as err:
                raise UserError(f"{side}: cannot read this depth sidecar ({err}); it needs an array 'depth' "
                                "(F, H, W) in metres; fix or delete it") from None
            if self._sidecar.ndim != 3:
                raise UserError(f"{side}: 'depth' must be (F, H, W), got shape {self._sidecar.shape}")
        return self._sidecar

    def model(self):
        if self._model is None and self.cfg.depth_model:
            from sana_wm.annotate.depth import DepthModel

            self._model = DepthModel(self.cfg.depth_model)
        return self._model


def _scale(frames: np.ndarray, src_index: np.ndarray, c2w: np.ndarray, K: np.ndarray, registered: np.ndarray,
           depth: _DepthSources, points: list[AnchorPoints] | None = None
           ) -> tuple[ScaleEstimate, list[AnchorPoints]]:
    """The scale of one shot's reconstruction, from the backend's own ``points`` if it has them (bundle
    adjusted, so better than two-view triangulation), else from points triangulated here."""
    cfg = depth.cfg
    if points:  # at most ~12 frames' worth: depth models run on each of their frames
        step = max(len(points) // 12, 1)
        anchors = points[::step]
    else:
        anchors = triangulate_anchors(frames, c2w, K, registered, anchor_step=max(len(frames) // 12, 1))
    points = sum(len(a.depth) for a in anchors)
    if registered.mean() < 0.5:
        return scale_unobservable(f"only {registered.mean():.0%} of the frames were registered: too few to "
                                  "triangulate the scene, so no scale"), anchors
    if points < 20:
        return scale_unobservable("the camera does not translate enough to triangulate the scene (pure "
                                  "rotation): the scale is unobservable and the camera centre is held fixed"), anchors
    if cfg.scale is not None:
        return user_scale(cfg.scale), anchors
    if cfg.camera_height is not None:
        return scale_from_camera_height(_world_points(anchors, c2w, K), c2w, cfg.camera_height), anchors
    size = (frames.shape[2], frames.shape[1])
    rec = np.concatenate([a.depth for a in anchors])
    side = depth.sidecar()
    if side is not None:
        idx = [min(int(src_index[a.frame]), len(side) - 1) for a in anchors]
        metric = np.concatenate([_sample(side[i], a.pixels, size) for i, a in zip(idx, anchors, strict=True)])
        return scale_from_depth_ratios(metric, rec, source="depth:ground-truth sidecar"), anchors
    model = depth.model()
    if model is not None:
        maps = model.predict(frames[[a.frame for a in anchors]])
        metric = np.concatenate([_sample(m, a.pixels, size) for m, a in zip(maps, anchors, strict=True)])
        return scale_from_depth_ratios(metric, rec, source=f"depth:{model.name}"), anchors
    return scale_unobservable("no scale source: give --depth-model, --camera-height or --scale (or a depth "
                              "sidecar)", "none"), anchors


def annotate_video(path, config: AnnotateConfig | None = None, *, key: str | None = None,
                   on_frames=None) -> VideoResult:
    """Annotate one input (see the module doc). ``on_frames(n)`` is called as frames are processed."""
    cfg = config or AnnotateConfig()
    path = Path(path)
    start_time = time.perf_counter()
    decoded = read_input(path, fps=cfg.fps, width=cfg.width, max_frames=cfg.max_frames)
    frames = decoded.frames
    F, H, W = frames.shape[:3]
    vkey = key or video_key(path)
    result = VideoResult(str(path), vkey, F, decoded.fps)
    lens: LensEstimate = resolve_intrinsics(path, *decoded.source_size, fov=cfg.fov, intrinsics=cfg.intrinsics,
                                            metadata=decoded.metadata)
    intr = lens.intrinsics.rescaled(W, H)
    K = intr.matrices()[0]
    backend = make_backend(cfg.backend, **({"weights": cfg.pose_weights} if cfg.backend == "learned" else {}))
    captioner = None
    if cfg.captions.model:
        from sana_wm.annotate.captions import load_captioner

        captioner = load_captioner(cfg.captions.model)
    refining = None
    if cfg.backend == "pycolmap" and lens.source == "estimated":
        from sana_wm.geometry.colmap import ColmapBackend, ColmapConfig

        refining = ColmapBackend(ColmapConfig(refine_focal_length=True))
    src_index = _source_indices(decoded)
    depth = _DepthSources(path, cfg)
    for n, shot in enumerate(split_shots(frames, decoded.fps, cfg.shots)):
        if shot.dropped:
            result.shots.append(ShotResult(shot.start, shot.stop, False, [f"shot {shot.dropped}"]))
            if on_frames:
                on_frames(shot.num_frames)
            continue
        sf = frames[shot.start:shot.stop]
        pose = refining.estimate(sf, intr, decoded.fps) if refining is not None else None
        if pose is None or pose.registered_fraction < 0.5:
            # A guessed lens that bundle adjustment could not refine (too little parallax for the focal
            # length to be observable): the guess is used as it is, and the provenance says so.
            pose = backend.estimate(sf, intr, decoded.fps)
        if pose.registered_fraction < 0.5 and cfg.backend != "opencv":
            # COLMAP cannot start a model without parallax (a camera turning on the spot); the frame-to-frame
            # odometry can still follow the rotation. The clip's provenance names the backend that placed it.
            fallback = make_backend("opencv").estimate(sf, intr, decoded.fps)
            if fallback.registered_fraction > pose.registered_fraction:
                pose = fallback
        shot_K = pose.K if pose.K is not None else K
        scale, anchors = _scale(sf, src_index[shot.start:shot.stop], pose.c2w, shot_K, pose.registered, depth,
                                pose.points)
        c2w = relative_poses(pose.c2w)
        if scale.observable:
            c2w[:, :3, 3] *= scale.scale
        else:
            c2w[:, :3, 3] = 0.0  # pure rotation (or unknown scale): centre held, see the scale's reason
        scores = quality_scores(sf, c2w, decoded.fps, registered_fraction=pose.registered_fraction,
                                reprojection_px=pose.reprojection_error_px, scale_spread=scale.spread,
                                scale_observable=scale.observable)
        reasons = failed_checks(scores, cfg.quality)
        if scale.source == "none":
            reasons.append(scale.reason)
        fx, fy, cx, cy = shot_K[0, 0], shot_K[1, 1], shot_K[0, 2], shot_K[1, 2]
        caption, caption_record = "", None
        if captioner is not None and not reasons:  # only clips that go into the dataset are worth a caption
            caption, caption_record = captioner.caption(sf, cfg.captions)
        poses_record = {"backend": pose.backend, "registered_fraction": pose.registered_fraction,
                        "focal_refined": pose.K is not None, "reprojection_error_px": scores["reprojection_px"]}
        if pose.backend == "learned":
            poses_record.update(weights=pose.diagnostics["weights"], fingerprint=pose.diagnostics["fingerprint"])
        clip = Clip(
            key=f"{vkey}-s{n:03d}", frames=sf, c2w=c2w, intrinsics=np.tile([fx, fy, cx, cy], (len(sf), 1)),
            fps=decoded.fps, caption=caption, source=cfg.source or path.name, licence=cfg.licence, quality=scores,
            meta={"annotate": {
                "input": path.name, "shot": [shot.start, shot.stop], "source_frames": [
                    int(src_index[shot.start]), int(src_index[shot.stop - 1])],
                "provenance": {"intrinsics": lens.to_json(),
                               "poses": poses_record, "scale": scale.to_json(), "caption": caption_record},
                "rejected": reasons}},
        )
        result.shots.append(ShotResult(shot.start, shot.stop, not reasons, reasons, clip))
        if on_frames:
            on_frames(shot.num_frames)
    result.seconds = time.perf_counter() - start_time
    return result
