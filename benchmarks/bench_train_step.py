"""Time of one training step (forward, backward, AdamW update) of a model config at its training shape.

The default is the bundled model's step: its transformer (`sana-wm-synth`), batch 4, 13 latent frames of 8x8
tokens (97 frames at 128x128 through the patch codec), chunk-causal (chunks 4, 3, 3, 3), both camera branches
on, the clean first frame at timestep 0. Weights, latents and the camera path are those of
``bench_transformer.py`` (random weights, a turning and moving camera), so no data is read: the number is the
model's compute alone (the bundled recipe adds data loading and noise sampling, a few percent on the CPU).

To compare two versions of the code in the same run, point ``--src`` at another checkout's ``src`` folder and
interleave the runs, e.g. (docs/benchmarks.md):

    git worktree add /tmp/before <commit> && for i in 1 2 3; do
      python benchmarks/bench_train_step.py --src /tmp/before/src --label before
      python benchmarks/bench_train_step.py --label after; done
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="sana-wm-synth",
                   help="a named config of sana_wm.model.CONFIGS, or sana-wm-synth (the bundled transformer)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--frames", type=int, default=13, help="latent frames")
    p.add_argument("--height", type=int, default=8, help="latent height (tokens)")
    p.add_argument("--width", type=int, default=8, help="latent width (tokens)")
    p.add_argument("--steps", type=int, default=5, help="timed steps (after --warmup untimed ones)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--src", help="import sana_wm from this folder instead (another checkout's src/)")
    p.add_argument("--label", default="", help="a name for this run in the output line")
    args = p.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import torch
    from bench_transformer import _inputs, _random_model  # the same random weights and camera path

    from sana_wm.model import get_config

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.config == "sana-wm-synth":
        from sana_wm.bundled import SYNTH_CONFIG as cfg
    else:
        cfg = get_config(args.config)
    model = _random_model(cfg, seed=0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B, T, H, W = args.batch, args.frames, args.height, args.width
    one = _inputs(cfg, T, H, W, cfg.caption_length)  # batch 1: repeated to the batch
    inputs = {k: v.expand(B, *v.shape[1:]).contiguous() for k, v in one.items()}
    target = torch.randn_like(inputs["latents"])

    def step() -> None:
        out = model(**inputs, mode="chunk_causal")  # the model's own chunk schedule
        loss = (out - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"label": args.label, "src": args.src or "this checkout", "config": args.config,
                      "shape": [B, cfg.in_channels, T, H, W], "threads": torch.get_num_threads(),
                      "median_s": round(statistics.median(times), 4), "times_s": [round(t, 4) for t in times]}))


if __name__ == "__main__":
    main()
