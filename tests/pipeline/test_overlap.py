"""Overlapped stages (sana_wm.pipeline.overlap): the schedule's dependency graph, logged by a recording stand-in for
CUDA streams, and a streaming generation through it that equals the one in order, bit for bit."""

import hashlib
import warnings

import pytest
import torch
from stream_fakes import HOST, RecordingStreams

import sana_wm.pipeline.pipeline as pipeline_module
from sana_wm.camera.actions import action_to_trajectory
from sana_wm.pipeline import GenerationRequest, OptionWarning, SanaWMPipeline, read_sidecar, resume_path
from sana_wm.pipeline import overlap as overlap_module
from sana_wm.pipeline.overlap import INLINE, OVERLAP_AHEAD, StageSchedule
from sana_wm.pipeline.resume import save_resume_point
from sana_wm.samplers.sdedit import RefinerStream
from sana_wm.vae.video_vae import StreamingDecoder

STAGES = ("stage1", "refiner", "decode")


# ------------------------------------------------------------------------------------------------
# The schedule alone, over stages that log their work
# ------------------------------------------------------------------------------------------------
def _source(streams, n):
    for k in range(n):
        streams.work("stage1", k)
        yield torch.full((2,), float(k))


def _map(streams, name, items, made):
    for x in items:
        k = int(x[0])
        streams.work(name, k)
        made.setdefault(name, []).append(x)  # kept alive, so ids stay unique
        yield x + 0.0  # a new tensor, made on this stage's stream


def _run_schedule(n, ahead):
    streams = RecordingStreams()
    schedule = StageSchedule(streams, ahead)
    made = {}
    first = schedule.stage("stage1", _source(streams, n))
    second = schedule.stage("refiner", _map(streams, "refiner", first, made))
    last = schedule.stage("decode", _map(streams, "decode", second, made))
    out = []
    for item in schedule.host(last):
        streams.work("write", int(item[0]))  # the host's work (the MP4 writer)
        out.append(item)
    return streams, made, out


@pytest.mark.parametrize("ahead", [0, 1, 2])
def test_every_consumer_waits_for_its_producers_event_and_the_host_only_for_the_decodes(ahead):
    n = 5
    streams, made, out = _run_schedule(n, ahead)
    assert [int(x[0]) for x in out] == list(range(n))
    # Each stage's work runs on its own stream; the writer on the host.
    for name in (*STAGES, "write"):
        assert {entry[1] for _, entry in streams.work_on(name)} == {HOST if name == "write" else name}
    # Every stage stream first waits for what the host queued before the run.
    start = streams.event(HOST, 0)
    for name in STAGES:
        first_work = streams.work_on(name)[0][0]
        assert streams.waited_before(first_work, name, start)
    # A consumer's work on item k comes after its stream waited for the producer's k-th event and was handed the
    # item's tensor (record_stream: its memory is not reused before the consumer's work has run).
    for producer, consumer in zip(STAGES, STAGES[1:], strict=False):
        for k, (position, _) in enumerate(streams.work_on(consumer)):
            assert streams.waited_before(position, consumer, streams.event(producer, k)), (consumer, k)
            assert streams.handed_over_before(position, id(made[consumer][k]), consumer), (consumer, k)
            # ... and the producer's event k was recorded after the producer's own work on item k
            producer_work = streams.work_on(producer)[k][0]
            record = streams.log.index(("record", producer, streams.event(producer, k)))
            assert producer_work < record < position
    # The host syncs on the decode events only, in chunk order, each before the chunk is written.
    syncs = streams.entries("host_sync")
    assert [entry[1] for _, entry in syncs] == [streams.event("decode", k) for k in range(n)]
    writes = streams.work_on("write")
    assert all(sync < write for (sync, _), (write, _) in zip(syncs, writes, strict=True))
    # At most ahead + 1 chunks are queued but not written (bounded memory), and with ahead > 0 the host really ran
    # ahead: stage 1 of later chunks was queued before the first chunk's frames were waited for.
    for k, (sync, _) in enumerate(syncs):
        queued = sum(1 for position, _ in streams.work_on("decode") if position < sync)
        assert queued == min(n, k + 1 + ahead)
    first_sync = syncs[0][0]
    assert sum(1 for position, _ in streams.work_on("stage1") if position < first_sync) == min(n, 1 + ahead)
    assert streams.log[-1] == ("synchronize",)  # nothing is left queued when the run returns


