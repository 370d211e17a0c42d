"""The memory estimate of a generation against its measured peak: bundled model, CPU.

    PYTHONPATH=src python benchmarks/memory_estimate.py [SECONDS ...]     (default: 1.5 3 4.5 12)

Each length runs in its own child process (:func:`sana_wm.pipeline.peak_memory.measure_in_child`, which says how
the peak is read and why glibc is told to unmap freed allocations): the estimate of
``SanaWMPipeline.memory_estimate`` against the generation's measured peak beyond what was resident before it.
Prints one row per length and the components of the last one.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def main() -> None:
    from sana_wm.pipeline.memory import runtime_bytes
    from sana_wm.pipeline.peak_memory import measure_in_child

    lengths = [float(x) for x in sys.argv[1:]] or [1.5, 3.0, 4.5, 12.0]
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    print(f"{'seconds':>8} {'frames':>7} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6} "
          f"{'ratio w/o runtime':>18} {'wall s':>7}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in lengths:
            row = measure_in_child(seconds, f"{tmp}/{seconds}.mp4")
            rows.append(row)
            need, measured = row["estimate"], row["generation"]
            print(f"{seconds:8g} {row['frames']:7d} {need / 2**20:13.1f} {measured / 2**20:13.1f} "
                  f"{need / measured:6.2f} {(need - runtime_bytes('cpu')) / measured:18.2f} {row['wall']:7.1f}")
    print(rows[-1]["table"])
    print(json.dumps([{k: v for k, v in row.items() if k != "table"} for row in rows]))


if __name__ == "__main__":
    main()
