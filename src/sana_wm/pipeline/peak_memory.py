"""The measured side of the memory model: the peak resident memory of a bundled-model generation on the CPU.

The estimate of :mod:`sana_wm.pipeline.memory` and the planner's (:mod:`sana_wm.pipeline.plan`) are checked
against this in the tests and the benchmarks. Linux only: the peak is ``VmHWM`` of ``/proc/self/status``, reset
through ``/proc/self/clear_refs`` once the model is loaded, so it is the generation's alone, beside the weights
already resident.

Each measurement runs in a child process (:func:`measure_in_child`), so that no run reuses memory an earlier one
freed, with glibc told to map every allocation of 64 KiB or more and to unmap it when freed
(:data:`ALLOCATOR_ENV`): the resident set then follows the live tensors instead of what the allocator cached
while loading (without this, one CI machine measured 16 MB for a run this machine measures at 40 MB). Every run
also pays for the lazily imported video encoder.

    python -m sana_wm.pipeline.peak_memory --seconds 3 --output /tmp/v.mp4 [--precision int8 --backend torchao]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

__all__ = ["ALLOCATOR_ENV", "measure_generation", "measure_in_child"]

ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
MODEL = "sana-wm-synth"


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> int:
    """Resets VmHWM to the current resident set and returns that."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS:")


def _quantized_weight_growth(precision: str, backend: str) -> int:
    """Growth of the resident set when the bundled transformer is loaded (float32) and quantized; a first load
    and quantization pays the imports and first-time costs beforehand."""
    from sana_wm.model.loading import from_pretrained as load_transformer
    from sana_wm.pipeline.pipeline import _transformer_config, resolve_model
    from sana_wm.quant import quantize_model

    files = resolve_model(MODEL)
    config = _transformer_config(files.settings, files.root)

    def load():
        model = load_transformer(files.dit, config, dtype="fp32", device="cpu")
        if precision != "bf16":
            quantize_model(model, precision, backend, device="cpu")
        return model

    warm = load()
    del warm
    before = _status("VmRSS:")
    model = load()
    grown = _status("VmRSS:") - before
    del model
    return grown


def measure_generation(seconds: float, output: str, *, precision: str | None = None, backend: str = "auto",
                       threads: int | None = None) -> dict:
    """In this process: a ``seconds`` walk of the bundled model written to ``output``. Returns ``frames``,
    ``estimate`` (the pipeline's estimate of what the run needs beyond the loaded weights), ``generation`` (the
    measured peak beyond what was resident before it) and ``wall`` seconds; with ``precision`` (stage 1 quantized
    by ``backend``) also ``weights``, the measured growth of the resident set when the transformer is quantized."""
    import torch

    from sana_wm.bundled import example_files
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline import SanaWMPipeline

    if threads:
        torch.set_num_threads(threads)
    row: dict = {}
    options = {}
    if precision is not None:
        row["weights"] = _quantized_weight_growth(precision, backend)
        options = {"stage1_precision": precision, "quant_backend": backend}
    pipe = SanaWMPipeline.from_pretrained(MODEL, device="cpu", **options)
    n = int(seconds * pipe.fps) + 1
    estimate = pipe.memory_estimate(n, guided=False, refine=False)
    before = _reset_peak()
    started = time.perf_counter()
    pipe.generate(example_files()["room_walk"][0], action_to_trajectory(f"w-{n}"), num_frames=n, output=output,
                  progress=False)
    row.update(frames=n, estimate=estimate.needed_bytes, generation=_status("VmHWM:") - before,
               wall=time.perf_counter() - started, table=estimate.table())
    return row


def measure_in_child(seconds: float, output: str, *, precision: str | None = None, backend: str = "auto",
                     threads: int | None = None, timeout: float = 600) -> dict:
    """:func:`measure_generation` in a fresh child process with :data:`ALLOCATOR_ENV`."""
    command = [sys.executable, "-m", "sana_wm.pipeline.peak_memory", "--seconds", str(seconds), "--output", output,
               "--backend", backend]
    if precision is not None:
        command += ["--precision", precision]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **ALLOCATOR_ENV})
    if done.returncode != 0:
        raise RuntimeError(f"the measuring child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description="Peak resident memory of a bundled-model generation (CPU, Linux).")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--output", required=True, help="the MP4 to write")
    ap.add_argument("--precision", help="quantize stage 1 to this precision and measure its weights too")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    print(json.dumps(measure_generation(args.seconds, args.output, precision=args.precision, backend=args.backend,
                                        threads=args.threads)))


if __name__ == "__main__":
    main()
