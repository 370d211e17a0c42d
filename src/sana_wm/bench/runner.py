"""``sana-wm bench run``: generate every scene of a benchmark split with one model, resumable and sharded.

Each scene's camera path (the ``.npz``) is given to :meth:`SanaWMPipeline.generate` with the scene's first-frame
image and prompt; the pipeline crops the image to the model's size and carries the intrinsics (in pixels of the
source image) through the same crop. A path at another frame rate than the model's is resampled in time first,
``--seconds`` keeps its first seconds, and the frame count is then cut to what the model makes (``8k + 1``;
streaming ``24k + 1``). The videos go to ``RUN/videos/<scene>.mp4`` with the pipeline's sidecar, published only
when complete, so a killed run leaves no half video under the final name.

Resuming: a scene whose video and sidecar exist and whose sidecar records this run's seed, sampler settings,
frame count and camera path is skipped; anything else is generated (again). ``run.json`` records the settings
that took effect; a run folder made with other settings is refused unless ``overwrite``.

Sharding: shard ``i/n`` takes every n-th scene starting at i, so shards are disjoint and together cover the
split; the seed is per scene, not per process, so any sharding makes the same videos. Under ``torchrun`` the
shard comes from ``RANK``/``WORLD_SIZE``; :func:`run_bench_ray` runs the shards as Ray tasks. Shard 0 writes
``run.json``; the other shards only check it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sana_wm.bench.layout import (
    RUN_FILE,
    BenchError,
    BenchScene,
    RunInfo,
    read_bench,
    read_run,
    run_info_json,
    video_path,
)
from sana_wm.camera.trajectory import Trajectory, TrajectoryError
from sana_wm.errors import UserError
from sana_wm.limits import check_finite

__all__ = ["REFINE_MODES", "RunSettings", "RunSummary", "Shard", "parse_shard", "run_bench", "run_bench_ray",
           "scene_trajectory", "shard_from_env"]

REFINE_MODES = ("auto", "on", "off")  # auto: the refiner when the model has one (the reference setting)


@dataclass(frozen=True)
class RunSettings:
    """What the user asked for; None means the model's own default (the released reference settings for the
    released variants: 60 steps, CFG 5, flow shift 8; the bundled model's config.yaml for it)."""

    model: str = "sana-wm-synth"
    variant: str | None = None
    steps: int | None = None
    cfg: float | None = None
    shift: float | None = None
    seed: int = 42
    refine: str = "auto"
    refiner_seed: int | None = None  # None: the seed, as the release (seed 42, refiner seed 42)
    seconds: float | None = None  # keep only the first seconds of every path (None: the whole path)
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.refine not in REFINE_MODES:
            raise BenchError(f"--refine {self.refine!r}: choose one of {', '.join(REFINE_MODES)}")
        # No upper bound needed: --seconds only shortens a path, whose length the reader has bounded.
        check_finite(self.seconds, "--seconds", low=0.0, low_open=True)


@dataclass(frozen=True)
class Shard:
    """Every ``count``-th scene starting at ``index`` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and isinstance(self.index, int) and 1 <= self.count <= 100_000
                and 0 <= self.index < self.count):
            raise BenchError(f"--shard {self.index}/{self.count}: need 0 <= i < n (shard i of n, counted from 0)")

    def take(self, items: Sequence) -> list:
        return list(items[self.index::self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> :class:`Shard` (``i`` counted from 0)."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise BenchError(f"--shard {text!r}: write it as i/n, e.g. 0/4 for the first of four shards")
    return Shard(int(parts[0]), int(parts[1]))


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of a process started by ``torchrun`` (``RANK`` and ``WORLD_SIZE``), else None."""
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        return Shard(int(env["RANK"]), int(env["WORLD_SIZE"]))
    except ValueError:
        raise BenchError(f"RANK={env['RANK']!r} WORLD_SIZE={env['WORLD_SIZE']!r}: not whole numbers; "
                         "unset them or start the run with torchrun") from None


@dataclass
class RunSummary:
    run_dir: Path
    shard: Shard
    generated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished by an earlier run


def scene_trajectory(scene: BenchScene, fps: float, seconds: float | None,
                     snap: Callable[[int], int]) -> tuple[Trajectory, int]:
    """The scene's camera path as generated: resampled in time to ``fps``, its first ``seconds`` kept, cut to
    ``snap(frames)`` frames (the model's frame grid). Returns ``(trajectory, frames asked for)``."""
    from sana_wm.camera.resample import resample

    traj = scene.trajectory()
    if abs(traj.fps - fps) > 1e-9:
        traj = resample(traj, fps=fps)
    wanted = traj.num_frames
    if seconds is not None:
        wanted = min(wanted, int(round(seconds * fps)) + 1)
    try:
        n = snap(wanted)
    except TrajectoryError as exc:  # too short for the model's frame grid
        raise BenchError(f"scene {scene.name}: {exc} (the path gives {wanted} frames at {fps:g} fps); "
                         "use a longer --seconds") from None
    return traj.take(np.arange(n)), wanted


