"""`sana-wm serve`: a local web page to walk through a generated world with the keyboard."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Serve a web page where you pick a first frame (a bundled example or your own image) and walk through the
world the model generates from it, live, with the keyboard (w/s forward/back, a/d turn, i/k look up/down,
j/l strafe; the legacy mapping swaps turning and strafing), or play a preset or an action string. The page
shows the frames as they are made, a top-down map of the path, the frame rate and the real-time factor, and
offers the finished MP4 with its sidecar; `sana-wm generate` with the command shown makes the same video.

The server listens on 127.0.0.1 (this machine only) unless told otherwise; --host 0.0.0.0 needs --token
(or SANA_WM_SERVE_TOKEN), and the page must then be opened as http://HOST:PORT/?token=SECRET.
Several sessions share one model in turn; the others wait in a queue. Ctrl-C closes every session.
"""


def register(groups) -> None:
    p = groups.add_parser("serve", help="walk through a generated world live in the browser",
                          description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sana-wm-synth", metavar="DIR_OR_HF_ID",
                   help="a streaming model folder or hub id (default: the bundled sana-wm-synth)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--token", metavar="SECRET",
                   help="a secret every request must carry (required with a --host other than loopback; "
                        "default: the SANA_WM_SERVE_TOKEN environment variable)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-sessions", type=int, default=2, metavar="N",
                   help="sessions generating at once; more wait in the queue (default 2)")
    p.add_argument("--max-queue", type=int, default=16, metavar="N",
                   help="sessions that may wait; more are refused (default 16)")
    p.add_argument("--idle-seconds", type=float, default=120.0, metavar="S",
                   help="close a session whose page sent nothing for S seconds (default 120)")
    p.add_argument("--max-session-seconds", type=float, default=300.0, metavar="S",
                   help="the longest video one session makes, in seconds (default 300; the model's position "
                        "table may allow less: 511.5 s for the bundled model); a session also ends after twice "
                        "that plus a minute of wall time")
    p.add_argument("--max-upload-mb", type=float, default=8.0, metavar="MB",
                   help="largest image file a page may upload (default 8 MiB)")
    p.add_argument("--max-upload-mpx", type=float, default=16.0, metavar="MPX",
                   help="most pixels of an uploaded image, in megapixels (default 16)")
    p.add_argument("--jpeg-quality", type=int, default=85, metavar="Q", help="quality of the streamed frames")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from sana_wm.cli import CLIError
    from sana_wm.limits import check_finite

    try:
        import fastapi  # noqa: F401 - checked here so that a missing extra is a one-line message
        import uvicorn  # noqa: F401

        from sana_wm.serve import ServeSettings, serve
    except ImportError as exc:
        raise CLIError(f"sana-wm serve needs the serve extra ({exc.name} is missing): "
                       "pip install 'sana-wm[serve]'") from None
    check_finite(args.max_upload_mb, "--max-upload-mb", low=0.001, high=1024)
    check_finite(args.max_upload_mpx, "--max-upload-mpx", low=0.004, high=1024)
    settings = ServeSettings(model=args.model, host=args.host, port=args.port, token=args.token, device=args.device,
                             max_sessions=args.max_sessions, max_queue=args.max_queue,
                             idle_timeout_s=args.idle_seconds, max_session_s=args.max_session_seconds,
                             max_upload_bytes=int(args.max_upload_mb * 2**20),
                             max_upload_pixels=int(args.max_upload_mpx * 1e6), jpeg_quality=args.jpeg_quality)
    settings = settings.checked()
    where = "localhost" if settings.host in ("127.0.0.1", "::1", "localhost") else settings.host
    query = "/?token=SECRET" if settings.token else "/"
    print(f"sana-wm serve: open http://{where}:{settings.port}{query} (Ctrl-C to stop)", flush=True)
    try:
        serve(settings)
    except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has shut down: stopping is the normal end
        pass
    print("sana-wm serve: stopped; every session was closed", flush=True)
    return 0
