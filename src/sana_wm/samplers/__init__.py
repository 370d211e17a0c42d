"""Samplers: turn noise into latents with a velocity model, knowing only its call signature.

* :func:`euler_sample` — bidirectional flow-Euler over the whole video (the released main sampler).
* :func:`chunk_causal_sample` — the chunk-causal teacher's staggered (diffusion-forcing) schedule.
* :func:`stream_sample` — the distilled student, chunk by chunk against a streaming cache (a generator).
* :func:`sdedit_refine` / :class:`RefinerStream` — the stage-2 refiner's few-step SDEdit, block by block.

Schedules are :class:`SigmaSchedule` values; conditioning is a :class:`Conditioning` plus an optional
:class:`Guidance` for text classifier-free guidance.
"""

from sana_wm.samplers.chunk_causal import WAITING, chunk_causal_sample, staggered_schedule
from sana_wm.samplers.common import SamplerOutput, SamplerStep, StepCallback
from sana_wm.samplers.conditioning import (
    ChunkVelocityModel,
    Conditioning,
    ExtraConditioning,
    Guidance,
    VelocityModel,
)
from sana_wm.samplers.euler import euler_sample
from sana_wm.samplers.schedules import (
    DISTILL_TIMESTEPS,
    NUM_TRAIN_TIMESTEPS,
    STREAMING_TIMESTEPS,
    SigmaSchedule,
    shift_sigmas,
)
from sana_wm.samplers.sdedit import STAGE2_SIGMAS, RefinerStream, sdedit_refine
from sana_wm.samplers.streaming import (
    RELEASED_KV_WINDOW,
    STEP_RULES,
    StreamedChunk,
    stream_sample,
    streaming_sample,
)

__all__ = [
    "DISTILL_TIMESTEPS",
    "NUM_TRAIN_TIMESTEPS",
    "RELEASED_KV_WINDOW",
    "STAGE2_SIGMAS",
    "STEP_RULES",
    "STREAMING_TIMESTEPS",
    "WAITING",
    "ChunkVelocityModel",
    "Conditioning",
    "ExtraConditioning",
    "Guidance",
    "RefinerStream",
    "SamplerOutput",
    "SamplerStep",
    "SigmaSchedule",
    "StepCallback",
    "StreamedChunk",
    "VelocityModel",
    "chunk_causal_sample",
    "euler_sample",
    "sdedit_refine",
    "shift_sigmas",
    "staggered_schedule",
    "stream_sample",
    "streaming_sample",
]
