"""Print the reliability counts of docs/reliability.md: run every case of the bad-input table once.

    PYTHONPATH=src python tests/reliability/count.py            # every case
    PYTHONPATH=src python tests/reliability/count.py --fast     # without the slow ones (as pytest runs them)

Counts per class of case: cases run, clean refusals (the expected exit status, the culprit named, nothing
changed), raw tracebacks, cases that changed or lost a file, cases stopped by the memory guard (an
unbounded allocation: each case runs under an 8 GiB address-space limit, so one that grows without bound ends
in MemoryError instead of taking the host down) and cases still working after a minute (not refused at the
entry: loading a model, sampling or rendering what should have been refused).
"""

from __future__ import annotations

import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from reliability_cases import CASES, build_workspace, run_case  # noqa: E402

_GUARD_BYTES = 8 * 2**30
_GUARD_SECONDS = 60  # every case is refused at the entry in well under a second; a minute means it is working


class _Hang(BaseException):
    pass


def _hang(signum, frame):
    raise _Hang


def main() -> int:
    rows: dict[str, Counter] = {}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        pristine = build_workspace(Path(tmp) / "pristine")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        ws = Path(tmp) / "ws"
        shutil.copytree(pristine, ws, symlinks=True)
        slow = []
        for case in CASES:
            if case.slow and "--fast" in sys.argv:
                continue
            started = time.perf_counter()
            resource.setrlimit(resource.RLIMIT_AS, (_GUARD_BYTES, hard))
            signal.signal(signal.SIGALRM, _hang)
            signal.alarm(_GUARD_SECONDS)
            hung = False
            try:
                outcome = run_case(case, ws)
            except _Hang:
                hung, outcome = True, None
            finally:
                signal.alarm(0)
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            row = rows.setdefault(case.kind, Counter())
            row["cases"] += 1
            if hung:
                row["ran on"] += 1
                failures.append(f"{case.kind}:{case.name}: still working after {_GUARD_SECONDS} s (not refused)")
                print(failures[-1], flush=True)
                _restore(pristine, ws)
                continue
            problems = outcome.problems(case, ws)
            row["clean"] += not problems
            row["tracebacks"] += outcome.traceback
            row["files changed"] += bool(outcome.changed)
            row["unbounded"] += outcome.escaped == "MemoryError" or "MemoryError" in outcome.stderr
            if problems:
                failures.append(f"{case.kind}:{case.name}: {'; '.join(problems)}")
                print(failures[-1][:400], flush=True)
            if outcome.changed:
                _restore(pristine, ws)
            slow.append((time.perf_counter() - started, f"{case.kind}:{case.name}"))
    columns = ("cases", "clean", "tracebacks", "files changed", "unbounded", "ran on")
    print(f"{'class':<14}" + "".join(f"{c:>15}" for c in columns))
    total = Counter()
    for kind, row in rows.items():
        total.update(row)
        print(f"{kind:<14}" + "".join(f"{row[c]:>15}" for c in columns))
    print(f"{'total':<14}" + "".join(f"{total[c]:>15}" for c in columns))
    if "--times" in sys.argv:
        print(f"total {sum(t for t, _ in slow):.1f} s; slowest:")
        for t, name in sorted(slow, reverse=True)[:15]:
            print(f"  {t:6.2f} s  {name}")
    return 1 if failures else 0


def _restore(pristine: Path, ws: Path) -> None:
    """A case changed the workspace: start the next one from a fresh copy."""
    import shutil

    shutil.rmtree(ws)
    shutil.copytree(pristine, ws, symlinks=True)


if __name__ == "__main__":
    sys.exit(main())
