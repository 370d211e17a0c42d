"""Fixtures shared by every test directory."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Test tensors are tiny: on a shared 2-core machine intra-op thread hand-offs cost more than the
    math (measured about 5x the wall time), so every test module runs with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
