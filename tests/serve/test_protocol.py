"""The session protocol without a browser (starlette's TestClient): a session end to end, every refusal with its
message, uploads, tokens, the queue, the idle timeout, a client that leaves mid-chunk, and fair turns on one
worker."""

from __future__ import annotations

import asyncio
import io
import json
import shlex
import time

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sana_wm.cli import main
from sana_wm.pipeline.video import read_video
from sana_wm.serve import ServeError, ServeSettings, create_app
from sana_wm.serve.worker import ChunkWorker


def _client(pipe, **settings) -> TestClient:
    return TestClient(create_app(ServeSettings(**settings).checked(), pipe))


def _chunk(ws) -> tuple[dict, list[bytes]]:
    header = ws.receive_json()
    assert header["type"] == "chunk", header
    return header, [ws.receive_bytes() for _ in range(header["frames"])]


def _error(ws, message) -> str:
    ws.send_json(message) if isinstance(message, dict) else (
        ws.send_bytes(message) if isinstance(message, bytes) else ws.send_text(message))
    reply = ws.receive_json()
    assert reply["type"] == "error", reply
    return reply["message"]


def _jpeg(size=(40, 20), orientation: int | None = None) -> bytes:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def _wait_until(condition, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_live_session_end_to_end(synth_pipe, tmp_path):
    with _client(synth_pipe) as client, client.websocket_connect("/ws") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["limits"]["max_upload_bytes"] == 8 * 2**20
        ws.send_json({"type": "start", "source": "example", "example": "room_walk", "seed": 3})
        started = ws.receive_json()
        assert started["type"] == "started" and started["frames_per_chunk"] == 24 and started["fps"] == 16
        header, frames = _chunk(ws)  # the first chunk comes without asking: no keys were held
        assert header["index"] == 0 and len(frames) == 25 and header["held"] == ""
        assert Image.open(io.BytesIO(frames[0])).size == (128, 128)
        for held in ("w", "a"):
            ws.send_json({"type": "next", "held": held})
            header, frames = _chunk(ws)
            assert header["held"] == held and len(frames) == 24 and header["rtf"] > 0
        # The map's poses: forward (+z) on "w", then a left turn (negative yaw) on "a".
        x, z, yaw = header["poses"][-1]
        assert z == pytest.approx(24 * 0.025, rel=1e-3) and yaw == pytest.approx(-24 * 0.6, rel=1e-3)
        ws.send_json({"type": "stop"})
        finished = ws.receive_json()
        assert finished["type"] == "finished" and finished["frames"] == 25 + 48
        assert "--action none-24,w-24,a-24" in finished["command"] and "--seed 3" in finished["command"]
        video = client.get(finished["video"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        sidecar = json.loads(client.get(finished["sidecar"]).content)
        assert sidecar["action"] == "none-24,w-24,a-24" and sidecar["live"]["mapping"] == "current"
        path = client.app.state.serve.sessions[finished["video"].split("/")[2]].folder / "video.mp4"
        decoded, fps = read_video(path)
        assert decoded.shape == (73, 128, 128, 3) and fps == 16
        # The command the page shows makes the same video.
        again = tmp_path / "again.mp4"
        command = shlex.split(finished["command"])[1:]
        command[command.index("--out") + 1] = str(again)
        assert main(command) == 0
        assert np.array_equal(read_video(again)[0], decoded)
        assert client.get("/download/someone-else/video.mp4").status_code == 404


def test_preset_and_action_modes_end_by_themselves(synth_pipe):
    with _client(synth_pipe) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "start", "source": "example", "example": "open_orbit", "mode": "action",
                      "action": "w-30", "mapping": "legacy"})
        assert ws.receive_json()["mapping"] == "legacy"
        _chunk(ws)
        ws.send_json({"type": "next"})
        header, _ = _chunk(ws)
        assert header["held"] == ""  # 30 frames of w fill chunk 0 and 6 frames of chunk 1; the rest stands still
        finished = ws.receive_json()
        assert finished["type"] == "finished" and "--action w-30,none-18" in finished["command"]
        ws.send_json({"type": "start", "source": "example", "example": "open_orbit", "mode": "preset",
                      "preset": "strafe right"})
        assert ws.receive_json()["type"] == "started"
        _chunk(ws)


def test_bad_messages_are_refused_and_the_session_goes_on(synth_pipe):
    with _client(synth_pipe, max_message_bytes=512) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        assert "this one is not: not valid JSON" in _error(ws, "{nope")
        assert "nested" in _error(ws, "[" * 200 + "]" * 200)
        assert "with a \"type\"" in _error(ws, "[1, 2]")
        assert "unknown message type 'fly'" in _error(ws, {"type": "fly"})
        assert "at most 512 bytes" in _error(ws, json.dumps({"type": "keys", "held": "w" * 600}))
        assert "send start first" in _error(ws, {"type": "next"})
        assert "nothing to stop" in _error(ws, {"type": "stop"})
        assert "needs \"source\"" in _error(ws, {"type": "start"})
        assert "unknown example '../../etc/passwd'" in _error(ws, {"type": "start", "source": "example",
                                                                    "example": "../../etc/passwd"})
        assert "no image uploaded yet" in _error(ws, {"type": "start", "source": "upload"})
        start = {"type": "start", "source": "example", "example": "room_walk"}
        assert "mode 'fly'" in _error(ws, {**start, "mode": "fly"})
        assert "mapping 'qwerty'" in _error(ws, {**start, "mapping": "qwerty"})
        assert "seed must be a whole number" in _error(ws, {**start, "seed": -1})
        assert "seed must be a whole number" in _error(ws, {**start, "seed": "7"})
        assert "unknown keys ['x']" in _error(ws, {"type": "keys", "held": "wx"})
        assert "'held' must be a string" in _error(ws, {"type": "keys", "held": ["w"]})
        assert "unknown preset" in _error(ws, {**start, "mode": "preset", "preset": "moonwalk"})
        assert "unknown key 'q'" in _error(ws, {**start, "mode": "action", "action": "q-10"})
        assert "at most 4800" in _error(ws, {**start, "mode": "action", "action": "w-5000"})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_uploads_are_checked_and_exif_applied(synth_pipe, tmp_path):
    with _client(synth_pipe, max_upload_bytes=4096, max_upload_pixels=64 * 64) as client, \
            client.websocket_connect("/ws") as ws:
        ws.receive_json()
        assert "limit is 0.0 MiB" in _error(ws, b"\0" * 5000)
        assert "not an image" in _error(ws, b"GIF89a but not really")
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, format="GIF")
        assert "GIF images are not accepted" in _error(ws, gif.getvalue())
        assert "65x64" in _error(ws, _jpeg((65, 64)))
        ws.send_bytes(_jpeg((40, 20), orientation=6))  # stored sideways: EXIF says turn it upright
        uploaded = ws.receive_json()
        assert uploaded == {"type": "uploaded", "width": 20, "height": 40, "format": "JPEG"}
        session = next(iter(client.app.state.serve.sessions.values()))
        assert [p.name for p in session.folder.iterdir()] == ["upload.jpg"]
        ws.send_json({"type": "start", "source": "upload"})
        ws.receive_json()
        _chunk(ws)
        ws.send_json({"type": "stop"})
        assert "YOUR_IMAGE.jpg" in ws.receive_json()["command"]
        folder = session.folder
    _wait_until(lambda: not folder.exists())  # the upload and the video go with the session


