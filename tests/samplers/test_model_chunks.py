"""Chunk-by-chunk samplers walk the model's own chunk schedule (its config's chunk_frames)."""

import pytest
import torch
from sampler_helpers import C, ExactFlow, H, W, conditioning, first_frame

from sana_wm.model import SanaWMTransformer, chunk_schedule
from sana_wm.samplers import SigmaSchedule, chunk_causal_sample, stream_sample
from sana_wm.samplers.common import model_chunk_lengths

T = 7


@pytest.fixture(scope="module")
def chunk2_model(tiny_model):
    """The tiny model's weights with chunks of 2 latent frames (first chunk 3)."""
    model = SanaWMTransformer(tiny_model.config.replace(chunk_frames=2)).eval()
    model.load_state_dict(tiny_model.state_dict())
    return model


class _Recorder:
    """Delegates to a real model and records the chunk lengths / chunk sizes it is called with."""

    def __init__(self, model):
        self.model, self.config, self.lengths, self.sizes = model, model.config, [], []

    def __call__(self, *args, chunk_lengths=None, **kwargs):
        self.lengths.append(list(chunk_lengths))
        return self.model(*args, chunk_lengths=chunk_lengths, **kwargs)

    def forward_chunk(self, latents, *args, **kwargs):
        self.sizes.append(latents.shape[2])
        return self.model.forward_chunk(latents, *args, **kwargs)


def test_the_schedule():
    assert chunk_schedule(10, 3) == [4, 3, 3] and chunk_schedule(7, 2) == [3, 2, 2]
    assert chunk_schedule(5, 1) == [2, 1, 1, 1] and chunk_schedule(2, 3) == [2]


def test_samplers_follow_the_model_config(chunk2_model):
    cond, frame0 = conditioning(1, T), first_frame(1)
    schedule = SigmaSchedule.shifted(2, 3.0)
    rec = _Recorder(chunk2_model)
    chunk_causal_sample(rec, cond, frame0, T, schedule, interval_k=0.0, generator=torch.Generator().manual_seed(0))
    assert rec.lengths and all(lengths == [3, 2, 2] for lengths in rec.lengths)
    rec = _Recorder(chunk2_model)
    chunks = list(stream_sample(rec, cond, frame0, T, schedule, generator=torch.Generator().manual_seed(0)))
    assert [c.latents.shape[2] for c in chunks] == [3, 2, 2] and set(rec.sizes) == {3, 2}


def test_a_schedule_other_than_the_models_is_refused(chunk2_model):
    cond, frame0 = conditioning(1, T), first_frame(1)
    with pytest.raises(ValueError, match=r"model's chunk schedule \[3, 2, 2\]"):
        chunk_causal_sample(chunk2_model, cond, frame0, T, SigmaSchedule.shifted(2), chunk_lengths=[4, 3])
    with pytest.raises(ValueError, match=r"model's chunk schedule \[3, 2, 2\]"):
        next(stream_sample(chunk2_model, cond, frame0, T, chunk_lengths=[4, 3]))
    assert model_chunk_lengths(chunk2_model, T, [3, 2, 2]) == [3, 2, 2]
    # A model without a config (a test fake) may be driven with any chunks that cover the video.
    assert model_chunk_lengths(ExactFlow(torch.zeros(1, C, T, H, W)), T, [2, 5]) == [2, 5]
    assert model_chunk_lengths(ExactFlow(torch.zeros(1, C, T, H, W)), T) == [4, 3]
