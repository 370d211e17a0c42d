"""End-to-end generation cost of each variant, with and without the stage-2 refiner, at a tiny config on CPU.

The models are the test suite's tiny random-weight ones in the released folder layouts (``tiny`` transformer,
a ~0.4 M-parameter LTX-2 VAE, 2-layer Gemma-2 and Gemma-3, a 2-layer LTX-2 refiner), written once to a
temporary folder. Each measurement runs in a fresh Python process that loads the pipeline and calls
``generate``, writing the MP4 as a user would (variant default steps: 60 with CFG 5 for bidirectional and
chunk-causal, the 4-step list for streaming).

* **compute**: wall seconds of one ``generate`` call (text encoders, stage 1, refiner, VAE decode, MP4) per
  second of video produced (``video_frames / fps``; the refined video has one frame fewer), median of
  ``--runs``; runs with and without the refiner alternate in one process (order flipped every round), so a
  shared machine's load drifts over both alike;
* **peak**: in a fresh process per (variant, refiner), one ``generate``: the process's peak RSS (``ru_maxrss``)
  minus its RSS after loading the models, i.e. the working memory of generation on top of the weights (one-time
  allocations of a first call included: kernels, codec, lazy buffers), and the total peak RSS. ``--trace-at N``
  also reports the peak RSS reached by the time the MP4 held N frames (e.g. 10 s vs 60 s of one streaming run).

    python benchmarks/bench_pipeline.py                          # 3-second videos, all variants, +/- refiner
    python benchmarks/bench_pipeline.py --variants streaming --frames 961 --skip-time --trace-at 161 961

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("bidirectional", "chunk-causal", "streaming")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------------
# Tiny models in the released layouts
# ------------------------------------------------------------------------------------------------
def build_models(base: Path, image_size: tuple[int, int]) -> dict[str, str]:
    import torch
    import yaml
    from safetensors.torch import save_file

    from sana_wm.model import build_model

    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path[:0] = [str(tests), str(tests / "pipeline")]  # the test suite's tiny-model fixtures
    from pipeline_helpers import save_tiny_refiner

    from tiny_models import save_tiny_text_encoder, tiny_vae

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in build_model("tiny").state_dict().items()}
    config = yaml.safe_dump({"sana_wm": {"transformer": "tiny", "image_size": list(image_size), "fps": 16}})
    text = save_tiny_text_encoder(base / "gemma-2-2b-it")
    bi, cc, st = base / "SANA-WM_bidirectional", base / "SANA-WM_chunk_causal", base / "SANA-WM_streaming"
    (bi / "dit").mkdir(parents=True)
    save_file(state, str(bi / "dit" / "sana_wm_1600m_720p.safetensors"))
    tiny_vae(causal_decoder=False).save_pretrained(bi / "vae")
    save_tiny_refiner(bi / "refiner")
    (cc / "dit").mkdir(parents=True)
    save_file(state, str(cc / "dit" / "sana_wm_chunk_causal_1600m_720p.safetensors"))
    (st / "sana_dit").mkdir(parents=True)
    torch.save({"generator": state}, st / "sana_dit" / "model.pt")
    tiny_vae(causal_decoder=True).save_pretrained(st / "ltx2_causal_vae")
    save_tiny_refiner(st / "refiner_diffusers", text_encoder_dir=st / "gemma3_12b")
    for root in (bi, cc, st):
        (root / "config.yaml").write_text(config)
    return {"bidirectional": str(bi), "chunk-causal": str(cc), "streaming": str(st), "text_encoder": str(text),
            "image": str(_image(base / "start.png", image_size))}


def _image(path: Path, image_size: tuple[int, int]) -> Path:
    import numpy as np
    from PIL import Image

    h, w = image_size
    ys, xs = np.mgrid[0:h, 0:w]
    Image.fromarray(np.stack([xs * 2 % 256, ys * 3 % 256, (xs + ys) % 256], -1).astype(np.uint8)).save(path)
    return path


# ------------------------------------------------------------------------------------------------
# Workers, each in its own process
# ------------------------------------------------------------------------------------------------
def _load(models: dict, variant: str, refine: bool):
    from sana_wm.pipeline import SanaWMPipeline

    vae = models["bidirectional"] + "/vae" if variant == "chunk-causal" else None
    refiner = models["bidirectional"] if (refine and variant == "chunk-causal") else refine
    return SanaWMPipeline.from_pretrained(models[variant], text_encoder=models["text_encoder"], vae=vae,
                                          dtype="fp32", device="cpu", refiner=refiner)


def time_worker(args, models: dict, variant: str, frames: int) -> dict:
    """Alternate runs without and with the refiner in one process (the order flips every round), so that the
    load of a shared machine drifts over both alike."""
    from sana_wm.camera.actions import action_to_trajectory

    pipe = _load(models, variant, True)
    trajectory = action_to_trajectory(f"w-{frames}")
    seconds = {False: [], True: []}
    video_frames = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for refine in ((False, True) if run % 2 == 0 else (True, False)):
                started = time.perf_counter()
                result = pipe.generate(models["image"], trajectory, num_frames=frames, seed=run, refine=refine,
                                       output=Path(tmp) / "run.mp4", progress=False)
                seconds[refine].append(time.perf_counter() - started)
                video_frames[refine] = result.num_frames
    return {"seconds": {str(k): v for k, v in seconds.items()},
            "video_frames": {str(k): v for k, v in video_frames.items()}, "fps": pipe.fps}


def memory_worker(args, models: dict, variant: str, frames: int, refine: bool) -> dict:
    """One generation; after every MP4 write, the frames written so far and the process's peak RSS."""
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline.video import VideoWriter

    pipe = _load(models, variant, refine)
    loaded = _rss_bytes()
    trace = []
    write = VideoWriter.write

    def traced_write(self, batch):
        write(self, batch)
        trace.append((self.num_frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))

    VideoWriter.write = traced_write
    with tempfile.TemporaryDirectory() as tmp:
        pipe.generate(models["image"], action_to_trajectory(f"w-{frames}"), num_frames=frames, seed=0,
                      output=Path(tmp) / "run.mp4", progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"loaded": loaded, "peak_total": peak, "peak_above_loaded": peak - loaded, "trace": trace}


