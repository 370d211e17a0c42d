"""Frames per second of the CPU ray caster (sana_wm.synth) at several resolutions.

For each scene (kind x seed) a short walking trajectory is rendered ``--repeats`` times after a warm-up;
the reported speed is frames / median wall time, per scene and pooled over scenes (total frames over
the sum of per-scene medians). Also printed: frames per CPU-second of this process (all threads), which
is less disturbed by other load on a shared machine. Example:

    python benchmarks/bench_synth.py --threads 2 --sizes 64 128 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sana_wm.camera import Trajectory
from sana_wm.synth import SCENE_KINDS, generate_scene, look_along, render


def walk(scene, seed: int, frames: int) -> Trajectory:
    """From a spawn pose, walk forward 4 cm and turn 1 degree per frame (about 0.6 m/s at 16 fps)."""
    start = scene.spawn_pose(np.random.default_rng(seed))
    forward = start[:3, 2]
    yaw0 = np.arctan2(forward[0], forward[2])
    poses = []
    for i in range(frames):
        yaw = yaw0 + np.radians(i)
        heading = np.array([np.sin(yaw), 0.0, np.cos(yaw)])
        poses.append(look_along(start[:3, 3] + 0.04 * i * forward, heading))
    return Trajectory(np.stack(poses), fps=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="square image sizes")
    ap.add_argument("--kinds", nargs="+", default=list(SCENE_KINDS), choices=SCENE_KINDS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frames", type=int, default=16, help="frames per trajectory")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per scene (median is reported)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads before rendering; the renderer uses it as its worker count")
    ap.add_argument("--workers", type=int, default=None,
                    help="render threads (default: torch's thread count, see sana_wm.synth.render)")
    ap.add_argument("--shadows", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--supersample", type=int, default=1)
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    workers = torch.get_num_threads() if args.workers is None else args.workers
    print(f"torch {torch.__version__}, {workers} render workers, shadows={args.shadows}, "
          f"supersample={args.supersample}, {args.frames} frames/trajectory, median of {args.repeats}")
    scenes = [(kind, seed, generate_scene(seed, kind)) for kind in args.kinds for seed in args.seeds]
    for size in args.sizes:
        total_frames, total_time, total_cpu = 0, 0.0, 0.0
        per_kind: dict[str, list[float]] = {}
        for kind, seed, scene in scenes:
            traj = walk(scene, seed, args.frames)

            def run(scene=scene, traj=traj, size=size):
                render(scene, traj, size, size, shadows=args.shadows, supersample=args.supersample,
                       workers=args.workers)

            run()  # warm-up
            times, cpu_times = [], []
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
            med = statistics.median(times)
            total_frames += args.frames
            total_time += med
            total_cpu += statistics.median(cpu_times)
            per_kind.setdefault(kind, []).append(args.frames / med)
        detail = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in per_kind.items())
        print(f"{size}x{size}: {total_frames / total_time:7.1f} frames/s  (median per kind: {detail}; "
              f"{total_frames / total_cpu:.1f} frames per CPU-second)")


if __name__ == "__main__":
    main()
