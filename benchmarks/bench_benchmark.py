"""Wall time of `sana-wm bench synth` and `sana-wm bench run` with the bundled model, on the CPU.

Builds a `bench synth` folder (``--scenes`` scenes, ``--seconds`` long paths, 128x128, both splits), then
generates its simple split with the bundled model (``sana-wm-synth``, its own settings: streaming, 3 steps)
and runs it again to time the resume check alone. Reports seconds per scene and per generated frame. The
machine's load average is recorded with the numbers: other processes on a shared machine slow them.

    python benchmarks/bench_benchmark.py --out runs/bench_benchmark --scenes 3 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_benchmark"))
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import torch

    from sana_wm.bench.runner import RunSettings, run_bench
    from sana_wm.bench.synth import build_synth_bench
    from sana_wm.pipeline import SanaWMPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    bench, run = args.out / "bench", args.out / "run"
    load = [round(x, 2) for x in os.getloadavg()]

    t = time.perf_counter()
    synth = build_synth_bench(bench, num_scenes=args.scenes, seconds=args.seconds, progress=False)
    synth_s = time.perf_counter() - t

    t = time.perf_counter()
    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    summary = run_bench(bench, "simple_60s", run, RunSettings(), pipeline=pipe, progress=False)
    run_s = time.perf_counter() - t
    t = time.perf_counter()
    again = run_bench(bench, "simple_60s", run, RunSettings(), pipeline=pipe, progress=False)
    resume_s = time.perf_counter() - t
    frames = pipe.snap_num_frames(synth.num_frames)

    result = {
        "scenes": args.scenes, "seconds": args.seconds, "path_frames": synth.num_frames, "video_frames": frames,
        "torch_threads": torch.get_num_threads(), "load_average_at_start": load,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "synth_s": round(synth_s, 2), "synth_s_per_path": round(synth_s / (2 * args.scenes), 2),
        "model_load_s": round(load_s, 2), "run_s": round(run_s, 2),
        "run_s_per_scene": round(run_s / len(summary.generated), 2),
        "run_ms_per_frame": round(1000 * run_s / (len(summary.generated) * frames), 1),
        "resume_check_s": round(resume_s, 3), "resumed_skipped": len(again.skipped),
    }
    print(json.dumps(result, indent=1))
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
