"""The load test of benchmarks/bench_serve.py, short: two scripted live sessions at once on one server for a few
seconds both get frames, in turn, with latencies, key-to-motion times and the server's memory recorded."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_serve.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_scripted_sessions_share_the_server(tmp_path):
    results = _bench().main(["--sessions", "2", "--seconds", "8", "--threads", "1", "--out", str(tmp_path / "r.json")])
    (run,) = results["runs"]
    sessions = run["per_session"]
    assert [s["errors"] for s in sessions] == [[], []]
    chunks = [s["chunks"] for s in sessions]
    assert min(chunks) >= 1 and max(chunks) - min(chunks) <= 1  # one worker, in turn
    for s in sessions:
        assert s["first_frame_s"][0] > 0 and s["realtime_factor"] > 0
        assert 0 < s["chunk_latency_s"]["p50"] <= s["chunk_latency_s"]["p99"]
        # Each chunk was asked for with less video left to play than the mark the server sent (pacing.py).
        assert 0.25 <= s["lead_s"]["p50"] <= s["lead_s"]["max"] and s["left_at_ask_s"]["max"] <= s["lead_s"]["max"]
    assert run["chunk_latency_s"]["p90"] is not None and run["memory"]["peak_mib"] > 100
    assert (tmp_path / "r.json").is_file()


def test_key_script_is_reproducible_and_holds_each_key_set_in_turn():
    bench = _bench()
    one, two = bench.KeyScript(3), bench.KeyScript(3)
    times = [i * 0.05 for i in range(800)]
    keys = [one.keys_at(t) for t in times]
    assert keys == [two.keys_at(t) for t in times] and keys[0] == "w"
    changes = [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
    assert [keys[i] for i in changes[:5]] == ["a", "", "dw", "w", "a"]
    held = [times[b] - times[a] for a, b in itertools.pairwise(changes)]
    assert len(held) > 10 and all(1.6 - 0.05 < h < 3.2 + 0.05 for h in held)  # 1.6-3.2 s (sampled every 0.05 s)


def test_percentile_matches_hand_computation():
    percentile = _bench().percentile
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == 4.6
    assert percentile([], 50) is None
