"""``sana-wm bench score RUN``: every generated video of a benchmark run scored as the release scores it.

Per scene (one JSON each under ``OUT/scenes/``, written atomically as it finishes; a scene whose JSON is
valid and was scored with the same settings from the same video is skipped on a rerun):

* **camera accuracy** (reference evaluation.md §1.3): poses re-estimated on every 4th frame of the video by a
  pose backend of :mod:`sana_wm.geometry` (pycolmap by default) with the scene's intrinsics rescaled to the
  video's size; the requested path sampled at the same times (remapped by time when the video's fps differs
  from the benchmark's); frame 0 dropped when the run used a refiner; both relative to their first frame; one
  similarity fitted on the w2c extrinsics (:func:`sana_wm.eval.pose_metrics.camera_errors`); RotErr (degrees),
  TransErr and CamMC, means over frames. Beside them ATE (Umeyama Sim(3) on centres), RPE over 1 s and
  ScaleErr ``|ln s|``. Frames the estimator could not place itself stay in the means with the poses the
  backend interpolated for them, and are counted (``frames_failed`` of ``frames``); a scene where it placed
  fewer than 2 frames has no camera numbers and is counted as failed.
* **revisit consistency**: PSNR (uint8, peak 255), SSIM (11x11 uniform window) and, with ``lpips_weights``,
  LPIPS (AlexNet, inputs in [-1, 1]) between the two frames of the first 5 ``evaluation_pairs``, indices
  remapped by time to the video's fps; pairs past the video's end are skipped and listed.
* **temporal degradation**: :mod:`sana_wm.bench.quality` (classical sharpness and noise always, MUSIQ with
  ``musiq_weights``, VBench with ``vbench``).
* **ground truth** (``bench synth`` folders only): PSNR and SSIM (same SSIM as above) against the exact render at
  1, 5, 10, 30 and 60 s; marks past the video's end are skipped and listed.

Then :func:`sana_wm.bench.report.write_report` aggregates per category and split and writes ``report.json``,
``report.md`` and the plots.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sana_wm.bench.layout import (
    BenchError,
    BenchScene,
    RunInfo,
    ground_truth_video,
    read_bench,
    read_run,
    video_path,
)
from sana_wm.bench.optional import require_package, weights_file
from sana_wm.bench.quality import MusiqScorer, temporal_degradation, vbench_refusal, vbench_scores
from sana_wm.camera.trajectory import Intrinsics, relative_poses
from sana_wm.eval.metrics import psnr_frames, ssim_frames
from sana_wm.eval.pose_metrics import camera_errors
from sana_wm.eval.reporting import contact_sheet, json_ready, save_png
from sana_wm.geometry.backends import PoseBackend, make_backend
from sana_wm.geometry.metrics import trajectory_errors
from sana_wm.io import folder_lock, write_text_atomic

__all__ = ["ESTIMATORS", "GT_MARKS", "INTERVAL", "MAX_PAIRS", "LpipsScorer", "ScoreSettings", "camera_accuracy",
           "ground_truth_scores", "remap_frame", "revisit_scores", "sample_frames", "score_run", "score_scene"]

INTERVAL = 4  # the release estimates poses on every 4th frame
MAX_PAIRS = 5  # revisit pairs scored per scene, as released
GT_MARKS = (1.0, 5.0, 10.0, 30.0, 60.0)  # seconds
RPE_DELTA_S = 1.0
ESTIMATORS = {"colmap": "pycolmap", "opencv": "opencv", "learned": "learned"}  # CLI word -> geometry backend
SCORES_VERSION = 2  # raised whenever the scoring changes: scenes scored by another version are scored again
SCENES_FOLDER = "scenes"
SHEET_MARKS = (0.0, 1.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class ScoreSettings:
    """What decides a scene's numbers besides its video; a scene scored with other settings is scored again."""

    estimator: str = "colmap"  # a key of ESTIMATORS
    estimator_weights: str | None = None  # folder of the learned estimator
    lpips_weights: str | None = None  # AlexNet backbone state dict (torchvision layout)
    musiq_weights: str | None = None
    vbench: bool = False
    interval: int = INTERVAL
    max_pairs: int = MAX_PAIRS
    marks: tuple[float, ...] = GT_MARKS

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise BenchError(f"--estimator {self.estimator!r}: choose one of {', '.join(ESTIMATORS)}")
        if (self.estimator == "learned") != (self.estimator_weights is not None):
            raise BenchError("--weights goes with --estimator learned (the learned estimator's folder), and only "
                             "with it")

    def fingerprint(self) -> str:
        """A short hash of the settings and the contents' identity of every weights file they name."""
        doc = asdict(self)
        for key in ("estimator_weights", "lpips_weights", "musiq_weights"):
            if doc[key] is not None:
                doc[key] = _file_identity(Path(doc[key]))
        doc["version"] = SCORES_VERSION
        return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _file_identity(path: Path) -> str:
    """Name, size and modification time of a file or folder's files: enough to notice other weights."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files if p.exists())


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- camera accuracy ------------------------------------------------------------------------------------------


def remap_frame(index: int, from_fps: float, to_fps: float) -> int:
    """The frame at the same time in a video at ``to_fps`` (nearest frame)."""
    return int(round(index * to_fps / from_fps))


def sample_frames(num_video_frames: int, video_fps: float, num_path_frames: int, path_fps: float,
                  interval: int = INTERVAL) -> tuple[np.ndarray, np.ndarray]:
    """``(video_idx, path_idx)``: every ``interval``-th video frame and the requested path's frame at the same
    time, as long as both exist."""
    video_idx = np.arange(0, num_video_frames, interval)
    path_idx = np.array([remap_frame(int(v), video_fps, path_fps) for v in video_idx], dtype=np.int64)
    keep = path_idx < num_path_frames
    return video_idx[keep], path_idx[keep]


def camera_accuracy(reference_c2w: np.ndarray, estimate_c2w: np.ndarray, *, drop_first: bool, sample_fps: float,
                    registered: np.ndarray | None = None, times_s: np.ndarray | None = None) -> dict:
    """The release's camera metrics of ``estimate_c2w`` against ``reference_c2w`` (both ``(N, 4, 4)`` c2w at the
    same sampled times, ``sample_fps`` apart) plus ATE, RPE over 1 s and ScaleErr, as a JSON-ready dict with the
    per-frame errors and both paths (relative, aligned) for plots. ``registered``: ``(N,)`` frames the estimator
    placed itself; the rest are counted as failed."""
    ref, est = np.asarray(reference_c2w, np.float64), np.asarray(estimate_c2w, np.float64)
    n = min(len(ref), len(est))
    ref, est = ref[:n], est[:n]
    reg = np.ones(n, bool) if registered is None else np.asarray(registered, bool)[:n]
    times = np.arange(n) / sample_fps if times_s is None else np.asarray(times_s, np.float64)[:n]
    start = 1 if drop_first else 0
    errs = camera_errors(ref, est, alignment="sim3_extrinsics", drop_first=drop_first)
    # RPE on the same relative paths (its own Umeyama fit; relative motions do not see the frame of reference).
    rel_ref, rel_est = relative_poses(ref[start:]), relative_poses(est[start:])
    rpe = trajectory_errors(rel_ref, rel_est, fps=sample_fps, delta_s=RPE_DELTA_S) if len(rel_ref) >= 2 else None
    out = {
        "RotErr": errs.RotErr, "TransErr": errs.TransErr_rel, "CamMC": errs.CamMC_rel, "ATE": errs.ATE,
        "ScaleErr": errs.ScaleErr, "scale": errs.scale,
        "RPE_trans_per_s": None if rpe is None or errs.TransErr_rel is None else rpe.rpe_trans / rpe.delta_s,
        "RPE_rot_deg_per_s": None if rpe is None else rpe.rpe_rot_deg / rpe.delta_s,
        "frames": errs.num_frames, "frames_failed": int(np.sum(~reg[start:])), "frame0_dropped": bool(drop_first),
        "translation_defined": errs.translation_defined,
        "per_frame": {"time_s": times[start:], "RotErr": errs.rot_err_per_frame,
                      "TransErr": errs.trans_err_per_frame, "CamMC": errs.cammc_per_frame},
        "path": {"requested": errs.reference_c2w[:, :3, 3], "estimated": errs.aligned_c2w[:, :3, 3]},
    }
    return out


def _estimate_camera(frames: np.ndarray, scene: BenchScene, video_fps: float, backend: PoseBackend,
                     refiner: bool, interval: int) -> dict:
    video_idx, path_idx = sample_frames(len(frames), video_fps, scene.num_frames, scene.fps, interval)
    if len(video_idx) - int(refiner) < 2:
        return {"status": "failed", "reason": f"only {len(video_idx)} sampled frames; at least {2 + int(refiner)} "
                "are needed"}
    h, w = frames.shape[1:3]
    # The benchmark's intrinsics are in pixels of the first-frame image; the video may be another size.
    intr = Intrinsics.from_matrices(scene.intrinsics[path_idx], *scene.image_size).rescaled(w, h)
    result = backend.estimate(frames[video_idx], intr, video_fps / interval)
    registered = np.asarray(result.registered, bool)
    base = {"estimator": result.backend, "sampled_video_frames": [int(video_idx[0]), int(video_idx[-1]), interval],
            "registered": int(registered.sum()), "sampled": len(video_idx)}
    if registered.sum() < 2:
        return {**base, "status": "failed", "reason": "the pose estimator placed fewer than 2 frames",
                "frames_failed": int(len(registered) - registered.sum())}
    cam = camera_accuracy(scene.c2w[path_idx], result.c2w, drop_first=refiner, sample_fps=video_fps / interval,
                          registered=registered, times_s=video_idx / video_fps)
    return {**base, "status": "ok", **cam}


# -- frames ---------------------------------------------------------------------------------------------------


class LpipsScorer:
    """LPIPS (AlexNet) through the ``lpips`` package, with the AlexNet backbone from a file the user provides
    (torchvision's ``alexnet`` state dict, keys ``features.N.weight``/``.bias``); the package's own linear heads
    are used. Nothing is downloaded."""

    def __init__(self, weights: str | Path):
        weights = weights_file("--lpips-weights", weights,
                               "torchvision's AlexNet weights, e.g. alexnet-owt-7be5be79.pth")
        lpips = require_package("lpips", "--lpips-weights needs the lpips package (with torchvision): pip install "
                                "lpips (or sana-wm[bench-score])")
        import torch

        # pnet_rand: the backbone starts random instead of being downloaded; the user's weights replace it below.
        self.net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        load_alexnet_backbone(self.net.net, state, weights)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``(P,)`` distances between ``(P, H, W, 3)`` uint8 frames."""
        import torch

        def tensor(x):
            return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 127.5 - 1.0

        with torch.no_grad():
            return self.net(tensor(a), tensor(b)).reshape(-1).double().numpy()


def load_alexnet_backbone(backbone, state: dict, path: Path) -> None:
    """Copy torchvision AlexNet ``features.N.*`` tensors into lpips' sliced backbone, whose slices keep the
    original layer indices as child names; every layer with parameters must be covered."""
    import torch

    layers = {int(idx): mod for _, part in backbone.named_children() for idx, mod in part.named_children()}
    loaded = set()
    with torch.no_grad():
        for idx, mod in layers.items():
            for name, param in mod.named_parameters(recurse=False):
                key = f"features.{idx}.{name}"
                if key not in state:
                    raise BenchError(f"--lpips-weights {path}: no {key!r}; expected torchvision's AlexNet state dict")
                if tuple(state[key].shape) != tuple(param.shape):
                    raise BenchError(f"--lpips-weights {path}: {key!r} has shape {tuple(state[key].shape)}, AlexNet "
                                     f"needs {tuple(param.shape)}")
                param.copy_(state[key])
                loaded.add(key)
    if not loaded:
        raise BenchError(f"--lpips-weights {path}: no AlexNet layer found in the backbone")


def revisit_scores(frames: np.ndarray, pairs: Sequence[tuple[int, int]], *, path_fps: float, video_fps: float,
                   max_pairs: int = MAX_PAIRS, lpips: LpipsScorer | None = None) -> dict:
    """PSNR / SSIM (uniform 11x11) / LPIPS between the frames of the first ``max_pairs`` revisit pairs (indices at
    ``path_fps``, remapped by time to ``video_fps``); pairs past the video's end are skipped and listed."""
    used, skipped = [], []
    for a, b in list(pairs)[:max_pairs]:
        va, vb = remap_frame(a, path_fps, video_fps), remap_frame(b, path_fps, video_fps)
        (used if max(va, vb) < len(frames) else skipped).append((int(a), int(b), va, vb))
    out: dict = {"pairs": [list(p) for p in used], "skipped_pairs": [list(p[:2]) for p in skipped],
                 "available_pairs": len(pairs)}
    if not used:
        out.update(status="no pairs", PSNR=None, SSIM=None, LPIPS=None)
        return out
    ia = np.array([p[2] for p in used])
    ib = np.array([p[3] for p in used])
    psnr = psnr_frames(frames[ia], frames[ib])
    ssim = ssim_frames(frames[ia], frames[ib], window="uniform")
    out.update(status="ok", PSNR=float(np.mean(psnr)), SSIM=float(np.mean(ssim)), psnr_per_pair=psnr,
               ssim_per_pair=ssim)
    if lpips is None:
        out.update(LPIPS=None, lpips_status="not computed (no --lpips-weights)")
    else:
        d = lpips(frames[ia], frames[ib])
        out.update(LPIPS=float(np.mean(d)), lpips_per_pair=d, lpips_status="computed")
    return out


def _resize_to(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])


