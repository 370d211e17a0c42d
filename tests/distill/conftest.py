import pytest
from distill_helpers import write_base_model, write_dataset


@pytest.fixture(scope="session")
def distill_dataset(tmp_path_factory):
    """4 clips of 25 frames at 16x16: 4 latent frames of 2x2 with the synthetic encoder (stride 8)."""
    return write_dataset(tmp_path_factory.mktemp("distill-data"), 4, num_frames=25, size=16, seed=2)


@pytest.fixture(scope="session")
def teacher(tmp_path_factory):
    """A seeded random ``tiny`` model directory standing in for both teachers."""
    return write_base_model(tmp_path_factory.mktemp("teacher") / "model", seed=3)
