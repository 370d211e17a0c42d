"""The memory estimate of a generation against its measured peak: bundled model, CPU.

    PYTHONPATH=src python benchmarks/memory_estimate.py [SECONDS ...]     (default: 1.5 3 4.5 12)

Each length runs in its own child process: the model is loaded, the estimate's components are computed
(`SanaWMPipeline.memory_estimate`), then the generation's peak resident memory beyond what was resident before
it is read (`VmHWM` of /proc/self/status, reset through /proc/self/clear_refs). glibc is told to map every
allocation of 64 KiB or more and unmap it when freed (MALLOC_MMAP_THRESHOLD_), so that the resident set follows
the live tensors rather than what the allocator cached while loading. Every run also pays for the lazily imported
video encoder. Prints one row per length and the components of the last one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure(seconds: float, out_dir: str) -> None:
    """Child: one generation of `seconds`; prints its row as JSON and the estimate's table."""
    from sana_wm.bundled import example_files
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline import SanaWMPipeline

    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")
    image = example_files()["room_walk"][0]
    n = int(seconds * pipe.fps) + 1
    estimate = pipe.memory_estimate(n, guided=False, refine=False)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS:")
    started = time.perf_counter()
    pipe.generate(image, action_to_trajectory(f"w-{n}"), num_frames=n, output=f"{out_dir}/{seconds}.mp4",
                  progress=False)
    wall = time.perf_counter() - started
    print(estimate.table())
    print(json.dumps({"seconds": seconds, "frames": n, "estimate": estimate.needed_bytes,
                      "measured": status("VmHWM:") - before, "wall": wall}))


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        measure(float(sys.argv[2]), sys.argv[3])
        return
    from sana_wm.pipeline.memory import runtime_bytes

    lengths = [float(x) for x in sys.argv[1:]] or [1.5, 3.0, 4.5, 12.0]
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    print(f"{'seconds':>8} {'frames':>7} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6} "
          f"{'ratio w/o runtime':>18} {'wall s':>7}")
    rows, table = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in lengths:
            done = subprocess.run([sys.executable, __file__, "--one", str(seconds), tmp], capture_output=True,
                                  text=True, env={**os.environ, **ALLOCATOR}, check=True)
            lines = done.stdout.strip().splitlines()
            row, table = json.loads(lines[-1]), "\n".join(lines[:-1])
            rows.append(row)
            need, measured = row["estimate"], row["measured"]
            print(f"{seconds:8g} {row['frames']:7d} {need / 2**20:13.1f} {measured / 2**20:13.1f} "
                  f"{need / measured:6.2f} {(need - runtime_bytes('cpu')) / measured:18.2f} {row['wall']:7.1f}")
    print(table)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
