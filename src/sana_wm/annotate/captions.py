"""Captions (the optional last stage): a vision-language model describes each kept clip from a few of its frames.

The model is a local transformers folder the user provides (``--caption-model DIR``): any model that
``AutoModelForImageTextToText`` loads, with its processor and a chat template, e.g. SmolVLM, Qwen2-VL or a
LLaVA-style model. Each clip is shown to it as ``frames`` images spread evenly over the clip, followed by
the prompt, in one user turn; the answer is decoded greedily (the same clip gets the same caption on every
run) for at most ``max_new_tokens`` tokens. The clip records the model's folder and its content fingerprint,
the prompt and the frames shown, so a caption can be traced to what made it.

Without a model the stage is off and captions stay empty (``Clip.caption == ""``), as text-free training
expects. The model is loaded once per process and kept while its folder's fingerprint is unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sana_wm.errors import UserError

__all__ = ["CaptionConfig", "CaptionModelError", "Captioner", "caption_frame_indices", "check_caption_model",
           "load_captioner"]

DEFAULT_PROMPT = ("Describe this video in one or two sentences: what the scene is, what is in it, and how the "
                  "camera moves.")
MAX_FRAMES = 16  # images per caption: more costs memory linearly and few models were trained on more
MAX_NEW_TOKENS = 512  # a caption is a sentence or two; the released model's prompts are under 300 tokens
MAX_PROMPT_CHARS = 4000


class CaptionModelError(UserError, ValueError):
    """The caption model's folder is missing, is not a vision-language model, or cannot be loaded."""


@dataclass(frozen=True)
class CaptionConfig:
    model: str | None = None  # a local transformers VLM folder; None: the stage is off
    prompt: str = DEFAULT_PROMPT
    frames: int = 4  # frames shown per clip, evenly spread
    max_new_tokens: int = 64

    def check(self) -> None:
        """Refuse settings outside their bounds, naming the flag."""
        if not 1 <= self.frames <= MAX_FRAMES:
            raise CaptionModelError(f"--caption-frames {self.frames}: must be between 1 and {MAX_FRAMES}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise CaptionModelError(f"--caption-max-tokens {self.max_new_tokens}: must be between 1 and "
                                    f"{MAX_NEW_TOKENS}")
        if not self.prompt.strip() or len(self.prompt) > MAX_PROMPT_CHARS:
            raise CaptionModelError(f"--caption-prompt: must be non-empty text of at most {MAX_PROMPT_CHARS} "
                                    f"characters (got {len(self.prompt)})")


def caption_frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``num_frames`` (first and last included), without repeats."""
    if num_frames < 1:
        return []
    return sorted({round(i * (num_frames - 1) / max(count - 1, 1)) for i in range(count)})


def _is_vlm_config(config) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def check_caption_model(folder: str | Path) -> str:
    """Check, without loading the weights, that ``folder`` holds a vision-language model transformers can load
    with its processor and chat template; returns the folder's content fingerprint."""
    from sana_wm.pipeline.prompt_embeds import encoder_fingerprint

    folder = Path(folder)
    flag = f"--caption-model {folder}"
    if not folder.is_dir():
        raise CaptionModelError(f"{flag}: not a folder; download the model first, e.g. `hf download "
                                "HuggingFaceTB/SmolVLM-256M-Instruct --local-dir DIR`, and give DIR")
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise CaptionModelError(f"{flag}: a transformers model folder needs config.json and .safetensors weights "
                                "(save_pretrained writes both)")
    from transformers import AutoConfig, AutoProcessor

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise CaptionModelError(f"{flag}: cannot read config.json ({str(err).splitlines()[0]})") from None
    if not _is_vlm_config(config):
        raise CaptionModelError(f"{flag}: model type {config.model_type!r} is not an image-text-to-text model; "
                                "give a vision-language model such as SmolVLM, Qwen2-VL or LLaVA")
    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CaptionModelError(f"{flag}: cannot load its processor (tokenizer and image processor): "
                                f"{str(err).splitlines()[0]}") from None
    if not getattr(processor, "chat_template", None):
        raise CaptionModelError(f"{flag}: its processor has no chat template, so there is no way to put the "
                                "frames and the prompt in the model's format; use an instruction-tuned VLM")
    return encoder_fingerprint(folder)


class Captioner:
    """A loaded vision-language model that captions clips (see the module doc)."""

    def __init__(self, folder: str | Path, fingerprint: str):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as hf_logging

        self.folder, self.fingerprint = Path(folder), fingerprint
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would break annotate's own
        try:
            self.processor = AutoProcessor.from_pretrained(self.folder, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.folder, local_files_only=True, use_safetensors=True, dtype=torch.float32).eval()
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise CaptionModelError(f"--caption-model {self.folder}: cannot load the model "
                                    f"({str(err).splitlines()[0]})") from None
        finally:
            hf_logging.enable_progress_bar()
        self._torch = torch

    def caption(self, frames: np.ndarray, config: CaptionConfig) -> tuple[str, dict]:
        """The caption of ``(F, H, W, 3)`` uint8 frames, and its provenance record."""
        from transformers import GenerationConfig

        picks = caption_frame_indices(len(frames), config.frames)
        content = [{"type": "image"} for _ in picks] + [{"type": "text", "text": config.prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                  tokenize=False)
        # Images nested per prompt: Idefics3/SmolVLM processors read a flat list as one image per prompt.
        inputs = self.processor(text=[text], images=[[np.ascontiguousarray(frames[i]) for i in picks]],
                                return_tensors="pt")
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        eos = self.model.generation_config.eos_token_id
        pad = tokenizer.pad_token_id
        if pad is None:  # many chat models have no pad token; eos may be a list (several end tokens)
            pad = eos[0] if isinstance(eos, list) else eos
        # A fresh generation config: greedy whatever sampling defaults the model folder ships.
        generation = GenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=False, num_beams=1,
                                      eos_token_id=eos, pad_token_id=pad)
        with self._torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=generation)
        new_tokens = out[0, inputs["input_ids"].shape[1]:]
        caption = " ".join(tokenizer.decode(new_tokens, skip_special_tokens=True).split())
        record = {"model": str(self.folder), "fingerprint": self.fingerprint, "prompt": config.prompt,
                  "frames": picks, "max_new_tokens": config.max_new_tokens, "decoding": "greedy",
                  "tokens": int(len(new_tokens))}
        return caption, record


_LOADED: dict[str, Captioner] = {}


def load_captioner(folder: str | Path) -> Captioner:
    """The captioner of ``folder``, loaded once per process and again only when the folder's content changed."""
    from sana_wm.pipeline.prompt_embeds import encoder_fingerprint

    if not Path(folder).is_dir():
        check_caption_model(folder)  # raises, naming the flag
    key = json.dumps([str(Path(folder).resolve()), encoder_fingerprint(folder)])
    if key not in _LOADED:
        fingerprint = check_caption_model(folder)
        _LOADED.clear()  # one model at a time: a VLM is large
        _LOADED[key] = Captioner(folder, fingerprint)
    return _LOADED[key]
