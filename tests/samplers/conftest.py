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


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The tiny model's tensors are far too small for intra-op threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
