"""The root of sana-wm's user errors.

A :class:`UserError` is a problem with what the user gave (a file, a value, a setting), never a bug in
sana-wm: the command line prints its message in one or two lines and exits with status 2, and shows a
traceback only with ``--debug``. The library's own error types (``TrajectoryError``, ``ConfigError``,
``CheckpointError``, ``ModelFilesError``, ``OptionError``, ...) derive from it, next to the built-in type
they have always been (``ValueError``, ``FileNotFoundError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "LimitError", "UserError"]


class UserError(Exception):
    """A problem with the user's input; the message names the file, key, flag or frame and what to do."""


class LimitError(UserError, ValueError):
    """A size the user asked for is above a bound that protects the host (frames, pixels, nesting depth);
    the message names the bound and how to raise it where that is legitimate."""


class InputError(UserError, ValueError):
    """A file or value the user gave is malformed or does not fit the rest (a model folder's config.yaml, a
    dataset's index, a sidecar, an option out of its range), where no narrower type of the package applies."""


class ConfigError(UserError, ValueError):
    """A config is invalid (a training YAML, a model config's fields or their types); the message starts with
    the file or key path (``stages[1].lr: ...``)."""
