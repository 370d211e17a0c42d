import pytest
from pipeline_helpers import build_repos, write_image


@pytest.fixture(scope="session")
def repos(tmp_path_factory):
    """Tiny random-weight models in the released folder layouts, built once per session."""
    return build_repos(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def image_path(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("inputs") / "start.png")
