"""How far a live session runs ahead of what the page shows: the lead mark.

A chunk's camera is fixed when its denoising starts, and its keys are read then (:mod:`~sana_wm.serve.session`), so
a key pressed at time ``t`` first shows on the frames of the first chunk that starts after ``t``. That chunk's
first frame is shown when the video already made or being made before it has played, so

    key-to-motion = (wait for the next chunk's start) + (video still to play when that chunk starts).

The page asks for the next chunk when the video it has left to play (received and not shown, plus the rest of a
chunk still arriving) falls below the mark the server sends with every chunk: chunks start every 1.5 s of
video (one chunk's length), the wait is 0 to 1.5 s (0.75 s on average for a key pressed at a random moment), and
the second term is the mark. The mark must still cover the time from asking to the chunk's frames arriving, or
the picture stalls: it is ``factor x`` the longest of the session's last ``window`` chunk latencies (asked ->
frames sent, which includes waiting for other sessions' chunks on the one worker) ``+ margin_s``, at least
``floor_s``. Lower marks mean a quicker response and more stalls when a chunk takes longer than the ones before.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["LeadMark"]


@dataclass
class LeadMark:
    """The lead mark of one session (module docstring): :meth:`record` each chunk's latency, read :attr:`seconds`.
    Before the first latency is known the mark is ``initial_s``."""

    factor: float = 1.25
    margin_s: float = 0.1
    floor_s: float = 0.25
    window: int = 3
    initial_s: float = 1.5
    latencies: deque = field(default_factory=deque)  # the last ``window`` chunk latencies, seconds

    def record(self, latency_s: float) -> None:
        self.latencies.append(float(latency_s))
        while len(self.latencies) > self.window:
            self.latencies.popleft()

    @property
    def seconds(self) -> float:
        if not self.latencies:
            return self.initial_s
        return max(self.floor_s, self.factor * max(self.latencies) + self.margin_s)
