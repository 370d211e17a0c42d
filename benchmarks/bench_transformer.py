"""Time and peak memory of one transformer forward per latent frame, against clip length, on CPU.

Variants, all with the same random weights and inputs (float32, ``torch.inference_mode``):

* ``ours``        SanaWMTransformer, bidirectional forward over the whole clip (the released offline mode);
* ``streaming``   the same model chunk by chunk (``forward_chunk``; chunks of 4, 3, 3, ... frames) with the
                  released softmax window (attention sink + most recent chunk), one pass per chunk;
* ``softmax``     the same size with every block softmax (``softmax_blocks = all``), bidirectional;
* ``diffusers``   diffusers' SanaWMTransformer3DModel holding our weights, bidirectional, as shipped
                  (it casts the softmax q/k/v to bfloat16).

Each (variant, T, threads) runs in a fresh Python process, so its peak RSS (``ru_maxrss``) is its own;
the memory column is that peak minus the RSS just before the first forward (weights and inputs are
already loaded then). Times are wall-clock medians of ``--runs`` forwards (no warm-up; the median
discards the first call's one-time costs). A variant stops growing T once its next run is predicted
(from its last two points) to take longer than ``--max-seconds``.

    python benchmarks/bench_transformer.py                                   # small config, 8x14 grid
    python benchmarks/bench_transformer.py --frames 9 17 --threads 1 2 --runs 5
    python benchmarks/bench_transformer.py --config official-2.6b --height 22 --width 40 --frames 9

Prints two markdown tables (time, memory) with the ratios ours/diffusers, streaming/ours and softmax/ours.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("ours", "streaming", "softmax", "diffusers")


# ------------------------------------------------------------------------------------------------
# Worker: one variant, one clip length, in its own process
# ------------------------------------------------------------------------------------------------
def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _random_model(config, seed: int, device: str = "cpu"):
    """A model with every parameter random, filled in place on ``device`` (matrices ~ N(0, 1/fan_in), norms ~ 1)."""
    import torch

    from sana_wm.model import SanaWMTransformer

    with torch.device("meta"):
        model = SanaWMTransformer(config)
    model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1 / math.sqrt(p[0].numel()), generator=g)
            elif "norm" in name:
                p.normal_(1.0, 0.2, generator=g)
            else:
                p.normal_(0.0, 0.5, generator=g)
        for buffer in model.buffers():
            buffer.zero_()
    return model.eval()


def _inputs(config, frames: int, height: int, width: int, text_len: int, seed: int = 2):
    """Latents, per-frame timesteps, a text and a turning, climbing, forward-moving camera path."""
    import numpy as np
    import torch
    from scipy.spatial.transform import Rotation

    from sana_wm.camera.conditioning import prepare_camera

    g = torch.Generator().manual_seed(seed)
    n_raw = 8 * (frames - 1) + 1
    s = np.linspace(0.0, 1.0, n_raw)
    c2w = np.tile(np.eye(4), (n_raw, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("yxz", np.stack([0.6 * s, 0.2 * np.sin(3 * s), 0.1 * s], -1)).as_matrix()
    c2w[:, :3, 3] = np.stack([0.8 * s, 0.1 * np.sin(5 * s), 1.5 * s], -1)
    cam = prepare_camera(c2w, [32.0 * width, 32.0 * width, 16.0 * width, 16.0 * height],
                         target_size=(32 * height, 32 * width)).batched(1)
    timestep = torch.rand(1, 1, frames, generator=g) * 1000
    timestep[..., 0] = 0
    return dict(latents=torch.randn(1, config.in_channels, frames, height, width, generator=g),
                timestep=timestep, text=torch.randn(1, 1, text_len, config.caption_channels, generator=g),
                text_mask=torch.ones(1, text_len), camera_vector=cam.camera_vector, plucker=cam.plucker)


def _forward_fn(variant: str, config, inputs):
    """A no-argument callable running one forward of ``variant`` on ``inputs``."""
    import torch

    from sana_wm.model import KVWindow, TokenLayout

    if variant == "softmax":
        config = config.replace(softmax_blocks=tuple(range(config.depth)))
    model = _random_model(config, seed=1)
    if variant in ("ours", "softmax"):
        return lambda: model(**inputs)
    if variant == "streaming":
        T, H, W = inputs["latents"].shape[2:]
        chunks = TokenLayout.build(T, H, W, "chunk_causal", chunk_frames=config.chunk_frames).chunks

        def stream():
            cache = None
            for a, b in chunks:
                _, cache = model.forward_chunk(
                    inputs["latents"][:, :, a:b], inputs["timestep"][..., a:b], inputs["text"], inputs["text_mask"],
                    inputs["camera_vector"][:, a:b], inputs["plucker"][:, :, a:b], cache=cache,
                    kv_window=KVWindow(max_chunks=2, sink=True) if cache is None else None)

        return stream
    if variant == "diffusers":
        from diffusers.models.transformers.transformer_sana_wm import SanaWMTransformer3DModel

        from sana_wm.model.loading import to_diffusers_state_dict

        kwargs = {k: v for k, v in config.to_diffusers().items() if not k.startswith("_")}
        with torch.device("meta"):  # no second copy of the weights: it gets ours (assign=True)
            oracle = SanaWMTransformer3DModel(**kwargs).eval()
        rope = oracle.rope  # a plain attribute, not a buffer: it was built on meta too
        oracle.rope = type(rope)(attention_head_dim=rope.attention_head_dim, patch_size=rope.patch_size,
                                 max_seq_len=rope.max_seq_len)
        oracle.load_state_dict(to_diffusers_state_dict(model.state_dict()), strict=True, assign=True)
        del model
        return lambda: oracle(inputs["latents"], inputs["timestep"], inputs["text"],
                              encoder_attention_mask=inputs["text_mask"], camera_conditions=inputs["camera_vector"],
                              chunk_plucker=inputs["plucker"]).sample
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


def worker(args) -> None:
    import gc

    import torch

    from sana_wm.model import get_config

    torch.set_num_threads(args.threads[0])
    config = get_config(args.config)
    if args.depth is not None:
        config = config.replace(depth=args.depth)
    T = args.frames[0]
    inputs = _inputs(config, T, args.height, args.width, args.text_len)
    with torch.inference_mode():
        fn = _forward_fn(args.variants[0], config, inputs)
        gc.collect()
        rss_before = _current_rss_bytes()
        times, cpu_times = [], []
        for _ in range(args.runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"times": times, "cpu_times": cpu_times, "peak_extra_bytes": max(peak - rss_before, 0),
                      "rss_before_bytes": rss_before}))


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------
def run_one(args, variant: str, frames: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--config", args.config, *(["--depth", str(args.depth)] if args.depth
                                                                           else []), "--height", str(args.height),
           "--width", str(args.width), "--text-len", str(args.text_len), "--runs", str(args.runs),
           "--variants", variant, "--frames", str(frames), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{variant} T={frames} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["median"] = statistics.median(result["times"])
    return result


def predicted_seconds(points: list[tuple[int, float]], frames: int) -> float:
    """Extrapolate a run's time to ``frames`` from the last two (T, seconds) points (power law, exponent 1..2)."""
    if not points:
        return 0.0
    (t1, s1) = points[-1]
    exponent = 1.0
    if len(points) >= 2:
        (t0, s0) = points[-2]
        exponent = min(max(math.log(s1 / s0) / math.log(t1 / t0), 1.0), 2.0)
    return s1 * (frames / t1) ** exponent


