"""The memory estimate: an upper bound of the measured peak that is not absurd, its parts, and the refusal."""


import pytest
import torch

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.cli import main
from sana_wm.pipeline import SanaWMPipeline
from sana_wm.pipeline import memory as mem
from sana_wm.pipeline.memory import (
    LOADED,
    PROMPT,
    SAMPLE,
    InsufficientMemoryError,
    MemoryComponent,
    MemoryEstimate,
    module_bytes,
    offloaded,
)
from sana_wm.pipeline.peak_memory import measure_in_child

# The estimate less its fixed runtime workspace (thread pools, the encoder's buffers, allocator slack, which a
# small model's run does not fill) may be at most this many times the measured peak.
K = 3


def test_estimate_bounds_the_measured_peak_of_bundled_generations(tmp_path):
    """At 1.5 s, 3 s and 4.5 s of the bundled model on the CPU: measured <= estimate, and the estimate without the
    fixed runtime workspace <= K x measured, each in its own child (:mod:`sana_wm.pipeline.peak_memory`)."""
    rows = [measure_in_child(seconds, str(tmp_path / f"{seconds}.mp4")) for seconds in (1.5, 3, 4.5)]
    assert len(rows) == 3
    for row in rows:
        assert row["generation"] <= row["estimate"], row
        assert row["estimate"] - mem.runtime_bytes("cpu") <= K * row["generation"], row


@pytest.fixture(scope="module")
def bundled():
    return SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")


def test_weights_are_the_parameters_and_buffers_in_their_dtype(bundled):
    estimate = bundled.memory_estimate(49, guided=False)
    parts = {c.name: c for c in estimate.components}
    expected = sum(t.numel() * t.element_size() for t in (*bundled.transformer.parameters(),
                                                           *bundled.transformer.buffers()))
    assert parts["transformer weights"].bytes == expected
    assert parts["transformer weights"].stage == LOADED  # on the CPU, where it runs
    assert module_bytes(bundled.transformer.half()) == expected // 2
    bundled.transformer.float()


def test_components_grow_with_what_they_depend_on(bundled):
    def part(estimate, name):
        return next(c.bytes for c in estimate.components if c.name == name)

    short, long = (bundled.memory_estimate(n, guided=False) for n in (49, 481))
    assert part(long, "latents of the video") > part(short, "latents of the video")
    # A streaming run decodes and samples one chunk at a time: the frames and activations at once do not grow.
    for name in ("decoded frames", "transformer activations", "streaming cache"):
        assert part(long, name) == part(short, name)
    guided = bundled.memory_estimate(49, guided=True)
    assert part(guided, "transformer activations") == 2 * part(short, "transformer activations")
    kept = bundled.memory_estimate(481, guided=False, keep_frames=True)
    assert part(kept, "frames kept in memory") == 481 * 128 * 128 * 3
    bidirectional = bundled.memory_estimate(481, guided=False, variant="bidirectional")
    assert part(bidirectional, "decoded frames") == 481 * 128 * 128 * 3 * 6


def test_stages_and_offload():
    estimate = MemoryEstimate("cuda", (
        MemoryComponent("transformer weights", 10, LOADED), MemoryComponent("text encoder weights", 7, LOADED),
        MemoryComponent("VAE weights", 2, LOADED), MemoryComponent("transformer activations", 5, SAMPLE)))
    assert (estimate.needed_bytes, estimate.peak_bytes) == (5, 24)
    moved = offloaded(estimate)
    assert moved.stage_bytes(LOADED) == 10 and moved.stage_bytes(PROMPT) == 7 and moved.stage_bytes(SAMPLE) == 7
    assert moved.peak_bytes == 17  # the text encoder's stage is over before sampling starts


def test_host_memory_reads_meminfo_and_the_cgroup_limit(tmp_path, monkeypatch):
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 50 kB\n")
    assert mem._meminfo_available(tmp_path / "meminfo") == 50 * 1024
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text("40960\n")
    (cgroup / "memory.current").write_text("10240\n")
    assert mem._cgroup_available(cgroup) == 30720
    (cgroup / "memory.max").write_text("max\n")
    assert mem._cgroup_available(cgroup) is None
    monkeypatch.setattr(mem, "_meminfo_available", lambda: 50 * 1024)
    monkeypatch.setattr(mem, "_cgroup_available", lambda: 30720)
    assert mem.host_available_bytes() == 30720


def _starve(monkeypatch, available: int) -> None:
    import sana_wm.pipeline.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "available_bytes", lambda device: available)


def test_a_run_that_does_not_fit_is_refused_with_what_would_fit(bundled, monkeypatch):
    from sana_wm.bundled import example_files

    full = bundled.memory_estimate(481, guided=False)
    short = bundled.memory_estimate(25, guided=False)
    _starve(monkeypatch, (full.needed_bytes + short.needed_bytes) // 2)
    with pytest.raises(InsufficientMemoryError) as caught:
        bundled.generate(example_files()["room_walk"][0], action_to_trajectory("w-480"), num_frames=481, progress=False)
    message = str(caught.value)
    assert "481 frames" in message and "host memory" in message and "is available" in message
    assert "num_frames" in message and "memory_check" in message
    # The advice is on the variant's grid and fits; the next grid point does not.
    advised = int(message.split("num_frames ")[1].split()[0])
    assert (advised - 1) % 24 == 0
    assert bundled.memory_estimate(advised, guided=False).needed_bytes <= (full.needed_bytes + short.needed_bytes) // 2
    assert bundled.memory_estimate(advised + 24, guided=False).needed_bytes > (full.needed_bytes
                                                                               + short.needed_bytes) // 2


def test_cli_refuses_before_sampling_and_skip_memory_check_overrides(monkeypatch, tmp_path, capsys):
    import sana_wm.samplers as samplers

    _starve(monkeypatch, 1024)
    reached = []
    monkeypatch.setattr(samplers, "stream_sample", lambda *a, **k: reached.append(1) or iter(()))
    out = tmp_path / "v.mp4"
    code = main(["generate", "--example", "room_walk", "--seconds", "3", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "1.00 KiB" not in err and "0.00 GiB is available" in err
    assert "--skip-memory-check" in err and not reached and not list(tmp_path.iterdir())
    monkeypatch.undo()
    _starve(monkeypatch, 1024)
    code = main(["generate", "--example", "room_walk", "--seconds", "1.5", "--out", str(out), "--no-progress",
                 "--skip-memory-check"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file()


def test_an_unknown_amount_is_not_refused(bundled, monkeypatch):
    _starve(monkeypatch, None)
    assert bundled.check_memory(10**4 * 24 + 1, guided=True) is None
    assert torch.device("meta").type == "meta" and mem.available_bytes(torch.device("meta")) is None
