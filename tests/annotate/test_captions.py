"""The caption stage: a tiny random-weight VLM saved in a downloaded model's layout captions clips greedily,
within the token bound, recorded with the model's fingerprint; bad folders and settings get one clear message.
The stage end to end through `sana-wm annotate` is in test_annotate_learned_and_captions.py."""

import json

import numpy as np
import pytest
from annotate_helpers import write_tiny_vlm

from sana_wm.annotate.captions import (
    CaptionConfig,
    CaptionModelError,
    caption_frame_indices,
    check_caption_model,
    load_captioner,
)
from sana_wm.pipeline.prompt_embeds import encoder_fingerprint

FRAMES = np.random.default_rng(0).integers(0, 255, (20, 36, 64, 3), dtype=np.uint8)


def test_frames_are_spread_evenly_by_hand():
    assert caption_frame_indices(20, 4) == [0, 6, 13, 19]
    assert caption_frame_indices(20, 1) == [0]
    assert caption_frame_indices(3, 8) == [0, 1, 2]  # never a repeat


def test_a_random_vlm_captions_within_the_bound_and_records_its_fingerprint(tiny_vlm):
    captioner = load_captioner(tiny_vlm)
    assert load_captioner(tiny_vlm) is captioner  # loaded once per process
    cfg = CaptionConfig(model=str(tiny_vlm), frames=3, max_new_tokens=6)
    caption, record = captioner.caption(FRAMES, cfg)
    words = caption.split()
    assert 1 <= len(words) <= 6 and all(w.startswith("w") for w in words), caption
    assert captioner.caption(FRAMES, cfg)[0] == caption  # greedy: the same frames give the same caption
    assert record == {"model": str(tiny_vlm), "fingerprint": encoder_fingerprint(tiny_vlm), "prompt": cfg.prompt,
                      "frames": [0, 10, 19], "max_new_tokens": 6, "decoding": "greedy", "tokens": record["tokens"]}
    assert len(words) <= record["tokens"] <= 6


def test_greedy_decoding_of_a_known_answer(tmp_path):
    folder = write_tiny_vlm(tmp_path / "zero-head", constant_answer=True)
    caption, record = load_captioner(folder).caption(FRAMES, CaptionConfig(model=str(folder), max_new_tokens=5))
    assert caption == "w0 w0 w0 w0 w0" and record["tokens"] == 5  # all logits tie: token 0, exactly 5 times


def test_bad_folders_and_settings_are_refused(tmp_path, tiny_vlm):
    with pytest.raises(CaptionModelError, match="--caption-model .*not a folder"):
        check_caption_model(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CaptionModelError, match="config.json and .safetensors"):
        check_caption_model(empty)
    text_only = tmp_path / "text-only"
    text_only.mkdir()
    (text_only / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (text_only / "model.safetensors").write_bytes(b"")
    with pytest.raises(CaptionModelError, match="'llama' is not an image-text-to-text model"):
        check_caption_model(text_only)
    with pytest.raises(CaptionModelError, match="--caption-max-tokens 0"):
        CaptionConfig(model="x", max_new_tokens=0).check()
    with pytest.raises(CaptionModelError, match="--caption-frames 17"):
        CaptionConfig(model="x", frames=17).check()
    with pytest.raises(CaptionModelError, match="--caption-prompt"):
        CaptionConfig(model="x", prompt=" ").check()
