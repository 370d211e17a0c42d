"""Where tokens sit in the sequence and which frames may see which: :class:`TokenLayout`."""

from __future__ import annotations

from dataclasses import dataclass

from sana_wm.ops.gdn import released_chunk_lengths

__all__ = ["MODES", "TokenLayout", "chunk_schedule"]

MODES = ("bidirectional", "chunk_causal")


def chunk_schedule(num_frames: int, chunk_frames: int) -> list[int]:
    """The chunk-causal model's chunks over ``num_frames`` latent frames (``SanaWMConfig.chunk_frames``):
    ``chunk_frames + 1`` frames first (the conditioning frame joins the first chunk, the released
    "first_chunk_plus_one"), then ``chunk_frames`` each, the last possibly shorter. The model's forward, the
    trainer's objective and the samplers all take the schedule from here.

    >>> chunk_schedule(10, 3)
    [4, 3, 3]
    """
    return released_chunk_lengths(num_frames, first=chunk_frames + 1, size=chunk_frames)


@dataclass(frozen=True)
class TokenLayout:
    """Tokens are frame-major ``(t, h, w)`` over a ``frames x height x width`` latent grid.

    ``chunk_lengths`` is ``None`` in bidirectional mode (every frame sees every frame). In chunk-causal
    mode it lists consecutive chunks of frames: a frame sees every frame of its own chunk and of earlier
    chunks, never a later chunk.
    """

    frames: int
    height: int
    width: int
    chunk_lengths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if min(self.frames, self.height, self.width) < 1:
            raise ValueError(f"empty latent grid {self.frames}x{self.height}x{self.width} (T x H x W)")
        if self.chunk_lengths is not None:
            lengths = tuple(int(n) for n in self.chunk_lengths)
            object.__setattr__(self, "chunk_lengths", lengths)
            if any(n < 1 for n in lengths) or sum(lengths) != self.frames:
                raise ValueError(f"chunk_lengths {list(lengths)} must be positive and sum to the "
                                 f"{self.frames} latent frames")

    @classmethod
    def build(cls, frames: int, height: int, width: int, mode: str = "bidirectional",
              chunk_lengths=None, chunk_frames: int = 3) -> TokenLayout:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "bidirectional":
            if chunk_lengths is not None:
                raise ValueError("chunk_lengths is only meaningful with mode='chunk_causal'")
            return cls(frames, height, width, None)
        if chunk_lengths is None:
            chunk_lengths = chunk_schedule(frames, chunk_frames)
        return cls(frames, height, width, tuple(chunk_lengths))

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def num_tokens(self) -> int:
        return self.frames * self.tokens_per_frame

    @property
    def is_chunked(self) -> bool:
        return self.chunk_lengths is not None

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """``[(first_frame, end_frame), ...]``; one chunk covering every frame when bidirectional."""
        bounds, start = [], 0
        for n in self.chunk_lengths or (self.frames,):
            bounds.append((start, start + n))
            start += n
        return bounds