def ground_truth_scores(frames: np.ndarray, video_fps: float, truth: np.ndarray, truth_fps: float,
                        marks: Sequence[float] = GT_MARKS) -> dict:
    """PSNR / SSIM (uniform 11x11) of the video against the exact render at each mark (seconds); a mark past the
    end of either is skipped and listed. The render is resized to the video's size when they differ."""
    at, skipped = {}, []
    for t in marks:
        vi, ti = int(round(t * video_fps)), int(round(t * truth_fps))
        if vi >= len(frames) or ti >= len(truth):
            skipped.append(t)
            continue
        gt = _resize_to(truth[ti:ti + 1], frames.shape[1:3])
        at[f"{t:g}"] = {"PSNR": float(psnr_frames(frames[vi:vi + 1], gt)[0]),
                        "SSIM": float(ssim_frames(frames[vi:vi + 1], gt, window="uniform")[0]),
                        "video_frame": vi, "truth_frame": ti}
    return {"marks": at, "skipped_marks": skipped, "resized": tuple(truth.shape[1:3]) != tuple(frames.shape[1:3])}


# -- one scene, one run ---------------------------------------------------------------------------------------


@dataclass
class _Tools:
    backend: PoseBackend
    lpips: LpipsScorer | None
    musiq: MusiqScorer | None


