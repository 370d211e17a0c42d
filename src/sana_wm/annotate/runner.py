"""Annotate many inputs into one clip dataset: resumable per input, parallel over inputs.

Layout of the output folder ``OUT``::

    OUT/index.json, OUT/shard-NNNNNN.tar   the clip dataset (sana_wm.data), kept clips in input order
    OUT/annotate/settings.json             the settings of the run (a resumed run must use the same)
    OUT/annotate/report.json, report.md    every input and shot: kept or rejected, and why
    OUT/annotate/videos/KEY/               one finished input: record.json, clips/ (its own small
                                           dataset), previews/CLIP.trajectory.png, CLIP.sheet.png

Each input is annotated into ``videos/.partial-KEY-PID`` and renamed to ``videos/KEY`` only when
complete, so a killed run leaves no half input and never a half clip; running the same command again
skips the finished inputs. The dataset at the top is then assembled from the finished inputs by copying
their shards (no re-encoding), in the order the inputs were given, so the result does not depend on how
many workers ran or in which order they finished. (With ``frames_codec="png"`` the bytes are equal too;
x264 does not encode the same frames to the same bytes twice, measured even on one thread, so MP4 shards
of two runs hold the same cameras and metadata and frames that differ by the encoder's noise.)

Workers: ``workers > 1`` runs inputs in a process pool on this machine; ``ray_address`` runs them as Ray
tasks (``"local"`` starts Ray on this machine; a cluster address needs ``OUT`` on a file system every
node sees).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sana_wm.annotate.captions import CaptionModelError
from sana_wm.annotate.decode import find_inputs
from sana_wm.annotate.pipeline import AnnotateConfig, annotate_video, video_key
from sana_wm.errors import UserError
from sana_wm.geometry.learned import LearnedWeightsError
from sana_wm.io import folder_lock, write_json_atomic, write_text_atomic

__all__ = ["AnnotateError", "AnnotateSummary", "annotate"]

SETTINGS_VERSION = 2


class AnnotateError(UserError, ValueError):
    """The output folder or the inputs cannot be used as asked (another run's settings, duplicate inputs)."""


@dataclass(frozen=True)
class AnnotateSummary:
    out: Path
    inputs: int
    skipped: int  # inputs already finished by an earlier run
    clips_kept: int
    clips_rejected: int
    shots_dropped: int
    frames: int
    seconds: float
    failed: tuple[str, ...]  # inputs that could not be read (their error is in the report)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _annotate_one(path: str, key: str, videos_dir: str, config: AnnotateConfig) -> dict:
    """Annotate one input into ``videos_dir/KEY`` (atomically) and return its record. Runs in a worker."""
    from sana_wm.camera.plot import plot_trajectory
    from sana_wm.data.inspection import write_contact_sheet
    from sana_wm.data.shards import write_clips

    final = Path(videos_dir) / key
    tmp = Path(videos_dir) / f".partial-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            result = annotate_video(path, config, key=key)
            record = result.record()
        except (CaptionModelError, LearnedWeightsError):
            raise  # the run's own model, not this input, is at fault: every input would fail the same way
        except UserError as err:  # an unreadable input is reported, not fatal for the others
            record = {"input": path, "key": key, "num_frames": 0, "fps": config.fps, "seconds": 0.0,
                      "error": str(err), "shots": []}
            result = None
        if result is not None:
            previews = tmp / "previews"
            previews.mkdir()
            for shot in result.shots:
                if shot.clip is None:
                    continue
                c = shot.clip
                plot_trajectory(c.trajectory, previews / f"{c.key}.trajectory.png",
                                title=f"{c.key} ({'kept' if shot.kept else 'rejected'})")
                picks = sorted({round(i * (c.num_frames - 1) / 7) for i in range(8)})
                write_contact_sheet([(c.key, c.frames[picks])], previews / f"{c.key}.sheet.png")
            write_clips(result.clips, tmp / "clips", frames_codec=config.frames_codec)
        write_json_atomic(tmp / "record.json", record)
        if final.exists():  # an earlier run's copy of this input that the settings check let through
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _check_settings(annotate_dir: Path, settings: dict, overwrite: bool) -> None:
    path = annotate_dir / "settings.json"
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != settings:
            raise AnnotateError(f"{annotate_dir.parent} holds an annotation made with other settings or inputs "
                                f"({path}); use the same command to resume it, another --out, or --overwrite")
    if overwrite and annotate_dir.exists():
        shutil.rmtree(annotate_dir)
    annotate_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def _assemble(out: Path, keys: Sequence[str], videos_dir: Path) -> int:
    """Copy every finished input's shards into ``out`` in input order and write ``out/index.json``."""
    from sana_wm.data.shards import INDEX_NAME, DatasetIndex, ShardEntry, load_index, shard_name

    shards: list[ShardEntry] = []
    for key in keys:
        clips_dir = videos_dir / key / "clips"
        if not (clips_dir / INDEX_NAME).exists():
            continue
        for shard in load_index(clips_dir).shards:
            name = shard_name(len(shards))
            target = out / name
            tmp = out / f".{name}.partial"
            shutil.copyfile(clips_dir / shard.name, tmp)
            os.replace(tmp, target)
            clips = tuple(dataclasses.replace(c, shard=name) for c in shard.clips)
            shards.append(ShardEntry(name, shard.bytes, clips))
    for stale in out.glob("shard-*.tar"):  # shards of an earlier, larger assembly
        if stale.name not in {s.name for s in shards}:
            stale.unlink()
    write_json_atomic(out / INDEX_NAME, DatasetIndex(out, tuple(shards)).to_json(), indent=None)
    return sum(len(s.clips) for s in shards)


def _check_models(config: AnnotateConfig) -> dict[str, str]:
    """Check the user's model folders before any work (one clear message, not one per input) and return their
    content fingerprints, which the settings record so a resumed run with other weights is refused."""
    models = {}
    if config.backend == "learned":
        from sana_wm.geometry.backends import make_backend

        models["pose_weights"] = make_backend("learned", weights=config.pose_weights).fingerprint
    if config.captions.model:
        from sana_wm.annotate.captions import check_caption_model

        config.captions.check()
        models["caption_model"] = check_caption_model(config.captions.model)
    return models


def _report_md(records: list[dict], config: AnnotateConfig, models: dict[str, str]) -> str:
    c = config.captions
    captions = (f"{c.model} (fingerprint {models['caption_model']}), {c.frames} frames per clip, at most "
                f"{c.max_new_tokens} tokens, greedy" if c.model else "off")
    poses = config.backend + (f" ({config.pose_weights}, fingerprint {models['pose_weights']})"
                              if config.backend == "learned" else "")
    lines = ["# Annotation report", "", f"Inputs: {len(records)}. Poses: {poses}. Captions: {captions}. "
             "Quality thresholds: " + ", ".join(f"{k} {v:g}" for k, v in config.quality.to_json().items()) + ".", "",
             "| input | shot (frames) | clip | kept | why not |", "|---|---|---|---|---|"]
    for r in records:
        if r["error"]:
            lines.append(f"| {r['input']} | - | - | no | {r['error']} |")
        for s in r["shots"]:
            lines.append(f"| {Path(r['input']).name} | {s['start']}-{s['stop']} | {s['clip'] or '-'} | "
                         f"{'yes' if s['kept'] else 'no'} | {'; '.join(s['reasons'])} |")
    return "\n".join(lines) + "\n"


def annotate(inputs: Sequence, out, config: AnnotateConfig | None = None, *, workers: int = 1,
             ray_address: str | None = None, overwrite: bool = False, progress: bool = True) -> AnnotateSummary:
    """Annotate ``inputs`` (videos, folders of videos, image-sequence folders) into the dataset ``out``."""
    from tqdm.auto import tqdm

    cfg = config or AnnotateConfig()
    out = Path(out)
    paths = find_inputs(inputs)
    keys = [video_key(p) for p in paths]
    if len(set(keys)) != len(keys):
        dup = next(str(p) for p, k in zip(paths, keys, strict=True) if keys.count(k) > 1)
        raise AnnotateError(f"{dup} is given more than once")
    out.mkdir(parents=True, exist_ok=True)
    annotate_dir = out / "annotate"
    videos_dir = annotate_dir / "videos"
    models = _check_models(cfg)
    settings = {"version": SETTINGS_VERSION, "config": json.loads(json.dumps(cfg.to_json())),
                "inputs": [str(p.resolve()) for p in paths], "models": models}
    start = time.perf_counter()
    with folder_lock(out, "sana-wm annotate"):
        _check_settings(annotate_dir, settings, overwrite)
        videos_dir.mkdir(parents=True, exist_ok=True)
        for stale in videos_dir.glob(".partial-*"):  # a killed run's unfinished input (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        todo = [(str(p), k) for p, k in zip(paths, keys, strict=True) if not (videos_dir / k / "record.json").exists()]
        skipped = len(paths) - len(todo)
        bar = tqdm(total=len(paths), initial=skipped, unit="video", desc="annotate", disable=not progress)
        frames_done = 0

        def done(record: dict) -> None:
            nonlocal frames_done
            frames_done += record["num_frames"]
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{frames_done / max(elapsed, 1e-9):.2f} frames/s")
            bar.update(1)

        try:
            if ray_address:
                _run_ray(todo, str(videos_dir), cfg, ray_address, done)
            elif workers > 1 and len(todo) > 1:
                _run_pool(todo, str(videos_dir), cfg, workers, done)
            else:
                for path, key in todo:
                    done(_annotate_one(path, key, str(videos_dir), cfg))
        finally:
            bar.close()
        records = [json.loads((videos_dir / k / "record.json").read_text(encoding="utf-8")) for k in keys]
        _assemble(out, keys, videos_dir)
        write_json_atomic(annotate_dir / "report.json", {"config": settings["config"], "inputs": records})
        write_text_atomic(annotate_dir / "report.md", _report_md(records, cfg, models))
    shots = [s for r in records for s in r["shots"]]
    return AnnotateSummary(
        out=out, inputs=len(paths), skipped=skipped,
        clips_kept=sum(s["kept"] for s in shots),
        clips_rejected=sum((not s["kept"]) and s["clip"] is not None for s in shots),
        shots_dropped=sum(s["clip"] is None for s in shots),
        frames=frames_done, seconds=time.perf_counter() - start,
        failed=tuple(r["input"] for r in records if r["error"]))


def _run_pool(todo, videos_dir: str, cfg: AnnotateConfig, workers: int, done) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: COLMAP and torch start threads, which a forked child would inherit in an unknown state
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_annotate_one, path, key, videos_dir, cfg) for path, key in todo]
        for fut in as_completed(futures):
            done(fut.result())


def _run_ray(todo, videos_dir: str, cfg: AnnotateConfig, address: str, done) -> None:
    try:
        import ray
    except ImportError:
        raise AnnotateError("--ray needs Ray: pip install 'sana-wm[ray]'") from None
    started = not ray.is_initialized()
    if started:
        local = address == "local"
        # Tasks return small records (the clips go to files), so a local Ray needs little object store;
        # its default of 30 % of the memory would crowd out the tasks on a small machine.
        ray.init(address=None if local else address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, **({"object_store_memory": 256 * 2**20} if local else {}))
    try:
        task = ray.remote(_annotate_one)
        pending = [task.remote(path, key, videos_dir, cfg) for path, key in todo]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()
