"""The memory planner: its plans for the released model, and its memory model against measured CPU peaks.

    PYTHONPATH=src python benchmarks/plan_memory.py [--budgets 24 80] [--precisions bf16 int8 int4]

1. For each budget (GiB): the setting ``sana-wm plan`` chooses for the released two-stage streaming pipeline
   (60 s), its estimated peak per stage, and how many settings fit.
2. For each precision: one child process loads the bundled model's transformer (float32 on the CPU), quantizes
   it (int8 with torchao's CPU kernel, stored packed; int4 with the CPU emulation, which stores dequantized
   float32), and reports the growth of the resident set; then generates 1.5 s and reports the peak beyond what
   was resident (:mod:`sana_wm.pipeline.peak_memory`, which says how the peak is read).
   Both against the planner's numbers. The load average is printed with the rows (timings are not reported).
"""

from __future__ import annotations

import argparse
import os

BACKENDS = {"bf16": ("auto", "packed"), "int8": ("torchao", "packed"), "int4": ("emulate", "emulated"),
            "fp8": ("emulate", "emulated")}


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
    from sana_wm.pipeline.peak_memory import measure_in_child
    from sana_wm.pipeline.pipeline import resolve_model
    from sana_wm.pipeline.plan import PlanRequest, Setting, estimate_setting, model_sizes

    sizes = model_sizes(resolve_model("sana-wm-synth"))
    print(f"load average before: {os.getloadavg()}")
    print("| precision | stored as | weights planned MiB | weights measured MiB | generation estimate MiB "
          "(less runtime) | generation measured MiB |")
    print("|---|---|---|---|---|---|")
    for p in precisions:
        backend, stored = BACKENDS[p]
        m = measure_in_child(1.5, os.path.join(tmp, f"{p}.mp4"), precision=p, backend=backend, threads=1)
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
