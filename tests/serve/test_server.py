"""`sana-wm serve` as a process: it refuses settings that cannot work before loading anything, and Ctrl-C closes
every session, its MP4 and its files, and exits cleanly."""

from __future__ import annotations

import json

import pytest
from serve_helpers import ServerProcess
from websockets.sync.client import connect

from sana_wm.cli import main


def test_cli_refuses_an_open_host_without_token(capsys, monkeypatch):
    monkeypatch.delenv("SANA_WM_SERVE_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--host 0.0.0.0 accepts connections from other machines: give --token" in capsys.readouterr().err
    assert main(["serve", "--max-sessions", "0"]) == 2
    assert "--max-sessions 0: must be at least 1" in capsys.readouterr().err
    assert main(["serve", "--idle-seconds", "nan"]) == 2


def test_help_explains_the_keys(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    assert "w/s forward/back" in text and "--token" in text and "Ctrl-C" in text


def test_ctrl_c_closes_sessions_and_their_files(tmp_path):
    server = ServerProcess(tmp_path, "--token", "a-long-secret")
    try:
        server.wait_ready(token="a-long-secret")
        with connect(f"ws://127.0.0.1:{server.port}/ws?token=a-long-secret") as ws:
            assert json.loads(ws.recv())["type"] == "ready"
            ws.send(json.dumps({"type": "start", "source": "example", "example": "room_walk"}))
            assert json.loads(ws.recv())["type"] == "started"
            header = json.loads(ws.recv())
            assert header["type"] == "chunk"
            for _ in range(header["frames"]):
                assert isinstance(ws.recv(), bytes)
            served = [p for p in tmp_path.iterdir() if p.name.startswith("sana-wm-serve-")]
            assert len(served) == 1 and (next(served[0].iterdir()) / "video.partial.mp4").is_file()
            assert server.interrupt() == 0, server.output()
        assert "stopped; every session was closed" in server.output()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("sana-wm-serve-")]  # sessions' files gone
    finally:
        server.stop()
