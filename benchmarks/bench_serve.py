"""Load test of `sana-wm serve` on loopback: N scripted sessions at once for a fixed time, plus one long live session.

The server runs as its own process (`python -m sana_wm serve`, the bundled model unless ``--model``). Each scripted
client behaves like the page (sana_wm/serve/static/app.js): it starts a live session on a bundled example, plays
the frames on a virtual clock at the video's frame rate, sends the keys it holds whenever they change, and asks for
the next chunk when less video is left to play than the lead mark of the last chunk header (``lead_s``,
sana_wm/serve/pacing.py). Its keys follow a script: w, a, nothing, dw, again and again, each held for a time drawn
uniformly from 1.6-3.2 s (seeded per session), so key changes fall at every phase of the 1.5-s chunk cadence.

Per session it records: the first frame's time after "start"; each chunk's latency (the "next" sent -> its last
frame received) and compute time (as the server reports it); the real-time factor (video seconds received / wall
seconds since the first frame), and stalls (wall time the virtual player had nothing to show); key-to-motion
latency (a key pressed -> the first frame made with it is shown on the virtual clock; a key set released before
any chunk started with it is counted as skipped); the lead mark and the video left to play when each chunk was
asked for. The server's memory (RSS from /proc) is sampled every second.

    python benchmarks/bench_serve.py --sessions 1 2 3 --seconds 60 --threads 2 --out serve.json
    python benchmarks/bench_serve.py --long-minutes 10 --threads 2 --out serve-long.json
    python benchmarks/bench_serve.py --chunk-steps 40 --threads 2      # the compute floor, no server

A session is capped by the model's position table (511.5 s for the bundled model): the long run starts a new
session on the same server whenever one reaches its cap, so its memory covers the whole run on one process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

KEY_SETS = ["w", "a", "", "dw"]  # held in turn, each for a random 1.6-3.2 s (module docstring)
HOLD_S = (1.6, 3.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class KeyScript:
    """The keys a scripted page holds at each moment (module docstring), reproducible from ``seed``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.changes = [0.0]  # times at which KEY_SETS[i % 4] is pressed

    def keys_at(self, t: float) -> str:
        while self.changes[-1] <= t:
            self.changes.append(self.changes[-1] + self.rng.uniform(*HOLD_S))
        i = next(i for i, c in enumerate(self.changes) if c > t) - 1
        return KEY_SETS[i % len(KEY_SETS)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class ScriptedSession:
    """One page, scripted (module docstring)."""

    def __init__(self, url: str, seconds: float, example: str, restart: bool, seed: int = 0) -> None:
        self.url, self.seconds, self.example, self.restart = url, seconds, example, restart
        self.script = KeyScript(seed)
        self.lead_s: list[float] = []
        self.left_at_ask_s: list[float] = []
        self.skipped_keys = 0
        self.first_frame_s: list[float] = []
        self.chunk_latency_s: list[float] = []
        self.compute_s: list[float] = []
        self.key_to_motion_s: list[float] = []
        self.video_s = 0.0
        self.stall_s = 0.0
        self.sessions = 0
        self.errors: list[str] = []

    async def run(self) -> None:
        import websockets

        async with websockets.connect(self.url, max_size=None) as ws:
            ready = json.loads(await ws.recv())
            if ready["type"] == "queued":
                while ready["type"] != "ready":
                    ready = json.loads(await ws.recv())
            self.began = time.monotonic()
            while time.monotonic() - self.began < self.seconds:
                if not await self._one_session(ws) or not self.restart:
                    break
        self.wall_s = time.monotonic() - self.began

    async def _one_session(self, ws) -> bool:
        """One video, until the time is up or the session's cap; True if it ended at the cap."""
        self.sessions += 1
        start = time.monotonic()
        await ws.send(json.dumps({"type": "start", "source": "example", "example": self.example}))
        started = json.loads(await ws.recv())
        # Before "started" may come the answers to what was in flight when the previous video ended at its cap (a
        # "next" sent just before is refused: no video is being made); a refusal of the start itself ends the run.
        late = 0
        while started["type"] != "started":
            self.errors.append(json.dumps(started)[:200])
            late += 1
            if started["type"] == "closed" or late > 4:
                return False
            started = json.loads(await ws.recv())
        fps = started["fps"]
        play_clock = None  # wall time at which the virtual player shows the next frame
        queued = 0  # frames received and not yet shown
        lead = 1.5
        asked = start
        pending_keys: list[tuple[str, float]] = []  # (key set, wall time it was pressed) not yet on screen
        held = ""
        while True:
            header = json.loads(await ws.recv())
            if header["type"] == "finished":
                return True
            if header["type"] != "chunk":
                self.errors.append(json.dumps(header)[:200])
                if header["type"] in ("closed", "error"):
                    return False
                continue
            for _ in range(header["frames"]):
                await ws.recv()
            now = time.monotonic()
            if play_clock is None:
                self.first_frame_s.append(now - start)
                play_clock = now
            self.chunk_latency_s.append(now - asked)
            self.compute_s.append(header["seconds"])
            lead = header.get("lead_s", max(0.4, 1.5 * header["seconds"] + 0.2))  # (module docstring)
            self.lead_s.append(lead)
            # The player: frames left from earlier chunks play first; an empty buffer before now was a stall.
            shown_until = play_clock + queued / fps
            if shown_until < now:
                self.stall_s += now - shown_until
                play_clock, queued = now, 0
            first_shown = play_clock + queued / fps  # when this chunk's first frame is shown
            queued += header["frames"]
            self.video_s += header["frames"] / fps
            for i, (keys, pressed) in enumerate(pending_keys):
                if keys == header["held"]:
                    self.key_to_motion_s.append(first_shown - pressed)
                    self.skipped_keys += i  # released before any chunk started with them
                    del pending_keys[:i + 1]
                    break
            if now - self.began >= self.seconds:
                await ws.send(json.dumps({"type": "stop"}))
                while json.loads(await ws.recv())["type"] != "finished":
                    pass
                return False
            # Wait until less than the lead mark is left to play, following the key script meanwhile (the server
            # reads the keys when the chunk starts, as the page's "keys" messages tell it), then ask for the next.
            while True:
                now = time.monotonic()
                keys = "".join(sorted(self.script.keys_at(now - self.began)))
                if keys != held:
                    held = keys
                    pending_keys.append((keys, now))
                    await ws.send(json.dumps({"type": "keys", "held": held}))
                left = play_clock + queued / fps - now
                if left < lead:
                    break
                await asyncio.sleep(min(0.02, left - lead + 1e-3))
            self.left_at_ask_s.append(max(left, 0.0))
            shown = min(queued, int((now - play_clock) * fps))
            play_clock += shown / fps
            queued -= shown
            asked = time.monotonic()
            await ws.send(json.dumps({"type": "next", "held": held}))
        return False

    def summary(self) -> dict:
        wall = getattr(self, "wall_s", 0.0)
        return {
            "sessions": self.sessions, "video_s": round(self.video_s, 2), "wall_s": round(wall, 2),
            "realtime_factor": round(self.video_s / wall, 3) if wall else None,
            "stall_s": round(self.stall_s, 3), "first_frame_s": [round(x, 3) for x in self.first_frame_s],
            "chunk_latency_s": {f"p{q}": _r(percentile(self.chunk_latency_s, q)) for q in (50, 90, 99)},
            "chunk_compute_s": {f"p{q}": _r(percentile(self.compute_s, q)) for q in (50, 90, 99)},
            "chunks": len(self.compute_s),
            "key_to_motion_s": {"n": len(self.key_to_motion_s), "mean": _r(statistics.fmean(self.key_to_motion_s))
                                if self.key_to_motion_s else None,
                                "p50": _r(percentile(self.key_to_motion_s, 50)),
                                "p90": _r(percentile(self.key_to_motion_s, 90)),
                                "max": _r(max(self.key_to_motion_s, default=None)), "skipped": self.skipped_keys},
            "lead_s": {"p50": _r(percentile(self.lead_s, 50)), "max": _r(max(self.lead_s, default=None))},
            "left_at_ask_s": {"p50": _r(percentile(self.left_at_ask_s, 50)),
                              "max": _r(max(self.left_at_ask_s, default=None))},
            "errors": self.errors[:5],
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class Server:
    def __init__(self, threads: int, model: str | None, max_sessions: int, max_session_s: float,
                 src: Path | None = None) -> None:
        self.port = _free_port()
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        src = src or Path(__file__).resolve().parents[1] / "src"
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
        command = [sys.executable, "-m", "sana_wm", "serve", "--port", str(self.port), "--max-sessions",
                   str(max_sessions), "--max-session-seconds", str(max_session_s), "--idle-seconds", "600"]
        if model:
            command += ["--model", model]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's messages, shown if it fails to start
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/info", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(f"the server did not start: {self.log.read().decode()[-2000:]}") from None
                time.sleep(0.3)
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _sample_memory(pid: int, every: float, samples: list, began: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        rss = _rss_mib(pid)
        if rss is not None:
            samples.append((round(time.monotonic() - began, 2), round(rss, 1)))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


async def _run(server: Server, sessions: int, seconds: float, restart: bool, examples: list[str]) -> dict:
    clients = [ScriptedSession(server.url, seconds, examples[i % len(examples)], restart, seed=i)
               for i in range(sessions)]
    samples: list = []
    stop = asyncio.Event()
    began = time.monotonic()
    sampler = asyncio.create_task(_sample_memory(server.proc.pid, 1.0, samples, began, stop))
    await asyncio.gather(*(c.run() for c in clients))
    stop.set()
    await sampler
    rss = [m for _, m in samples]
    window = max(1, len(samples) // 10)  # first and last tenth of the run (after the first chunk's allocations)
    memory = {"start_mib": rss[0] if rss else None, "peak_mib": max(rss, default=None),
              "first_tenth_median_mib": statistics.median(rss[window:2 * window]) if len(rss) > 3 * window else None,
              "last_tenth_median_mib": statistics.median(rss[-window:]) if rss else None, "samples": samples}
    if memory["first_tenth_median_mib"]:
        memory["change_pct"] = round(100 * (memory["last_tenth_median_mib"] / memory["first_tenth_median_mib"] - 1), 2)
    all_latency = [x for c in clients for x in c.chunk_latency_s]
    return {"sessions": sessions, "seconds": seconds,
            "chunk_latency_s": {f"p{q}": _r(percentile(all_latency, q)) for q in (50, 90, 99)},
            "per_session": [c.summary() for c in clients], "memory": memory}


def chunk_steps(steps: int, threads: int, model: str | None) -> dict:
    """The compute floor without the server: ``steps`` chunks of one LiveSession in this process (keys cycling),
    wall and CPU seconds per chunk (the first chunk, which includes the input image, reported apart), split into the
    step (keys to frames, what a key waits for) and the clean pass (``settle``, run while the frames play); then the
    CPU seconds per chunk of ``generate`` making the same video. Run on a second thread, as the server's worker
    runs: on the main thread of an overloaded machine two OpenMP threads spend most of their time spinning in
    barriers (20x the CPU time per chunk measured at load 15-19), which the worker thread does not show."""
    import threading

    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(result=_chunk_steps(steps, threads, model)))
    worker.start()
    worker.join()
    return box["result"]


def _chunk_steps(steps: int, threads: int, model: str | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sana_wm.bundled import example_files
    from sana_wm.pipeline import LiveSession, SanaWMPipeline

    pipe = SanaWMPipeline.from_pretrained(model or "sana-wm-synth", device="cpu")
    session = LiveSession(pipe, example_files()["room_walk"][0])
    wall, step, cpu = [], [], []
    for i in range(steps):
        t, c = time.perf_counter(), time.process_time()
        session.step(["w", "a", "", "dw"][i % 4])
        step.append(time.perf_counter() - t)
        session.settle()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    later = wall[1:] or wall
    # The same video made offline by generate (one call, all chunks): its CPU seconds per chunk, to compare with a
    # live chunk's (the wall times of both swing with the machine's load; CPU time much less).
    from sana_wm.camera.actions import action_to_trajectory

    c = time.process_time()
    pipe.generate(example_files()["room_walk"][0], action_to_trajectory(session.action, fps=pipe.fps), seed=42,
                  progress=False)
    generate_cpu = (time.process_time() - c) / steps
    return {"steps": steps, "first_chunk_s": _r(wall[0]), "generate_cpu_s_per_chunk": _r(generate_cpu),
            "wall_s": {f"p{q}": _r(percentile(later, q)) for q in (50, 90, 99)},
            "step_s": {f"p{q}": _r(percentile(step[1:] or step, q)) for q in (50, 90, 99)},
            "cpu_s_p50": _r(percentile(cpu[1:] or cpu, 50)),
            "realtime_factor_p50": _r(session.chunk_seconds / percentile(later, 50))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="*", default=[], help="concurrent session counts to run")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall seconds of each concurrent run")
    parser.add_argument("--long-minutes", type=float, default=0.0, help="one live session for this long")
    parser.add_argument("--chunk-steps", type=int, default=0,
                        help="also time this many chunks of one LiveSession in process (no server)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--model", help="model (default: the bundled sana-wm-synth)")
    parser.add_argument("--server-src", type=Path,
                        help="run the server from this checkout's src/ instead (an A/B against another version at "
                             "the same load; a server that sends no lead_s is asked at its former mark, "
                             "max(0.4, 1.5 x the last chunk's compute + 0.2) s)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    examples = ["room_walk", "corridor_walk", "open_orbit"]
    results: dict = {"load_average": os.getloadavg(), "threads": args.threads, "runs": [],
                     "server_src": str(args.server_src or "this checkout")}
    if args.chunk_steps:
        results["chunk_steps"] = chunk_steps(args.chunk_steps, args.threads, args.model)
        print(json.dumps(results["chunk_steps"]), flush=True)
    for n in args.sessions:
        server = Server(args.threads, args.model, max_sessions=n, max_session_s=511.5, src=args.server_src)
        try:
            run = asyncio.run(_run(server, n, args.seconds, False, examples))
        finally:
            server.stop()
        run["memory"].pop("samples")
        results["runs"].append(run)
        print(json.dumps(run, indent=1), flush=True)
    if args.long_minutes > 0:
        server = Server(args.threads, args.model, max_sessions=1, max_session_s=511.5, src=args.server_src)
        try:
            results["long"] = asyncio.run(_run(server, 1, args.long_minutes * 60, True, examples))
        finally:
            server.stop()
        long = results["long"]
        print(json.dumps({k: v for k, v in long.items() if k != "memory"}, indent=1))
        print(json.dumps({k: v for k, v in long["memory"].items() if k != "samples"}))
    results["load_average_after"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
