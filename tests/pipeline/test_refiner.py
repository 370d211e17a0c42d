"""The stage-2 refiner against diffusers' ``SanaWMLTX2Refiner`` on the same tiny random weights and noise."""

import shutil

import pytest
import torch

from sana_wm.pipeline import ModelFilesError
from sana_wm.pipeline.refiner import Refiner, RefinerSettings, find_refiner, resolve_refiner

PROMPT = "a quiet street with old houses and trees"
FPS = 16.0
LATENT_CHANNELS = 16  # the tiny VAE's


@pytest.fixture(scope="module")
def refiner(repos):
    return Refiner.from_pretrained(repos["bidirectional"], dtype=torch.float32)


@pytest.fixture(scope="module")
def oracle(repos):
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaWMLTX2Refiner
    from diffusers.models.transformers.transformer_sana_wm_refiner import SanaWMLTX2RefinerTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    root = repos["bidirectional"] / "refiner"
    pipe = SanaWMLTX2Refiner(
        transformer=SanaWMLTX2RefinerTransformer3DModel.from_pretrained(root / "transformer"),
        connectors=LTX2TextConnectors.from_pretrained(root / "connectors"),
        tokenizer=AutoTokenizer.from_pretrained(root / "text_encoder"),
        text_encoder=Gemma3ForConditionalGeneration.from_pretrained(root / "text_encoder"),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stage1_latents(frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, LATENT_CHANNELS, frames, 2, 3, generator=g)  # the tiny models' 2 x 3 latent grid


def test_text_matches_oracle(refiner, oracle):
    ours = refiner.encode_prompt(PROMPT)
    embeds, mask = oracle._encode_prompt(PROMPT, device=torch.device("cpu"), dtype=torch.float32)
    assert ours.embeds.shape == embeds.shape == (1, 1024, 32)
    torch.testing.assert_close(ours.mask, mask)
    # diffusers normalises the stacked Gemma states twice (its own packing, then the connectors'); the second
    # pass divides by a range of 8 (+eps) and multiplies by 8 again: equal to ~1e-6 relative.
    torch.testing.assert_close(ours.embeds, embeds, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode, frames, kv_max_frames", [
    ("streaming", 14, 11),  # 1 sink + 13 frames: blocks of 3 and a last block of 1, window never full
    ("streaming", 14, 5),  # the window slides (history trimmed to 4 frames) three times
    ("bidirectional", 9, 11),
])
def test_refine_equals_diffusers(refiner, oracle, mode, frames, kv_max_frames):
    z = stage1_latents(frames)
    text = refiner.encode_prompt(PROMPT)
    settings = RefinerSettings(mode=mode, kv_max_frames=kv_max_frames)
    ours = refiner.refine(z, text, fps=FPS, settings=settings, seed=7)
    block = 3 if mode == "streaming" else frames - 1  # the oracle's bidirectional case: one block of everything
    expected = oracle(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7), block_size=block,
                      kv_max_frames=kv_max_frames, output_type="latent")
    assert ours.shape == z.shape
    torch.testing.assert_close(ours[:, :, :1], z[:, :, :1], rtol=0, atol=0)  # the sink is carried unchanged
    assert (ours - z).abs().max() > 0.5  # refinement changed the other frames
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)  # measured: 4.8e-7


def test_streaming_in_chunks_equals_one_call(refiner):
    """Stage-1 chunks (4, 3, 3, ...) pushed one by one give the same latents, each block as soon as it is whole."""
    z = stage1_latents(10, seed=1)
    text = refiner.encode_prompt(PROMPT)
    settings = RefinerSettings(mode="streaming", kv_max_frames=5)
    whole = refiner.refine(z, text, fps=FPS, settings=settings, seed=3)
    stream = refiner.stream(text, fps=FPS, settings=settings, seed=3, num_frames=10)
    out = [stream.push(z[:, :, :4])]
    assert out[0].shape[2] == 4  # the sink and the first refined block
    for start in (4, 7):
        out.append(stream.push(z[:, :, start:start + 3]))
        assert out[-1].shape[2] == 3
    assert stream.finish() is None
    torch.testing.assert_close(torch.cat(out, dim=2), whole, rtol=0, atol=1e-6)


def test_settings_validate_and_round_trip():
    s = RefinerSettings.for_variant("streaming", seed=5)
    assert s.mode == "streaming" and s.block_frames == 3 and s.kv_max_frames == 11
    assert RefinerSettings.from_dict(s.to_dict()) == s
    assert RefinerSettings.for_variant("chunk-causal").mode == "bidirectional"
    with pytest.raises(ValueError, match="unknown refiner settings"):
        RefinerSettings.from_dict({"mode": "streaming", "blocks": 3})
    with pytest.raises(ValueError, match="must decrease"):
        RefinerSettings(sigmas=(0.9, 0.95, 0.0))
    with pytest.raises(ValueError, match="kv_max_frames"):
        RefinerSettings(kv_max_frames=1)


# -- folders --------------------------------------------------------------------------------------
def test_released_layouts_are_found(repos):
    bi = resolve_refiner(repos["bidirectional"])
    assert bi.root == repos["bidirectional"] / "refiner" and bi.text_encoder == bi.root / "text_encoder"
    st = resolve_refiner(repos["streaming"] / "refiner_diffusers")
    assert st.text_encoder == (repos["streaming"] / "gemma3_12b").resolve()
    assert find_refiner(repos["streaming"]) == repos["streaming"] / "refiner_diffusers"
    assert find_refiner(repos["chunk-causal"]) is None


@pytest.mark.parametrize("remove, message", [
    ("transformer/config.json", r"transformer/config.json \(refiner transformer config\)"),
    ("connectors/diffusion_pytorch_model.safetensors",
     r"connectors/diffusion_pytorch_model.safetensors \(refiner text connectors weights\)"),
    ("text_encoder/config.json", r"text_encoder/config.json \(Gemma-3 text encoder"),
    ("text_encoder/tokenizer.json", r"text_encoder/tokenizer.json \(Gemma-3 tokenizer"),
])
def test_missing_refiner_files_are_named(repos, tmp_path, remove, message):
    broken = tmp_path / "model"
    shutil.copytree(repos["bidirectional"] / "refiner", broken / "refiner")
    (broken / "refiner" / remove).unlink()
    with pytest.raises(ModelFilesError, match=message):
        resolve_refiner(broken)


def test_no_refiner_folder_is_explained(tmp_path):
    with pytest.raises(ModelFilesError, match="no refiner found; expected .*refiner/"):
        resolve_refiner(tmp_path)
    with pytest.raises(ModelFilesError, match="neither a folder nor a hub id"):
        resolve_refiner("r/")
