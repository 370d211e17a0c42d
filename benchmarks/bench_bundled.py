"""Time and memory of the bundled model (`sana-wm-synth`) on this machine's CPU: the issue's budgets are
10 s of 16 fps video in <= 2 minutes and 60 s in <= 10 minutes on 2 cores, with memory that does not grow
with length.

For each length (seconds) a fresh Python process loads the bundled model and generates from a bundled example
(its path extended by holding the last pose), writing the MP4 as a user would; it reports the wall time of
``generate`` and the process's peak RSS (``ru_maxrss``). Median of ``--runs`` runs per length.

    python benchmarks/bench_bundled.py --seconds 10 60 --runs 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worker(seconds: float, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sana_wm.bundled import bundled_model_dir, example_files
    from sana_wm.camera.formats import read_trajectory
    from sana_wm.pipeline import SanaWMPipeline

    image, camera = next(iter(example_files().values()))
    pipe = SanaWMPipeline.from_pretrained(bundled_model_dir(), device="cpu", dtype="fp32")
    traj = read_trajectory(camera, width=128, height=128)
    frames = 1 + 24 * round(seconds * pipe.fps / 24)  # whole streaming chunks
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = pipe.generate(image, traj, num_frames=frames, extend="hold", output=Path(tmp) / "v.mp4",
                               progress=False)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds_of_video": result.num_frames / pipe.fps, "frames": result.num_frames, "wall_s": wall,
            "peak_rss_mib": peak / 1024, "loaded_rss_mib": loaded_rss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.threads)))
        return
    rows = []
    for seconds in args.seconds:
        runs = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--worker", str(seconds), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        rows.append((seconds, runs))
    print("| video | frames | wall s (median) | runs | s per video s | peak RSS MiB (median) | RSS after load MiB |")
    print("|---|---|---|---|---|---|---|")
    for _, runs in rows:
        wall = statistics.median(r["wall_s"] for r in runs)
        peak = statistics.median(r["peak_rss_mib"] for r in runs)
        loaded = statistics.median(r["loaded_rss_mib"] for r in runs)
        video = runs[0]["seconds_of_video"]
        each = ", ".join(f"{r['wall_s']:.1f}" for r in runs)
        print(f"| {video:.1f} s | {runs[0]['frames']} | {wall:.1f} | {each} | {wall / video:.2f} | {peak:.0f} "
              f"| {loaded:.0f} |")


if __name__ == "__main__":
    main()