def _tools(settings: ScoreSettings) -> _Tools:
    if settings.vbench:
        refusal = vbench_refusal()
        if refusal:
            raise BenchError(refusal)
    options = {"weights": settings.estimator_weights} if settings.estimator == "learned" else {}
    return _Tools(make_backend(ESTIMATORS[settings.estimator], **options),
                  LpipsScorer(settings.lpips_weights) if settings.lpips_weights else None,
                  MusiqScorer(settings.musiq_weights) if settings.musiq_weights else None)


def score_scene(scene: BenchScene, frames: np.ndarray, video_fps: float, *, refiner: bool, tools: _Tools,
                settings: ScoreSettings, truth: tuple[np.ndarray, float] | None = None) -> dict:
    """Every measure of the module doc for one scene's video ``(F, H, W, 3)`` uint8 (not yet JSON-ready)."""
    if len(frames) < 2:
        raise BenchError(f"scene {scene.name}: the video has {len(frames)} frame(s); at least 2 are needed")
    record = {
        "scene": scene.name, "category": scene.category, "split": scene.split,
        "video": {"frames": len(frames), "fps": video_fps, "size": [int(frames.shape[2]), int(frames.shape[1])],
                  "seconds": len(frames) / video_fps},
        "camera": _estimate_camera(frames, scene, video_fps, tools.backend, refiner, settings.interval),
        "revisit": revisit_scores(frames, scene.evaluation_pairs, path_fps=scene.fps, video_fps=video_fps,
                                  max_pairs=settings.max_pairs, lpips=tools.lpips),
        "temporal": temporal_degradation(frames, video_fps, tools.musiq),
        "ground_truth": None if truth is None else ground_truth_scores(frames, video_fps, *truth, settings.marks),
    }
    return record


