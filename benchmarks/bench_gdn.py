"""Time the frame-wise GDN scan, naive oracle vs fast form, at the released shapes.

    python benchmarks/bench_gdn.py                      # H=20, D=112, S=880, T in {9, 21}, float32, CPU
    python benchmarks/bench_gdn.py --frames 21 --runs 5 --mode chunk_causal --camera

Prints the median wall time of ``--runs`` calls (after one warm-up call) per impl and frame count.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sana_wm.ops import gdn_scan


def make_inputs(batch, heads, frames, tokens, dim, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    shape = (batch, heads, frames, tokens, dim)

    def rand(*s):
        return torch.rand(*s, generator=g, dtype=dtype).to(device)

    q = rand(*shape)
    k = rand(*shape) * (dim * tokens) ** -0.5  # the model's key scale keeps the transition stable
    return dict(
        q=q,
        k=k,
        v=torch.randn(*shape, generator=g, dtype=dtype).to(device),
        beta=rand(*shape[:-1]),
        gamma=0.9 + 0.1 * rand(*shape[:3]),
        q_rot=q.flip(-1),  # any same-norm stand-in for RoPE; the cost is what is measured
        k_rot=k.flip(-1),
    )


def median_seconds(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_once(x, impl, args):
    with torch.no_grad():
        gdn_scan(
            x["q"],
            x["k"],
            x["v"],
            x["beta"],
            x["gamma"],
            q_rot=x["q_rot"],
            k_rot=x["k_rot"],
            with_normalizer=not args.camera,
            mode=args.mode,
            impl=impl,
        )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=20)
    parser.add_argument("--dim", type=int, default=112, help="head dim D")
    parser.add_argument("--tokens", type=int, default=880, help="tokens per latent frame S (22 x 40)")
    parser.add_argument("--frames", type=int, nargs="+", default=[9, 21], help="latent frame counts T")
    parser.add_argument("--mode", default="bidirectional", choices=["bidirectional", "chunk_causal", "causal"])
    parser.add_argument("--camera", action="store_true", help="numerator-only camera branch (no normalizer)")
    parser.add_argument("--impls", nargs="+", default=["naive", "fast"], choices=["naive", "fast"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(
        f"gdn_scan mode={args.mode} branch={'camera' if args.camera else 'main'} B={args.batch} H={args.heads} "
        f"D={args.dim} S={args.tokens} {args.dtype} {args.device} threads={torch.get_num_threads()} "
        f"median of {args.runs}"
    )
    for frames in args.frames:
        x = make_inputs(args.batch, args.heads, frames, args.tokens, args.dim, dtype, args.device)
        results = {}
        for impl in args.impls:
            results[impl] = median_seconds(lambda impl=impl, x=x: run_once(x, impl, args), args.runs)
        line = "  ".join(f"{impl} {seconds * 1e3:9.1f} ms" for impl, seconds in results.items())
        if "naive" in results and "fast" in results:
            line += f"  speed-up {results['naive'] / results['fast']:.2f}x"
        print(f"T={frames:4d}  {line}")


if __name__ == "__main__":
    main()
