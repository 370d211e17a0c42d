"""End-to-end generation cost of each variant, with and without the stage-2 refiner, at a tiny config on CPU.

The models are the test suite's tiny random-weight ones in the released folder layouts (``tiny`` transformer,
a ~0.4 M-parameter LTX-2 VAE, 2-layer Gemma-2 and Gemma-3, a 2-layer LTX-2 refiner), written once to a
temporary folder. Each (variant, refiner, frames) point runs in a fresh Python process that loads the pipeline
and calls ``generate`` ``--runs`` times, writing the MP4 as a user would (variant default steps: 60 with CFG 5
for bidirectional and chunk-causal, the 4-step list for streaming).

* **compute**: wall seconds of one ``generate`` call (text encoders, stage 1, refiner, VAE decode, MP4) per
  second of video produced (``video_frames / fps``; the refined video has one frame fewer), median of the runs;
* **peak**: the process's peak RSS (``ru_maxrss``) minus its RSS after loading the models, i.e. the working
  memory of generation on top of the weights; the total peak RSS is printed too.

    python benchmarks/bench_pipeline.py                          # 3-second videos, all variants, +/- refiner
    python benchmarks/bench_pipeline.py --variants streaming --refiner both --frames 161 961 --runs 3

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
    from sana_wm.pipeline.refiner import save_tiny_refiner
    from sana_wm.pipeline.text import save_tiny_text_encoder
    from sana_wm.pipeline.vae import tiny_vae

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
# Worker: one point in its own process
# ------------------------------------------------------------------------------------------------
def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline import SanaWMPipeline

    models = json.loads(args.models)
    variant = args.variants[0]
    refine = args.refiner == "on"
    vae = models["bidirectional"] + "/vae" if variant == "chunk-causal" else None
    refiner = models["bidirectional"] if (refine and variant == "chunk-causal") else refine
    pipe = SanaWMPipeline.from_pretrained(models[variant], text_encoder=models["text_encoder"], vae=vae,
                                          dtype="fp32", device="cpu", refiner=refiner)
    trajectory = action_to_trajectory(f"w-{args.frames[0]}")
    base_rss = _rss_bytes()
    seconds, video_frames = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            started = time.perf_counter()
            result = pipe.generate(models["image"], trajectory, num_frames=args.frames[0], seed=run,
                                   output=Path(tmp) / f"run{run}.mp4", progress=False)
            seconds.append(time.perf_counter() - started)
            video_frames = result.num_frames
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "video_frames": video_frames, "fps": pipe.fps,
                      "peak_above_loaded": peak - base_rss, "peak_total": peak, "loaded": base_rss}))


def run_point(args, variant: str, refine: bool, frames: int, models: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--variants", variant, "--refiner", "on" if refine else "off",
           "--frames", str(frames), "--runs", str(args.runs), "--threads", str(args.threads),
           "--models", json.dumps(models)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {variant} refine={refine} frames={frames} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--refiner", choices=("both", "on", "off"), default="both")
    parser.add_argument("--frames", type=int, nargs="+", default=[49], help="requested frames (default: 49 = 3 s)")
    parser.add_argument("--height", type=int, default=128, help="image height (default 128: 4 latent rows)")
    parser.add_argument("--width", type=int, default=192, help="image width (default 192: 6 latent columns)")
    parser.add_argument("--runs", type=int, default=3, help="generate calls per point (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    refines = {"both": (False, True), "on": (True,), "off": (False,)}[args.refiner]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp), (args.height, args.width))
        for variant in args.variants:
            for frames in args.frames:
                for refine in refines:
                    r = run_point(args, variant, refine, frames, models)
                    video_s = r["video_frames"] / r["fps"]
                    rows.append({"variant": variant, "refiner": refine, "frames": frames, **r,
                                 "compute_per_video_s": statistics.median(r["seconds"]) / video_s})
                    print(f"{variant} refiner={refine} frames={frames}: {rows[-1]['compute_per_video_s']:.2f} s/s, "
                          f"peak +{r['peak_above_loaded'] / 2**20:.0f} MB", file=sys.stderr)
    print("| variant | refiner | frames (video) | compute s per video s | peak above loaded (MB) | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        mb = r["peak_above_loaded"] / 2**20, r["peak_total"] / 2**20
        print(f"| {r['variant']} | {'yes' if r['refiner'] else 'no'} | {r['frames']} ({r['video_frames']}) | "
              f"{r['compute_per_video_s']:.2f} | {mb[0]:.0f} | {mb[1]:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
