"""Overlapped stages: stage 1, the refiner and the VAE decode of successive chunks on separate CUDA streams.

A streaming generation is a chain of generators (:meth:`SanaWMPipeline.sample` -> ``refine`` -> ``decode``), each
pulling latent chunks from the one before. CUDA launches are asynchronous, so one Python thread can keep three
chunks in flight: while the host waits for chunk ``k``'s frames (the MP4 writer needs them in host memory), the
stages of chunks ``k + 1`` and ``k + 2`` are already queued, each stage on its own stream, so the GPU can run the
decode of ``k``, the refiner of ``k + 1`` and stage 1 of ``k + 2`` at once. This module is that schedule, over a
small backend interface:

* :class:`StageSchedule` wraps each stage's generator (:meth:`~StageSchedule.stage`) so that its work is queued on
  its own stream and every item it yields carries an event recorded after that work; the consumer's stream waits
  for the event before the consumer queues anything that reads the item, and the item's tensors are handed over to
  the consumer's stream (``Tensor.record_stream``: the caching allocator does not give their memory to the
  producer's later work before the consumer's work is done). :meth:`~StageSchedule.host` runs the last stage
  ``ahead`` items ahead of the host, which blocks only on the event of the item it needs next, in order.
* :class:`CudaStreams` is the backend on a GPU (``torch.cuda.Stream``/``Event``); :data:`INLINE` runs everything in
  order on the current stream (the CPU, or ``overlap=False``), where the schedule with ``ahead=0`` is exactly the
  plain chain of generators.

The output equals the sequential order bit for bit: every stage sees the same inputs in the same order (each keeps
its own random generator, on the host), only the time at which its work runs changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["INLINE", "OVERLAP_AHEAD", "CudaStreams", "InlineStreams", "StageSchedule", "StreamBackend",
           "backend_for"]

# Items of the last stage queued beyond the one the host waits for: with 2, the GPU can run stage 1 of chunk k + 2,
# the refiner of k + 1 and the decode of k at once (3 chunks in flight at most, so memory stays bounded).
OVERLAP_AHEAD = 2


class StreamBackend(Protocol):
    """Streams and events as the schedule uses them (the CUDA backend, :data:`INLINE`, or a recording fake)."""

    def new_stream(self, stage: str) -> Any: ...

    def current_stream(self) -> Any: ...

    def use(self, stream: Any) -> contextlib.AbstractContextManager: ...

    def record(self, stream: Any) -> Any:
        """An event that completes once the work queued on ``stream`` so far has run."""

    def wait(self, stream: Any, event: Any) -> None:
        """Work queued on ``stream`` from now on starts after ``event``."""

    def hand_over(self, tensor: Tensor, stream: Any) -> None:
        """``tensor``, made on another stream, is used on ``stream``: keep its memory until that use is done."""

    def host_sync(self, event: Any) -> None:
        """Block the host until ``event``."""

    def to_host(self, tensor: Tensor) -> Tensor:
        """A host copy of ``tensor`` queued on the current stream; valid once a later event on it is reached."""

    def synchronize(self) -> None:
        """Block the host until all queued work is done."""


class InlineStreams:
    """Everything in order on the current stream, the host never ahead of the device: what a run without overlap
    does, and the only order there is on a CPU."""

    def new_stream(self, stage: str) -> None:
        return None

    def current_stream(self) -> None:
        return None

    def use(self, stream: None) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def record(self, stream: None) -> None:
        return None

    def wait(self, stream: None, event: None) -> None:
        pass

    def hand_over(self, tensor: Tensor, stream: None) -> None:
        pass

    def host_sync(self, event: None) -> None:
        pass

    def to_host(self, tensor: Tensor) -> Tensor:
        return tensor.cpu()

    def synchronize(self) -> None:
        pass


INLINE = InlineStreams()


class CudaStreams:
    """One ``torch.cuda.Stream`` per stage on ``device``, ordered by ``torch.cuda.Event``\\ s."""

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)

    def new_stream(self, stage: str) -> torch.cuda.Stream:
        return torch.cuda.Stream(self.device)

    def current_stream(self) -> torch.cuda.Stream:
        return torch.cuda.current_stream(self.device)

    def use(self, stream: torch.cuda.Stream) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(stream)

    def record(self, stream: torch.cuda.Stream) -> torch.cuda.Event:
        return stream.record_event()

    def wait(self, stream: torch.cuda.Stream, event: torch.cuda.Event) -> None:
        stream.wait_event(event)

    def hand_over(self, tensor: Tensor, stream: torch.cuda.Stream) -> None:
        if tensor.is_cuda:
            tensor.record_stream(stream)

    def host_sync(self, event: torch.cuda.Event) -> None:
        event.synchronize()

    def to_host(self, tensor: Tensor) -> Tensor:
        if not tensor.is_cuda:
            return tensor
        # Pinned memory and a non-blocking copy: the host does not wait here (a copy into pageable memory would
        # block it until the stream had run everything queued before, which is what overlap avoids).
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        return host

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


def backend_for(device: torch.device) -> StreamBackend | None:
    """The backend that overlaps stages on ``device``; None where stages cannot overlap (anything but CUDA)."""
    device = torch.device(device)
    return CudaStreams(device) if device.type == "cuda" else None


def _tensors(item: Any) -> list[Tensor]:
    """The tensors an item carries: the item itself, or a dataclass's tensor fields."""
    if isinstance(item, Tensor):
        return [item]
    if dataclasses.is_dataclass(item):
        return [value for value in (getattr(item, f.name) for f in dataclasses.fields(item))
                if isinstance(value, Tensor)]
    return []