def test_ahead_0_is_the_plain_order():
    streams, _, _ = _run_schedule(3, 0)
    order = [(entry[2], entry[3]) for _, entry in streams.entries("work")]
    expected = [(name, k) for k in range(3) for name in (*STAGES, "write")]
    assert order == expected


def test_inline_streams_run_the_chain_as_it_is():
    schedule = StageSchedule(INLINE, 0)
    seen = []

    def numbers():
        for k in range(3):
            seen.append(("made", k))
            yield torch.tensor(k)

    out = [int(x) for x in schedule.host(schedule.stage("only", numbers()))]
    assert out == [0, 1, 2] and seen == [("made", 0), ("made", 1), ("made", 2)]
    with pytest.raises(ValueError, match="ahead"):
        StageSchedule(INLINE, -1)


# ------------------------------------------------------------------------------------------------
# The pipeline through the schedule
# ------------------------------------------------------------------------------------------------
ACTION = "w-40,dw-40,a-20"
NUM_FRAMES = 97  # 13 latent frames: chunks of 4, 3, 3, 3


@pytest.fixture(scope="module")
def streaming(repos):
    return SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32",
                                          device="cpu", refiner=True)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _generate(pipe, image_path, out, **options):
    return pipe.generate(image_path, action_to_trajectory(ACTION), num_frames=NUM_FRAMES, seed=5, progress=False,
                         output=out, keep_frames=True, **options)


def _instrument(monkeypatch, pipe, streams):
    """Log each unit of device work with the stream it is queued on: stage 1's model calls, the refiner's pushes
    (keyed by the stage-1 tensor they read) and the decoder's chunks (keyed by the refined tensor)."""
    model_forward = pipe.model.forward_chunk

    def forward_chunk(*args, **kwargs):
        streams.work("stage1")
        return model_forward(*args, **kwargs)

    monkeypatch.setattr(pipe.model, "forward_chunk", forward_chunk)
    push, decode_chunk = RefinerStream.push, StreamingDecoder.decode_chunk

    def logged_push(self, latents):
        streams.work("refiner", id(latents))
        return push(self, latents)

    def logged_decode(self, latents):
        streams.work("decode", id(latents))
        return decode_chunk(self, latents)

    monkeypatch.setattr(RefinerStream, "push", logged_push)
    monkeypatch.setattr(StreamingDecoder, "decode_chunk", logged_decode)
    monkeypatch.setattr(overlap_module, "backend_for", lambda device: streams)


