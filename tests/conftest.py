"""Fixtures shared by every test directory."""

import os

import torch

# Triton decides at kernel definition (when sana_wm.ops.gdn_triton is imported) whether to compile or
# to interpret; without a GPU the kernel tests run the same kernels in its CPU interpreter. Set here,
# before any test module is imported. Only Triton reads it: nothing else in the suite uses Triton on CPU.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import diffusers  # noqa: E402
import pytest  # noqa: E402

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
