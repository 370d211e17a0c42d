"""Fixtures shared by every test directory."""

import diffusers
import pytest
import torch

# diffusers is the numerical oracle of the parity tests, pinned to the version whose behaviour they check:
# a missing or different diffusers fails the run here instead of turning parity tests into skips.
ORACLE_DIFFUSERS = "0.42.1"
if diffusers.__version__ != ORACLE_DIFFUSERS:
    raise RuntimeError(f"the parity tests check against diffusers {ORACLE_DIFFUSERS}, found {diffusers.__version__}; "
                       f'install the test extras: pip install -e ".[test]"')


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Test tensors are tiny: on a shared 2-core machine intra-op thread hand-offs cost more than the
    math (measured about 5x the wall time), so every test module runs with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
