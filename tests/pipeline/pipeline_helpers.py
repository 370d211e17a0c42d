"""Tiny random-weight models laid out exactly like the released SANA-WM repositories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from random_weights import randomize_
from sana_wm.model import build_model
from sana_wm.pipeline.refiner import save_tiny_refiner
from sana_wm.pipeline.text import save_tiny_text_encoder
from sana_wm.pipeline.vae import tiny_vae

IMAGE_SIZE = (64, 96)  # (H, W) of the tiny models: a 2 x 3 latent grid


def randomized_transformer(seed: int = 1):
    """The ``tiny`` transformer with every parameter random (nothing hides behind a zero init)."""
    return randomize_(build_model("tiny"), seed, bias_scale=0.3)


def write_config(root: Path) -> None:
    doc = {"sana_wm": {"transformer": "tiny", "image_size": list(IMAGE_SIZE), "fps": 16}}
    (root / "config.yaml").write_text(yaml.safe_dump(doc))


def build_repos(base: Path) -> dict[str, Path]:
    """``{variant: model folder}`` for the three variants, plus ``"text_encoder"``. As released, the bidirectional
    folder holds ``refiner/{transformer,connectors,text_encoder}``, the streaming one ``refiner_diffusers/`` and
    ``gemma3_12b/``, the chunk-causal one no refiner (all three refiners have the same tiny random weights)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in randomized_transformer().state_dict().items()}
    text = save_tiny_text_encoder(base / "gemma-2-2b-it")

    bi = base / "SANA-WM_bidirectional"
    (bi / "dit").mkdir(parents=True)
    save_file(state, str(bi / "dit" / "sana_wm_1600m_720p.safetensors"))
    tiny_vae(causal_decoder=False).save_pretrained(bi / "vae")
    save_tiny_refiner(bi / "refiner")
    write_config(bi)

    cc = base / "SANA-WM_chunk_causal"
    (cc / "dit").mkdir(parents=True)
    save_file(state, str(cc / "dit" / "sana_wm_chunk_causal_1600m_720p.safetensors"))
    write_config(cc)

    st = base / "SANA-WM_streaming"
    (st / "sana_dit").mkdir(parents=True)
    torch.save({"generator": state}, st / "sana_dit" / "model.pt")
    tiny_vae(causal_decoder=True).save_pretrained(st / "ltx2_causal_vae")
    save_tiny_refiner(st / "refiner_diffusers", text_encoder_dir=st / "gemma3_12b")
    write_config(st)
    return {"bidirectional": bi, "chunk-causal": cc, "streaming": st, "text_encoder": text}


def write_image(path: Path, size=(120, 90), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    img = np.stack([xs * 2 % 256, ys * 3 % 256, (xs + ys) % 256], -1).astype(np.uint8)
    img = (img // 2 + rng.integers(0, 64, img.shape)).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path
