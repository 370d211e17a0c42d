"""Generation: image + camera path + prompt -> MP4 and sidecar (orchestration only).

* :class:`SanaWMPipeline` — loads a released-layout model folder, hub id or the bundled model by name, and
  generates (``pipe(image=..., trajectory=...)`` or :meth:`~SanaWMPipeline.generate`, a typed
  :class:`GenerationRequest` run in stages);
* :mod:`~sana_wm.pipeline.text` — the Gemma-2 prompt encoder (the LTX-2 VAE wrapper is :mod:`sana_wm.vae`);
* :mod:`~sana_wm.pipeline.refiner` — the stage-2 LTX-2 refiner: its folders, settings and text encoder (its
  transformer is :mod:`sana_wm.model.refiner`, its SDEdit loop :mod:`sana_wm.samplers.sdedit`);
* :mod:`~sana_wm.pipeline.video` — progressive MP4 writing, reading, the action overlay;
* :mod:`~sana_wm.pipeline.sidecar` — the JSON record next to each video and regeneration from it;
* :mod:`~sana_wm.pipeline.resume` — the resume file of a streaming run, from which a killed run continues;
* :mod:`~sana_wm.pipeline.live` — :class:`LiveSession`, a streaming video made one chunk per step from the keys held.
* :mod:`~sana_wm.pipeline.prompt_embeds` — prompt states encoded before generation (``sana-wm encode-prompt``).
* :mod:`~sana_wm.pipeline.overlap` — the chain of stages, on separate CUDA streams when streaming on a GPU.
"""

from sana_wm.pipeline.live import LiveChunk, LiveError, LiveSession
from sana_wm.pipeline.pipeline import (
    OFFICIAL_REPOS,
    VARIANT_DEFAULTS,
    VARIANTS,
    GenerationRequest,
    GenerationResult,
    ModelFiles,
    ModelFilesError,
    OptionError,
    OptionWarning,
    SanaWMPipeline,
    resolve_model,
)
from sana_wm.pipeline.prompt_embeds import PromptEmbeds, encode_prompt
from sana_wm.pipeline.refiner import Refiner, RefinerSettings, find_refiner, resolve_refiner
from sana_wm.pipeline.resume import ResumeError, resume_path
from sana_wm.pipeline.sidecar import read_sidecar, regenerate_from_sidecar, sidecar_path
from sana_wm.pipeline.text import DEFAULT_PROMPT, PromptCache, TextEmbedding, TextEncoder
from sana_wm.pipeline.video import VideoWriter, read_video
from sana_wm.vae import StreamingDecoder, VideoVAE

__all__ = [
    "DEFAULT_PROMPT",
    "OFFICIAL_REPOS",
    "VARIANTS",
    "VARIANT_DEFAULTS",
    "GenerationRequest",
    "GenerationResult",
    "LiveChunk",
    "LiveError",
    "LiveSession",
    "ModelFiles",
    "ModelFilesError",
    "OptionError",
    "OptionWarning",
    "PromptCache",
    "PromptEmbeds",
    "Refiner",
    "RefinerSettings",
    "ResumeError",
    "SanaWMPipeline",
    "StreamingDecoder",
    "TextEmbedding",
    "TextEncoder",
    "VideoVAE",
    "VideoWriter",
    "encode_prompt",
    "find_refiner",
    "read_sidecar",
    "read_video",
    "regenerate_from_sidecar",
    "resolve_model",
    "resolve_refiner",
    "resume_path",
    "sidecar_path",
]
