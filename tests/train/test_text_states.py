"""Real caption states for training: encoded once with a (tiny, random) Gemma-2, stored beside the dataset,
read by the trainer without the encoder."""

import re
import shutil

import pytest
import torch
import yaml
from train_helpers import CONFIG_DIR, tiny_config

from sana_wm.pipeline.text import TextEncoder
from sana_wm.train import load_config, run_training
from sana_wm.train.config import ConfigError
from sana_wm.train.distributed import init_distributed
from sana_wm.train.loop import Trainer
from sana_wm.train.text_states import TEXT_STATES_DIR, CaptionStates, encode_captions, read_captions
from tiny_models import save_tiny_text_encoder

INSTRUCTION = "describe the scene:"  # short, so the tiny encoder's window stays small


@pytest.fixture(scope="module")
def text_encoder_dir(tmp_path_factory):
    return save_tiny_text_encoder(tmp_path_factory.mktemp("gemma") / "gemma-2-2b-it", hidden_size=64)


def _encoder(directory):
    return TextEncoder.from_pretrained(directory, dtype=torch.float32, instruction=INSTRUCTION, max_tokens=12)


@pytest.fixture(scope="module")
def encoded_dataset(tiny_dataset, text_encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("text") / "data"
    shutil.copytree(tiny_dataset, root)
    counts = encode_captions(root, _encoder(text_encoder_dir))
    assert counts == {"captions": 3, "computed": 4, "cached": 0}  # "scene 0..2" and the empty negative prompt
    return root


def test_cached_states_equal_a_direct_encoding(encoded_dataset, text_encoder_dir):
    captions = list(read_captions(encoded_dataset))
    assert captions == [f"scene {i % 3}" for i in range(8)]
    states = CaptionStates([encoded_dataset], channels=64)
    encoder = _encoder(text_encoder_dir)
    text, mask = states(captions)
    assert text.shape == (8, 12, 64) and mask.dtype == torch.bool
    for i, caption in enumerate(captions):
        direct = encoder.encode(caption)
        torch.testing.assert_close(text[i], direct.embeds[0], rtol=0, atol=0)
        assert torch.equal(mask[i], direct.mask[0].bool())
    empty = encoder.encode("", negative=True)
    torch.testing.assert_close(states.empty_prompt()[0], empty.embeds, rtol=0, atol=0)
    # A second pass finds everything in place.
    assert encode_captions(encoded_dataset, encoder) == {"captions": 3, "computed": 0, "cached": 4}


def test_the_trainer_reads_the_cached_states(encoded_dataset, tmp_path, monkeypatch):
    def no_encoding(*args, **kwargs):
        raise AssertionError("the trainer ran the text encoder")

    monkeypatch.setattr(TextEncoder, "_run", no_encoding)
    cfg = tiny_config(encoded_dataset, tmp_path / "run", data={"text": "text_cache"}, stages=[{"steps": 2}],
                      validation={"every": 2, "num_batches": 1}, checkpoint={"every": 0},
                      objective={"caption_dropout_prob": 0.5, "null_caption": "empty_prompt"})
    result = run_training(cfg)
    assert sorted(result.losses) == [1, 2] and all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())

    trainer = Trainer(cfg, init_distributed())
    trainer._enter_stage(0)
    samples = trainer._next_samples(4)
    batch = trainer._batch(samples)
    text, mask = CaptionStates([encoded_dataset])([s["caption"] for s in samples])
    assert torch.equal(batch.text, text) and torch.equal(batch.text_mask, mask)
    null, null_mask = trainer._null_caption()
    assert torch.equal(null, CaptionStates([encoded_dataset]).empty_prompt()[0][0]) and null_mask.dtype == torch.bool


def test_missing_or_stale_states_are_reported(tiny_dataset, encoded_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="encode-text"):
        CaptionStates([tiny_dataset])
    with pytest.raises(FileNotFoundError, match="'a new caption'.*encode-text"):
        CaptionStates([encoded_dataset])(["a new caption"])
    with pytest.raises(ValueError, match="64 channels.*model reads 32"):
        CaptionStates([encoded_dataset], channels=32)
    cfg = tiny_config(tiny_dataset, tmp_path / "run", data={"text": "text_cache"}, stages=[{"steps": 1}])
    with pytest.raises(FileNotFoundError, match=f"{TEXT_STATES_DIR}.*encode-text"):
        run_training(cfg)


@pytest.mark.parametrize("name", ["finetune_official.yaml", "finetune_lora.yaml"])
def test_fine_tuning_configs_train_on_real_captions(name, tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / name).read_text())
    assert load_config(CONFIG_DIR / name).data.text == "text_cache"
    raw["data"]["text"] = "hash"
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: data\.text: 'hash'.*init_from"):
        load_config(path)


def test_the_cli_encodes_a_dataset(tiny_dataset, text_encoder_dir, tmp_path, capsys):
    from sana_wm.cli import main

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    assert main(["data", "encode-text", str(root), "--text-encoder", str(text_encoder_dir), "--dtype", "fp32",
                 "--negative-prompt", "blurry"]) == 0
    assert "3 captions, 5 encoded now" in capsys.readouterr().out  # and the empty and "blurry" negative prompts
    states = CaptionStates([root], channels=64)
    assert states(["scene 1"])[0].shape[-1] == 64
    text = states.negative_prompt("blurry")[0]
    assert text.shape[0] == 1 and text.shape[-1] == 64
