"""The one error family of weights handling: every failure is a :class:`WeightsError`.

The command line maps the family to exit code 3; each subclass says what went wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WeightsError", "WeightsFormatError", "WeightsMismatchError", "WeightsNotFoundError"]


class WeightsError(ValueError):
    """A weights file is missing, unreadable or belongs to another network."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weight file could not be found; the message lists the places searched and the fixes.

    The same facts are fields, so that a caller phrasing its own message (the ComfyUI nodes, the
    ``auto`` family's reason) never parses the text.

    Attributes:
        name: the weights name (``"colornet"``, ``"gray_vgg"``, ``"lite"``), ``""`` when the
            error is about something else (e.g. a ``--weights`` folder that does not exist).
        file_name: the file looked for (``"example_net.safetensors"``), or ``""``.
        searched: the places searched, in order, each ``"<kind> <where>"`` (``"search dir
            /models"``, ``"Hugging Face cache (skipped: no repo id configured)"``).
        fixes: ways to provide the file, each a command or setting for the command line or the
            library (callers with their own controls give their own).
        detail: why the last step failed (``"The download failed: ..."``), or ``""``.
    """

    def __init__(self, message: str, *, name: str = "", file_name: str = "",
                 searched: Sequence[str] = (), fixes: Sequence[str] = (), detail: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.file_name = file_name
        self.searched = tuple(searched)
        self.fixes = tuple(fixes)
        self.detail = detail

    @classmethod
    def missing(cls, name: str, file_name: str, searched: Sequence[str], fixes: Sequence[str],
                detail: str = "") -> WeightsNotFoundError:
        """The error for a known weights ``name`` not found; the message is made from the fields.

        >>> err = WeightsNotFoundError.missing("lite", "x.safetensors", ["search dir /m"],
        ...                                    ["pip ..."])
        >>> print(err)
        weights 'lite' (x.safetensors) not found. Searched:
          - search dir /m
        Provide the file with one of:
          - pip ...
        """
        places = "".join(f"\n  - {place}" for place in searched)
        ways = "".join(f"\n  - {fix}" for fix in fixes)
        message = (f"weights {name!r} ({file_name}) not found. Searched:{places}\n"
                   f"Provide the file with one of:{ways}" + (f"\n{detail}" if detail else ""))
        return cls(message, name=name, file_name=file_name, searched=searched, fixes=fixes,
                   detail=detail)

    @property
    def headline(self) -> str:
        """``"weights 'colornet' (example_net.safetensors) not found."``, or the message's first
        line when the error is not about a known name."""
        if not self.name:
            return str(self).split("\n", 1)[0]
        return f"weights {self.name!r} ({self.file_name}) not found."


class WeightsFormatError(WeightsError):
    """A file is not a readable safetensors file (truncated, corrupt or a pickle)."""


class WeightsMismatchError(WeightsError):
    """A safetensors file holds weights of another network (or another variant)."""
