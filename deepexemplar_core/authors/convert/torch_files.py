"""Safe reading of the authors' PyTorch files (legacy non-zip or zip ``torch.save`` format).

``torch.load(weights_only=True)`` reads both formats with a restricted unpickler that only
rebuilds tensors and plain containers, so no code from the file is executed.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping

import torch

from ...weights.errors import WeightsFormatError


class ConversionError(WeightsFormatError):
    """A source file cannot be converted (unreadable, or keys/shapes of another network)."""


def read_legacy_torch(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a bare ``state_dict`` saved with ``torch.save`` (legacy or zip format), safely.

    Args:
        path: e.g. the authors' ``example_net.pth`` or the video release's ``vgg19_gray.pth``.

    Returns:
        ``{key: tensor}`` on CPU, in file order.

    Raises:
        ConversionError: unreadable file, a pickle needing arbitrary code, or not a mapping of
            names to tensors.
    """
    try:  # a file object: torch.load reads a path named .safetensors as safetensors
        with open(path, "rb") as f, warnings.catch_warnings():
            # a plain pickle (not torch.save) makes torch warn about its protocol before failing
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConversionError(
            f"{path}: holds Python objects besides tensors (a full pickle), which are never "
            "loaded here because unpickling can run code; load it once in the environment that "
            "made it, save `model.state_dict()` with torch.save, and convert that file"
        ) from e
    except (RuntimeError, EOFError, ValueError) as e:
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines()[0] if str(e) else ""
        raise ConversionError(
            f"{path}: cannot be read as a PyTorch state_dict ({type(e).__name__}: {first}); "
            "is it truncated or not a .pth weights file?"
        ) from e
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{path}: expected a state_dict (a mapping), got {type(obj).__name__}"
        )
    bad = next((k for k, v in obj.items() if not (isinstance(k, str) and torch.is_tensor(v))), None)
    if bad is not None:
        raise ConversionError(
            f"{path}: entry {bad!r} is not a named tensor; expected a bare state_dict"
        )
    return dict(obj)
