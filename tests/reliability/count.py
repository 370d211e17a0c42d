"""Print the reliability counts of docs/reliability.md: run every case of the bad-input table once.

    PYTHONPATH=src python tests/reliability/count.py

Counts per class of case: cases run, clean refusals (the expected exit status, the culprit named, nothing
changed), raw tracebacks, cases that changed or lost a file, and cases stopped by the memory guard (an
unbounded allocation: each case runs under a 4 GiB address-space limit, so one that grows without bound ends
in MemoryError instead of taking the host down).
"""

from __future__ import annotations

import resource
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from reliability_cases import CASES, build_workspace, run_case  # noqa: E402

_GUARD_BYTES = 4 * 2**30


def main() -> int:
    rows: dict[str, Counter] = {}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        pristine = build_workspace(Path(tmp) / "pristine")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        for i, case in enumerate(CASES):
            ws = Path(tmp) / f"case{i}"
            shutil.copytree(pristine, ws)
            resource.setrlimit(resource.RLIMIT_AS, (_GUARD_BYTES, hard))
            try:
                outcome = run_case(case, ws)
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            problems = outcome.problems(case, ws)
            row = rows.setdefault(case.kind, Counter())
            row["cases"] += 1
            row["clean"] += not problems
            row["tracebacks"] += outcome.traceback
            row["files changed"] += bool(outcome.changed)
            row["unbounded"] += "MemoryError" in outcome.stderr
            if problems:
                failures.append(f"{case.kind}:{case.name}: {'; '.join(problems)}")
            shutil.rmtree(ws)
    columns = ("cases", "clean", "tracebacks", "files changed", "unbounded")
    print(f"{'class':<14}" + "".join(f"{c:>15}" for c in columns))
    total = Counter()
    for kind, row in rows.items():
        total.update(row)
        print(f"{kind:<14}" + "".join(f"{row[c]:>15}" for c in columns))
    print(f"{'total':<14}" + "".join(f"{total[c]:>15}" for c in columns))
    for line in failures:
        print("FAIL", line[:300])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
