"""The text encoder on the CPU in bf16 against float32: time, memory and how far the states move.

A random-weight Gemma-2 at Gemma-2-2B's width (hidden 2304, 8 heads of 256, 4 KV heads, MLP 9216, eager
attention as sana_wm.pipeline.text loads it) with ``--layers`` of its 26 layers, encoding one prompt window of
``--tokens`` tokens (the instruction prefix plus SANA's 300-token window is about 420), each dtype in a fresh
process. Weights: their bytes in that dtype (half in bf16: the host memory the planner counts). Time: median of
``--repeats`` encodings after one warm-up. The states' difference is bf16's against float32's from the same
weights (bf16 = float32's rounded), relative to float32's largest value.

    python benchmarks/bench_text_encoder_dtype.py --layers 4 --threads 2

Prints a markdown table (and, with ``--json``, the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

DTYPES = ("fp32", "bf16")


def _config(layers: int):
    from transformers import Gemma2Config

    return Gemma2Config(vocab_size=4096, hidden_size=2304, intermediate_size=9216, num_hidden_layers=layers,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, attn_implementation="eager")


def write_weights(layers: int, folder: str) -> None:
    """One random float32 model, stored in both dtypes (bf16: the same weights rounded)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Gemma2Model

    torch.manual_seed(0)
    state = Gemma2Model(_config(layers)).state_dict()
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, os.path.join(folder, f"{name}.safetensors"))


def worker(args) -> None:
    import torch
    from safetensors import safe_open
    from transformers import Gemma2Model

    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    # Built in its dtype (as from_pretrained(dtype=...) builds it), then the stored weights copied in one tensor at
    # a time: no float32 copy of the whole model on the way.
    torch.set_default_dtype(dtype)
    model = Gemma2Model(_config(args.layers)).eval()
    torch.set_default_dtype(torch.float32)
    params = dict(model.named_parameters())
    with torch.no_grad(), safe_open(os.path.join(args.folder, f"{args.dtype}.safetensors"), "pt") as f:
        for key in f.keys():  # noqa: SIM118 -- safe_open has keys(), not iteration
            params[key].copy_(f.get_tensor(key))
    ids = torch.randint(0, 4096, (1, args.tokens), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    times = []
    with torch.no_grad():
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            states = model(input_ids=ids, attention_mask=mask).last_hidden_state
            times.append(time.perf_counter() - start)
    torch.save(states.float(), args.states)
    print(json.dumps({"dtype": args.dtype, "seconds": statistics.median(times[1:]),
                      "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--tokens", type=int, default=420)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=DTYPES, help=argparse.SUPPRESS)
    p.add_argument("--states", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.dtype = args.worker
        worker(args)
        return
    import tempfile

    import torch

    rows, states = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        write_weights(args.layers, tmp)
        for dtype in DTYPES:
            path = os.path.join(tmp, f"{dtype}.pt")
            out = subprocess.run([sys.executable, __file__, "--worker", dtype, "--states", path, "--folder", tmp,
                                  "--layers", str(args.layers), "--tokens", str(args.tokens),
                                  "--repeats", str(args.repeats), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            states[dtype] = torch.load(path, weights_only=True)
    ref = states["fp32"]
    diff = float((states["bf16"] - ref).abs().amax() / ref.abs().amax())
    load = os.getloadavg()
    print(f"Gemma-2-2B width, {args.layers} layers, {args.tokens} tokens, {args.threads} threads; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| dtype | encode (s) | weights (MiB) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['seconds']:.3f} | {r['weight_bytes'] / 2**20:.0f} |")
    print(f"bf16 states vs fp32: largest difference {diff:.4f} of the largest value")
    if args.json:
        print(json.dumps({"rows": rows, "max_relative_difference": diff, "load_average": load}))


if __name__ == "__main__":
    main()
