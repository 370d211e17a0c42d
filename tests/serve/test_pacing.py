"""The lead mark (sana_wm.serve.pacing) by hand, and the scheduling it serves on a real session: a live chunk is
made with the keys held when its denoising starts (not when it was asked for), the clean pass runs while the
chunk's frames play, and no chunk is made unasked."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from starlette.testclient import TestClient

from sana_wm.serve import ServeSettings, create_app
from sana_wm.serve.pacing import LeadMark


def test_lead_mark_by_hand():
    mark = LeadMark()
    assert mark.seconds == 1.5  # nothing measured yet
    mark.record(0.6)
    assert mark.seconds == pytest.approx(1.25 * 0.6 + 0.1)
    mark.record(0.4)
    mark.record(0.5)
    assert mark.seconds == pytest.approx(0.85)  # the longest of the last three
    mark.record(0.2)  # 0.6 leaves the window of three
    assert list(mark.latencies) == [0.4, 0.5, 0.2] and mark.seconds == pytest.approx(1.25 * 0.5 + 0.1)
    fast = LeadMark(factor=1.0, margin_s=0.0, floor_s=0.3)
    fast.record(0.01)
    assert fast.seconds == 0.3


def _chunk(ws) -> tuple[dict, list[bytes]]:
    header = ws.receive_json()
    assert header["type"] == "chunk", header
    return header, [ws.receive_bytes() for _ in range(header["frames"])]


def test_keys_are_read_when_the_chunk_starts(synth_pipe):
    """The worker is held by another job while "next" (with w) and then "keys" (a) arrive: the chunk, started once
    the worker is free, is made with a. Between chunks the server runs the clean pass and makes nothing unasked."""
    settings = ServeSettings().checked()
    with TestClient(create_app(settings, synth_pipe)) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "start", "source": "example", "example": "room_walk"})
        assert ws.receive_json()["type"] == "started"
        header, _ = _chunk(ws)
        assert header["index"] == 0 and header["held"] == ""
        assert header["lead_s"] == pytest.approx(max(0.25, 1.25 * header["latency_s"] + 0.1), abs=2e-4)
        state = client.app.state.serve
        (session,) = state.sessions.values()

        ws.send_json({"type": "ping"})  # answered after the clean pass was queued: wait for it to run
        assert ws.receive_json() == {"type": "pong"}
        deadline = time.monotonic() + 120
        while session.live.unsettled is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.live.unsettled is None and session.live.chunks == 1  # settled, and no chunk unasked

        began, gate = threading.Event(), threading.Event()

        def hold_the_worker():
            asyncio.run(state.worker.run("someone-else", lambda: (began.set(), gate.wait(60))))

        holder = threading.Thread(target=hold_the_worker)
        holder.start()
        try:
            assert began.wait(60)
            ws.send_json({"type": "next", "held": "w"})
            ws.send_json({"type": "keys", "held": "a"})  # let go of w, press a: before the chunk can start
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}  # both handled (messages are handled in order)
        finally:
            gate.set()
            holder.join(60)
        header, frames = _chunk(ws)
        assert header["index"] == 1 and header["held"] == "a" and len(frames) == 24
        assert header["latency_s"] >= header["seconds"] > 0  # the wait for the worker counts in the latency
        assert header["lead_s"] == pytest.approx(1.25 * max(header["latency_s"], session.lead.latencies[0]) + 0.1,
                                                 abs=2e-4)
        ws.send_json({"type": "stop"})
        finished = ws.receive_json()
        assert finished["type"] == "finished" and "--action none-24,a-24" in finished["command"]
