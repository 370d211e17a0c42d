"""Live driving: a streaming video whose camera path is known only one chunk at a time.

:class:`LiveSession` opens on a first frame and then makes one chunk per :meth:`~LiveSession.step`, from the keys
held during that chunk (the action language's keys, :mod:`sana_wm.camera.actions`). Each step rolls the keys out
into the chunk's poses with the action language's easing (:class:`~sana_wm.camera.actions.ActionRollout`, which
carries the camera's velocity over from the chunk before), builds the camera conditioning of those poses alone,
denoises the chunk against the streaming cache (:func:`~sana_wm.samplers.streaming.denoise_chunk`) and decodes it
with the streaming decoder.

Only the denoising needs the chunk's keys. The clean pass that turns a finished chunk into the cache the next chunk
attends to (:func:`~sana_wm.samplers.streaming.chunk_cache`) does not, so it is :meth:`~LiveSession.settle`, which
a server runs right after a chunk's frames are out, while they play: the next chunk's keys are then read one clean
pass later than they could be otherwise. :meth:`~LiveSession.step` settles the chunk before it first if nobody did,
so a caller may ignore the split; the frames are the same either way.

What a session holds does not grow with its length: the streaming cache (a bounded window of earlier chunks
plus the linear-attention state), the decoder's state, the camera's current pose and velocity, and the keys so
far, run-length encoded (a short action string). The conditioning of a chunk is computed from that chunk's poses
and the first frame only: both camera tensors and the bundled model's warp prior depend on a latent frame's own
raw frames and the first pose, so the chunk's slice of a whole-path conditioning equals the one computed here.
A session's frames therefore equal an offline streaming ``generate`` of the action string its keys spell, with the
same seed, frame for frame (tests/pipeline/test_live.py); :meth:`~LiveSession.finish` writes the MP4 with a
sidecar that regenerates it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sana_wm.camera.actions import ACTION_KEYS, ActionRollout
from sana_wm.camera.conditioning import center_crop_geometry, conditioning_from_trajectory
from sana_wm.camera.trajectory import Intrinsics, Trajectory
from sana_wm.errors import UserError
from sana_wm.limits import max_frames

__all__ = ["LiveChunk", "LiveError", "LiveSession"]


class LiveError(UserError, ValueError):
    """A live session asked for something it cannot do (a model that does not stream, keys that are not action
    keys, a step past the session's length limit); the message says what to do instead."""


@dataclass(frozen=True)
class LiveChunk:
    """One step's output. ``frames (F, H, W, 3)`` uint8, the video frames of the chunk (chunk 0 starts with the
    input image); ``poses (F, 4, 4)`` float64 camera-to-world of those frames (relative to the first frame, OpenCV
    axes, metres); ``held``: the keys held on each of the chunk's new frames; ``seconds``: the step's wall time
    (keys to frames; the clean pass of :meth:`LiveSession.settle` is not in it unless the step had to run it)."""

    index: int
    frames: np.ndarray
    poses: np.ndarray
    held: tuple[frozenset[str], ...]
    seconds: float


class LiveSession:
    """A streaming video driven chunk by chunk (module docstring).

    ``pipe``: a streaming :class:`~sana_wm.pipeline.SanaWMPipeline` without refiner and with guidance off (the
    distilled student and the bundled model). ``image``: a path, PIL image or uint8 array. ``mapping``: the key
    mapping ("current" or "legacy"). ``fov``: horizontal field of view of the input image (default 60 degrees,
    as ``generate``). ``max_seconds``: the session's length limit (default and upper bound: what the model's
    position table and :func:`sana_wm.limits.max_frames` allow). ``output``: an MP4 written as the session goes
    (under its partial name until :meth:`finish`).
    """

    def __init__(self, pipe, image, *, mapping: str = "current", seed: int = 42, fov: float | None = None,
                 max_seconds: float | None = None, output: str | Path | None = None) -> None:
        from sana_wm.pipeline.pipeline import DEFAULT_FOV_DEG, STREAM_CHUNK_FRAMES, GenerationRequest
        from sana_wm.pipeline.video import VideoWriter, partial_video_path

        if pipe.variant != "streaming":
            raise LiveError(f"live driving needs a streaming model; this one is {pipe.variant} (it samples the "
                            "whole video at once, so the camera path must be known before it starts)")
        self.pipe = pipe
        self.seed = int(seed)
        self.rollout = ActionRollout(mapping)
        self.mapping = mapping
        self.fov = DEFAULT_FOV_DEG if fov is None else float(fov)
        self.image, self.image_path = pipe._load_image(image)
        src_w, src_h = self.image.size
        H, W = pipe.image_size
        self.geometry = center_crop_geometry(src_w, src_h, target_w=W, target_h=H)
        self.latent_per_chunk = STREAM_CHUNK_FRAMES
        self.frames_per_chunk = STREAM_CHUNK_FRAMES * pipe.vae.temporal_stride  # raw frames of one chunk
        # Settings as generate resolves them, from a one-chunk request (only its camera path is a placeholder).
        probe = Trajectory(np.tile(np.eye(4), (self.frames_per_chunk + 1, 1, 1)), None, pipe.fps)
        self.plan = pipe.plan(GenerationRequest(self.image, probe, seed=self.seed, progress=False, refine=False))
        if self.plan.cfg != 1.0 or self.plan.camera_cfg != 1.0:
            raise LiveError("live driving runs without guidance (cfg 1, camera_cfg 1), as the distilled student does; "
                            "this model's sampler defaults turn guidance on")
        self.max_chunks = self._max_chunks(max_seconds)
        self.intrinsics = Intrinsics.from_fov(self.fov, src_w, src_h, self.frames_per_chunk + 1)
        text = pipe._text(self.plan.prompt, False, None)
        dtype = pipe.transformer.dtype
        self.text, self.text_mask = text.embeds.to(pipe.device, dtype), text.mask.to(pipe.device)
        self.first_latent = pipe.encode_first_frame(self.image, self.geometry)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)  # as generate: same noise anywhere
        self.decoder = pipe.vae.stream_decoder()
        self.cache = None  # what the next chunk attends to, once the last chunk is settled
        self.unsettled = None  # (conditioning, latents) of a chunk whose clean pass has not run yet
        self.chunks = 0
        self.start_frame = 0  # first latent frame of the next chunk
        self.held: list[list] = []  # run-length keys so far: [[frozenset, frames], ...]
        self.output = None if output is None else Path(output)
        self.writer = None
        if self.output is not None:
            self.writer = VideoWriter(partial_video_path(self.output), pipe.fps)

    # -- limits ---------------------------------------------------------------------------------------
    def _max_chunks(self, max_seconds: float | None) -> int:
        """Chunks the session may make: the model's RoPE table holds ``rope_max_positions`` latent frames, and
        :func:`max_frames` bounds every video; ``max_seconds`` may only lower that."""
        per = self.latent_per_chunk
        positions = getattr(getattr(self.pipe.transformer, "config", None), "rope_max_positions", None)
        by_model = (positions - per - 1) // per + 1 if positions is not None else None
        by_limit = (max_frames() - 1) // self.frames_per_chunk
        most = by_limit if by_model is None else min(by_model, by_limit)
        if max_seconds is not None:
            if not max_seconds > 0:
                raise LiveError(f"max_seconds {max_seconds}: give a positive length")
            most = min(most, max(1, int(max_seconds * self.pipe.fps) // self.frames_per_chunk))
        return most

    @property
    def chunk_seconds(self) -> float:
        return self.frames_per_chunk / self.pipe.fps

    @property
    def num_frames(self) -> int:
        """Video frames made so far (the input image included)."""
        return 0 if self.chunks == 0 else 1 + self.chunks * self.frames_per_chunk

    @property
    def action(self) -> str:
        """The keys held so far as an action string: ``generate`` of it with this seed remakes the video."""
        return ",".join(f"{''.join(sorted(keys)) or 'none'}-{count}" for keys, count in self.held)

    # -- one chunk ------------------------------------------------------------------------------------
    def _keys_per_frame(self, keys) -> tuple[frozenset[str], ...]:
        n = self.frames_per_chunk
        if isinstance(keys, (str, set, frozenset)):
            keys = [keys] * n
        keys = [frozenset(k) for k in keys]
        if len(keys) != n:
            raise LiveError(f"a chunk has {n} frames; got keys for {len(keys)}")
        for k in keys:
            if not k <= ACTION_KEYS:
                raise LiveError(f"unknown keys {sorted(k - ACTION_KEYS)}; the action keys are w a s d i j k l")
        return tuple(keys)

    @torch.no_grad()
    def step(self, keys: str | frozenset[str] | Sequence[frozenset[str]] = frozenset()) -> LiveChunk:
        """Make the next chunk with ``keys`` held: one set for the whole chunk, or one per frame."""
        from sana_wm.pipeline.video import to_uint8_frames
        from sana_wm.samplers import Conditioning
        from sana_wm.samplers.common import draw_noise
        from sana_wm.samplers.streaming import denoise_chunk

        if self.chunks >= self.max_chunks:
            raise LiveError(f"the session reached its length limit of {self.max_chunks} chunks "
                            f"({self.max_chunks * self.chunk_seconds:g} s); finish it and start another")
        held = self._keys_per_frame(keys)
        started = time.perf_counter()
        self.settle()
        first = self.chunks == 0
        poses = [self.rollout.pose] if first else []
        origin = np.eye(4)  # the first frame's pose, which every pose is relative to
        poses += [self.rollout.advance(k) for k in held]
        for k in held:
            if self.held and self.held[-1][0] == k:
                self.held[-1][1] += 1
            else:
                self.held.append([k, 1])
        # The chunk's camera from its own poses: the first pose, then the chunk's frames (module docstring).
        window = Trajectory(np.stack([origin] + poses[-self.frames_per_chunk:]), self.intrinsics, self.pipe.fps)
        pipe = self.pipe
        H, W = pipe.image_size
        camera = conditioning_from_trajectory(window, src_image_size=self.geometry.source, target_size=(H, W),
                                              temporal_stride=pipe.vae.temporal_stride,
                                              spatial_stride=pipe.vae.spatial_stride)
        cond = Conditioning(self.text, self.text_mask, camera.camera_vector[None].to(pipe.device),
                            camera.plucker[None].to(pipe.device, pipe.transformer.dtype),
                            pipe._extra_conditioning(self.first_latent, window, self.geometry))
        if not first:
            cond = cond.frames(1, 1 + self.latent_per_chunk)  # latent frame 0 of the window is the first frame
        n = self.latent_per_chunk + (1 if first else 0)
        B, C, _, h, w = self.first_latent.shape
        x = draw_noise((B, C, n, h, w), self.generator, pipe.device)
        latents = denoise_chunk(pipe.model, cond, x, self.plan.schedule, index=self.chunks,
                                start_frame=self.start_frame, cache=self.cache, generator=self.generator,
                                first_frame=self.first_latent if first else None)
        self.unsettled = (cond, latents)
        vae = pipe._use(pipe.vae)
        frames = to_uint8_frames(self.decoder.decode_chunk(latents))
        pipe._release(vae)
        if self.writer is not None:
            self.writer.write(frames)
        self.chunks += 1
        self.start_frame += n
        return LiveChunk(self.chunks - 1, frames, np.stack(poses), held, time.perf_counter() - started)

    @torch.no_grad()
    def settle(self) -> float:
        """Run the last chunk's clean pass, which makes the cache the next chunk attends to (module docstring); a
        no-op when it has run. Returns its wall time in seconds."""
        from sana_wm.samplers.streaming import chunk_cache

        if self.unsettled is None:
            return 0.0
        started = time.perf_counter()
        cond, latents = self.unsettled
        self.cache = chunk_cache(self.pipe.model, cond, latents, cache=self.cache)
        self.unsettled = None
        return time.perf_counter() - started

    # -- the end --------------------------------------------------------------------------------------
    def trajectory(self) -> Trajectory:
        """The whole camera path so far, with the intrinsics the session used (rolled out again from the keys)."""
        from sana_wm.camera.actions import action_to_trajectory

        traj = action_to_trajectory(self.action, self.mapping, fps=self.pipe.fps)
        src_w, src_h = self.geometry.source
        return traj.with_intrinsics(Intrinsics.from_fov(self.fov, src_w, src_h, traj.num_frames))

    def record(self) -> dict:
        """The sidecar of the video so far: what ``generate`` needs to make it again."""
        from sana_wm.pipeline.pipeline import GenerationRequest, PreparedInputs

        if self.chunks == 0:
            raise LiveError("the session has made no chunk yet, so there is no video to describe")
        traj = self.trajectory()
        n = traj.num_frames
        request = GenerationRequest(self.image_path or self.image, traj, num_frames=n, seed=self.seed,
                                    progress=False, fov=None, action=self.action, refine=False)
        inputs = PreparedInputs(self.image, self.image_path, traj, n, n, self.pipe.vae.num_latent_frames(n), self.fov,
                                self.first_latent, None, None, None, 0, None)
        record = self.pipe._record(request, self.plan, inputs)
        record["live"] = {"mapping": self.mapping, "chunks": self.chunks}
        return record

    def finish(self) -> Path | None:
        """Close the MP4 and publish it with its sidecar (None without ``output``, or before the first chunk,
        when the partial file is removed). The session cannot step afterwards."""
        from sana_wm.pipeline.sidecar import publish_video

        if self.writer is None:
            return None
        writer, self.writer = self.writer, None
        writer.close()
        if self.chunks == 0:
            writer.path.unlink(missing_ok=True)
            return None
        publish_video(writer.path, self.output, self.record())
        self.max_chunks = self.chunks
        return self.output

    def close(self) -> None:
        """Drop the MP4 being written (its partial file is removed); for a session abandoned midway."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
            writer.path.unlink(missing_ok=True)