class _Stage:
    """One stage's generator with its stream; iterated by the next stage, which runs on its own stream."""

    def __init__(self, schedule: StageSchedule, name: str, items: Iterable) -> None:
        self.schedule = schedule
        self.name = name
        backend = schedule.backend
        self.stream = backend.new_stream(name)
        # What the caller queued before the run (the first latent, the conditioning) is ready before this stage reads
        # it: a new stream does not wait for the current one by itself.
        backend.wait(self.stream, schedule.start)
        self.items = iter(items)
        self.produced = 0

    def produce(self) -> tuple[Any, Any] | None:
        """Queue the work of the next item on this stage's stream: ``(item, its event)``, or None at the end."""
        backend = self.schedule.backend
        with backend.use(self.stream):
            item = next(self.items, _END)
            if item is _END:
                return None
            event = backend.record(self.stream)
        self.produced += 1
        return item, event

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        """The next item for a consumer running on the current stream, which waits for the item's event."""
        produced = self.produce()
        if produced is None:
            raise StopIteration
        item, event = produced
        backend = self.schedule.backend
        consumer = backend.current_stream()
        backend.wait(consumer, event)
        for tensor in _tensors(item):
            backend.hand_over(tensor, consumer)
        return item


_END = object()


class StageSchedule:
    """A chain of stages over one backend (module docstring). ``ahead``: items of the last stage queued beyond the
    one the host waits for (0: the host waits for each item before the next is queued, the plain order)."""

    def __init__(self, backend: StreamBackend, ahead: int = 0) -> None:
        if ahead < 0:
            raise ValueError(f"ahead must be >= 0, got {ahead}")
        self.backend = backend
        self.ahead = ahead
        self.start = backend.record(backend.current_stream())

    def stage(self, name: str, items: Iterable) -> _Stage:
        """``items`` (a generator that may iterate an earlier stage) run on a stream of their own."""
        return _Stage(self, name, items)

    def host(self, last: _Stage) -> Iterator[Any]:
        """The items of the last stage on the host, in order: each yielded once its event is reached, with up to
        ``ahead`` later items already queued. When the items run out, all queued work (host copies included) is
        done before this returns."""
        backend = self.backend
        queued: deque[tuple[Any, Any]] = deque()
        done = False
        while True:
            while not done and len(queued) <= self.ahead:
                produced = last.produce()
                if produced is None:
                    done = True
                else:
                    queued.append(produced)
            if not queued:
                break
            item, event = queued.popleft()
            backend.host_sync(event)
            yield item
        backend.synchronize()
