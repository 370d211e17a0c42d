"""Annotation accuracy and speed on realistic synthetic footage with exact ground truth.

For each clip (a synth scene and path style), the footage is rendered and degraded as a camera would
(motion blur, exposure drift, lens distortion, sensor noise, H.264; :mod:`sana_wm.synth.footage`) and
written as an MP4 with its ground truth beside it (cached in ``--out``). Each pose backend then annotates it
end to end (decode, shot cut, poses, metric scale from the ground-truth depth sidecar, quality; the lens
given as ``--fov``, as the footage's), and the clip's path is compared with the truth:

* ATE after a similarity fit, as a percentage of the true path length; RPE per second (translation,
  rotation); scale error ``|s - 1|`` of the similarity that aligns the (metric) estimate to the truth;
* fraction of frames the backend registered itself; wall time per frame and frames per second.

``opencv`` is the estimator ``sana-wm eval synth`` uses (:mod:`sana_wm.geometry.odometry`, default config).
The machine's load average is recorded with the numbers: other processes on a shared machine slow them.

    python benchmarks/bench_annotate.py --out runs/bench_annotate --seconds 10 --clips walk:3 orbit:5
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def run(out: Path, clips: list[str], seconds: float, size: tuple[int, int], backends: list[str]) -> dict:
    from sana_wm.annotate.pipeline import AnnotateConfig, annotate_video
    from sana_wm.geometry import trajectory_errors
    from sana_wm.synth.footage import FootageConfig, write_footage

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in clips:
        style, seed = spec.split(":")
        cfg = FootageConfig(seconds=seconds, fps=10.0, size=size, style=style)
        video = out / f"{style}-{seed}-{size[1]}x{size[0]}-{seconds:g}s.mp4"
        if not video.exists():
            t = time.perf_counter()
            write_footage(video, int(seed), cfg, progress=True)
            print(f"{video.name}: rendered in {time.perf_counter() - t:.0f} s", flush=True)
        with np.load(video.with_suffix(".truth.npz")) as z:
            truth = z["c2w"]
        fov = 2 * np.degrees(np.arctan(size[1] / 2 / np.load(video.with_suffix(".truth.npz"))["K"][0, 0]))
        for backend in backends:
            load = os.getloadavg()
            t = time.perf_counter()
            res = annotate_video(video, AnnotateConfig(fps=10.0, width=size[1], fov=float(fov), backend=backend))
            wall = time.perf_counter() - t
            row = {"clip": video.stem, "backend": backend, "frames": res.num_frames, "wall_s": wall,
                   "s_per_frame": wall / res.num_frames, "fps": res.num_frames / wall,
                   "load_before": load[0], "load_after": os.getloadavg()[0]}
            shots = [s for s in res.shots if s.clip is not None]
            if len(shots) != 1:
                row["error"] = f"{len(res.shots)} shots, {len(shots)} annotated: {[s.reasons for s in res.shots]}"
            else:
                s = shots[0]
                e = trajectory_errors(truth[s.start:s.stop], s.clip.c2w, fps=10.0)
                prov = s.clip.meta["annotate"]["provenance"]
                row.update(ate_percent=e.ate_percent, ate_m=e.ate, rpe_trans_m_per_s=e.rpe_trans / e.delta_s,
                           rpe_rot_deg_per_s=e.rpe_rot_deg / e.delta_s, scale_error=e.scale_error,
                           registered=s.clip.quality["registered_fraction"], kept=s.kept, reasons=s.reasons,
                           path_length_m=e.path_length, scale_source=prov["scale"]["source"],
                           scale_spread=prov["scale"]["spread"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"size": list(size), "seconds": seconds, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_annotate"))
    ap.add_argument("--clips", nargs="+", default=["walk:3", "orbit:5"], metavar="STYLE:SEED")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="360x640", help="HxW")
    ap.add_argument("--backends", nargs="+", default=["pycolmap", "opencv"])
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    result = run(args.out, args.clips, args.seconds, (h, w), args.backends)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'clip':28s} {'backend':9s} {'ATE %':>6s} {'RPE m/s':>8s} {'RPE deg/s':>9s} {'scale err':>9s} "
          f"{'reg':>5s} {'s/frame':>8s} {'fps':>5s} {'load':>5s}")
    for r in result["rows"]:
        if "error" in r:
            print(f"{r['clip']:28s} {r['backend']:9s} {r['error']}")
            continue
        print(f"{r['clip']:28s} {r['backend']:9s} {r['ate_percent']:6.2f} {r['rpe_trans_m_per_s']:8.3f} "
              f"{r['rpe_rot_deg_per_s']:9.2f} {r['scale_error']:9.3f} {r['registered']:5.2f} "
              f"{r['s_per_frame']:8.2f} {r['fps']:5.2f} {r['load_before']:5.1f}")


if __name__ == "__main__":
    main()
