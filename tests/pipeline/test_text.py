import pytest
import torch

from sana_wm.pipeline.text import (
    DEFAULT_PROMPT,
    PromptCache,
    TextEncoder,
    default_instruction,
    prompt_token_window,
)


@pytest.fixture(scope="module")
def encoder(repos):
    return TextEncoder.from_pretrained(repos["text_encoder"], dtype=torch.float32)


def test_instruction_is_read_from_diffusers():
    text = default_instruction()
    assert len(text.split()) > 50 and "\n" in text


def test_window_keeps_bos_and_last_tokens(encoder):
    tok = encoder.tokenizer
    instruction = "a quiet street with old houses "  # ends with a separator, as the released prefix does
    ids, mask, keep = prompt_token_window(tok, "a forest path", instruction, max_tokens=12)
    n_instr = len(tok.encode(instruction))
    assert ids.shape == (1, n_instr + 12 - 2)
    assert keep.tolist() == [0, *range(ids.shape[1] - 11, ids.shape[1])]
    assert ids[0, 0] == tok.bos_token_id
    assert mask[0].sum() == n_instr + 3  # the prompt's three words follow the instruction, then padding
    # without an instruction: max_tokens tokens, all kept
    ids, mask, keep = prompt_token_window(tok, "", None, max_tokens=12)
    assert ids.shape == (1, 12) and keep.tolist() == list(range(12)) and mask.sum() == 1


def test_encode_gives_300_tokens_and_mask(encoder):
    e = encoder.encode("a quiet street")
    assert e.embeds.shape == (1, 300, 64) and e.mask.shape == (1, 300)
    assert e.mask[0, 0] == 1 and not e.mask[0, -1]
    n = encoder.encode("", negative=True)
    assert n.embeds.shape == (1, 300, 64) and n.mask.sum() == 1


def test_prompt_cache_round_trip(encoder, tmp_path):
    cache = PromptCache(tmp_path)
    cached = TextEncoder(encoder.model, encoder.tokenizer, model_id="tiny", cache=cache)
    first = cached.encode("a living room")
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    again = cached.encode("a living room")
    assert torch.equal(first.embeds, again.embeds) and torch.equal(first.mask, again.mask)
    assert cache.key("tiny", "x", "p") != cache.key("tiny", "y", "p")


def test_default_prompt_names_no_camera_motion():
    words = set(DEFAULT_PROMPT.lower().replace(",", " ").replace(";", " ").split())
    assert not words & {"pan", "pans", "zoom", "moving", "moves", "orbit", "dolly", "rotate", "walks"}


def test_prompt_states_match_diffusers_encode_prompt(encoder):
    """Stage-1 prompt encoding against diffusers' ``SanaWMPipeline.encode_prompt`` (the oracle) on the same tiny
    Gemma-2: the instruction prefix, the 300-token window (BOS + last 299) and the unprefixed negative prompt."""
    import inspect

    from diffusers import SanaPipeline, SanaWMPipeline

    oracle = SanaWMPipeline(tokenizer=encoder.tokenizer, text_encoder=encoder.model, vae=None, transformer=None,
                            scheduler=None)
    chi = inspect.signature(SanaPipeline.__call__).parameters["complex_human_instruction"].default
    prompt = "a narrow street between old stone houses at dusk"
    with torch.no_grad():
        cond, cond_mask, neg, neg_mask = oracle.encode_prompt(prompt, "", device=torch.device("cpu"), chi_prompt=chi)
    ours, ours_neg = encoder.encode(prompt), encoder.encode("", negative=True)
    assert ours.embeds.shape == cond[:, 0].shape == (1, 300, 64)
    torch.testing.assert_close(ours.mask.long(), cond_mask.long(), rtol=0, atol=0)
    torch.testing.assert_close(ours.embeds, cond[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_neg.mask.long(), neg_mask.long(), rtol=0, atol=0)
    torch.testing.assert_close(ours_neg.embeds, neg[:, 0], rtol=1e-5, atol=1e-6)