def test_token_is_required_on_every_request(synth_pipe):
    with pytest.raises(ServeError, match="--host 0.0.0.0 accepts connections from other machines"):
        ServeSettings(host="0.0.0.0").checked()
    with pytest.raises(ServeError, match="at least 8 characters"):
        ServeSettings(token="short").checked()
    assert ServeSettings(host="0.0.0.0", token="a-long-secret").checked().token == "a-long-secret"
    with _client(synth_pipe, token="a-long-secret") as client:
        assert client.get("/").status_code == 401
        assert client.get("/api/info?token=wrong-secret").status_code == 401
        assert client.get("/api/examples/room_walk.png").status_code == 401
        assert client.get("/api/info?token=a-long-secret").status_code == 200
        page = client.get("/", headers={"Authorization": "Bearer a-long-secret"})
        assert page.status_code == 200 and '"static/app.js?token=a-long-secret"' in page.text
        assert client.get("/static/app.js?token=a-long-secret").status_code == 200
        assert client.get("/static/app.js").status_code == 401
        with client.websocket_connect("/ws?token=nope") as ws:
            assert "wrong or missing token" in ws.receive_json()["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4401
        with client.websocket_connect("/ws?token=a-long-secret") as ws:
            assert ws.receive_json()["type"] == "ready"


def test_too_many_sessions_wait_in_a_queue(synth_pipe):
    with _client(synth_pipe, max_sessions=1, max_queue=1) as client:
        state = client.app.state.serve
        first = client.websocket_connect("/ws").__enter__()
        assert first.receive_json()["type"] == "ready"
        with client.websocket_connect("/ws") as second:
            assert second.receive_json() == {"type": "queued", "position": 1}
            assert "waiting in the queue" in _error(second, {"type": "ping"})
            with client.websocket_connect("/ws") as third:
                assert "the server is full (1 sessions and 1 waiting)" in third.receive_json()["message"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    third.receive_json()
                assert closed.value.code == 4429
            first.__exit__(None, None, None)  # the first leaves: the second gets its place
            assert second.receive_json()["type"] == "ready"
            assert len(state.admission.active) == 1 and not state.admission.waiting


def test_idle_sessions_are_closed(synth_pipe):
    with _client(synth_pipe, idle_timeout_s=1.0) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        closed = ws.receive_json()
        assert closed == {"type": "closed", "reason": "no message for 1 s"}
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()
        _wait_until(lambda: not client.app.state.serve.sessions)


def test_leaving_mid_chunk_frees_the_session(synth_pipe):
    with _client(synth_pipe, max_sessions=1) as client:
        state = client.app.state.serve
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()
            ws.send_json({"type": "start", "source": "example", "example": "corridor_walk"})
            assert ws.receive_json()["type"] == "started"  # chunk 0 is now being made
            folder = next(iter(state.sessions.values())).folder
            jobs = state.worker.stats.jobs
        _wait_until(lambda: not state.sessions and not state.admission.active)
        assert state.worker.stats.jobs >= jobs + 1  # the session waited for its chunk before removing its files
        assert not folder.exists() and not list(state.tmp_root.iterdir())
        with client.websocket_connect("/ws") as ws:  # the place is free again
            assert ws.receive_json()["type"] == "ready"


def test_worker_takes_sessions_in_turn():
    """Three sessions asking for chunks as fast as they can get them: one worker runs them A, B, C, A, B, C."""
    worker = ChunkWorker()

    async def session(name: str, chunks: int) -> None:
        for _ in range(chunks):
            await worker.run(name, lambda: time.sleep(0.01))

    async def main():
        await asyncio.gather(session("A", 4), session("B", 4), session("C", 4))

    try:
        asyncio.run(main())
        assert worker.stats.order == list("ABC" * 4)
        assert worker.stats.jobs == 12
    finally:
        worker.stop()


def test_stop_while_a_chunk_is_made_keeps_that_chunk(synth_pipe):
    with _client(synth_pipe) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "start", "source": "example", "example": "room_walk"})
        ws.receive_json()
        ws.send_json({"type": "next", "held": "w"})  # asked while chunk 0 is made: made right after it
        ws.send_json({"type": "stop"})
        header, frames = _chunk(ws)
        assert header["index"] == 0 and len(frames) == 25
        finished = ws.receive_json()
        assert finished["type"] == "finished" and finished["frames"] == 25
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # nothing else came: the queued "next" was dropped
        assert client.get(finished["video"]).status_code == 200


