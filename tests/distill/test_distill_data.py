"""The distiller's inputs: the configured negative prompt is the one the guided forwards read, and is recorded."""

import json
import shutil

import pytest
import torch
from distill_helpers import distill_config

from sana_wm.distill import run_distill
from sana_wm.distill.data import DistillData
from sana_wm.errors import ConfigError
from sana_wm.pipeline.text import TextEncoder
from sana_wm.train.distributed import init_distributed
from sana_wm.train.text_states import encode_captions
from tiny_models import save_tiny_text_encoder


def test_a_stored_negative_prompt_is_read_without_prefix_and_a_missing_one_refused(distill_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(distill_dataset, root)
    encoder = TextEncoder.from_pretrained(save_tiny_text_encoder(tmp_path / "gemma", hidden_size=64),
                                          dtype=torch.float32, instruction="describe the scene:", max_tokens=12)
    encode_captions(root, encoder, negative_prompts=["blurry, static"])
    cfg = distill_config(root, tmp_path / "sf", tmp_path, stage="self_forcing", data={"text": "text_cache"},
                         self_forcing={"negative_prompt": "blurry, static"})
    data = DistillData(cfg, init_distributed(), torch.zeros(12, 64))
    text, mask = data.negative_text("blurry, static", 2)
    direct = encoder.encode("blurry, static", negative=True)  # as generation encodes a negative prompt
    assert text.shape == (2, 12, 64)
    torch.testing.assert_close(text, direct.embeds.expand(2, -1, -1), rtol=0, atol=0)
    assert torch.equal(mask, direct.mask.bool().expand(2, -1))
    assert not torch.equal(text[:1], encoder.encode("blurry, static").embeds)  # not the prefixed caption
    with pytest.raises(ConfigError, match=r"self_forcing.negative_prompt: .*'sharp'.* --negative-prompt"):
        data.check_negative("sharp", "self_forcing.negative_prompt")


def test_the_real_score_reads_the_configured_negative_prompt_and_the_run_records_it(distill_dataset, teacher,
                                                                                    tmp_path, monkeypatch):
    read = []
    negative_text = DistillData.negative_text

    def spy(self, prompt, batch):
        read.append(prompt)
        return negative_text(self, prompt, batch)

    monkeypatch.setattr(DistillData, "negative_text", spy)
    cfg = distill_config(distill_dataset, tmp_path / "sf", teacher, stage="self_forcing", steps=1,
                         self_forcing={"negative_prompt": "blurry, static"})
    assert run_distill(cfg).losses[1]["generator_loss"] > 0  # step 0 updates the generator: the guided branch ran
    assert len(read) >= 2 and set(read) == {"blurry, static"}  # the start-up check, then the real score
    recorded = json.loads((tmp_path / "sf" / "config.json").read_text())
    assert recorded["self_forcing"]["negative_prompt"] == "blurry, static"
