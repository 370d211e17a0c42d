"""The refiner's SDEdit sampler (reference §6): stage-1 latents re-noised and denoised in a few Euler steps,
block after block against the refiner's sliding window.

The first ``sink_frames`` latent frames (the conditioning image) are a clean *sink*: never refined, they
enter every block as context at timestep 0. Every other frame is re-noised from its stage-1 value ``z`` to
``x = (1 - s_0) z + s_0 eps`` and denoised with deterministic Euler steps on the sigmas ``s_0 > ... > 0``
(released: :data:`STAGE2_SIGMAS`, LTX-2's distilled stage-2 schedule): the model predicts a velocity ``v``
and ``x <- x + (s' - s) v``, which lands on ``x0 = x - s v`` at the last step.

Two modes: ``"bidirectional"`` refines all non-sink frames as one block (they attend to each other and to
the sink); ``"streaming"`` refines blocks of ``block_frames`` latent frames one after another, each
attending to the sink and the history of refined frames (:class:`~sana_wm.model.refiner.RefinerWindow`), so
a streaming video's stage-1 chunks are refined as soon as they exist.

Randomness: one standard-normal draw of each block's shape, in block order, from a CPU generator seeded with
``seed`` (the same numbers on every device).

The sampler knows the model only through :class:`BlockVelocityModel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Protocol

import torch
from torch import Tensor

from sana_wm.model.refiner import RefinerWindow
from sana_wm.samplers.common import draw_noise

__all__ = [
    "REFINER_MODES",
    "RELEASED_BLOCK_FRAMES",
    "RELEASED_KV_MAX_FRAMES",
    "STAGE2_SIGMAS",
    "BlockVelocityModel",
    "RefinerStream",
    "check_refiner_schedule",
    "sdedit_refine",
]

STAGE2_SIGMAS = (0.909375, 0.725, 0.421875, 0.0)  # LTX-2's distilled stage-2 schedule
REFINER_MODES = ("bidirectional", "streaming")
RELEASED_BLOCK_FRAMES = 3
RELEASED_KV_MAX_FRAMES = 11  # 1 sink + 10 history frames


def check_refiner_schedule(mode: str, block_frames: int, kv_max_frames: int, sink_frames: int,
                           sigmas: Sequence[float]) -> None:
    """Raise ValueError, naming the setting, unless these describe a refinement the sampler can run."""
    if mode not in REFINER_MODES:
        raise ValueError(f"refiner mode must be one of {', '.join(REFINER_MODES)}, got {mode!r}")
    if block_frames < 1 or sink_frames < 1:
        raise ValueError(f"refiner block_frames and sink_frames must be >= 1, got {block_frames} and "
                         f"{sink_frames}")
    if kv_max_frames <= sink_frames:
        raise ValueError(f"refiner kv_max_frames ({kv_max_frames}) must exceed sink_frames ({sink_frames}): it "
                         "counts the sink plus the history frames kept")
    s = tuple(sigmas)
    if len(s) < 2 or s[-1] != 0.0 or not 0.0 < s[0] <= 1.0 or any(a <= b for a, b in pairwise(s)):
        raise ValueError(f"refiner sigmas must decrease from (0, 1] to 0.0, got {list(s)}")


class BlockVelocityModel(Protocol):
    """``RefinerTransformer.forward_block``: a block of latent frames at absolute indices ``frames`` and one
    noise level -> (velocity, the block's per-layer keys/values when ``capture`` asks for them)."""

    device: torch.device

    def forward_block(self, latents: Tensor, sigma: float, frames: Sequence[int], text: Any, fps: float, *,
                      window: RefinerWindow | None = None, capture: str | None = None
                      ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...] | None]: ...


