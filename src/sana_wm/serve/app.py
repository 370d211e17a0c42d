"""The FastAPI application: the page, the examples, the session WebSocket, downloads, and the admission queue.

Routes: ``GET /`` the page (plain HTML and JavaScript in ``static/``, no build step), ``GET /static/...``,
``GET /api/info`` (examples, presets, limits), ``GET /api/examples/NAME.png`` (a bundled example's first frame,
looked up by name), ``WS /ws`` (one session, :mod:`~sana_wm.serve.session`), ``GET /download/ID/FILE`` (a
finished video or its sidecar, looked up by the session's random id).

With a token (required off loopback) every request carries it, as ``?token=`` or an ``Authorization: Bearer``
header; the page passes on the one in its own address. A wrong or missing token gets 401 (HTTP) or an ``error``
message and close code 4401 (WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from sana_wm.serve.settings import ACTION_PRESETS, ServeSettings
from sana_wm.serve.worker import ChunkWorker

__all__ = ["Admission", "ServerState", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
CLOSE_UNAUTHORIZED = 4401  # a WebSocket close code in the private range: the token was wrong or missing
CLOSE_FULL = 4429  # the server and its queue are full
CLOSE_POLICY = 1008  # idle timeout, session length, or the server shutting down


class Admission:
    """At most ``max_active`` sessions generate; up to ``max_queue`` more wait, first come first served, and are
    told their position whenever it changes."""

    def __init__(self, max_active: int, max_queue: int) -> None:
        self.max_active, self.max_queue = max_active, max_queue
        self.active: set[str] = set()
        self.waiting: list[tuple[str, asyncio.Event, object]] = []  # (session id, admitted, notify(position))

    def try_enter(self, session_id: str) -> bool:
        if len(self.active) < self.max_active and not self.waiting:
            self.active.add(session_id)
            return True
        return False

    def can_wait(self) -> bool:
        return len(self.waiting) < self.max_queue

    def wait(self, session_id: str, notify) -> asyncio.Event:
        event = asyncio.Event()
        self.waiting.append((session_id, event, notify))
        return event

    def position(self, session_id: str) -> int:
        return next(i for i, (sid, _, _) in enumerate(self.waiting, start=1) if sid == session_id)

    async def leave(self, session_id: str) -> None:
        """A session ended (or gave up waiting): free its place and admit and renumber the waiting ones."""
        self.active.discard(session_id)
        before = {sid: i for i, (sid, _, _) in enumerate(self.waiting)}
        self.waiting = [w for w in self.waiting if w[0] != session_id]
        while self.waiting and len(self.active) < self.max_active:
            sid, event, _ = self.waiting.pop(0)
            self.active.add(sid)
            event.set()
        for position, (sid, _, notify) in enumerate(self.waiting, start=1):
            if before[sid] + 1 != position:  # only those who moved up are told
                with contextlib.suppress(Exception):  # a waiting socket that just went away
                    await notify(position)


@dataclass
class ServerState:
    """What every session shares: the settings, the loaded pipeline, the one worker thread, the examples."""

    settings: ServeSettings
    pipe: object
    worker: ChunkWorker
    examples: dict[str, Path]
    tmp_root: Path
    admission: Admission
    sessions: dict[str, object] = field(default_factory=dict)  # id -> ClientSession, while its socket is open
    ending: set[asyncio.Task] = field(default_factory=set)  # sessions closing their files
    closing: bool = False


def _limits(s: ServeSettings) -> dict:
    return {"max_sessions": s.max_sessions, "max_queue": s.max_queue, "idle_timeout_s": s.idle_timeout_s,
            "max_session_s": s.max_session_s, "max_upload_bytes": s.max_upload_bytes,
            "max_upload_pixels": s.max_upload_pixels, "max_message_bytes": s.max_message_bytes}


def _authorized(settings: ServeSettings, given: str | None) -> bool:
    if settings.token is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), settings.token.encode())


def _token_of(request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


def create_app(settings: ServeSettings, pipe=None):
    """The application for ``settings`` (already :meth:`~ServeSettings.checked`). ``pipe``: a loaded streaming
    pipeline (default: ``settings.model`` is loaded when the application starts)."""
    from sana_wm.bundled import example_files

    state_box: dict[str, ServerState] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        from sana_wm.pipeline import SanaWMPipeline

        loaded = pipe if pipe is not None else SanaWMPipeline.from_pretrained(settings.model, device=settings.device)
        if loaded.variant != "streaming":
            raise SystemExit(f"--model {settings.model}: live sessions need a streaming model; this one is "
                             f"{loaded.variant}")
        tmp_root = Path(tempfile.mkdtemp(prefix="sana-wm-serve-"))
        state = ServerState(settings, loaded, ChunkWorker(), {k: v[0] for k, v in example_files().items()}, tmp_root,
                            Admission(settings.max_sessions, settings.max_queue))
        state_box["state"] = state
        app.state.serve = state
        try:
            yield
        finally:
            # Ctrl-C: uvicorn has closed the sockets; each session's handler closes its MP4 and removes its folder.
            state.closing = True
            deadline = time.monotonic() + 30
            while (state.sessions or state.ending) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            state.worker.stop()
            shutil.rmtree(tmp_root, ignore_errors=True)

    app = FastAPI(title="sana-wm serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if not _authorized(settings, _token_of(request)):
            return PlainTextResponse("401: this server needs its token: open the page as /?token=SECRET",
                                     status_code=401)
        return await call_next(request)

    @app.get("/")
    async def index():
        html = (STATIC_DIR / "index.html").read_text()
        if settings.token is not None:  # the page's own files are requests too: they carry the token
            query = "?token=" + quote(settings.token, safe="")
            html = html.replace('"static/style.css"', f'"static/style.css{query}"')
            html = html.replace('"static/app.js"', f'"static/app.js{query}"')
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/info")
    async def info():
        state = state_box["state"]
        return {"examples": list(state.examples), "presets": ACTION_PRESETS, "limits": _limits(state.settings),
                "fps": state.pipe.fps, "model": state.settings.model}

    @app.get("/api/examples/{name}.png")
    async def example_image(name: str):
        path = state_box["state"].examples.get(name)
        if path is None:
            return PlainTextResponse(f"404: no example named {name[:40]!r}", status_code=404)
        return FileResponse(path, media_type="image/png")

    @app.get("/download/{session_id}/{name}")
    async def download(session_id: str, name: str):
        session = state_box["state"].sessions.get(session_id)
        path = session.download(name) if session is not None else None
        if path is None:
            return PlainTextResponse("404: no such video; videos can be downloaded while their session is open",
                                     status_code=404)
        media = "video/mp4" if name.endswith(".mp4") else "application/json"
        return FileResponse(path, media_type=media, filename=name)

    @app.websocket("/ws")
    async def session_socket(ws: WebSocket):
        await ws.accept()
        state = state_box["state"]
        given = ws.query_params.get("token")
        if not _authorized(settings, given):
            await ws.send_json({"type": "error", "message": "wrong or missing token: open the page as "
                                                            "/?token=SECRET"})
            await ws.close(CLOSE_UNAUTHORIZED)
            return
        await _run_session(ws, state)

    return app


async def _run_session(ws: WebSocket, state: ServerState) -> None:
    from sana_wm.errors import UserError
    from sana_wm.serve.session import ClientSession

    settings = state.settings
    session = ClientSession(state, ws.send_json, ws.send_bytes)
    admission = state.admission
    state.sessions[session.id] = session
    try:
        if not admission.try_enter(session.id):
            if not admission.can_wait():
                await ws.send_json({"type": "error", "message": f"the server is full ({settings.max_sessions} "
                                    f"sessions and {settings.max_queue} waiting); try again in a few minutes"})
                await ws.close(CLOSE_FULL)
                return

            async def notify(position: int) -> None:
                await session.send({"type": "queued", "position": position})

            admitted = admission.wait(session.id, notify)
            await notify(admission.position(session.id))
            if not await _wait_in_queue(ws, session, admitted):
                return
        await session.send({"type": "ready", "session": session.id, "examples": list(state.examples),
                            "presets": ACTION_PRESETS, "limits": _limits(settings)})
        last_message = time.monotonic()
        while True:
            idle_left = settings.idle_timeout_s - (time.monotonic() - last_message)
            left = min(idle_left, session.deadline())
            if left <= 0 or state.closing:
                why = ("the server is shutting down" if state.closing else
                       f"no message for {settings.idle_timeout_s:g} s" if idle_left <= 0 else
                       f"the session reached its time limit ({2 * settings.max_session_s + 60:g} s)")
                await session.send({"type": "closed", "reason": why})
                await ws.close(CLOSE_POLICY)
                return
            try:
                message = await asyncio.wait_for(ws.receive(), timeout=min(left, 1.0))
            except asyncio.TimeoutError:
                continue
            if message["type"] == "websocket.disconnect":
                return
            last_message = time.monotonic()
            try:
                if message.get("bytes") is not None:
                    await session.on_bytes(message["bytes"])
                elif message.get("text") is not None:
                    await session.on_text(message["text"])
            except UserError as exc:
                await session.error(str(exc))
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass  # the page went away (or the socket closed under us): the finally block frees the session
    finally:
        # The ending runs as its own task: the server may cancel this handler when the socket goes (the test
        # client does), and the ending must still wait for the chunk in hand, close the MP4 and free the place.
        state.sessions.pop(session.id, None)
        ending = asyncio.get_running_loop().create_task(_end_session(state, session))
        state.ending.add(ending)
        ending.add_done_callback(state.ending.discard)


async def _end_session(state: ServerState, session) -> None:
    try:
        await session.close()
    finally:
        await state.admission.leave(session.id)


async def _wait_in_queue(ws, session, admitted: asyncio.Event) -> bool:
    """Wait for a place, answering the page meanwhile; False if it went away first."""
    while not admitted.is_set():
        receive = asyncio.ensure_future(ws.receive())
        wake = asyncio.ensure_future(admitted.wait())
        done, _ = await asyncio.wait({receive, wake}, return_when=asyncio.FIRST_COMPLETED)
        if receive not in done:
            receive.cancel()
            with contextlib.suppress(BaseException):
                await receive
            break
        wake.cancel()
        message = receive.result()
        if message["type"] == "websocket.disconnect":
            return False
        await session.error("you are waiting in the queue; your session starts when a place is free")
    return True