@pytest.mark.parametrize("refine", [True, False], ids=["refiner", "stage1"])
def test_overlapped_generation_equals_the_sequential_one_and_keeps_the_dependencies(streaming, image_path, tmp_path,
                                                                                    monkeypatch, refine):
    in_order = _generate(streaming, image_path, tmp_path / "in_order.mp4", refine=refine)
    assert read_sidecar(tmp_path / "in_order.mp4")["settings"]["overlap"] is None  # on the CPU it cannot act

    streams = RecordingStreams()
    _instrument(monkeypatch, streaming, streams)
    overlapped = _generate(streaming, image_path, tmp_path / "overlapped.mp4", refine=refine)
    monkeypatch.undo()

    # The same video, bit for bit: frames before encoding, MP4 bytes, latents of both stages.
    assert (overlapped.frames == in_order.frames).all()
    assert _sha(tmp_path / "overlapped.mp4") == _sha(tmp_path / "in_order.mp4")
    assert overlapped.latents.equal(in_order.latents)
    if refine:
        assert overlapped.stage1_latents.equal(in_order.stage1_latents)
    assert read_sidecar(tmp_path / "overlapped.mp4")["settings"]["overlap"] is True

    # Each stage's work runs on its own stream, host copies too; the host queues no device work.
    for name in ("stage1", "refiner", "decode") if refine else ("stage1", "decode"):
        assert {entry[1] for _, entry in streams.work_on(name)} == {name}
    assert {entry[1] for _, entry in streams.entries("to_host")} <= {"stage1", "refiner", "decode"}
    # A consumer reads an item only after its stream waited for the producer's event for that item and took the
    # item's tensor over (the k-th item of a stage is the k-th event on its stream).
    pairs = [("stage1", "refiner"), ("refiner", "decode")] if refine else [("refiner", "decode")]
    for producer, consumer in pairs:
        handed = [entry for _, entry in streams.entries("hand_over") if entry[2] == consumer]
        for k, (position, entry) in enumerate(streams.work_on(consumer)):
            assert streams.waited_before(position, consumer, streams.event(producer, k)), (consumer, k)
            assert streams.handed_over_before(position, entry[3], consumer), (consumer, k)
        assert len(handed) == len(streams.work_on(consumer))
    # The host waits for the decode events only, in order; at most OVERLAP_AHEAD + 1 chunks are in flight, and the
    # host did run ahead: stage 1 of the second chunk was queued before the first chunk's frames were waited for.
    syncs = streams.entries("host_sync")
    decodes = streams.work_on("decode")
    assert len(decodes) == 4
    assert [entry[1] for _, entry in syncs] == [streams.event("decode", k) for k in range(len(decodes))]
    for k, (sync, _) in enumerate(syncs):
        assert sum(position < sync for position, _ in decodes) == min(len(decodes), k + 1 + OVERLAP_AHEAD)
    steps_per_chunk = 5  # the released 4 denoising steps and the clean pass
    assert sum(position < syncs[0][0] for position, _ in streams.work_on("stage1")) == 3 * steps_per_chunk


def test_an_overlapped_run_resumes_to_the_same_video(streaming, image_path, tmp_path, monkeypatch):
    # Stage 1 runs ahead of the written chunks, so the resume file must hold what the written chunks left: their
    # latents, the cache and the generator's state of the last written chunk, not of the last sampled one.
    whole = _generate(streaming, image_path, tmp_path / "whole.mp4", refine=False)
    out = tmp_path / "resumed.mp4"
    streams = RecordingStreams()
    monkeypatch.setattr(overlap_module, "backend_for", lambda device: streams)

    def save_then_stop(path, point):
        save_resume_point(path, point)
        if point.next_chunk == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_module, "save_resume_point", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _generate(streaming, image_path, out, refine=False)
    assert len([e for e in streams.events if e.stream == "stage1"]) == 4  # sampled past the stop, not saved
    monkeypatch.setattr(pipeline_module, "save_resume_point", save_resume_point)
    assert resume_path(out).is_file()
    resumed = _generate(streaming, image_path, out, refine=False, resume=True)
    assert _sha(out) == _sha(tmp_path / "whole.mp4")
    assert (resumed.frames == whole.frames).all() and resumed.latents.equal(whole.latents)


def test_overlap_on_the_cpu_says_it_does_not_take_effect(streaming, image_path, tmp_path):
    assert overlap_module.backend_for(torch.device("cpu")) is None
    with pytest.warns(OptionWarning, match=r"^overlap does not take effect: the stages overlap on CUDA streams only, "
                                           r"and this pipeline runs on the cpu"):
        _generate(streaming, image_path, tmp_path / "a.mp4", refine=False, overlap=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptionWarning)  # the default says nothing
        plan = streaming.plan(GenerationRequest(image_path, action_to_trajectory(ACTION), num_frames=NUM_FRAMES))
    assert plan.overlap is None
