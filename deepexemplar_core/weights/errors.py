"""The one error family of weights handling: every failure is a :class:`WeightsError`.

The command line maps the family to exit code 3; each subclass says what went wrong.
"""

from __future__ import annotations

__all__ = ["WeightsError", "WeightsFormatError", "WeightsMismatchError", "WeightsNotFoundError"]


class WeightsError(ValueError):
    """A weights file is missing, unreadable or belongs to another network."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weight file could not be found; the message lists the places searched and the fixes."""


class WeightsFormatError(WeightsError):
    """A file is not a readable safetensors file (truncated, corrupt or a pickle)."""


class WeightsMismatchError(WeightsError):
    """A safetensors file holds weights of another network (or another variant)."""
