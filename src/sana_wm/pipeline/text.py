"""Prompt -> text-encoder states for SANA-WM: Gemma-2-2B-it with SANA's instruction prefix (reference §1.7).

The prompt is prefixed with SANA's "complex human instruction" (CHI), tokenized (BOS added, right padding)
to ``len(tokens(CHI)) + 300 - 2`` tokens, and the encoder's last hidden states are kept at token 0 (BOS) and
the last 299 positions: a 300-token window that drops the instruction but keeps its effect on the prompt's
states. The negative prompt (default ``""``) is encoded without the prefix, padded to 300 tokens, as in
SANA's pipelines.

The instruction text is not part of this package: :func:`default_instruction` reads it at run time from the
installed diffusers (the default of ``SanaPipeline.__call__``'s ``complex_human_instruction``); pass
``instruction=`` to override it.

:class:`PromptCache` keeps encoded prompts on disk (one safetensors file per model + instruction + prompt).
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sana_wm.errors import InputError

__all__ = [
    "DEFAULT_PROMPT",
    "GEMMA_ID",
    "MAX_TOKENS",
    "PromptCache",
    "TextEmbedding",
    "TextEncoder",
    "default_instruction",
    "prompt_token_window",
    "text_encoder_dtype",
]

GEMMA_ID = "Efficient-Large-Model/gemma-2-2b-it"
MAX_TOKENS = 300

# The model was trained on static scene descriptions (camera motion comes only from the camera inputs), so the
# default prompt describes a scene and asks for a still, stable view without naming any motion.
DEFAULT_PROMPT = (
    "A first-person view from a stationary observation point of a detailed, realistic scene with natural "
    "lighting, sharp textures and consistent geometry; the environment is static and the image is stable "
    "and clear."
)


# The precisions the text encoders run in (``--text-encoder-dtype``), and the default (text_encoder_dtype).
TEXT_ENCODER_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
DEFAULT_TEXT_ENCODER_DTYPE = "bf16"


def text_encoder_dtype(name: str | None = None) -> torch.dtype:
    """The dtype the text encoders (Gemma-2, the refiner's Gemma-3) run in on any device: ``name`` ("bf16" or
    "fp32"), default bf16, the released weights' own precision. On the CPU that is half the host memory of float32
    (Gemma-3-12B: 24 GB instead of 49 GB), and torch runs bf16 matmuls there. The prompt encoders run first
    (``generate``, ``encode-prompt``), the pipeline's own and the memory planner all take it from here, so a
    prompt gets the same states whichever of them encodes it."""
    name = DEFAULT_TEXT_ENCODER_DTYPE if name is None else name
    if name not in TEXT_ENCODER_DTYPES:
        from sana_wm.pipeline.errors import OptionError

        raise OptionError(f"{{text_encoder_dtype}} {name!r}: choose one of {', '.join(TEXT_ENCODER_DTYPES)}")
    return TEXT_ENCODER_DTYPES[name]


def default_instruction() -> str:
    """SANA's instruction prefix, read from the installed diffusers (joined with newlines, as SANA does)."""
    try:
        from diffusers import SanaPipeline
    except ImportError as exc:  # pragma: no cover - diffusers is a dependency of the pipeline
        raise ImportError("the default instruction prefix is read from diffusers; install diffusers or pass "
                          "instruction=... explicitly") from exc
    lines = inspect.signature(SanaPipeline.__call__).parameters["complex_human_instruction"].default
    if not lines:
        raise RuntimeError("the installed diffusers has no default complex_human_instruction; pass instruction=...")
    return "\n".join(lines)


@dataclass(frozen=True)
class TextEmbedding:
    """``embeds (B, L, C)`` last hidden states and ``mask (B, L)`` (1 = real token) of encoded prompts."""

    embeds: Tensor
    mask: Tensor

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({"embeds": self.embeds.detach().cpu().contiguous(), "mask": self.mask.detach().cpu().contiguous()},
                  str(path))

    @classmethod
    def load(cls, path: str | Path) -> TextEmbedding:
        from sana_wm.model.loading import load_safetensors

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no prompt embedding file at {path}")
        data = load_safetensors(path)
        if set(data) != {"embeds", "mask"}:
            raise InputError(f"{path}: expected tensors 'embeds' (B, L, C) and 'mask' (B, L), got {sorted(data)}")
        return cls(data["embeds"], data["mask"])


