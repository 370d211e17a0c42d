"""The bundled model on a small `bench synth` benchmark, against the repeat-first-frame and static-camera
baselines, scored by `bench score`; all on the CPU.

Steps (each resumable: rerunning with the same --out reuses what is there):

1. `bench synth`: ``--scenes`` scenes of ``--seconds`` s at the bundled model's 128x128, with exact ground truth.
2. `bench run` of the bundled model on ``--split``.
3. The two baselines as runs in the same layout: the first-frame image repeated for as many frames as the
   model's video (a model that ignores time), and the bundled model asked for a camera that stands still
   (``sana_wm.eval.baselines.identity_trajectory``) -- both scored against the requested paths; and the exact
   ground-truth renders as a run of their own, whose camera score is the estimator's floor.
4. `bench score` of the three runs (``--estimator``, default opencv: pycolmap is fragile on 128-pixel frames).

Prints the aggregate of each run as a Markdown table, the time of each stage and the load average, and writes
them to OUT/summary.json. Example:

    OMP_NUM_THREADS=2 python benchmarks/bench_benchmark_cpu.py --out /tmp/bench-cpu --scenes 4 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from sana_wm.bench.layout import RunInfo, ground_truth_video, read_bench, run_info_json, video_path
from sana_wm.bench.runner import RunSettings, run_bench, scene_trajectory
from sana_wm.bench.score import ScoreSettings, score_run
from sana_wm.bench.synth import build_synth_bench
from sana_wm.eval.baselines import identity_trajectory, repeat_first_frame
from sana_wm.io import write_json_atomic
from sana_wm.pipeline.video import VideoWriter, read_video


def _write_run_json(run: Path, bench: Path, split: str, scenes, model: str, fps: float) -> None:
    """run.json of a run made here rather than by `bench run` (no refiner: frame 0 is kept, as for the model)."""
    info = RunInfo(run_dir=run, bench_root=bench.resolve(), split=split, scenes=tuple(scenes), model=model,
                   settings={"baseline": model, "seconds": None}, refiner=False, fps=fps)
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run / "run.json", run_info_json(info))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--run-scenes", type=int, help="generate and score only the first N scenes (default: all)")
    ap.add_argument("--split", default="simple_60s", choices=("simple_60s", "hard_60s"))
    ap.add_argument("--estimator", default="opencv", choices=("opencv", "colmap"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: Path = args.out
    bench = out / "bench"
    times: dict[str, float] = {}

    t = time.perf_counter()
    if not bench.is_dir():
        build_synth_bench(bench, num_scenes=args.scenes, seconds=args.seconds)
    times["bench synth"] = time.perf_counter() - t

    scenes = read_bench(bench, args.split)[:args.run_scenes]
    names = [s.name for s in scenes]
    t = time.perf_counter()
    run_bench(bench, args.split, out / "run_model", RunSettings(model="sana-wm-synth"), scenes=names)
    times["bench run (model)"] = time.perf_counter() - t

    from sana_wm.pipeline import SanaWMPipeline

    t = time.perf_counter()
    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth")
    static = out / "run_static_camera"
    _write_run_json(static, bench, args.split, names, "static camera (sana-wm-synth)", pipe.fps)
    for scene in scenes:
        target = video_path(static, scene.name)
        if not target.is_file():
            traj, _ = scene_trajectory(scene, pipe.fps, None, pipe.snap_num_frames)
            pipe.generate(str(scene.image), identity_trajectory(traj), output=target, progress=False)
    times["static-camera baseline"] = time.perf_counter() - t

    t = time.perf_counter()
    repeat = out / "run_repeat_first"
    _write_run_json(repeat, bench, args.split, names, "repeat first frame", pipe.fps)
    for scene in scenes:
        target = video_path(repeat, scene.name)
        if not target.is_file():
            model_frames, fps = read_video(video_path(out / "run_model", scene.name))
            from PIL import Image

            first = np.asarray(Image.open(scene.image).convert("RGB").resize(model_frames.shape[2:0:-1]))
            with VideoWriter(target, fps) as w:
                w.write(repeat_first_frame(first, None, len(model_frames)))
    times["repeat-first baseline"] = time.perf_counter() - t

    # The exact renders scored as a run: what a perfect model gets, i.e. the estimator's own floor.
    truth_run = out / "run_ground_truth"
    _write_run_json(truth_run, bench, args.split, names, "ground truth render", scenes[0].fps)
    for scene in scenes:
        target = video_path(truth_run, scene.name)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ground_truth_video(bench, args.split, scene.name), target)

    rows = {}
    for label, run in (("sana-wm-synth", out / "run_model"), ("static camera", static),
                       ("repeat first frame", repeat), ("ground truth (estimator floor)", truth_run)):
        t = time.perf_counter()
        report = score_run(run, ScoreSettings(estimator=args.estimator), progress=True)
        times[f"bench score ({label})"] = time.perf_counter() - t
        rows[label] = report["aggregate"]["split"]

    load = os.getloadavg()
    lines = ["| method | RotErr (deg) | TransErr | CamMC | ATE | RPE rot deg/s | frames failed | revisit PSNR | "
             "revisit SSIM | GT PSNR 1/5/10/30/60 s | Delta ln sharpness |", "|---" * 11 + "|"]
    for label, agg in rows.items():
        c, r = agg["camera"], agg["revisit"]
        gt = agg.get("ground_truth", {})

        def f(v, d=2):
            return "-" if v is None else (f"{v:.{d}f}" if isinstance(v, (int, float)) else str(v))

        gts = "/".join(f(gt.get(m, {}).get("PSNR"), 1) for m in ("1", "5", "10", "30", "60"))
        lines.append(f"| {label} | {f(c['RotErr'])} | {f(c['TransErr'])} | {f(c['CamMC'])} | {f(c['ATE'], 3)} | "
                     f"{f(c['RPE_rot_deg_per_s'])} | {c['frames_failed']} of {c['frames']} | {f(r['PSNR'])} | "
                     f"{f(r['SSIM'], 3)} | {gts} | {f(agg['temporal']['delta_log_sharpness'], 3)} |")
    table = "\n".join(lines)
    print(table)
    for k, v in times.items():
        print(f"{k}: {v:.1f} s")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    write_json_atomic(out / "summary.json", {"args": {k: str(v) for k, v in vars(args).items()}, "times_s": times,
                                             "load_average": load, "aggregate": rows, "table": table})


if __name__ == "__main__":
    main()
