"""Prompt states computed before generation, so the text encoders never share the GPU with the transformers.

:func:`encode_prompt` loads the model's text encoders alone (Gemma-2 for stage 1 and, when the model has a
refiner, Gemma-3 with the refiner's connectors), encodes the prompt and the negative prompt, and frees them;
:class:`PromptEmbeds` is the result, saved as one ``.safetensors`` file (``sana-wm encode-prompt``) and given to
``generate --prompt-embeds`` (``SanaWMPipeline.generate(prompt_embeds=...)``).

Each file names the encoders that made it by a fingerprint of their folders (:func:`encoder_fingerprint`), and
the pipeline refuses a file made by another encoder, naming both: states of another encoder are valid-looking
tensors that condition the model on nothing it was trained with.
"""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sana_wm.pipeline.errors import OptionError
from sana_wm.pipeline.text import TextEmbedding

__all__ = ["PromptEmbeds", "encode_for_files", "encode_prompt", "encoder_fingerprint", "refiner_encoder_fingerprint"]

_FORMAT = "sana-wm-prompt-embeds"
_VERSION = "1"
# A large weight file is fingerprinted by its name, size and three 1 MiB samples of its bytes, not all of them:
# reading 5-24 GB to encode one prompt would cost more than the encoding, and fine-tunes of one architecture have
# the same names, sizes and headers but different bytes everywhere. Smaller files are hashed whole.
_SMALL_FILE = 64 * 2**20
_SAMPLE = 2**20


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_fingerprint(*sources: str | Path) -> str:
    """A short sha256 of encoder folders: every file's name and size, the bytes of files up to 64 MiB (configs,
    tokenizers, small weights) and three 1 MiB samples of larger ones; a hub id that is not a local folder is
    fingerprinted by its name."""
    h = hashlib.sha256()
    for source in sources:
        folder = Path(source)
        if not folder.is_dir():
            h.update(f"hub:{source}\0".encode())
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            h.update(str(path.relative_to(folder)).encode("utf-8") + b"\0")
            size = path.stat().st_size
            h.update(str(size).encode() + b"\0")
            with open(path, "rb") as f:
                if size <= _SMALL_FILE:
                    h.update(f.read())
                    continue
                for fraction in (0.25, 0.5, 0.75):
                    f.seek(int(size * fraction))
                    h.update(f.read(_SAMPLE))
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class PromptEmbeds:
    """A prompt's stage-1 states (and the negative prompt's, for text guidance) and, optionally, the refiner's,
    with the fingerprints of the encoders that made them."""

    prompt: str
    negative_prompt: str
    stage1: TextEmbedding
    negative: TextEmbedding
    stage1_encoder: str  # the folder or hub id it was loaded from
    stage1_fingerprint: str
    instruction_sha256: str
    refiner: TextEmbedding | None = None
    refiner_encoder: str | None = None
    refiner_fingerprint: str | None = None
    text_encoder_dtype: str | None = None  # what the encoders ran in ("bf16", "fp32"); None: not recorded

    def meta(self) -> dict:
        """The file's metadata (also what the sidecar records)."""
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt,
                "stage1_encoder": self.stage1_encoder, "stage1_fingerprint": self.stage1_fingerprint,
                "instruction_sha256": self.instruction_sha256, "refiner_encoder": self.refiner_encoder,
                "refiner_fingerprint": self.refiner_fingerprint, "text_encoder_dtype": self.text_encoder_dtype}

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save

        from sana_wm.io import write_bytes_atomic

        tensors = {"stage1.embeds": self.stage1.embeds, "stage1.mask": self.stage1.mask,
                   "negative.embeds": self.negative.embeds, "negative.mask": self.negative.mask}
        if self.refiner is not None:
            tensors.update({"refiner.embeds": self.refiner.embeds, "refiner.mask": self.refiner.mask})
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        data = save(tensors, metadata={"format": _FORMAT, "version": _VERSION, "meta": json.dumps(self.meta())})
        return write_bytes_atomic(path, data)

    @classmethod
    def load(cls, path: str | Path) -> PromptEmbeds:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise OptionError(f"{{prompt_embeds}} {path}: no such file; write one with `sana-wm encode-prompt`")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise OptionError(f"{{prompt_embeds}} {path}: not a readable safetensors file ({exc})") from None
        if header.get("format") != _FORMAT:
            raise OptionError(f"{{prompt_embeds}} {path}: not a prompt-embeddings file (write one with "
                              "`sana-wm encode-prompt`)")
        if header.get("version") != _VERSION:
            raise OptionError(f"{{prompt_embeds}} {path}: format version {header.get('version')} is not "
                              f"{_VERSION}; encode the prompt again with this sana-wm")
        meta = json.loads(header["meta"])
        needed = {"stage1.embeds", "stage1.mask", "negative.embeds", "negative.mask"}
        if not needed <= set(tensors):
            raise OptionError(f"{{prompt_embeds}} {path}: missing tensors {sorted(needed - set(tensors))}")

        def pair(name: str) -> TextEmbedding | None:
            if f"{name}.embeds" not in tensors:
                return None
            return TextEmbedding(tensors[f"{name}.embeds"].float(), tensors[f"{name}.mask"])

        return cls(meta["prompt"], meta["negative_prompt"], pair("stage1"), pair("negative"), meta["stage1_encoder"],
                   meta["stage1_fingerprint"], meta["instruction_sha256"], pair("refiner"), meta.get("refiner_encoder"),
                   meta.get("refiner_fingerprint"), meta.get("text_encoder_dtype"))

    def check_stage1(self, encoder: str, fingerprint: str, instruction: str, caption_channels: int) -> None:
        """Refuse states made by another stage-1 encoder or instruction prefix, or of the wrong width."""
        if fingerprint != self.stage1_fingerprint:
            raise OptionError(f"{{prompt_embeds}} were made by the text encoder {self.stage1_encoder} (fingerprint "
                              f"{self.stage1_fingerprint}), but this model's is {encoder} ({fingerprint}); encode "
                              "the prompt again with this model (`sana-wm encode-prompt --model ...`)")
        if _sha(instruction) != self.instruction_sha256:
            raise OptionError("{prompt_embeds} were encoded with another instruction prefix than this generation's "
                              "{instruction}; encode the prompt again with it")
        if self.stage1.embeds.shape[-1] != caption_channels:
            raise OptionError(f"{{prompt_embeds}} hold {self.stage1.embeds.shape[-1]}-channel states but the model "
                              f"reads {caption_channels}; encode the prompt again with this model")

    def check_refiner(self, files) -> None:
        """Refuse a file without refiner states, or with states of another refiner's text path than the one in
        ``files`` (a :class:`~sana_wm.pipeline.refiner.RefinerFiles`; None: a refiner built by hand, unchecked)."""
        if self.refiner is None:
            raise OptionError("{prompt_embeds} hold no refiner states (encoded for a model without a refiner); "
                              "encode the prompt again with the refiner, or generate without it")
        if files is None:
            return
        encoder, fingerprint = str(files.text_encoder), refiner_encoder_fingerprint(files)
        if fingerprint != self.refiner_fingerprint:
            raise OptionError(f"{{prompt_embeds}} hold refiner states of {self.refiner_encoder} (fingerprint "
                              f"{self.refiner_fingerprint}), but this refiner's encoder is {encoder} "
                              f"({fingerprint}); encode the prompt again with this refiner")