def prompt_token_window(tokenizer, prompt: str, instruction: str | None, max_tokens: int = MAX_TOKENS):
    """Token ids ``(1, N)``, attention mask ``(1, N)`` and the positions to keep ``(max_tokens,)``.

    With an ``instruction``: ``N = len(tokens(instruction)) + max_tokens - 2`` and the kept positions are
    ``[0, N - max_tokens + 1, ..., N - 1]`` (BOS plus the last ``max_tokens - 1``). Without: ``N = max_tokens``
    and every position is kept.
    """
    tokenizer.padding_side = "right"
    if instruction:
        text = instruction + prompt
        length = len(tokenizer.encode(instruction)) + max_tokens - 2
    else:
        text, length = prompt, max_tokens
    batch = tokenizer([text], padding="max_length", max_length=length, truncation=True, add_special_tokens=True,
                      return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    keep = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(ids.shape[1] - max_tokens + 1, ids.shape[1])])
    return ids, mask, keep


class TextEncoder:
    """Gemma-2 (any ``AutoModel`` decoder whose last hidden states SANA-WM reads) plus its tokenizer."""

    def __init__(self, model, tokenizer, *, model_id: str = "", instruction: str | None = None,
                 max_tokens: int = MAX_TOKENS, cache: PromptCache | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.instruction = default_instruction() if instruction is None else instruction
        self.max_tokens = max_tokens
        self.cache = cache

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path = GEMMA_ID, *, dtype: torch.dtype = torch.bfloat16,
                        device: torch.device | str = "cpu", **kwargs) -> TextEncoder:
        """Load a local folder (the layout of ``Efficient-Large-Model/gemma-2-2b-it``) or a hub id."""
        from transformers import AutoModel, AutoTokenizer

        local = Path(path_or_id)
        source = str(local) if local.exists() else str(path_or_id)
        if local.exists() and not (local / "config.json").is_file():
            raise FileNotFoundError(f"{local}: not a text-encoder folder (no config.json); expected the layout of "
                                    f"{GEMMA_ID} (config.json, tokenizer files, *.safetensors)")
        tokenizer = AutoTokenizer.from_pretrained(source)
        # eager attention: Gemma-2's logit soft-capping is only exact there
        model = AutoModel.from_pretrained(source, dtype=dtype, attn_implementation="eager")
        return cls(model.to(device), tokenizer, model_id=str(path_or_id), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device=None) -> TextEncoder:
        self.model.to(device)
        return self

    @torch.no_grad()
    def _run(self, ids: Tensor, mask: Tensor) -> Tensor:
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def encode(self, prompt: str, *, negative: bool = False) -> TextEmbedding:
        """``embeds (1, 300, C)`` float32 and ``mask (1, 300)``. ``negative=True``: no instruction prefix."""
        instruction = "" if negative else self.instruction
        key = None
        if self.cache is not None:
            key = self.cache.key(self.model_id, instruction, prompt, self.max_tokens)
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        ids, mask, keep = prompt_token_window(self.tokenizer, prompt, instruction, self.max_tokens)
        states = self._run(ids, mask).float().cpu()
        result = TextEmbedding(states[:, keep], mask[:, keep])
        if key is not None:
            self.cache.put(key, result)
        return result


class PromptCache:
    """Encoded prompts on disk: ``<dir>/<sha256>.safetensors`` keyed by model id, instruction, prompt and
    window length, so a changed prefix or model never reuses stale states."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(model_id: str, instruction: str, prompt: str, max_tokens: int = MAX_TOKENS) -> str:
        h = hashlib.sha256()
        for part in (model_id, instruction, prompt, str(max_tokens)):
            h.update(part.encode("utf-8") + b"\0")
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def get(self, key: str) -> TextEmbedding | None:
        p = self.path(key)
        return TextEmbedding.load(p) if p.is_file() else None

    def put(self, key: str, embedding: TextEmbedding) -> None:
        import os

        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{key}.partial"
        embedding.save(tmp)
        os.replace(tmp, self.path(key))
