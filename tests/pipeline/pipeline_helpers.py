"""Tiny random-weight models laid out exactly like the released SANA-WM repositories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from random_weights import randomize_
from sana_wm.model import build_model
from sana_wm.pipeline.refiner import TEXT_MAX_TOKENS
from tiny_models import save_tiny_text_encoder, tiny_tokenizer, tiny_vae

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


def save_tiny_refiner(directory: str | Path, *, latent_channels: int = 16, text_encoder_dir: str | Path | None = None,
                      heads: int = 2, head_dim: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """Write a random-weight refiner in the released layout: ``directory/{transformer,connectors}`` and a
    2-layer Gemma-3 (``Gemma3ForConditionalGeneration`` with a 1-layer vision tower) plus a word-level
    tokenizer in ``text_encoder_dir`` (default ``directory/text_encoder``)."""
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    directory = Path(directory)
    gemma_dir = Path(text_encoder_dir) if text_encoder_dir is not None else directory / "text_encoder"
    width = heads * head_dim
    tokenizer = tiny_tokenizer()
    text_config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                   head_dim=width // 2, max_position_embeddings=2 * TEXT_MAX_TOKENS,
                                   sliding_window=64)
    vision_config = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14)
    config = Gemma3Config(text_config=text_config, vision_config=vision_config, mm_tokens_per_image=4,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gemma = Gemma3ForConditionalGeneration(config)
        connectors = LTX2TextConnectors(caption_channels=width, text_proj_in_factor=text_config.num_hidden_layers + 1,
                                        video_connector_num_attention_heads=heads,
                                        video_connector_attention_head_dim=head_dim,
                                        video_connector_num_learnable_registers=8,
                                        audio_connector_num_attention_heads=heads,
                                        audio_connector_attention_head_dim=head_dim,
                                        audio_connector_num_learnable_registers=8, audio_connector_num_layers=1)
        transformer = LTX2VideoTransformer3DModel(
            in_channels=latent_channels, out_channels=latent_channels, num_attention_heads=heads,
            attention_head_dim=head_dim, cross_attention_dim=width, caption_channels=width, num_layers=layers,
            audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=1, audio_attention_head_dim=8,
            audio_cross_attention_dim=8)
        # Every parameter random, RMSNorm weights included (a swapped norm_q / norm_k must show), then the
        # modulation tables, which LTX-2 initialises at a small scale, large enough to matter.
        randomize_(transformer, seed + 1)
        randomize_(connectors, seed + 2)
        with torch.no_grad():
            for name, p in transformer.named_parameters():
                if "scale_shift_table" in name:
                    p.normal_(0.0, 0.5)
    gemma.save_pretrained(str(gemma_dir))
    tokenizer.save_pretrained(str(gemma_dir))
    connectors.save_pretrained(str(directory / "connectors"))
    transformer.save_pretrained(str(directory / "transformer"))
    return directory
