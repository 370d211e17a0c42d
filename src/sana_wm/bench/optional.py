"""The scorer's optional measures (LPIPS, MUSIQ, VBench) need a package this project does not install by default
and weights that no package ships: one place checks both and refuses with the flag's own words."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from sana_wm.bench.layout import BenchError

__all__ = ["missing_package", "require_package", "weights_file"]


def weights_file(flag: str, weights: str | Path, expected: str) -> Path:
    """``weights`` as a path when it is a file; else a :class:`BenchError` naming ``flag`` and the ``expected``
    file (what it is and its usual name)."""
    path = Path(weights)
    if not path.is_file():
        raise BenchError(f"{flag} {path}: no such file ({expected})")
    return path


def require_package(module: str, refusal: str) -> ModuleType:
    """The imported ``module``; a :class:`BenchError` saying ``refusal`` (what needs it and how to install it) when
    it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BenchError(refusal) from None


def missing_package(module: str, refusal: str) -> str | None:
    """None when ``module`` is installed, else ``refusal``: for a measure that is refused before any work starts,
    without importing a heavy package."""
    return refusal if importlib.util.find_spec(module) is None else None
