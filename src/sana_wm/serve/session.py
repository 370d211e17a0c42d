"""One browser session over one WebSocket: the protocol, the session's files, its chunks.

Messages from the page are JSON text (at most ``max_message_bytes``), except an uploaded image, sent as one
binary message (at most ``max_upload_bytes``):

``{"type": "start", "source": "example", "example": NAME}`` or ``{"type": "start", "source": "upload"}`` (after
the upload), with ``"mode": "live"`` (driven by keys), ``"action"`` (``"action": "w-48,aw-24"``) or ``"preset"``
(``"preset": NAME``, one of :data:`~sana_wm.serve.settings.ACTION_PRESETS`); optional ``"mapping"`` ("current" or
"legacy") and ``"seed"``. ``{"type": "next", "held": "wa"}``: make the next chunk (live; the page asks when the
video it has left to play falls below the chunk header's ``lead_s``, :mod:`~sana_wm.serve.pacing`).
``{"type": "keys", "held": "wa"}``: the keys held now, sent whenever they change. A live chunk is made with the
keys held when its denoising starts on the worker (the last ``keys`` or ``next`` that named them), not when it was
asked for, so a key that arrives while the chunk waits for the worker still counts. ``{"type": "stop"}``: finish
the video. ``{"type": "ping"}``.

Messages to the page: ``queued`` (``position``), ``ready`` (examples, presets, limits), ``started`` (frame rate,
size, chunk length, length limit), ``chunk`` (index, frame count, per-frame ``[x, z, yaw_deg]`` poses for the map,
the keys it was made with, its seconds of compute, latency and real-time factor, and ``lead_s``, the mark below which
the page asks for the next chunk) followed by that many binary JPEG frames,
``finished`` (download links and the ``sana-wm generate`` command that makes the same video), ``error`` (a refusal,
the session goes on), ``closed`` (why the server ends the session, just before it closes the socket), ``pong``.

Nothing the page sends becomes a path: an example is looked up by name among the bundled ones, an upload is
written under a fixed name in the session's own temporary folder (removed when the session ends), and downloads
are looked up by the session's random id.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.camera.actions import ACTION_KEYS, MAPPINGS, ActionError, per_frame_keys
from sana_wm.errors import UserError
from sana_wm.limits import loads_json
from sana_wm.serve.pacing import LeadMark
from sana_wm.serve.settings import ACTION_PRESETS, ServeSettings

__all__ = ["UPLOAD_FORMATS", "ClientSession", "ProtocolError"]

UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}  # PIL format -> the file's suffix
MODES = ("live", "action", "preset")
MAX_SEED = 2**31 - 1
logger = logging.getLogger(__name__)


class ProtocolError(UserError, ValueError):
    """A message the session cannot act on; its text goes back to the page as an ``error`` message."""


def pose_summary(c2w: np.ndarray) -> list[list[float]]:
    """``(F, 4, 4)`` camera-to-world -> per frame ``[x, z, yaw_deg]`` for the top-down map (OpenCV axes: x right,
    z forward on the ground plane; yaw positive to the right)."""
    yaw = np.degrees(np.arctan2(c2w[:, 0, 2], c2w[:, 2, 2]))
    return np.round(np.stack([c2w[:, 0, 3], c2w[:, 2, 3], yaw], axis=1), 4).tolist()


def _held(value: Any) -> frozenset[str]:
    if not isinstance(value, str) or len(value) > len(ACTION_KEYS):
        raise ProtocolError("'held' must be a string of the keys held, e.g. \"wa\"")
    keys = frozenset(value.lower())
    if not keys <= ACTION_KEYS:
        raise ProtocolError(f"'held' has unknown keys {sorted(keys - ACTION_KEYS)}; the keys are w a s d i j k l")
    return keys


class ClientSession:
    """A session's state on the server. ``app`` is the :class:`~sana_wm.serve.app.ServerState` (pipeline, worker,
    examples, settings); ``send`` sends a JSON message, ``send_bytes`` a binary one."""

    def __init__(self, app, send, send_bytes) -> None:
        self.app = app
        self.settings: ServeSettings = app.settings
        self.id = secrets.token_urlsafe(16)
        self.folder = Path(tempfile.mkdtemp(prefix="session-", dir=app.tmp_root))
        self._send, self._send_bytes = send, send_bytes
        self._send_lock = asyncio.Lock()
        self.upload: Path | None = None
        self.live = None  # sana_wm.pipeline.live.LiveSession while a video is being made
        self.planned: list[frozenset[str]] | None = None  # action/preset mode: keys of the frames still to make
        self.held: frozenset[str] = frozenset()  # the keys held now, as the page last said
        self.chunk_task: asyncio.Task | None = None
        self.next_asked = False  # a "next" that came while a chunk was being made
        self.lead = LeadMark()
        self.settle_s = 0.0  # the last chunk's clean pass (LiveSession.settle), seconds
        self.video: Path | None = None  # the finished MP4 (its sidecar beside it)
        self.command: str | None = None
        self.opened = time.monotonic()
        self.started_at: float | None = None
        self.compute_s = 0.0

    # -- sending ------------------------------------------------------------------------------------
    async def send(self, message: dict) -> None:
        async with self._send_lock:
            await self._send(message)

    async def error(self, text: str) -> None:
        await self.send({"type": "error", "message": text})

    # -- receiving ----------------------------------------------------------------------------------
    async def on_text(self, text: str) -> None:
        if len(text.encode("utf-8", "surrogatepass")) > self.settings.max_message_bytes:
            raise ProtocolError(f"message of {len(text)} characters refused: messages are at most "
                                f"{self.settings.max_message_bytes} bytes (images go as one binary message)")
        try:
            message = loads_json(text, "message")  # nesting bounded before parsing
        except UserError as exc:
            raise ProtocolError(f"messages are JSON objects like {{\"type\": \"start\", ...}}; this one is not: "
                                f"{str(exc).removeprefix('message: ')}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ProtocolError("messages are JSON objects with a \"type\" (start, next, keys, stop, ping)")
        kind = message["type"]
        handler = {"start": self._start, "next": self._next, "keys": self._keys, "stop": self._stop,
                   "ping": self._ping}.get(kind)
        if handler is None:
            raise ProtocolError(f"unknown message type {kind[:40]!r}; known: start, next, keys, stop, ping")
        await handler(message)

    async def on_bytes(self, data: bytes) -> None:
        """An uploaded image: checked (size, type, pixel count) and kept as the session's ``upload.EXT``."""
        from PIL import Image, UnidentifiedImageError

        limit = self.settings.max_upload_bytes
        if len(data) > limit:
            raise ProtocolError(f"image upload of {len(data) / 2**20:.1f} MiB refused: the limit is "
                                f"{limit / 2**20:.1f} MiB")
        if self.live is not None:
            raise ProtocolError("an image cannot be uploaded while a video is being made; stop it first")
        try:
            with Image.open(io.BytesIO(data)) as im:
                kind, (width, height) = im.format, im.size
        except (UnidentifiedImageError, OSError):
            raise ProtocolError("the upload is not an image; send a PNG, JPEG or WebP file") from None
        if kind not in UPLOAD_FORMATS:
            raise ProtocolError(f"{kind} images are not accepted; send a PNG, JPEG or WebP file")
        if width * height > self.settings.max_upload_pixels:
            raise ProtocolError(f"the image is {width}x{height} ({width * height / 1e6:.1f} Mpx); the limit is "
                                f"{self.settings.max_upload_pixels / 1e6:.1f} Mpx: send a smaller one")
        from sana_wm.io import atomic_write
        from sana_wm.pipeline.image import load_image

        # Read under another name first: a damaged upload is refused and the earlier upload stays usable.
        candidate = self.folder / f"candidate{UPLOAD_FORMATS[kind]}"
        with atomic_write(candidate) as tmp:
            tmp.write_bytes(data)
        try:
            image = load_image(candidate)  # EXIF orientation applied; damaged files refused here
        except UserError as exc:
            candidate.unlink(missing_ok=True)
            raise ProtocolError(f"the uploaded image cannot be read: {str(exc).split(': ', 1)[-1]}") from None
        for old in self.folder.glob("upload.*"):
            old.unlink()
        path = candidate.replace(self.folder / f"upload{UPLOAD_FORMATS[kind]}")
        self.upload = path
        await self.send({"type": "uploaded", "width": image.size[0], "height": image.size[1], "format": kind})

    # -- handlers -----------------------------------------------------------------------------------
    async def _ping(self, message: dict) -> None:
        await self.send({"type": "pong"})

    async def _keys(self, message: dict) -> None:
        self.held = _held(message.get("held", ""))

    async def _start(self, message: dict) -> None:
        from sana_wm.pipeline.live import LiveSession

        if self.live is not None:
            raise ProtocolError("a video is already being made in this session; stop it before starting another")
        image = self._image(message)
        mode = message.get("mode", "live")
        if mode not in MODES:
            raise ProtocolError(f"mode {str(mode)[:20]!r}: choose live, action or preset")
        mapping = message.get("mapping", "current")
        if mapping not in MAPPINGS:
            raise ProtocolError(f"mapping {str(mapping)[:20]!r}: choose current (released) or legacy")
        seed = message.get("seed", self.settings.seed)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            raise ProtocolError(f"seed must be a whole number from 0 to {MAX_SEED}")
        self.planned = None
        if mode != "live":
            if mode == "preset":
                name = message.get("preset")
                if name not in ACTION_PRESETS:
                    raise ProtocolError(f"unknown preset {str(name)[:40]!r}; choose one of "
                                        f"{', '.join(ACTION_PRESETS)}")
                action = ACTION_PRESETS[name]
            else:
                action = message.get("action")
                if not isinstance(action, str):
                    raise ProtocolError("action mode needs \"action\": an action string like \"w-48,aw-24\"")
            try:
                planned = per_frame_keys(action)
            except ActionError as exc:
                raise ProtocolError(f"action: {exc}") from None
        output = self.folder / "video.mp4"
        started = time.perf_counter()
        live = await self.app.worker.run(self.id, lambda: LiveSession(
            self.app.pipe, image, mapping=mapping, seed=seed, max_seconds=self.settings.max_session_s,
            output=output))
        if mode != "live":
            # The session's whole chunks, which the model's position table may lower further, bound the string.
            longest = live.max_chunks * live.frames_per_chunk
            if len(planned) > longest:
                await self.app.worker.run(self.id, live.close)
                raise ProtocolError(f"the action string holds {len(planned)} frames; a session makes at most "
                                    f"{longest} ({longest / self.app.pipe.fps:g} s)")
            self.planned = planned
        self._discard_video()  # the earlier video, once the new one has started (it is written as .partial.mp4)
        self.live = live
        self.compute_s = time.perf_counter() - started
        self.started_at = time.monotonic()
        height, width = self.app.pipe.image_size
        await self.send({"type": "started", "fps": self.app.pipe.fps, "width": width, "height": height,
                         "frames_per_chunk": live.frames_per_chunk, "chunk_seconds": live.chunk_seconds,
                         "max_chunks": live.max_chunks, "mode": mode, "mapping": mapping, "seed": seed})
        self.lead, self.settle_s = LeadMark(), 0.0
        self._request_chunk()  # the first chunk at once: first frame as soon as possible

    def _image(self, message: dict):
        source = message.get("source")
        if source == "example":
            name = message.get("example")
            if name not in self.app.examples:
                raise ProtocolError(f"unknown example {str(name)[:40]!r}; choose one of "
                                    f"{', '.join(self.app.examples)}")
            return self.app.examples[name]
        if source == "upload":
            if self.upload is None:
                raise ProtocolError("no image uploaded yet: send the image file first, as one binary message")
            return self.upload
        raise ProtocolError("start needs \"source\": \"example\" (with \"example\": NAME) or \"upload\"")

    async def _next(self, message: dict) -> None:
        if self.live is None:
            raise ProtocolError("no video is being made: send start first")
        if "held" in message:
            self.held = _held(message["held"])
        if self.chunk_task is not None and not self.chunk_task.done():
            self.next_asked = True  # made as soon as the chunk in hand is done
            return
        self._request_chunk()

    async def _stop(self, message: dict) -> None:
        if self.live is None:
            raise ProtocolError("no video is being made: there is nothing to stop")
        await self.finish()

    # -- chunks -------------------------------------------------------------------------------------
    def _request_chunk(self) -> None:
        self.next_asked = False
        self.chunk_task = asyncio.create_task(self._make_chunk(time.monotonic()))

    def _planned_keys(self) -> list[frozenset[str]]:
        n = self.live.frames_per_chunk
        keys, self.planned = self.planned[:n], self.planned[n:]
        return keys + [frozenset()] * (n - len(keys))  # the last chunk of a string is filled standing still

    async def _make_chunk(self, asked: float) -> None:
        live = self.live
        if live is None or live.chunks >= live.max_chunks:
            return
        # Live keys are read on the worker thread as the chunk starts (module docstring); planned ones now.
        planned = self._planned_keys() if self.planned is not None else None
        quality = self.settings.jpeg_quality
        try:
            chunk, jpegs = await self.app.worker.run(
                self.id, lambda: _step(live, self.held if planned is None else planned, quality))
        except UserError as exc:
            await self.error(str(exc))
            return
        except Exception as exc:  # a bug: logged with its traceback; the page is told instead of waiting forever
            logger.exception("chunk %d of session %s failed", live.chunks, self.id)
            await self.error(f"the server failed to make this chunk ({type(exc).__name__}: {exc}); "
                             "stop and start again, and report this if it repeats")
            return
        self.compute_s += chunk.seconds
        latency = time.monotonic() - asked
        self.lead.record(latency)
        poses = chunk.poses
        cycle = chunk.seconds + self.settle_s  # a whole chunk's compute: its step and (as the last) its clean pass
        header = {"type": "chunk", "index": chunk.index, "frames": len(jpegs), "poses": pose_summary(poses),
                  "held": "".join(sorted(chunk.held[-1])), "seconds": round(chunk.seconds, 4),
                  "latency_s": round(latency, 4), "lead_s": round(self.lead.seconds, 4),
                  "rtf": round(len(chunk.held) / self.app.pipe.fps / max(cycle, 1e-9), 3),
                  "video_seconds": round(live.num_frames / self.app.pipe.fps, 3)}
        try:
            async with self._send_lock:
                await self._send(header)
                for jpeg in jpegs:
                    await self._send_bytes(jpeg)
        except Exception:  # the page went away while its chunk was made (each ASGI server says so its own way)
            return
        if self.live is not live:  # stopped while this chunk was made: finish() takes it from here
            return
        done = live.chunks >= live.max_chunks or (self.planned is not None and not self.planned)
        if done:
            await self.finish()
            return
        # The clean pass needs no keys: run it while the frames play, so the next chunk starts without it.
        try:
            self.settle_s = await self.app.worker.run(self.id, live.settle)
        except Exception:  # left to the next step, which settles first and reports what goes wrong
            self.settle_s = 0.0
            if not self.app.closing:  # (while shutting down the worker refuses new jobs: nothing is wrong)
                logger.exception("the clean pass of chunk %d of session %s failed", chunk.index, self.id)
        self.compute_s += self.settle_s
        if self.next_asked and self.live is live:
            self._request_chunk()

    async def finish(self) -> None:
        """Publish the video so far (MP4 + sidecar) and offer it for download."""
        live = self.live
        if live is None:
            return
        self.live, self.planned, self.next_asked = None, None, False  # nothing more starts on this video
        task = self.chunk_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.shield(task)  # the chunk in hand goes to the page and into the video first
        if live.chunks == 0:
            await self.app.worker.run(self.id, live.close)
            await self.send({"type": "finished", "video": None, "message": "stopped before the first chunk"})
            return
        video = await self.app.worker.run(self.id, live.finish)
        self.video = video
        image = live.image_path
        shown = str(image) if image is not None and image.parent != self.folder else f"YOUR_IMAGE{image.suffix}"
        self.command = shlex.join(["sana-wm", "generate", "--model", self.settings.model, "--image", shown,
                                   "--action", live.action, "--mapping", live.mapping, "--seed", str(live.seed),
                                   "--no-action-overlay", "--out", "video.mp4"])
        base = f"/download/{self.id}"
        await self.send({"type": "finished", "video": f"{base}/video.mp4", "sidecar": f"{base}/video.sana-wm.json",
                         "frames": live.num_frames, "seconds": round(live.num_frames / self.app.pipe.fps, 3),
                         "compute_seconds": round(self.compute_s, 3), "command": self.command})

    def download(self, name: str) -> Path | None:
        """The finished video's file ``name`` ("video.mp4" or "video.sana-wm.json"); None if there is none."""
        if self.video is None or name not in ("video.mp4", "video.sana-wm.json"):
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def _discard_video(self) -> None:
        for name in ("video.mp4", "video.sana-wm.json"):
            (self.folder / name).unlink(missing_ok=True)
        self.video = self.command = None

    # -- the end ------------------------------------------------------------------------------------
    async def close(self) -> None:
        """End the session: wait for the chunk in hand (the worker may be writing its frames), drop an unfinished
        MP4 and remove the session's folder with its upload and video."""
        task = self.chunk_task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=120)
            except (Exception, asyncio.CancelledError):  # the socket is gone: nothing to report to
                pass
        live, self.live = self.live, None
        if live is not None:
            try:
                await self.app.worker.run(self.id, live.close)
            except RuntimeError:  # the worker has stopped (shutdown): close here, no model work is involved
                live.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def deadline(self) -> float:
        """Seconds until the session must end: idle timeout aside, at most twice its video length of wall time."""
        return self.opened + 2 * self.settings.max_session_s + 60 - time.monotonic()


def _step(live, keys, quality: int):
    """On the worker thread: one chunk, its frames encoded as JPEG."""
    from PIL import Image

    chunk = live.step(keys)
    jpegs = []
    for frame in chunk.frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        jpegs.append(buffer.getvalue())
    return chunk, jpegs

