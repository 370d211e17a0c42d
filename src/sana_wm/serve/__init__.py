"""``sana-wm serve``: walk through a generated world live in the browser, driven by the keyboard.

A FastAPI application served by uvicorn (:mod:`~sana_wm.serve.app`): a static page (plain HTML and JavaScript in
``static/``) and one WebSocket per session (:mod:`~sana_wm.serve.session`), over which the page sends the keys held
and receives each chunk's frames as JPEG images as soon as they are decoded. Every session's chunks are made by
one worker thread on one model, in turn (:mod:`~sana_wm.serve.worker`), with the streaming pipeline's
chunk-at-a-time :class:`~sana_wm.pipeline.live.LiveSession`. Every bound a client could push on is a setting
(:class:`~sana_wm.serve.settings.ServeSettings`). Needs the ``serve`` extra (fastapi, uvicorn, websockets).
"""

from __future__ import annotations

from sana_wm.serve.settings import ACTION_PRESETS, TOKEN_ENV, ServeError, ServeSettings

__all__ = ["ACTION_PRESETS", "TOKEN_ENV", "ServeError", "ServeSettings", "create_app", "serve"]


def create_app(settings: ServeSettings, pipe=None):
    """The FastAPI application (:func:`sana_wm.serve.app.create_app`)."""
    from sana_wm.serve.app import create_app as _create_app

    return _create_app(settings, pipe)


def serve(settings: ServeSettings, pipe=None) -> None:
    """Run the server until Ctrl-C (which closes every session and its video, then returns)."""
    import uvicorn

    settings = settings.checked()
    # A frame of headroom above the largest message a page may send; uvicorn closes the socket on bigger ones.
    max_size = max(settings.max_upload_bytes, settings.max_message_bytes) + 4096
    uvicorn.run(create_app(settings, pipe), host=settings.host, port=settings.port, log_level="warning",
                ws_max_size=max_size, timeout_graceful_shutdown=30)
