"""Resumable streaming generation: an interrupted run continued from its resume file makes the same video, byte
for byte, as an uninterrupted run; a resume file that cannot belong to the request is refused."""

import hashlib
import json
import warnings

import pytest

import sana_wm.pipeline.pipeline as pipeline_module
from sana_wm.bundled import example_files
from sana_wm.camera.actions import action_to_trajectory
from sana_wm.camera.formats import read_trajectory
from sana_wm.pipeline import OptionError, OptionWarning, ResumeError, SanaWMPipeline, resume_path
from sana_wm.pipeline.resume import load_resume_point, save_resume_point


@pytest.fixture(scope="module")
def bundled():
    return SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def room_walk():
    image, camera = example_files()["room_walk"]
    return image, read_trajectory(camera)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecar(video) -> dict:
    record = json.loads(video.with_name(video.stem + ".sana-wm.json").read_text())
    record.pop("created")
    record.pop("timing")  # measured, so never equal
    return record


def _interrupt_after(monkeypatch, chunk: int) -> list[int]:
    """Ctrl-C right after the resume file of ``chunk`` finished chunks is written; returns the saved positions."""
    saved = []

    def save_then_stop(path, point):
        save_resume_point(path, point)
        saved.append(point.next_chunk)
        if point.next_chunk == chunk:
            raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_module, "save_resume_point", save_then_stop)
    return saved


def _interrupted_then_resumed(pipe, monkeypatch, out, image, trajectory, *, stop, **options):
    saved = _interrupt_after(monkeypatch, stop)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(image, trajectory, output=out, progress=False, **options)
    monkeypatch.undo()
    assert resume_path(out).is_file()
    point = load_resume_point(resume_path(out))
    resumed = pipe.generate(image, trajectory, output=out, progress=False, resume=True, **options)
    return saved, point, resumed


@pytest.mark.parametrize("every, stop, expected", [(1, 2, [1, 2]), (2, 2, [2])])
def test_an_interrupted_bundled_run_resumes_to_the_same_video(bundled, room_walk, tmp_path, monkeypatch, every, stop,
                                                              expected):
    image, trajectory = room_walk
    options = dict(num_frames=97, resume_every=every, keep_frames=True)  # 4 chunks: 25 + 3 * 24 frames
    whole = bundled.generate(image, trajectory, output=tmp_path / "whole.mp4", progress=False, **options)
    assert not resume_path(tmp_path / "whole.mp4").exists()  # removed once the video is complete

    out = tmp_path / "resumed.mp4"
    saved, point, resumed = _interrupted_then_resumed(bundled, monkeypatch, out, image, trajectory, stop=stop,
                                                      **options)
    assert saved == expected
    assert point.next_chunk == stop and point.frames_written == 25 + 24 * (stop - 1)
    assert point.latents.shape[2] == 4 + 3 * (stop - 1)
    assert _sha(out) == _sha(tmp_path / "whole.mp4")
    assert _sidecar(out) == _sidecar(tmp_path / "whole.mp4")
    assert (resumed.frames == whole.frames).all() and resumed.latents.equal(whole.latents)
    assert not resume_path(out).exists()


def test_a_model_with_a_text_encoder_a_causal_vae_and_camera_guidance_resumes_exactly(repos, image_path, tmp_path,
                                                                                      monkeypatch):
    # The tiny released-layout streaming model: the LTX-2 causal decoder's state is rebuilt by decoding the stored
    # chunks again, and camera guidance on the first chunk only has cut the cache before the stop.
    pipe = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32",
                                          device="cpu", refiner=None)
    trajectory = action_to_trajectory("w-80")
    options = dict(num_frames=73, seed=3, prompt="a room", camera_cfg=2.0, camera_cfg_chunks=1)
    pipe.generate(image_path, trajectory, output=tmp_path / "whole.mp4", progress=False, **options)
    out = tmp_path / "resumed.mp4"
    _interrupted_then_resumed(pipe, monkeypatch, out, image_path, trajectory, stop=2, **options)
    assert _sha(out) == _sha(tmp_path / "whole.mp4")
    assert _sidecar(out) == _sidecar(tmp_path / "whole.mp4")


