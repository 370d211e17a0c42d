"""Errors and warnings shared by the pipeline's loaders and its generation requests."""

from __future__ import annotations

import re
from collections.abc import Callable

from sana_wm.errors import UserError

__all__ = ["ModelFilesError", "OptionError", "OptionWarning", "python_spelling"]


class ModelFilesError(UserError, FileNotFoundError):
    """A model folder lacks files the chosen variant needs; the message names them."""


def python_spelling(option: str) -> str:
    """How a Python caller names an option: ``fov``, or ``refiner_settings['seed']`` for a settings key."""
    name, _, key = option.partition(".")
    return f"{name}[{key!r}]" if key else name


def _render(template: str, spell: Callable[[str], str]) -> str:
    return re.sub(r"\{([\w.]+)\}", lambda m: spell(m.group(1)), template)


class OptionWarning(UserWarning):
    """An option given to a generation that cannot take effect in it. ``template`` names options in braces
    (``{fov}``, ``{refiner_settings.seed}``); the message spells them as Python arguments, :meth:`render`
    in any other way (the CLI spells them as its flags)."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(_render(template, python_spelling))

    def render(self, spell: Callable[[str], str]) -> str:
        return _render(self.template, spell)


class OptionError(UserError, ValueError):
    """A combination of options that cannot mean anything; named like :class:`OptionWarning`."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(_render(template, python_spelling))

    def render(self, spell: Callable[[str], str]) -> str:
        return _render(self.template, spell)