def _free(*models: torch.nn.Module) -> None:
    for model in models:
        model.to("meta")  # drop the weights now, whoever still holds the module
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def refiner_encoder_fingerprint(files) -> str:
    """The refiner's text path: its Gemma-3 folder, its tokenizer and its connectors."""
    return encoder_fingerprint(files.text_encoder, files.tokenizer, files.connectors)


def encode_prompt(model: str | Path, prompt: str, *, negative_prompt: str = "", variant: str | None = None,
                  text_encoder: str | Path | None = None, refiner: str | Path | bool | None = "auto",
                  refiner_text_encoder: str | Path | None = None, device: str | torch.device | None = None,
                  instruction: str | None = None, cache: str | Path | None = None,
                  text_encoder_dtype: str | None = None) -> PromptEmbeds:
    """Encode ``prompt`` (and ``negative_prompt``) with ``model``'s text encoders, which are loaded here and freed
    before returning. ``refiner`` as in :meth:`SanaWMPipeline.from_pretrained` (default: the model's own when it
    has one). ``cache``: a folder of earlier results, keyed by the prompts, the encoders' fingerprints, the
    instruction prefix and the dtype. ``text_encoder_dtype``: "bf16" (default, on the CPU too) or "fp32"
    (:func:`~sana_wm.pipeline.text.text_encoder_dtype`)."""
    from sana_wm.pipeline.pipeline import resolve_model

    files = resolve_model(model, variant, text_encoder=text_encoder, text_only=True)
    return encode_for_files(files, prompt, negative_prompt=negative_prompt, refiner=refiner,
                            refiner_text_encoder=refiner_text_encoder, device=device, instruction=instruction,
                            cache=cache, text_encoder_dtype=text_encoder_dtype)


