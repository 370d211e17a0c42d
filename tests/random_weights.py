"""Random, well-scaled weights for test models, shared by the test directories (the library's function)."""

from sana_wm.model.random_init import randomize_

__all__ = ["randomize_"]
