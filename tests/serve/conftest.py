import pytest
import torch

from sana_wm.pipeline import SanaWMPipeline


@pytest.fixture(scope="session")
def synth_pipe():
    """The bundled model, loaded once for every in-process server of the session."""
    torch.manual_seed(0)
    return SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")
