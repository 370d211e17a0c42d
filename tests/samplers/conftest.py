import pytest
import torch
from sampler_helpers import randomize_

from sana_wm.model import SanaWMTransformer, get_config


@pytest.fixture(scope="session")
def tiny_model() -> SanaWMTransformer:
    """The "tiny" config with every weight random, and streaming's softmax scale equal to the chunk-causal
    one so that streaming and chunk-causal forwards agree (read-only: tests must not modify it)."""
    torch.manual_seed(0)
    config = get_config("tiny").replace(padded_softmax_in_streaming=False)
    return randomize_(SanaWMTransformer(config)).eval()
