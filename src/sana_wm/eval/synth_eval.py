"""The evaluation protocol on the synthetic world, where the ground truth of every frame is exact.

For each held-out scene seed and each camera path, :func:`evaluate_synth`

1. builds the scene and places the path in it (``'explore:<style>'``: an exploration path of the scene,
   see :mod:`sana_wm.synth.paths`; a preset name such as ``'orbit'``: the preset started from the scene's
   spawn pose; a trajectory file: read, made relative to its first frame, started from the spawn pose;
   file intrinsics are ignored, every clip uses the ``fov_deg`` lens at ``size``),
2. renders the ground truth ``num_frames = round(max(seconds_marks) * fps) + 1`` frames,
3. calls ``generate_fn(first_gt_frame, request, num_frames)`` where ``request`` is the path relative to
   its first frame (frame 0 = identity, OpenCV axes, metres) with the render's intrinsics and ``fps``,
4. scores the video and the two baselines of :mod:`sana_wm.eval.baselines` (repeat the first frame; the
   same model asked for a static camera) with the same machinery:

   * PSNR / SSIM (Gaussian SSIM, :mod:`sana_wm.eval.metrics`) against the ground truth **at each mark**
     ``t`` seconds: the mean over frames ``round(t * fps) +- mark_window`` (clipped to the video; the
     default window 0 means exactly the frame at ``t``). A mark past the end of the video is ``None``.
     Also the mean over all frames after frame 0 (``all``).
   * camera following: poses re-estimated from the video (:func:`~sana_wm.geometry.odometry.
     estimate_poses` with the true intrinsics) against the requested path (:func:`~sana_wm.eval.
     pose_metrics.camera_errors`, SANA-WM alignment: RotErr, TransErr_rel, CamMC_rel, ATE), over the
     whole video (``camera``) and **up to each mark** ``t`` (``camera_marks``: the estimator run again on
     frames ``0 .. round(t * fps)`` alone and scored against the path up to there; a mark before frame 2
     or past the end is ``None``), so that camera following is judged at the same times as the frames.
   * image motion (:mod:`sana_wm.eval.motion`): the affine motion (ECC alignment) of every frame pair
     against the ground truth's: ``gain`` (1 moves like the truth, 0 stands still) and ``corr`` (right
     direction and timing). It needs no feature matches, so it still reads blurry frames on which the
     pose estimator fails. Frame pairs the alignment fails on are counted (``failed_pairs`` of ``pairs``,
     per clip, in the aggregate and in report.md), not taken for a camera standing still.
   * ``estimator_floor``: the same pose estimation on the ground-truth video itself, i.e. the error a
     perfect model would get, which is what the estimator can resolve at this size.
   * ``autoencoder_ceiling`` (with ``ceiling_fn``): the ground truth through the model's own autoencoder,
     scored like a model: the best a latent model can reach through it.

5. writes ``clips/<key>.json`` as each clip finishes (a rerun with the same settings skips it), one
   contact sheet ``contact/<key>.png`` per clip (rows: ground truth, model, baselines; columns: marks),
   and at the end ``report.json`` (per clip, aggregated, and aggregated per trajectory, methods side by
   side; ``paired``: the model against each baseline clip by clip, with bootstrap intervals) and
   ``contact_sheet.png`` (all clips stacked), and ``report.md`` (the aggregate as markdown tables).

Reproducing numbers: the camera rows near the start of a clip can hinge on single feature matches, and
those move with the last bits of the generated frames, which depend on the CPU and on PyTorch's thread
count. Every clip and the report therefore record their ``environment`` (:func:`environment`: library
versions, threads, machine); compare numbers measured in the same one.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sana_wm.camera.formats import read_trajectory
from sana_wm.camera.presets import PRESETS, make_preset
from sana_wm.camera.trajectory import Trajectory, TrajectoryError
from sana_wm.errors import InputError
from sana_wm.eval.baselines import GenerateFn, repeat_first_frame, static_camera
from sana_wm.eval.metrics import psnr_frames, ssim_frames
from sana_wm.eval.motion import affine_flow, motion_agreement
from sana_wm.eval.pose_metrics import camera_errors
from sana_wm.eval.reporting import cell as _cell
from sana_wm.eval.reporting import contact_sheet as _contact_sheet
from sana_wm.eval.reporting import json_ready as _json_ready
from sana_wm.eval.reporting import save_png as _save_png
from sana_wm.geometry.odometry import PoseEstimatorConfig, estimate_poses
from sana_wm.io import write_text_atomic
from sana_wm.synth.paths import PATH_STYLES, exploration_path
from sana_wm.synth.render import render
from sana_wm.synth.scene import Scene, generate_scene

__all__ = ["SynthClip", "build_clip", "environment", "evaluate_synth", "make_oracle", "mark_frames",
           "report_markdown"]

METHODS = ("model", "repeat_first", "static_camera", "autoencoder_ceiling")
CAMERA_KEYS = ("RotErr", "TransErr_rel", "CamMC_rel", "ATE")
MOTION_KEYS = ("gain", "corr")
SCORES_VERSION = 4  # raised whenever the scoring changes: clips scored by another version are scored again


def environment() -> dict:
    """What the numbers of a run depend on besides its settings: library versions, PyTorch's CPU thread
    count and the machine (see the module docstring)."""
    import cv2
    import scipy

    env = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
           "opencv": cv2.__version__, "machine": platform.machine(), "processor": platform.processor() or None}
    try:
        import torch
    except ImportError:  # an evaluation of precomputed videos needs no PyTorch
        env.update(torch=None, torch_threads=None)
    else:
        env.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return env


@dataclass(frozen=True, eq=False)
class SynthClip:
    """One evaluation item: a scene, the path placed in it, the request given to the model, the truth."""

    key: str
    seed: int
    trajectory_spec: str
    scene: Scene
    spawn: np.ndarray  # (4, 4) c2w of frame 0 in scene coordinates
    request: Trajectory  # relative to frame 0, with intrinsics and fps: what generate_fn receives
    gt_rgb: np.ndarray  # (F, H, W, 3) uint8


def _clip_key(seed: int, spec: str) -> str:
    name = Path(spec).stem if Path(spec).suffix else spec
    return f"seed{seed:05d}_" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def _place_path(scene: Scene, seed: int, spec: str, num_frames: int, fps: float) -> Trajectory:
    """The path of ``spec`` in scene coordinates (see module doc)."""
    if spec.startswith("explore:"):
        style = spec.split(":", 1)[1]
        if style not in PATH_STYLES:
            raise TrajectoryError(f"trajectory {spec!r}: unknown exploration style; choose explore:<style> with "
                                  f"style in "
                             f"{', '.join(PATH_STYLES)}")
        return exploration_path(scene, seconds=(num_frames - 1) / fps, fps=fps, style=style, seed=seed)
    spawn = scene.spawn_pose(np.random.default_rng(seed))
    if spec in PRESETS:
        rel = make_preset(spec, fps=fps, num_frames=num_frames)
    elif Path(spec).exists():
        rel = read_trajectory(spec).relative_to_first()
        rel = rel.take(np.arange(min(num_frames, rel.num_frames)))
    else:
        raise TrajectoryError(f"trajectory {spec!r} is neither 'explore:<style>', a preset ({', '.join(PRESETS)}) nor "
                         "an existing trajectory file")
    return Trajectory(spawn @ rel.c2w, None, fps, {"source": spec})


def build_clip(seed: int, trajectory: str, *, size: tuple[int, int], fps: float, num_frames: int,
               fov_deg: float = 70.0, render_frames: bool = True) -> SynthClip:
    """Scene ``seed`` with ``trajectory`` placed in it and (if ``render_frames``) its ground-truth video;
    ``size = (H, W)``. Without ``render_frames`` only frame 0 is rendered (enough to recognise the clip)."""
    height, width = size
    scene = generate_scene(int(seed))
    world = _place_path(scene, int(seed), str(trajectory), int(num_frames), float(fps))
    shown = world if render_frames else world.take([0])
    result = render(scene, shown, width, height, fov_deg=fov_deg)
    request = Trajectory(world.c2w, result.intrinsics.take([0]), fps,
                         {"source": str(trajectory), "seed": int(seed)}).relative_to_first()
    return SynthClip(_clip_key(int(seed), str(trajectory)), int(seed), str(trajectory), scene, world.c2w[0].copy(),
                     request, result.rgb)


def make_oracle(seeds: Sequence[int], trajectories: Sequence[str], *, size: tuple[int, int], fps: float,
                seconds_marks: Sequence[float] = (1, 5, 10), fov_deg: float = 70.0) -> GenerateFn:
    """A perfect model for these clips: it recognises the scene from the first frame and renders whatever
    camera path it is asked for (so it also serves the static-camera baseline). For tests and for checking
    the protocol end to end."""
    num_frames = _num_frames(seconds_marks, fps)
    known: dict[bytes, SynthClip] = {}
    for seed in seeds:
        for spec in trajectories:
            clip = build_clip(seed, spec, size=size, fps=fps, num_frames=num_frames, fov_deg=fov_deg,
                              render_frames=False)
            known[hashlib.sha1(clip.gt_rgb[0].tobytes()).digest()] = clip

    def oracle(first_frame: np.ndarray, trajectory: Trajectory, num_frames: int) -> np.ndarray:
        clip = known.get(hashlib.sha1(np.ascontiguousarray(first_frame).tobytes()).digest())
        if clip is None:
            raise KeyError("oracle: this first frame is not one of the clips the oracle was built for")
        world = Trajectory(clip.spawn @ trajectory.c2w[:num_frames], trajectory.intrinsics.take([0]), trajectory.fps)
        return render(clip.scene, world).rgb

    return oracle


def _num_frames(seconds_marks: Sequence[float], fps: float) -> int:
    if not seconds_marks or min(seconds_marks) < 0:
        raise InputError(f"seconds_marks must be non-negative times in seconds, got {seconds_marks!r}")
    return int(round(max(seconds_marks) * fps)) + 1


def mark_frames(t: float, fps: float, num_frames: int, window: int = 0) -> np.ndarray | None:
    """Frame indices scored at mark ``t`` seconds: ``round(t * fps) +- window`` clipped to the video, or
    None if the mark is past the end."""
    centre = int(round(t * fps))
    if centre >= num_frames:
        return None
    return np.arange(max(centre - window, 0), min(centre + window, num_frames - 1) + 1)


def _check_video(video, num_frames: int, size: tuple[int, int], who: str) -> np.ndarray:
    arr = np.asarray(video)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (*size, 3):
        raise ValueError(f"{who} must return (F, {size[0]}, {size[1]}, 3) uint8 frames, got {arr.shape} {arr.dtype}")
    if len(arr) < 2:
        raise ValueError(f"{who} returned {len(arr)} frame(s); at least 2 are needed")
    return arr[:num_frames]


def _score(video: np.ndarray, clip: SynthClip, marks: Sequence[float], window: int,
           pose_config: PoseEstimatorConfig, gt_flow: np.ndarray) -> dict:
    gt = clip.gt_rgb
    n = min(len(video), len(gt))
    psnr = psnr_frames(video[:n], gt[:n])
    ssim = ssim_frames(video[:n], gt[:n])
    at = {}
    for t in marks:
        idx = mark_frames(t, clip.request.fps, n, window)
        at[f"{t:g}"] = None if idx is None else {"psnr": float(np.mean(psnr[idx])), "ssim": float(np.mean(ssim[idx])),
                                                 "frames": idx.tolist()}
    out = {"num_frames": n, "marks": at,
           "all": {"psnr": float(np.mean(psnr[1:])), "ssim": float(np.mean(ssim[1:]))} if n > 1 else None}
    out["camera"] = _camera(video[:n], clip, pose_config)
    out["camera_marks"] = _camera_marks(video[:n], clip, marks, pose_config, whole=out["camera"])
    out["motion"] = motion_agreement(video[:n], gt[:n], reference_flow=gt_flow[:n - 1])
    return out


def _camera(video: np.ndarray, clip: SynthClip, pose_config: PoseEstimatorConfig) -> dict:
    est = estimate_poses(video, clip.request.intrinsics, fps=clip.request.fps, config=pose_config)
    errs = camera_errors(clip.request, est.trajectory)
    return {**errs.summary(), "estimator": est.diagnostics()}


def _camera_marks(video: np.ndarray, clip: SynthClip, marks: Sequence[float], pose_config: PoseEstimatorConfig,
                  whole: dict | None = None) -> dict:
    """Camera errors of the video's first ``round(t * fps) + 1`` frames for each mark ``t`` (the estimator
    runs on that prefix alone); ``None`` for a mark with fewer than 3 frames or past the end. ``whole``: the
    whole video's result, reused for a mark that ends at the last frame."""
    out = {}
    for t in marks:
        end = int(round(t * clip.request.fps))
        if end < 2 or end >= len(video):
            out[f"{t:g}"] = None
        elif end == len(video) - 1 and whole is not None:
            out[f"{t:g}"] = whole
        else:
            out[f"{t:g}"] = _camera(video[:end + 1], clip, pose_config)
    return out


