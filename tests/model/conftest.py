import pytest
import torch
from model_helpers import randomize_

from sana_wm.model import SanaWMTransformer, get_config


@pytest.fixture(scope="session")
def tiny_model() -> SanaWMTransformer:
    """The "tiny" config with every weight random (read-only: tests must not modify it)."""
    torch.manual_seed(0)
    return randomize_(SanaWMTransformer(get_config("tiny"))).eval()


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The tiny models' tensors are far too small for intra-op threads; on a busy 2-core machine the
    thread hand-offs cost more than the math (about 5x the wall time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