def test_action_strings_are_bounded_by_the_sessions_whole_chunks(synth_pipe):
    """10 s at 16 fps is 160 frames, but a session makes whole 24-frame chunks: 6 of them, 144 frames. A longer
    string is refused rather than cut short at the sixth chunk."""
    with _client(synth_pipe, max_session_s=10) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        start = {"type": "start", "source": "example", "example": "room_walk", "mode": "action"}
        assert "holds 150 frames; a session makes at most 144 (9 s)" in _error(ws, {**start, "action": "w-150"})
        session = next(iter(client.app.state.serve.sessions.values()))
        assert session.live is None and session.planned is None
        assert [p.name for p in session.folder.iterdir()] == []  # the refused session's partial MP4 is gone
        ws.send_json({**start, "action": "w-144"})
        assert ws.receive_json()["max_chunks"] == 6
        _chunk(ws)
        ws.send_json({"type": "stop"})
        assert ws.receive_json()["type"] == "finished"


def test_a_damaged_upload_keeps_the_earlier_one(synth_pipe):
    with _client(synth_pipe) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_bytes(_jpeg((40, 20)))
        assert ws.receive_json()["type"] == "uploaded"
        whole = _jpeg((64, 48))
        assert "cannot be read" in _error(ws, whole[:len(whole) // 2])  # a JPEG header, then cut off
        session = next(iter(client.app.state.serve.sessions.values()))
        assert [p.name for p in session.folder.iterdir()] == ["upload.jpg"]
        ws.send_json({"type": "start", "source": "upload"})
        assert ws.receive_json()["type"] == "started"
        _chunk(ws)
        ws.send_json({"type": "stop"})
        assert ws.receive_json()["type"] == "finished"