def _as_float(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        return float(v)
    return float(v)


def _mean(values: list) -> float | None:
    vals = [x for x in (_as_float(v) for v in values) if x is not None]
    return float(np.mean(vals)) if vals else None


def _camera_mean(cameras: list[dict]) -> dict:
    """Mean of each camera error and of the estimator's failure rate over clips' ``_camera`` results."""
    return {**{k: _mean([c[k] for c in cameras]) for k in CAMERA_KEYS},
            "failure_rate": _mean([c["estimator"]["failure_rate"] for c in cameras])}


def _aggregate(results: list[dict], marks: Sequence[float]) -> dict:
    agg = {}
    for method in (*METHODS, "estimator_floor"):
        rows = [r["methods"][method] for r in results if method in r["methods"]]
        if not rows:
            continue
        entry: dict = {"num_clips": len(rows)}
        if method != "estimator_floor":
            entry["marks"] = {}
            for t in marks:
                vals = [r["marks"].get(f"{t:g}") for r in rows]
                vals = [v for v in vals if v is not None]
                entry["marks"][f"{t:g}"] = None if not vals else {
                    "psnr": _mean([v["psnr"] for v in vals]), "ssim": _mean([v["ssim"] for v in vals]),
                    "num_clips": len(vals)}
        entry["camera"] = _camera_mean([r["camera"] for r in rows])
        entry["camera_marks"] = {}
        for t in marks:
            vals = [r.get("camera_marks", {}).get(f"{t:g}") for r in rows]
            vals = [v for v in vals if v is not None]
            entry["camera_marks"][f"{t:g}"] = None if not vals else {**_camera_mean(vals), "num_clips": len(vals)}
        if method != "estimator_floor":
            entry["motion"] = {k: _mean([r["motion"][k] for r in rows]) for k in MOTION_KEYS}
            # Frame pairs ECC could not align: failures of the measure, left out of gain and corr above.
            entry["motion"].update({k: sum(int(r["motion"].get(k, 0)) for r in rows)
                                    for k in ("pairs", "failed_pairs")})
        agg[method] = entry
    return agg


BASELINES = ("repeat_first", "static_camera")


def _paired(results: list[dict], marks: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> dict:
    """The model against each baseline clip by clip, on every scored quantity: PSNR and SSIM at each mark
    (higher is better) and the camera errors up to each mark (lower is better).

    For each, the per-clip difference is signed so that a positive value means the model is better:
    ``wins`` (clips where it is strictly better) of ``clips``, the ``mean`` difference and a 95% bootstrap
    interval of that mean (``ci95``; ``resamples`` resamplings of the clips, fixed ``seed``). With a handful of
    clips a mean can favour the model while the interval straddles 0: then the data do not tell them apart.
    """
    rng = np.random.default_rng(seed)
    quantities = [(f"{k.upper()} {t:g} s", lambda r, k=k, t=t: (r.get("marks", {}).get(f"{t:g}") or {}).get(k), 1.0)
                  for t in marks for k in ("psnr", "ssim")]
    quantities += [(f"{k} up to {t:g} s", lambda r, k=k, t=t: (r.get("camera_marks", {}).get(f"{t:g}") or {}).get(k),
                    -1.0) for t in marks for k in CAMERA_KEYS]
    out: dict = {}
    for base in BASELINES:
        pairs = [(r["methods"]["model"], r["methods"][base]) for r in results
                 if "model" in r["methods"] and base in r["methods"]]
        if not pairs:
            continue
        out[base] = {}
        for name, get, sign in quantities:
            diffs = []
            for m, b in pairs:
                vm, vb = _as_float(get(m)), _as_float(get(b))
                if vm is not None and vb is not None and math.isfinite(vm) and math.isfinite(vb):
                    diffs.append(sign * (vm - vb))
            if diffs:
                out[base][name] = paired_interval(diffs, resamples=resamples, rng=rng)
    return out


def paired_interval(diffs: Sequence[float], *, resamples: int = 2000, rng: np.random.Generator | None = None) -> dict:
    """Per-clip differences ``diffs`` (positive: better) summarised: ``wins`` (clips strictly better) of
    ``clips``, the ``mean`` and a 95% bootstrap interval of the mean (``ci95``, ``resamples`` resamplings of the
    clips; ``rng`` default seeded 0)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    d = np.asarray(diffs, dtype=np.float64)
    boot = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return {"wins": int(np.sum(d > 0)), "clips": len(d), "mean": float(d.mean()),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}


def report_markdown(report: dict) -> str:
    """The aggregate of a report as markdown tables (frames at each mark; camera following), methods side by
    side, for model cards and issue notes."""
    agg = report["aggregate"]
    marks = report["settings"]["seconds_marks"]
    methods = [m for m in (*METHODS, "estimator_floor") if m in agg]
    lines = ["| method | clips | " + " | ".join(f"PSNR {t:g} s | SSIM {t:g} s" for t in marks) + " |",
             "|---|---|" + "---|---|" * len(marks)]
    for m in methods:
        if m == "estimator_floor":
            continue
        cells = []
        for t in marks:
            v = agg[m]["marks"].get(f"{t:g}")
            cells += ["-", "-"] if v is None else [_cell(v["psnr"], 2), _cell(v["ssim"], 3)]
        lines.append(f"| {m} | {agg[m]['num_clips']} | " + " | ".join(cells) + " |")
    lines += ["", "| method | RotErr (deg) | TransErr_rel | CamMC_rel | ATE | estimator failure rate | motion gain "
              "| motion corr | motion alignment failures |", "|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        c = agg[m]["camera"]
        motion = agg[m].get("motion", {})
        failures = f"{motion['failed_pairs']}/{motion['pairs']} pairs" if "pairs" in motion else "-"
        cells = [_cell(c[k], 3) for k in (*CAMERA_KEYS, "failure_rate")] + [_cell(motion.get(k), 3)
                                                                           for k in MOTION_KEYS] + [failures]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for t in marks:  # camera following judged at the marks: the path up to t seconds
        if not any(agg[m].get("camera_marks", {}).get(f"{t:g}") for m in methods):
            continue
        lines += ["", f"Camera following up to {t:g} s:", "",
                  "| method | clips | RotErr (deg) | TransErr_rel | CamMC_rel | ATE | estimator failure rate |",
                  "|---|---|---|---|---|---|---|"]
        for m in methods:
            c = agg[m].get("camera_marks", {}).get(f"{t:g}")
            if c is not None:
                cells = [_cell(c[k], 3) for k in (*CAMERA_KEYS, "failure_rate")]
                lines.append(f"| {m} | {c['num_clips']} | " + " | ".join(cells) + " |")
    paired = report.get("paired") or {}
    names = list(dict.fromkeys(n for base in paired.values() for n in base))
    if names:
        bases = [b for b in BASELINES if b in paired]
        lines += ["", "Model against each baseline, clip by clip: clips where the model is better, mean difference "
                  "and its 95% bootstrap interval (positive: the model is better; an interval that contains 0 "
                  "does not separate them):", "",
                  "| quantity | " + " | ".join(f"vs {b}" for b in bases) + " |", "|---|" + "---|" * len(bases)]
        for n in names:
            cells = []
            for b in bases:
                c = paired[b].get(n)
                cells.append("-" if c is None else f"{c['wins']}/{c['clips']}, {c['mean']:+.3f} "
                             f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    by_trajectory = report.get("by_trajectory") or {}
    if len(by_trajectory) > 1:  # which motions a model follows: one row per trajectory and method
        lines += ["", "| trajectory | method | clips | RotErr (deg) | ATE | motion gain | motion corr |",
                  "|---|---|---|---|---|---|---|"]
        for spec, sub in by_trajectory.items():
            for m in (m for m in METHODS if m in sub):
                c, motion = sub[m]["camera"], sub[m].get("motion", {})
                cells = [_cell(c["RotErr"], 3), _cell(c["ATE"], 3)] + [_cell(motion.get(k), 3) for k in MOTION_KEYS]
                lines.append(f"| {spec} | {m} | {sub[m]['num_clips']} | " + " | ".join(cells) + " |")
    env = report.get("environment")
    if env:
        lines += ["", f"Environment: PyTorch {env.get('torch')} ({env.get('torch_threads')} threads), OpenCV "
                  f"{env.get('opencv')}, NumPy {env.get('numpy')}, Python {env.get('python')}, {env.get('machine')}."]
        others = report.get("clips_from_other_environments") or []
        if others:
            lines.append(f"{len(others)} of the clips were scored earlier in another environment (their "
                         "`environment` in clips/): " + ", ".join(others) + ".")
    return "\n".join(lines) + "\n"


def evaluate_synth(generate_fn: GenerateFn, *, seeds: Sequence[int], trajectories: Sequence[str],
                   size: tuple[int, int] = (128, 128), fps: float = 16.0,
                   seconds_marks: Sequence[float] = (1, 5, 10), out_dir, mark_window: int = 0,
                   fov_deg: float = 70.0, model_name: str = "model", baselines: bool = True,
                   estimator_floor: bool = True, pose_config: PoseEstimatorConfig | None = None,
                   ceiling_fn: Callable[[np.ndarray], np.ndarray] | None = None, progress: bool = False,
                   generator_settings: dict | None = None, weights: dict | None = None) -> dict:
    """Run the protocol of this module for every ``(seed, trajectory)``; returns the report (also written
    to ``out_dir/report.json``). ``size = (H, W)``. Clips already in ``out_dir/clips`` with the same settings
    (size, fps, marks, window, lens, estimator settings, ``weights``: a fingerprint of the model's weights by
    content, e.g. :func:`~sana_wm.eval.model_adapter.weights_fingerprint`, and ``generator_settings``: whatever
    else decides ``generate_fn``'s videos, e.g. the sampler's steps and seed) are loaded instead of recomputed.
    ``model_name`` only labels the report: the same weights under another name are the same model.

    ``ceiling_fn`` (e.g. :func:`~sana_wm.eval.model_adapter.autoencoder_roundtrip_fn`) maps the ground-truth
    video to what the model's autoencoder makes of it; scored as ``autoencoder_ceiling``, it is the best a
    latent model can do through that autoencoder, which tells a weak generator from a weak autoencoder."""
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    (out / "contact").mkdir(parents=True, exist_ok=True)
    pose_config = pose_config or PoseEstimatorConfig()
    marks = [float(t) for t in seconds_marks]
    num_frames = _num_frames(marks, fps)
    size = (int(size[0]), int(size[1]))
    settings = {"size": list(size), "fps": float(fps), "seconds_marks": marks, "mark_window": int(mark_window),
                "fov_deg": float(fov_deg), "num_frames": num_frames, "model_name": model_name,
                "baselines": bool(baselines), "estimator_floor": bool(estimator_floor),
                "autoencoder_ceiling": ceiling_fn is not None,
                "pose_config": asdict(pose_config), "scores": SCORES_VERSION,
                "generator": dict(generator_settings or {}), "weights": weights}
    keyed = {k: v for k, v in settings.items() if k != "model_name"}
    settings_hash = hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    items = [(int(s), str(t)) for s in seeds for t in trajectories]
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="evaluate", unit="clip")
    results, skipped = [], []
    env = environment()
    for seed, spec in items:
        key = _clip_key(seed, spec)
        path = out / "clips" / f"{key}.json"
        if path.is_file():
            done = json.loads(path.read_text())
            if done.get("settings_hash") == settings_hash:
                results.append(done)
                skipped.append(key)
                continue
        clip = build_clip(seed, spec, size=size, fps=fps, num_frames=num_frames, fov_deg=fov_deg)
        first = clip.gt_rgb[0].copy()
        videos = {"model": _check_video(generate_fn(first, clip.request, num_frames), num_frames, size,
                                        "generate_fn")}
        if baselines:
            videos["repeat_first"] = repeat_first_frame(first, clip.request, num_frames)
            videos["static_camera"] = _check_video(static_camera(generate_fn)(first, clip.request, num_frames),
                                                   num_frames, size, "generate_fn (static camera)")
        if ceiling_fn is not None:
            videos["autoencoder_ceiling"] = _check_video(ceiling_fn(clip.gt_rgb), num_frames, size, "ceiling_fn")
        gt_flow = affine_flow(clip.gt_rgb)
        methods = {name: _score(v, clip, marks, mark_window, pose_config, gt_flow) for name, v in videos.items()}
        if estimator_floor:
            floor = _camera(clip.gt_rgb, clip, pose_config)
            methods["estimator_floor"] = {"camera": floor, "camera_marks": _camera_marks(clip.gt_rgb, clip, marks,
                                                                                          pose_config, whole=floor)}
        record = _json_ready({"key": key, "seed": seed, "trajectory": spec, "settings_hash": settings_hash,
                              "num_frames": num_frames, "environment": env, "methods": methods})
        rows = [("ground truth", clip.gt_rgb)] + [(name.replace("_", " "), v) for name, v in videos.items()]
        _save_png(_contact_sheet(rows, marks, fps), out / "contact" / f"{key}.png")
        write_text_atomic(path, json.dumps(record, indent=1))  # an interrupted run never leaves half a result
        results.append(record)
    specs = list(dict.fromkeys(r["trajectory"] for r in results))
    by_trajectory = {spec: _aggregate([r for r in results if r["trajectory"] == spec], marks) for spec in specs}
    others = [r["key"] for r in results if r.get("environment") != env]
    report = _json_ready({"settings": settings, "settings_hash": settings_hash, "environment": env,
                          "clips_from_other_environments": others,
                          "aggregate": _aggregate(results, marks), "by_trajectory": by_trajectory,
                          "paired": _paired(results, marks),
                          "clips": results, "skipped": skipped})
    write_text_atomic(out / "report.json", json.dumps(report, indent=1))
    write_text_atomic(out / "report.md", report_markdown(report))
    sheets = [Image.open(out / "contact" / f"{r['key']}.png") for r in results
              if (out / "contact" / f"{r['key']}.png").is_file()]
    if sheets:
        whole = Image.new("RGB", (max(s.width for s in sheets), sum(s.height + 6 for s in sheets)), (255, 255, 255))
        y = 0
        for s in sheets:
            whole.paste(s, (0, y))
            y += s.height + 6
        _save_png(whole, out / "contact_sheet.png")
    return report
