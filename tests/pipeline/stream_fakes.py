"""A recording stand-in for CUDA streams: the overlap schedule's backend, logging what it is asked to do."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

HOST = "host"  # the stream the host thread queues on when no stage stream is current


@dataclass(frozen=True)
class FakeStream:
    name: str


@dataclass(frozen=True)
class FakeEvent:
    number: int  # in the order events were recorded, over all streams
    stream: str
    index: int  # the how-manieth event recorded on its stream


@dataclass
class RecordingStreams:
    """Implements :class:`sana_wm.pipeline.overlap.StreamBackend`; ``log`` holds tuples in call order:
    ``("record", stream, event)``, ``("wait", stream, event)``, ``("hand_over", id(tensor), stream)``,
    ``("host_sync", event)``, ``("to_host", stream)``, ``("synchronize",)`` and, from instrumented stage code
    (:meth:`work`), ``("work", stream, label, key)``."""

    log: list[tuple] = field(default_factory=list)
    current: FakeStream = field(default_factory=lambda: FakeStream(HOST))
    events: list[FakeEvent] = field(default_factory=list)

    def new_stream(self, stage: str) -> FakeStream:
        return FakeStream(stage)

    def current_stream(self) -> FakeStream:
        return self.current

    @contextlib.contextmanager
    def use(self, stream: FakeStream):
        previous, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = previous

    def record(self, stream: FakeStream) -> FakeEvent:
        index = sum(event.stream == stream.name for event in self.events)
        event = FakeEvent(len(self.events), stream.name, index)
        self.events.append(event)
        self.log.append(("record", stream.name, event))
        return event

    def wait(self, stream: FakeStream, event: FakeEvent) -> None:
        self.log.append(("wait", stream.name, event))

    def hand_over(self, tensor: torch.Tensor, stream: FakeStream) -> None:
        self.log.append(("hand_over", id(tensor), stream.name))

    def host_sync(self, event: FakeEvent) -> None:
        self.log.append(("host_sync", event))

    def to_host(self, tensor: torch.Tensor) -> torch.Tensor:
        self.log.append(("to_host", self.current.name))
        return tensor.cpu()

    def synchronize(self) -> None:
        self.log.append(("synchronize",))

    def work(self, label: str, key=None) -> None:
        """Stage code calls this where it queues device work."""
        self.log.append(("work", self.current.name, label, key))

    # -- reading the log ----------------------------------------------------------------------------
    def entries(self, kind: str) -> list[tuple[int, tuple]]:
        return [(i, entry) for i, entry in enumerate(self.log) if entry[0] == kind]

    def work_on(self, label: str) -> list[tuple[int, tuple]]:
        return [(i, entry) for i, entry in self.entries("work") if entry[2] == label]

    def waited_before(self, position: int, stream: str, event: FakeEvent) -> bool:
        """Whether ``stream`` waited for ``event`` before log position ``position``."""
        return ("wait", stream, event) in self.log[:position]

    def handed_over_before(self, position: int, tensor_id: int, stream: str) -> bool:
        return ("hand_over", tensor_id, stream) in self.log[:position]

    def event(self, stream: str, index: int) -> FakeEvent:
        return next(e for e in self.events if e.stream == stream and e.index == index)
