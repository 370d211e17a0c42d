"""One thread that runs every session's model work, one job at a time, in the order asked.

Each session has at most one job waiting or running (its next chunk, its opening or its finish) and asks for the
next only after the last one is done, so first-come-first-served over sessions is round-robin: with three sessions
generating, their chunks run A, B, C, A, B, C, ... on the one model. Keeping the model on one thread also keeps
PyTorch's own thread pool the only parallelism on a CPU.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChunkWorker", "JobStats"]


@dataclass
class JobStats:
    """What the worker has done: jobs run, seconds busy, and the session of each job in order (the last 1000)."""

    jobs: int = 0
    busy_s: float = 0.0
    order: list[str] = field(default_factory=list)


class ChunkWorker:
    """``await worker.run(session_id, fn)`` runs ``fn()`` on the worker thread and returns its result (or raises its
    exception) on the caller's event loop. :meth:`stop` lets the running job finish and refuses new ones."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._stopped = False
        self.stats = JobStats()
        self._thread = threading.Thread(target=self._loop, name="sana-wm-serve-worker", daemon=True)
        self._thread.start()

    async def run(self, session_id: str, fn: Callable[[], Any]) -> Any:
        if self._stopped:
            raise RuntimeError("the server is shutting down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((session_id, fn, loop, future))
        return await future

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            session_id, fn, loop, future = job
            if future.cancelled():  # the session went away while its job waited
                continue
            started = time.perf_counter()
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the session's coroutine, which reports it
                result, error = None, exc
            self.stats.jobs += 1
            self.stats.busy_s += time.perf_counter() - started
            self.stats.order = (self.stats.order + [session_id])[-1000:]
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the event loop has closed: nobody is waiting any more
                pass

    def stop(self, timeout: float = 60.0) -> None:
        """Refuse new jobs, let the running one finish (its session then closes its files), end the thread."""
        self._stopped = True
        self._jobs.put(None)
        self._thread.join(timeout)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