def _scene_json(out: Path, scene: str) -> Path:
    return out / SCENES_FOLDER / f"{scene}.json"


def _done(path: Path, fingerprint: str, video_sha1: str) -> dict | None:
    """The stored record when it is valid JSON scored with these settings from this video, else None."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    video = record.get("video") if isinstance(record, dict) else None
    if (not isinstance(video, dict) or record.get("settings_fingerprint") != fingerprint
            or video.get("sha1") != video_sha1):
        return None
    return record


def score_run(run_dir: Path, settings: ScoreSettings | None = None, *, out: Path | None = None,
              scenes: Sequence[str] | None = None, progress: bool = False) -> dict:
    """Score every scene of the run that has a video (or ``scenes``), resumably, then write the report.
    Returns the report (:func:`sana_wm.bench.report.write_report`)."""
    settings = settings or ScoreSettings()
    info: RunInfo = read_run(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "scores"
    wanted = list(info.scenes) if scenes is None else list(scenes)
    unknown = [s for s in wanted if s not in info.scenes]
    if unknown:
        raise BenchError(f"--scenes: {', '.join(unknown)} not in the run {run_dir} (its scenes: "
                         f"{', '.join(info.scenes[:5])}{', ...' if len(info.scenes) > 5 else ''})")
    bench = {s.name: s for s in read_bench(info.bench_root, info.split, wanted)}
    with folder_lock(out, "sana-wm bench score"):  # two scorers never write into one report folder
        return _score_scenes(info, bench, wanted, settings, out, progress)


def _score_scenes(info: RunInfo, bench: dict[str, BenchScene], wanted: list[str], settings: ScoreSettings, out: Path,
                  progress: bool) -> dict:
    from sana_wm.bench.report import write_report
    from sana_wm.pipeline.video import read_video

    fingerprint = settings.fingerprint()
    tools: _Tools | None = None  # built on the first scene that needs scoring (loading weights takes time)
    (out / SCENES_FOLDER).mkdir(parents=True, exist_ok=True)
    items = wanted
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(wanted, desc="bench score", unit="scene")
    missing, skipped, scored = [], [], []
    for name in items:
        video = video_path(info.run_dir, name)
        if not video.is_file():
            missing.append(name)
            continue
        digest = _sha1(video)
        if _done(_scene_json(out, name), fingerprint, digest) is not None:
            skipped.append(name)
            continue
        tools = tools or _tools(settings)
        frames, fps = read_video(video)
        if not fps > 0:
            fps = info.fps
        truth_path = ground_truth_video(info.bench_root, info.split, name)
        truth = read_video(truth_path) if truth_path is not None else None
        record = score_scene(bench[name], frames, fps, refiner=info.refiner, tools=tools, settings=settings,
                             truth=truth)
        record["video"].update(path=str(video), sha1=digest)
        record["settings_fingerprint"] = fingerprint
        record["settings"] = {**asdict(settings), "marks": list(settings.marks)}
        if settings.vbench:
            record["vbench"] = vbench_scores(video, out / "vbench", name)
        sheet_rows = [("generated", frames)]
        if truth is not None:  # the render on the video's timeline and at its size, for a sheet of one layout
            idx = np.round(np.arange(len(frames)) * truth[1] / fps).astype(np.int64)
            sheet_rows.append(("ground truth", _resize_to(truth[0][idx[idx < len(truth[0])]], frames.shape[1:3])))
        marks = [t for t in SHEET_MARKS if t * fps < len(frames)]
        save_png(contact_sheet(sheet_rows, marks, fps), out / "plots" / f"{name}_contact.png")
        write_text_atomic(_scene_json(out, name), json.dumps(json_ready(record), indent=1))
        scored.append(name)
    return write_report(out, info, scenes=wanted, missing=missing, scored=scored, skipped=skipped)