def _fmt_ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b is not None else "-"


def print_tables(results: dict, args) -> None:
    ms = f"ms / latent frame (median of {args.runs})"
    for threads in args.threads:
        print(f"\n**{threads} thread(s): wall time, {ms}**\n")
        cols = [v for v in VARIANTS if v in args.variants]
        print("| T | tokens | " + " | ".join(cols) + " | ours/diffusers | streaming/ours | softmax/ours |")
        print("|---:|---:|" + "---:|" * len(cols) + "---:|---:|---:|")
        for T in args.frames:
            per = {v: results.get((v, T, threads)) for v in cols}
            sec = {v: (r["median"] if r else None) for v, r in per.items()}
            cells = [f"{1e3 * s / T:.0f}" if s is not None else "skipped" for s in sec.values()]
            print(f"| {T} | {T * args.height * args.width} | " + " | ".join(cells) + " | "
                  f"{_fmt_ratio(sec.get('ours'), sec.get('diffusers'))} | "
                  f"{_fmt_ratio(sec.get('streaming'), sec.get('ours'))} | "
                  f"{_fmt_ratio(sec.get('softmax'), sec.get('ours'))} |")
        print(f"\n**{threads} thread(s): peak memory above weights + inputs, MB (MB / latent frame)**\n")
        print("| T | " + " | ".join(cols) + " | ours/diffusers | streaming/ours | softmax/ours |")
        print("|---:|" + "---:|" * len(cols) + "---:|---:|---:|")
        for T in args.frames:
            per = {v: results.get((v, T, threads)) for v in cols}
            mb = {v: (r["peak_extra_bytes"] / 2**20 if r else None) for v, r in per.items()}
            cells = [f"{m:.0f} ({m / T:.1f})" if m is not None else "skipped" for m in mb.values()]
            print(f"| {T} | " + " | ".join(cells) + " | "
                  f"{_fmt_ratio(mb.get('ours'), mb.get('diffusers'))} | "
                  f"{_fmt_ratio(mb.get('streaming'), mb.get('ours'))} | "
                  f"{_fmt_ratio(mb.get('softmax'), mb.get('ours'))} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="named model config (default: small, 12 x 768)")
    parser.add_argument("--depth", type=int, default=None,
                        help="override the config's block count (softmax blocks stay every 4th: 3, 7, ...)")
    parser.add_argument("--height", type=int, default=8, help="latent grid rows (released: 22)")
    parser.add_argument("--width", type=int, default=14, help="latent grid columns (released: 40)")
    parser.add_argument("--frames", type=int, nargs="+", default=[9, 17, 33, 61, 121], help="latent frame counts T")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="torch CPU thread counts")
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per point (median reported)")
    parser.add_argument("--text-len", type=int, default=32, help="text tokens")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="skip larger T for a variant once one forward is predicted to exceed this")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    results: dict = {}
    for threads in args.threads:
        for variant in args.variants:
            points: list[tuple[int, float]] = []
            for T in sorted(args.frames):
                guess = predicted_seconds(points, T)
                if guess > args.max_seconds:
                    print(f"# skip {variant} T={T} threads={threads}: predicted {guess:.0f} s per forward",
                          file=sys.stderr)
                    break
                r = run_one(args, variant, T, threads)
                results[(variant, T, threads)] = r
                points.append((T, r["median"]))
                print(f"# {variant} T={T} threads={threads}: median {r['median']:.2f} s, "
                      f"times {[round(t, 2) for t in r['times']]}, peak +{r['peak_extra_bytes'] / 2**20:.0f} MB",
                      file=sys.stderr, flush=True)
    depth = f" with depth {args.depth}" if args.depth else ""
    print(f"config {args.config}{depth}, latent grid {args.height}x{args.width}, batch 1, text {args.text_len} tokens, "
          f"float32, inference_mode, CPU")
    print_tables(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"variant": v, "frames": T, "threads": th, **r} for (v, T, th), r in results.items()], f,
                      indent=1)


if __name__ == "__main__":
    main()
