"""The memory planner: its plans for the released model, and its memory model against measured CPU peaks.

    PYTHONPATH=src python benchmarks/plan_memory.py [--budgets 24 80] [--precisions bf16 int8 int4]

1. For each budget (GiB): the setting ``sana-wm plan`` chooses for the released two-stage streaming pipeline
   (60 s), its estimated peak per stage, and how many settings fit.
2. For each precision: one child process loads the bundled model's transformer (float32 on the CPU), quantizes
   it (int8 with torchao's CPU kernel, stored packed; int4 with the CPU emulation, which stores dequantized
   float32), and reports the growth of the resident set; then generates 1.5 s and reports the peak beyond what
   was resident (``VmHWM`` reset through ``/proc/self/clear_refs``), with glibc told to unmap freed allocations.
   Both against the planner's numbers. The load average is printed with the rows (timings are not reported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
BACKENDS = {"bf16": ("auto", "packed"), "int8": ("torchao", "packed"), "int4": ("emulate", "emulated"),
            "fp8": ("emulate", "emulated")}
CHILD = textwrap.dedent("""
    import json, sys
    import torch
    from sana_wm.bundled import example_files
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.model.loading import from_pretrained as load_transformer
    from sana_wm.pipeline import SanaWMPipeline
    from sana_wm.pipeline.pipeline import _transformer_config, resolve_model
    from sana_wm.quant import quantize_model

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    precision, backend, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    files = resolve_model("sana-wm-synth")
    config = _transformer_config(files.settings, files.root)
    warm = load_transformer(files.dit, config, dtype="fp32", device="cpu")
    if precision != "bf16":
        quantize_model(warm, precision, backend, device="cpu")
    del warm
    before = status("VmRSS:")
    model = load_transformer(files.dit, config, dtype="fp32", device="cpu")
    if precision != "bf16":
        quantize_model(model, precision, backend, device="cpu")
    weights = status("VmRSS:") - before
    del model
    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu", stage1_precision=precision,
                                          quant_backend=backend)
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS:")
    pipe.generate(example_files()["room_walk"][0], action_to_trajectory("w-25"), num_frames=25, output=out,
                  progress=False)
    print(json.dumps({"weights": weights, "generation": status("VmHWM:") - before}))
""")


def plans(budgets) -> None:
    from sana_wm.pipeline.plan import GIB, PlanRequest, official_sizes, plan_generation

    sizes = official_sizes()
    print("| budget | chosen setting | estimated peak GiB (per stage) | settings that fit |")
    print("|---|---|---|---|")
    for gib in budgets:
        plan = plan_generation(sizes, PlanRequest(int(gib * GIB)))
        row = plan.chosen
        if row is None:
            near = plan.nearest
            print(f"| {gib:g} GiB | nothing fits (nearest: {near.setting.describe()}, {near.peak_bytes / GIB:.1f}) "
                  f"| - | 0 |")
            continue
        stages = ", ".join(f"{k} {v / GIB:.1f}" for k, v in row.stage_peaks().items())
        print(f"| {gib:g} GiB | {row.setting.describe()} | {row.peak_bytes / GIB:.1f} ({stages}) | "
              f"{len(plan.fitting)} of {len(plan.rows)} |")


def measured(precisions, tmp: str) -> None:
    from sana_wm.pipeline.memory import runtime_bytes
    from sana_wm.pipeline.pipeline import resolve_model
    from sana_wm.pipeline.plan import PlanRequest, Setting, estimate_setting, model_sizes

    sizes = model_sizes(resolve_model("sana-wm-synth"))
    print(f"load average before: {os.getloadavg()}")
    print("| precision | stored as | weights planned MiB | weights measured MiB | generation estimate MiB "
          "(less runtime) | generation measured MiB |")
    print("|---|---|---|---|---|---|")
    for p in precisions:
        backend, stored = BACKENDS[p]
        done = subprocess.run([sys.executable, "-c", CHILD, p, backend, os.path.join(tmp, f"{p}.mp4")],
                              capture_output=True, text=True, env={**os.environ, **ALLOCATOR}, check=True)
        m = json.loads(done.stdout.strip().splitlines()[-1])
        planned = sizes.stage1.weight_bytes(p, dtype_bytes=4, stored=stored)
        est = estimate_setting(sizes, Setting(p, text_encoders="embeds"), PlanRequest(2**36, num_frames=25,
                               refiner=False), device_type="cpu", dtype_bytes=4, stored=stored).needed_bytes
        mib = 2**20
        label = "float32" if p == "bf16" else (f"{p} packed ({backend})" if stored == "packed"
                                               else f"{p} emulated: dequantized float32")
        print(f"| {'unquantized' if p == 'bf16' else p} | {label} | {planned / mib:.1f} | {m['weights'] / mib:.1f} | "
              f"{est / mib:.1f} ({(est - runtime_bytes('cpu')) / mib:.1f}) | {m['generation'] / mib:.1f} |")
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[16, 24, 32, 48, 80])
    ap.add_argument("--precisions", nargs="+", default=["bf16", "int8", "int4"], choices=sorted(BACKENDS))
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()
    plans(args.budgets)
    print()
    measured(args.precisions, args.tmp)


if __name__ == "__main__":
    main()
