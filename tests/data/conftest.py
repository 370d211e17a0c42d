"""Fixtures for the data tests."""

from __future__ import annotations

import pytest
from data_helpers import make_clip

from sana_wm.data import Clip


@pytest.fixture
def make_clips():
    def _make(count: int, **kwargs) -> list[Clip]:
        return [make_clip(f"clip{i:03d}", seed=i, **kwargs) for i in range(count)]

    return _make
