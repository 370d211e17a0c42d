"""The pose estimator's floor on `bench synth` paths, quickly: the exact render of every 4th frame of each path
(what `bench score` samples) scored as a run would be, without writing a benchmark folder or a video.

For each scene (kinds in turn, as `bench synth` names them) and split: the path's turn rate (max and 95th
percentile, deg/frame), its slowest translation while turning, its revisit pairs, then RotErr / TransErr / CamMC
of the estimated path against the requested one and the frames the estimator could not place. Example:

    OMP_NUM_THREADS=1 python benchmarks/bench_benchmark_floor.py --scenes 4 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from sana_wm.bench.score import INTERVAL, camera_accuracy
from sana_wm.bench.synth import FOV_DEG, benchmark_paths, revisit_pairs
from sana_wm.camera.trajectory import Trajectory
from sana_wm.geometry.backends import make_backend
from sana_wm.synth.render import render
from sana_wm.synth.scene import SCENE_KINDS, generate_scene


def turn_deg(c2w: np.ndarray) -> np.ndarray:
    """``(F-1,)`` angle between consecutive view directions, degrees."""
    cos = np.einsum("fi,fi->f", c2w[:-1, :3, 2], c2w[1:, :3, 2])
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=16.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", default="simple_60s,hard_60s")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = int(round(args.seconds * args.fps)) + 1
    backend = make_backend("opencv")
    rows = {}
    print("| scene | split | max / p95 turn deg/frame | min step while turning m | revisit pairs | RotErr | "
          "TransErr | CamMC | frames failed | time s |")
    print("|---" * 10 + "|")
    for i in range(args.scenes):
        kind = SCENE_KINDS[i % len(SCENE_KINDS)]
        scene = generate_scene(args.seed + i, kind)
        paths = benchmark_paths(scene, args.seed + i, n, args.fps)
        for split in args.splits.split(","):
            t0 = time.perf_counter()
            c2w = paths[split]
            turns = turn_deg(c2w)
            steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
            turning = turns > 0.05
            pairs = revisit_pairs(c2w, args.fps)
            idx = np.arange(0, n, INTERVAL)
            result = render(scene, Trajectory(c2w[idx], None, args.fps / INTERVAL), args.size, args.size,
                            fov_deg=FOV_DEG)
            est = backend.estimate(result.rgb, result.trajectory.intrinsics, args.fps / INTERVAL)
            reg = np.asarray(est.registered, bool)
            cam = camera_accuracy(c2w[idx], est.c2w, drop_first=False, sample_fps=args.fps / INTERVAL,
                                  registered=reg)
            rows.setdefault(split, []).append(cam)
            print(f"| {kind} seed {args.seed + i} | {split} | {turns.max():.2f} / {np.percentile(turns, 95):.2f} | "
                  f"{steps[turning].min() if turning.any() else float('nan'):.3f} | {len(pairs)} | "
                  f"{cam['RotErr']:.2f} | {cam['TransErr']:.3f} | {cam['CamMC']:.3f} | "
                  f"{cam['frames_failed']} of {cam['frames']} | {time.perf_counter() - t0:.1f} |", flush=True)
    for split, cams in rows.items():
        print(f"{split}: mean RotErr {np.mean([c['RotErr'] for c in cams]):.2f} deg, TransErr "
              f"{np.mean([c['TransErr'] for c in cams]):.3f}, CamMC {np.mean([c['CamMC'] for c in cams]):.3f}, "
              f"frames failed {sum(c['frames_failed'] for c in cams)} of {sum(c['frames'] for c in cams)}")
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