def encode_for_files(files, prompt: str, *, negative_prompt: str = "", refiner: str | Path | bool | None = "auto",
                     refiner_text_encoder: str | Path | None = None, device: str | torch.device | None = None,
                     instruction: str | None = None, cache: str | Path | None = None,
                     text_encoder_dtype: str | None = None) -> PromptEmbeds:
    """:func:`encode_prompt` for a model's resolved :class:`~sana_wm.pipeline.pipeline.ModelFiles`."""
    from sana_wm.pipeline.pipeline import TEXT_FREE, _refiner_source
    from sana_wm.pipeline.refiner import RefinerTextEncoder, resolve_refiner
    from sana_wm.pipeline.text import DEFAULT_TEXT_ENCODER_DTYPE, TextEncoder, default_instruction
    from sana_wm.pipeline.text import text_encoder_dtype as resolve_text_dtype

    model = files.source
    if files.text_encoder == TEXT_FREE:
        raise OptionError(f"{{model}} {model} takes no text (its config.yaml says text_encoder: none): there is "
                          "no prompt to encode")
    refiner_source = _refiner_source(files, refiner)
    refiner_files = resolve_refiner(refiner_source, text_encoder=refiner_text_encoder) if refiner_source else None
    instruction = default_instruction() if instruction is None else instruction
    stage1_fp = encoder_fingerprint(files.text_encoder)
    refiner_fp = refiner_encoder_fingerprint(refiner_files) if refiner_files is not None else None
    dtype_name = text_encoder_dtype or DEFAULT_TEXT_ENCODER_DTYPE
    dtype = resolve_text_dtype(dtype_name)
    key = _sha("\0".join([prompt, negative_prompt, stage1_fp, refiner_fp or "", instruction, dtype_name]))
    cached = Path(cache) / f"{key}.safetensors" if cache is not None else None
    if cached is not None and cached.is_file():
        return PromptEmbeds.load(cached)

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder = TextEncoder.from_pretrained(files.text_encoder, dtype=dtype, device=device, instruction=instruction)
    stage1, negative = encoder.encode(prompt), encoder.encode(negative_prompt, negative=True)
    _free(encoder.model)
    refined = None
    if refiner_files is not None:
        r_encoder = RefinerTextEncoder.from_pretrained(refiner_files, dtype=dtype, device=device)
        refined = r_encoder.encode(prompt)
        _free(r_encoder.model, r_encoder.connectors)
    embeds = PromptEmbeds(prompt, negative_prompt, stage1, negative, str(files.text_encoder), stage1_fp,
                          _sha(instruction), refined, str(refiner_files.text_encoder) if refiner_files else None,
                          refiner_fp, dtype_name)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        embeds.save(cached)
    return embeds