def _load_pipeline(settings: RunSettings):
    import torch

    from sana_wm.pipeline import SanaWMPipeline

    device = settings.device
    if device is None and torch.cuda.is_available():
        # torchrun gives every rank its own GPU; a lone process takes the first.
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    refiner = {"auto": "auto", "on": True, "off": None}[settings.refine]
    return SanaWMPipeline.from_pretrained(settings.model, settings.variant, device=device, dtype=settings.dtype,
                                         refiner=refiner)


def _resolved_settings(pipe, settings: RunSettings, scene: BenchScene) -> dict:
    """The settings that take effect on this pipeline (the pipeline's own plan for the first scene), JSON-ready.
    Warnings about options that cannot act are shown here, once."""
    from sana_wm.pipeline.pipeline import GenerationRequest

    request = GenerationRequest(image=scene.image, trajectory=scene.trajectory(), **_request_options(pipe, settings,
                                                                                                     scene))
    plan = pipe.plan(request)
    refiner = plan.refiner
    resolved = {
        "variant": pipe.variant, "steps": plan.steps, "cfg": plan.cfg, "shift": plan.shift, "seed": settings.seed,
        "refine": refiner is not None, "refiner_seed": None if refiner is None else refiner.seed,
        "seconds": settings.seconds, "image_size": list(pipe.image_size), "fps": pipe.fps,
        "prompts": "ignored: the model takes no text" if pipe.text_free else "used",
        "dtype": str(pipe.transformer.dtype).removeprefix("torch."),
    }
    return json.loads(json.dumps(resolved))  # what run.json will read back, for comparing with it


def _request_options(pipe, settings: RunSettings, scene: BenchScene) -> dict:
    options = {"steps": settings.steps, "cfg": settings.cfg, "shift": settings.shift, "seed": settings.seed,
               "prompt": None if pipe.text_free else scene.prompt}
    if pipe.refiner is not None or settings.refiner_seed is not None:  # without a refiner the plan warns
        options["refiner_settings"] = {"seed": settings.seed if settings.refiner_seed is None
                                       else settings.refiner_seed}
    return options


def _finished(video: Path, resolved: dict, traj) -> bool:
    """Whether ``video`` is a complete result of this scene with these settings (video + matching sidecar)."""
    from sana_wm.pipeline.sidecar import read_sidecar, sidecar_path

    if not video.is_file() or video.stat().st_size == 0 or not sidecar_path(video).is_file():
        return False
    try:
        record = read_sidecar(sidecar_path(video))
        s = record["settings"]
        refiner_seed = None if s["refiner"] is None else s["refiner"]["seed"]
        same = (record["seed"] == resolved["seed"] and s["steps"] == resolved["steps"]
                and s["cfg"] == resolved["cfg"] and s["shift"] == resolved["shift"]
                and s["variant"] == resolved["variant"] and refiner_seed == resolved["refiner_seed"]
                and (s["refiner"] is not None) == resolved["refine"] and record["num_frames"] == traj.num_frames)
        if not same:
            return False
        c2w = np.asarray(record["trajectory"]["c2w"], dtype=np.float64)
        intr = np.asarray(record["trajectory"]["intrinsics"]["values"], dtype=np.float64)
        return (c2w.shape == traj.c2w.shape and np.allclose(c2w, traj.c2w, rtol=0, atol=1e-9)
                and intr.shape == traj.intrinsics.values.shape
                and np.allclose(intr, traj.intrinsics.values, rtol=1e-12, atol=1e-9))
    except (KeyError, TypeError, ValueError, UserError):  # a damaged or foreign sidecar: the scene is made again
        return False


def _check_or_write_run(out: Path, info: RunInfo, *, write: bool, overwrite: bool) -> None:
    path = out / RUN_FILE
    if path.is_file() and not overwrite:
        old = read_run(out)
        differs = [name for name, a, b in (("--bench", str(old.bench_root), str(info.bench_root)),
                                           ("--split", old.split, info.split), ("--model", old.model, info.model))
                   if a != b]
        differs += [f"{key} ({old.settings.get(key)!r} -> {info.settings.get(key)!r})"
                    for key in sorted(set(old.settings) | set(info.settings))
                    if old.settings.get(key) != info.settings.get(key)]
        if differs:
            raise BenchError(f"--out {out}: this run folder was made with other settings: {', '.join(differs)}; "
                             "choose another --out, or --overwrite to generate every scene again")
        scenes = list(old.scenes) + [s for s in info.scenes if s not in old.scenes]
        if scenes == list(old.scenes):
            return
        info = RunInfo(**{**asdict(info), "scenes": tuple(scenes)})
    if write:
        from sana_wm.io import write_json_atomic

        write_json_atomic(path, run_info_json(info))


