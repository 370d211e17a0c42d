"""The server's settings: every bound a client could push on, with its default, checked once at start."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, fields

from sana_wm.errors import UserError

__all__ = ["ACTION_PRESETS", "TOKEN_ENV", "ServeError", "ServeSettings", "is_loopback"]

TOKEN_ENV = "SANA_WM_SERVE_TOKEN"

# Named action strings for the page's preset mode (the action language: keys-frames at 16 fps).
ACTION_PRESETS = {
    "walk forward": "w-96",
    "look around": "a-48,d-96,a-48",
    "walk and turn left": "w-48,aw-48,w-48",
    "walk and turn right": "w-48,dw-48,w-48",
    "strafe right": "l-72",
    "look up and down": "i-24,k-48,i-24",
}


class ServeError(UserError, ValueError):
    """A server setting that cannot work; the message names the flag and what to do."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """What ``sana-wm serve`` was told (its ``--help`` describes each); :meth:`checked` refuses what cannot work."""

    model: str = "sana-wm-synth"
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None  # required when host is not loopback; every request then carries it
    device: str | None = None
    max_sessions: int = 2  # sessions generating at once; others wait in the queue
    max_queue: int = 16  # sessions waiting; more are refused
    idle_timeout_s: float = 120.0  # a session that sends nothing this long is closed
    max_session_s: float = 300.0  # the longest video a session makes (and at most 2 x that + 60 s of wall time)
    max_message_bytes: int = 4096  # a text (JSON) message from the page
    max_upload_bytes: int = 8 * 2**20  # an uploaded image file
    max_upload_pixels: int = 16 * 2**20  # an uploaded image's width x height
    jpeg_quality: int = 85
    seed: int = 42  # the default seed of a session (the page may choose another)

    def checked(self) -> ServeSettings:
        token = self.token if self.token is not None else (os.environ.get(TOKEN_ENV) or None)
        if not is_loopback(self.host) and not token:
            raise ServeError(f"--host {self.host} accepts connections from other machines: give --token SECRET "
                             f"(or set {TOKEN_ENV}); every request must then carry it")
        if token is not None and len(token) < 8:
            raise ServeError("--token: use at least 8 characters (a guessable token protects nothing)")
        if not 1 <= self.port <= 65535:
            raise ServeError(f"--port {self.port}: must be between 1 and 65535")
        for name, low in (("max_sessions", 1), ("max_queue", 0), ("max_message_bytes", 256),
                          ("max_upload_bytes", 1024), ("max_upload_pixels", 64 * 64)):
            if int(getattr(self, name)) < low:
                raise ServeError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least {low}")
        for name in ("idle_timeout_s", "max_session_s"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ServeError(f"--{name.replace('_', '-').removesuffix('-s')}-seconds {value}: must be a "
                                 "positive number of seconds")
        if not 1 <= self.jpeg_quality <= 100:
            raise ServeError(f"--jpeg-quality {self.jpeg_quality}: must be between 1 and 100")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["token"] = token
        return ServeSettings(**values)
