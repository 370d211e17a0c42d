import pytest
import torch
from model_helpers import randomize_

from sana_wm.model import SanaWMTransformer, get_config


@pytest.fixture(scope="session")
def tiny_model() -> SanaWMTransformer:
    """The "tiny" config with every weight random (read-only: tests must not modify it)."""
    torch.manual_seed(0)
    return randomize_(SanaWMTransformer(get_config("tiny"))).eval()
