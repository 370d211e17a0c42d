"""The memory estimate of a generation against its measured peak: bundled model, CPU.

    PYTHONPATH=src python benchmarks/memory_estimate.py [SECONDS ...]     (default: 1.5 3 4.5 12)

For each length, in one process after the model is loaded: the estimate's components
(`SanaWMPipeline.memory_estimate`), then the generation's peak resident memory beyond what was resident
before it (`VmHWM` of /proc/self/status, reset through /proc/self/clear_refs). The first run also pays for
the lazily imported video encoder. Prints one row per length and the components of the last one.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    from sana_wm.bundled import example_files
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline import SanaWMPipeline
    from sana_wm.pipeline.memory import runtime_bytes

    lengths = [float(x) for x in sys.argv[1:]] or [1.5, 3.0, 4.5, 12.0]
    pipe = SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")
    image = example_files()["room_walk"][0]
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    print(f"{'seconds':>8} {'frames':>7} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6} "
          f"{'ratio w/o runtime':>18} {'wall s':>7}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in lengths:
            n = int(seconds * pipe.fps) + 1
            estimate = pipe.memory_estimate(n, guided=False, refine=False)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            before = status("VmRSS:")
            started = time.perf_counter()
            pipe.generate(image, action_to_trajectory(f"w-{n}"), num_frames=n, output=f"{tmp}/{seconds}.mp4",
                          progress=False)
            wall = time.perf_counter() - started
            measured = status("VmHWM:") - before
            need = estimate.needed_bytes
            rows.append({"seconds": seconds, "frames": n, "estimate": need, "measured": measured})
            print(f"{seconds:8g} {n:7d} {need / 2**20:13.1f} {measured / 2**20:13.1f} {need / measured:6.2f} "
                  f"{(need - runtime_bytes('cpu')) / measured:18.2f} {wall:7.1f}")
    print(estimate.table())
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