def run_worker(args, models: dict, *worker_args) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(worker_args), "--runs", str(args.runs),
           "--threads", str(args.threads), "--models", json.dumps(models)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {worker_args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_when(trace: list, frames: int) -> int:
    """The peak RSS recorded when the video first held at least ``frames`` frames (or at its end, for a video
    that is shorter: the refined one has one frame fewer)."""
    frames = min(frames, trace[-1][0])
    return next(peak for written, peak in trace if written >= frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--frames", type=int, default=49, help="requested frames (default: 49 = 3 s)")
    parser.add_argument("--height", type=int, default=128, help="image height (default 128: 4 latent rows)")
    parser.add_argument("--width", type=int, default=192, help="image width (default 192: 6 latent columns)")
    parser.add_argument("--runs", type=int, default=5, help="generate calls per point (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--skip-time", action="store_true", help="memory only")
    parser.add_argument("--trace-at", type=int, nargs="*", default=[],
                        help="also report the peak RSS reached by the time the video had this many frames")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        task, *rest = json.loads(args.worker)
        models = json.loads(args.models)
        result = time_worker(args, models, *rest) if task == "time" else memory_worker(args, models, *rest)
        print(json.dumps(result))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), (args.height, args.width))
        for variant in args.variants:
            timing = None if args.skip_time else run_worker(args, models, "time", variant, args.frames)
            for refine in (False, True):
                memory = run_worker(args, models, "memory", variant, args.frames, refine)
                row = {"variant": variant, "refiner": refine, "frames": args.frames, **memory}
                if timing is not None:
                    seconds = timing["seconds"][str(refine)]
                    video_s = timing["video_frames"][str(refine)] / timing["fps"]
                    row.update(seconds=seconds, video_frames=timing["video_frames"][str(refine)],
                               compute_per_video_s=statistics.median(seconds) / video_s)
                row["trace_at"] = {n: peak_when(memory["trace"], n) for n in args.trace_at}
                rows.append(row)
                print(f"{variant} refiner={refine}: {row.get('compute_per_video_s', float('nan')):.2f} s/s, "
                      f"peak +{row['peak_above_loaded'] / 2**20:.0f} MB", file=sys.stderr)
    print("| variant | refiner | compute s per video s (runs) | peak above loaded (MB) | peak RSS (MB) |"
          + "".join(f" peak RSS at {n} frames (MB) |" for n in args.trace_at))
    print("|---|---|---:|---:|---:|" + "---:|" * len(args.trace_at))
    for r in rows:
        timing = "-" if "seconds" not in r else f"{r['compute_per_video_s']:.2f} ({len(r['seconds'])})"
        traced = "".join(f" {r['trace_at'][n] / 2**20:.1f} |" for n in args.trace_at)
        print(f"| {r['variant']} | {'yes' if r['refiner'] else 'no'} | {timing} | "
              f"{r['peak_above_loaded'] / 2**20:.0f} | {r['peak_total'] / 2**20:.0f} |{traced}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
