"""Running the server for the tests: in process (starlette's TestClient, for the protocol) or as `sana-wm serve` in
a subprocess on a free loopback port (for the browser, the load test and Ctrl-C)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``sana-wm serve ARGS`` on a free port with its temporary files under ``tmp``; ``url`` once it answers."""

    def __init__(self, tmp: Path, *args: str, threads: int = 2) -> None:
        self.port = free_port()
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(self.tmp), PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                   OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        self.log = open(self.tmp / "server.log", "w+")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-c", "import sys; from sana_wm.cli import main; sys.exit(main(sys.argv[1:]))",
                   "serve", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120.0, token: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        query = f"?token={token}" if token else ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/info{query}", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"the server did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C, as a terminal sends it; returns the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
