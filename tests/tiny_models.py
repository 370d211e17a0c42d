"""Tiny random-weight models shared by the test directories."""

from pathlib import Path

import torch

from sana_wm.vae import VideoVAE


def tiny_vae(*, latent_channels: int = 16, causal_decoder: bool = True, seed: int = 0) -> VideoVAE:
    """A random-weight ``AutoencoderKLLTX2Video`` with the released strides (8 in time, 32 in space) and
    small widths (~0.4 M parameters), with random non-trivial ``latents_mean`` / ``latents_std``."""
    from diffusers import AutoencoderKLLTX2Video

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLLTX2Video(
            latent_channels=latent_channels, block_out_channels=(8, 16, 32, 32),
            decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1), decoder_causal=causal_decoder,
            spatial_compression_ratio=32, temporal_compression_ratio=8,
        )
        vae.latents_mean.copy_(torch.randn(latent_channels) * 0.1)
        vae.latents_std.copy_(torch.rand(latent_channels) * 0.5 + 0.75)
    return VideoVAE(vae)


_TINY_CORPUS = [
    "a quiet street with old houses and trees under a clear sky",
    "a first person view of a forest path with green leaves and soft light",
    "a living room with a sofa a table and a window",
    "an empty beach with sand waves and distant mountains",
]


def tiny_tokenizer():
    """A word-level tokenizer built offline from a few sentences (``<pad>``, ``<eos>``, ``<bos>``, ``<unk>``
    specials; BOS prepended), standing in for Gemma's in tests."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(_TINY_CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def save_tiny_text_encoder(directory: str | Path, *, hidden_size: int = 64, seed: int = 0) -> Path:
    """Write a random-weight Gemma-2 (``Gemma2ForCausalLM``, 2 layers) and a word-level tokenizer built offline
    into ``directory``, in the layout of the released ``gemma-2-2b-it`` folder."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    directory = Path(directory)
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(str(directory))

    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                          head_dim=hidden_size // 2, max_position_embeddings=2048,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma2ForCausalLM(config)
    model.save_pretrained(str(directory))
    return directory
