"""Training-step time and memory: LoRA fine-tuning against a full fine-tune, on CPU.

Both variants start from the same random model and take the same training steps on the same random
batch (flow-matching loss, AdamW, grad clipping, float32):

* ``full``   every parameter trains (AdamW state for all of them);
* ``lora``   peft LoRA adapters of rank ``--rank`` on the default targets (``sana_wm.train.lora``), base frozen.

Each variant runs in a fresh Python process, so its peak RSS (``ru_maxrss``) is its own. The memory
column is that peak minus the RSS just before the first step (weights and inputs already loaded): it
holds gradients, AdamW state and activations. Step time is the wall-clock median of ``--steps`` steps
after one warm-up step (which allocates the AdamW state). ``--repeats`` repeats the whole comparison
(fresh processes each time) and reports the median of the repeats.

    python benchmarks/bench_lora.py --config small --depth 4 --frames 17 --height 4 --width 8 --threads 1

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
import time

VARIANTS = ("full", "lora")


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(args) -> None:
    import torch

    from sana_wm.model import SanaWMTransformer, get_config
    from sana_wm.train.config import LoraConfig
    from sana_wm.train.lora import apply_lora
    from sana_wm.train.objective import flow_loss, make_noisy

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = get_config(args.config).replace(depth=args.depth)
    model = SanaWMTransformer(config).train()
    if args.variant == "lora":
        adapter = apply_lora(model, LoraConfig(rank=args.rank, alpha=float(args.rank)))
        params = [p for n, p in model.named_parameters() if n in set(adapter.param_names)]
    else:
        params = list(model.parameters())
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-5, eps=1e-10, weight_decay=0.0)

    g = torch.Generator().manual_seed(1)
    T = (args.frames - 1) // 8 + 1
    x0 = torch.randn(1, config.in_channels, T, args.height, args.width, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    sigma = torch.full((1, T), 0.6)
    x_t, target = make_noisy(x0, sigma, noise)
    text = torch.randn(1, 32, config.caption_channels, generator=g)
    text_mask = torch.ones(1, 32, dtype=torch.bool)
    camera_vector = torch.randn(1, T, 20, generator=g) * 0.1
    plucker = torch.randn(1, config.plucker_channels, T, args.height, args.width, generator=g)
    loss_mask = torch.ones(1, T)

    def step() -> float:
        t0 = time.perf_counter()
        pred = model(x_t, 1000 * sigma[:, None, :], text, text_mask, camera_vector, plucker)
        loss, _ = flow_loss(pred, target, loss_mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    before = _current_rss_bytes()
    step()  # warm-up: allocates the AdamW state
    times = [step() for _ in range(args.steps)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"variant": args.variant, "median_s": statistics.median(times), "times": times,
                      "extra_mb": (peak - before) / 2**20, "trainable": trainable, "total": total}))


def run_one(args, variant: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--config", args.config,
           "--depth", str(args.depth), "--frames", str(args.frames), "--height", str(args.height),
           "--width", str(args.width), "--rank", str(args.rank), "--steps", str(args.steps),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if done.returncode:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", help="a named config of sana_wm.model.CONFIGS")
    ap.add_argument("--depth", type=int, default=4, help="blocks kept (the config's own depth is too slow on CPU)")
    ap.add_argument("--frames", type=int, default=17, help="raw frames (8k+1)")
    ap.add_argument("--height", type=int, default=4, help="latent grid height")
    ap.add_argument("--width", type=int, default=8, help="latent grid width")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process (after one warm-up)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh-process repeats of the whole comparison")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    print(f"torch {torch.__version__}, config {args.config} cut to depth {args.depth}, "
          f"{(args.frames - 1) // 8 + 1} latent frames of {args.height}x{args.width}, rank {args.rank}, "
          f"{args.threads} thread(s), {args.steps} timed steps x {args.repeats} repeats")
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for variant in VARIANTS:  # interleaved, so slow phases of a shared machine hit both
            runs[variant].append(run_one(args, variant))
            print(f"  repeat {r}: {variant} {runs[variant][-1]['median_s'] * 1000:.0f} ms/step, "
                  f"{runs[variant][-1]['extra_mb']:.0f} MB", flush=True)
    summary = {v: {"ms": statistics.median(x["median_s"] for x in runs[v]) * 1000,
                   "mb": statistics.median(x["extra_mb"] for x in runs[v]),
                   "trainable": runs[v][0]["trainable"], "total": runs[v][0]["total"]} for v in VARIANTS}
    full, lora = summary["full"], summary["lora"]
    print("\n| variant | trainable params | ms/step (median) | peak MB above weights (median) |")
    print("|---|---:|---:|---:|")
    for v in VARIANTS:
        s = summary[v]
        share = 100 * s["trainable"] / s["total"]
        print(f"| {v} | {s['trainable']:,} ({share:.1f}%) | {s['ms']:.0f} | {s['mb']:.0f} |")
    print(f"| lora/full | {lora['trainable'] / full['trainable']:.3f} | {lora['ms'] / full['ms']:.2f} | "
          f"{lora['mb'] / full['mb']:.2f} |")


if __name__ == "__main__":
    main()