def test_resuming_with_other_settings_or_without_a_resume_file_is_refused(bundled, room_walk, tmp_path,
                                                                           monkeypatch):
    image, trajectory = room_walk
    out = tmp_path / "v.mp4"
    with pytest.raises(ResumeError, match=r"v\.resume\.safetensors: no resume file"):
        bundled.generate(image, trajectory, num_frames=73, output=out, progress=False, resume=True)
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        bundled.generate(image, trajectory, num_frames=73, output=out, progress=False)
    monkeypatch.undo()
    before = resume_path(out).read_bytes()
    with pytest.raises(ResumeError, match=r"other settings \(seed differ\)"):
        bundled.generate(image, trajectory, num_frames=73, seed=7, output=out, progress=False, resume=True)
    with pytest.raises(ResumeError, match=r"num_frames, trajectory\.c2w, .*video_frames differ"):
        bundled.generate(image, trajectory, num_frames=97, output=out, progress=False, resume=True)
    assert resume_path(out).read_bytes() == before  # a refused resume leaves the file for the right one

    resume_path(out).write_bytes(before[: len(before) // 2])
    with pytest.raises(ResumeError, match="damaged resume file"):
        bundled.generate(image, trajectory, num_frames=73, output=out, progress=False, resume=True)


def test_runs_that_cannot_resume_say_so(repos, image_path, tmp_path, bundled, room_walk):
    trajectory = action_to_trajectory("w-40")
    bi = SanaWMPipeline.from_pretrained(repos["bidirectional"], text_encoder=repos["text_encoder"], dtype="fp32",
                                        device="cpu", refiner=None)
    with pytest.raises(OptionError, match="bidirectional variant samples the whole video at once"):
        bi.generate(image_path, trajectory, num_frames=17, steps=1, output=tmp_path / "b.mp4", resume=True)
    with pytest.warns(OptionWarning, match="resume_every is ignored: the bidirectional variant"):
        bi.generate(image_path, trajectory, num_frames=17, steps=1, output=tmp_path / "b.mp4", resume_every=2,
                    progress=False)
    assert not resume_path(tmp_path / "b.mp4").exists()

    refined = SanaWMPipeline.from_pretrained(repos["streaming"], text_encoder=repos["text_encoder"], dtype="fp32",
                                             device="cpu", refiner=True)
    with pytest.raises(OptionError, match="refiner's stream state is not saved"):
        refined.generate(image_path, trajectory, num_frames=25, output=tmp_path / "r.mp4", resume=True)

    image, walk = room_walk
    with pytest.raises(OptionError, match="resume continues the video named by output"):
        bundled.generate(image, walk, num_frames=25, resume=True)
    with pytest.raises(OptionError, match="resume_every"):
        bundled.generate(image, walk, num_frames=25, output=tmp_path / "n.mp4", resume_every=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 turns the resume file off without a warning
        bundled.generate(image, walk, num_frames=25, output=tmp_path / "n.mp4", resume_every=0, progress=False)


def test_a_resumed_cpu_run_uses_the_thread_count_of_the_interrupted_one(bundled, room_walk, tmp_path, monkeypatch):
    # Float sums split over another number of threads may round otherwise, so a run interrupted on 2 threads and
    # resumed on 1 computes on 2 (the first frame's encoding included) and then gives the thread count back.
    import torch

    image, trajectory = room_walk
    options = dict(num_frames=49)  # 2 chunks
    threads = torch.get_num_threads()
    assert threads == 1  # tests/conftest.py
    torch.set_num_threads(2)
    try:
        bundled.generate(image, trajectory, output=tmp_path / "two.mp4", progress=False, **options)
        _interrupt_after(monkeypatch, 1)
        with pytest.raises(KeyboardInterrupt):
            bundled.generate(image, trajectory, output=tmp_path / "resumed.mp4", progress=False, **options)
        monkeypatch.undo()
    finally:
        torch.set_num_threads(threads)
    assert load_resume_point(resume_path(tmp_path / "resumed.mp4")).threads == 2

    seen = []
    for name in ("forward_chunk", "extra_conditioning"):
        original = getattr(bundled.model, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(torch.get_num_threads())
            return _original(*args, **kwargs)

        monkeypatch.setattr(bundled.model, name, spy)
    bundled.generate(image, trajectory, output=tmp_path / "resumed.mp4", progress=False, resume=True, **options)
    monkeypatch.undo()
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == threads  # given back
    assert _sha(tmp_path / "resumed.mp4") == _sha(tmp_path / "two.mp4")