def run_bench(bench: Path, split: str, out: Path, settings: RunSettings | None = None, *,
              scenes: Sequence[str] | None = None, shard: Shard | None = None, overwrite: bool = False,
              progress: bool = True, pipeline=None) -> RunSummary:
    """Generate the scenes of ``split`` (all, or ``scenes``; this process's ``shard`` of them) into ``out``.

    ``shard``: default the torchrun rank's (:func:`shard_from_env`), else all scenes. ``overwrite``: generate
    every scene of the shard again and replace ``run.json``. ``pipeline``: an already loaded
    :class:`~sana_wm.pipeline.SanaWMPipeline` to use instead of loading ``settings.model`` (its ``model``,
    ``variant``, ``device`` and ``dtype`` are then only recorded)."""
    from tqdm.auto import tqdm

    from sana_wm.pipeline.errors import OptionWarning

    settings = settings or RunSettings()
    bench, out = Path(bench), Path(out)
    env_shard = shard_from_env()
    if shard is not None and env_shard is not None and shard != env_shard:
        raise BenchError(f"--shard {shard} disagrees with torchrun's RANK/WORLD_SIZE ({env_shard}); leave --shard "
                         "out under torchrun")
    shard = shard or env_shard or Shard()
    all_scenes = read_bench(bench, split, scenes)  # every input checked before a model loads
    if not all_scenes:
        raise BenchError(f"--bench {bench}: split {split} lists no scenes")
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file, not a folder")
    pipe = pipeline if pipeline is not None else _load_pipeline(settings)
    if settings.refine == "on" and pipe.refiner is None:
        raise BenchError(f"--refine on: the model {settings.model} has no refiner; use --refine auto or off")
    resolved = _resolved_settings(pipe, settings, all_scenes[0])
    info = RunInfo(run_dir=out, bench_root=bench.resolve(), split=split,
                   scenes=tuple(s.name for s in all_scenes), model=settings.model, settings=resolved,
                   refiner=bool(resolved["refine"]), fps=float(pipe.fps))
    out.mkdir(parents=True, exist_ok=True)
    _check_or_write_run(out, info, write=shard.index == 0, overwrite=overwrite)

    summary = RunSummary(out, shard)
    mine = shard.take(all_scenes)
    label = f"bench {split}" + (f" shard {shard}" if shard.count > 1 else "")
    for scene in tqdm(mine, desc=label, unit="scene", disable=not progress):
        traj, _ = scene_trajectory(scene, pipe.fps, settings.seconds, pipe.snap_num_frames)
        target = video_path(out, scene.name)
        if not overwrite and _finished(target, resolved, traj):
            summary.skipped.append(scene.name)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptionWarning)  # shown once, by the plan above
            pipe.generate(str(scene.image), traj, output=target, progress=False,
                          **_request_options(pipe, settings, scene))
        summary.generated.append(scene.name)
    return summary


def _ray_shard(bench: str, split: str, out: str, settings: RunSettings, scenes, shard: Shard,
               overwrite: bool) -> RunSummary:
    return run_bench(Path(bench), split, Path(out), settings, scenes=scenes, shard=shard, overwrite=overwrite,
                     progress=False)


def run_bench_ray(bench: Path, split: str, out: Path, settings: RunSettings | None = None, *,
                  tasks: int | None = None, address: str | None = "local", scenes: Sequence[str] | None = None,
                  overwrite: bool = False, progress: bool = True) -> list[RunSummary]:
    """:func:`run_bench` as ``tasks`` Ray tasks, shard ``i/tasks`` each (default: one per GPU of the cluster,
    else one). ``address``: "local" starts a Ray on this machine, any other value joins that cluster; an
    already initialised Ray is used as it is. Each task asks Ray for one GPU when the cluster has any."""
    try:
        import ray
    except ImportError:
        raise BenchError("--ray needs Ray: pip install 'sana-wm[ray]'") from None
    from tqdm.auto import tqdm

    settings = settings or RunSettings()
    read_bench(Path(bench), split, scenes)  # refuse bad input before starting anything
    started = not ray.is_initialized()
    if started:
        local = address in (None, "local")
        # Tasks return small records (videos go to files): a local Ray needs little object store.
        ray.init(address=None if local else address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, **({"object_store_memory": 256 * 2**20} if local else {}))
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = tasks if tasks is not None else max(1, gpus)
        if not isinstance(count, int) or count < 1 or count > 100_000:
            raise BenchError(f"--ray-tasks {count}: must be a whole number >= 1")
        task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(_ray_shard)
        pending = [task.remote(str(bench), split, str(out), settings, scenes, Shard(i, count), overwrite)
                   for i in range(count)]
        results = []
        with tqdm(total=count, desc=f"bench {split} (ray)", unit="shard", disable=not progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                results.append(ray.get(ready[0]))
                bar.update(1)
        return sorted(results, key=lambda r: r.shard.index)
    finally:
        if started:
            ray.shutdown()
