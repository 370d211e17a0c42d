"""On a CUDA GPU: torchao's kernels against the exact emulation (sana_wm.quant), one linear at the released
shapes per precision the GPU runs, and the time of each GEMM against bf16.

For each precision: ``rel_vs_emulation`` is the relative difference between the kernel's output and the
emulation's (both from the same bf16 weight and input; the emulation computes in float32, so differences come
from the kernels' accumulation order and bf16 output rounding: expected below ~1e-2), ``rel_vs_bf16`` the error
of the kernel against the unquantized bf16 GEMM, and ``ms`` the median time of the GEMM. Not run in CI (no GPU);
a precision the GPU cannot run is reported with the refusal text.

    python benchmarks/gpu_quant_check.py --tokens 4096 --out gpu-quant.json
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

from sana_wm.quant import DeviceInfo, PrecisionError, choose_backend
from sana_wm.quant.modules import EmulatedLinear


def time_ms(fn, runs: int = 20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main() -> None:
    from torchao.quantization import quantize_

    from sana_wm.quant.quantize import _torchao_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--shapes", default="2240x6720,6720x2240,4096x16384", help="in x out features, comma-separated")
    ap.add_argument("--out", default="gpu-quant.json")
    args = ap.parse_args()
    device = torch.device("cuda")
    info = DeviceInfo.of(device)
    rows = []
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        torch.manual_seed(0)
        lin = torch.nn.Linear(k, n, device=device, dtype=torch.bfloat16)
        x = torch.randn(args.tokens, k, device=device, dtype=torch.bfloat16)
        with torch.no_grad():
            reference = lin(x).float()
            bf16_ms = time_ms(lambda m=lin, t=x: m(t))
            for precision in ("fp8", "int8", "int4", "nvfp4"):
                row = {"shape": shape, "precision": precision, "gpu": info.sm, "bf16_ms": bf16_ms}
                try:
                    choose_backend(precision, info)
                except PrecisionError as exc:
                    rows.append({**row, "refused": str(exc)})
                    continue
                emulated = EmulatedLinear(lin, precision, name="check")(x).float()
                kernel = copy.deepcopy(lin)
                quantize_(kernel, _torchao_config(precision))
                out = kernel(x).float()
                row.update(rel_vs_emulation=float((out - emulated).norm() / emulated.norm()),
                           rel_vs_bf16=float((out - reference).norm() / reference.norm()),
                           ms=time_ms(lambda m=kernel, t=x: m(t)))
                rows.append(row)
                print(json.dumps(row), flush=True)
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(device), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
