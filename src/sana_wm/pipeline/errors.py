"""Errors shared by the pipeline's loaders."""

from __future__ import annotations

__all__ = ["ModelFilesError"]


class ModelFilesError(FileNotFoundError):
    """A model folder lacks files the chosen variant needs; the message names them."""
