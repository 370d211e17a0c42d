import pytest
from train_helpers import write_base_model, write_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """8 clips of 9 frames at 32x32 (2 latent frames of 4x4 with the synthetic encoder)."""
    return write_dataset(tmp_path_factory.mktemp("train-data"), 8)


@pytest.fixture(scope="session")
def long_dataset(tmp_path_factory):
    """4 clips of 25 frames (4 latent frames), for the chunk-causal recipe."""
    return write_dataset(tmp_path_factory.mktemp("train-data-long"), 4, num_frames=25, seed=1)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A seeded random ``tiny`` model directory (the base that LoRA tests adapt)."""
    return write_base_model(tmp_path_factory.mktemp("tiny-base") / "model")