class RefinerStream:
    """Refine one video as its stage-1 latents arrive.

    :meth:`push` takes the next latent frames ``(B, C, n, h, w)`` in video order (the first ``sink_frames``
    are the sink) and returns the frames that are now final, in video order, the sink first (unchanged), or
    None; :meth:`finish` returns the rest. In "streaming" mode each block of ``block_frames`` is refined as
    soon as it is complete; in "bidirectional" mode everything is refined at :meth:`finish`. ``text`` is the
    model's projected prompt, passed through untouched; ``kv_max_frames`` counts the sink plus the history
    frames kept; ``num_frames`` (total latent frames, when known) lets the last block skip its history pass.
    """

    def __init__(self, model: BlockVelocityModel, text: Any, *, fps: float, seed: int,
                 sigmas: Sequence[float] = STAGE2_SIGMAS, mode: str = "bidirectional",
                 block_frames: int = RELEASED_BLOCK_FRAMES, kv_max_frames: int = RELEASED_KV_MAX_FRAMES,
                 sink_frames: int = 1, num_frames: int | None = None, progress: bool = False) -> None:
        check_refiner_schedule(mode, block_frames, kv_max_frames, sink_frames, sigmas)
        self.model = model
        self.text = text
        self.fps = float(fps)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.mode = mode
        self.block_frames = block_frames
        self.kv_max_frames = kv_max_frames
        self.sink_frames = sink_frames
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.num_frames = num_frames
        self.window: RefinerWindow | None = None
        self.sink: Tensor | None = None
        self.pending: list[Tensor] = []
        self.next_frame = 0  # absolute index of the first pending frame
        self._bar = None
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=None if num_frames is None else num_frames - sink_frames,
                             desc="refiner (latent frames)", unit="frame")

    def _pending_frames(self) -> int:
        return sum(p.shape[2] for p in self.pending)

    def _take(self, n: int) -> Tensor:
        frames = torch.cat(self.pending, dim=2)
        block, rest = frames[:, :, :n], frames[:, :, n:]
        self.pending = [rest] if rest.shape[2] else []
        return block

    def push(self, latents: Tensor) -> Tensor | None:
        out = []
        self.pending.append(latents.detach().float())
        if self.sink is None:
            if self._pending_frames() < self.sink_frames:
                return None
            self.sink = self._take(self.sink_frames)
            self._start()
            out.append(self.sink)
        if self.mode == "streaming":
            while self._pending_frames() >= self.block_frames:
                out.append(self._refine_block(self._take(self.block_frames)))
        return torch.cat(out, dim=2) if out else None

    def finish(self) -> Tensor | None:
        if self.sink is None:
            raise ValueError(f"the refiner needs more than {self.sink_frames} sink frame(s); got "
                             f"{self._pending_frames()} latent frame(s)")
        n = self._pending_frames()
        out = self._refine_block(self._take(n)) if n else None
        if self._bar is not None:
            self._bar.close()
        return out

    def _start(self) -> None:
        """Keys/values of the sink frames alone, clean (sigma 0), before RoPE."""
        s = self.sink_frames
        _, kv = self.model.forward_block(self.sink, 0.0, range(s), self.text, self.fps, capture="sink")
        self.window = RefinerWindow.start(kv, s, max_history_frames=self.kv_max_frames - s)
        self.next_frame = s

    def _refine_block(self, z: Tensor) -> Tensor:
        """SDEdit one block from its stage-1 latents ``z``: re-noise to the first sigma, Euler to 0."""
        sigmas = self.sigmas
        n = z.shape[2]
        frames = range(self.next_frame, self.next_frame + n)
        noise = draw_noise(tuple(z.shape), self.generator, self.model.device)
        x = (1.0 - sigmas[0]) * z.to(noise.device) + sigmas[0] * noise
        for sigma, sigma_next in pairwise(sigmas):
            velocity, _ = self.model.forward_block(x, sigma, frames, self.text, self.fps, window=self.window)
            x = x + (sigma_next - sigma) * velocity
        self.next_frame += n
        last = self.num_frames is not None and self.next_frame >= self.num_frames
        if self.mode == "streaming" and not last:
            # The next blocks see this one through its clean keys/values, computed against the same window.
            _, kv = self.model.forward_block(x, 0.0, frames, self.text, self.fps, window=self.window,
                                             capture="history")
            self.window = self.window.push(kv, n)
        if self._bar is not None:
            self._bar.update(n)
        return x


def sdedit_refine(model: BlockVelocityModel, latents: Tensor, text: Any, *, fps: float, seed: int,
                  sigmas: Sequence[float] = STAGE2_SIGMAS, mode: str = "bidirectional",
                  block_frames: int = RELEASED_BLOCK_FRAMES, kv_max_frames: int = RELEASED_KV_MAX_FRAMES,
                  sink_frames: int = 1, progress: bool = False) -> Tensor:
    """Refined ``(B, C, T, h, w)`` float32 latents of a whole stage-1 video (arguments as :class:`RefinerStream`);
    the sink frames are returned unchanged."""
    if latents.ndim != 5:
        raise ValueError(f"latents: expected (B, C, T, h, w), got {tuple(latents.shape)}")
    stream = RefinerStream(model, text, fps=fps, seed=seed, sigmas=sigmas, mode=mode, block_frames=block_frames,
                           kv_max_frames=kv_max_frames, sink_frames=sink_frames, num_frames=latents.shape[2],
                           progress=progress)
    parts = [stream.push(latents), stream.finish()]
    return torch.cat([p for p in parts if p is not None], dim=2)
