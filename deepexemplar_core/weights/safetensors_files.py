"""Reading safetensors files safely: header checks and truncation.

Weights are never unpickled at run time; a pickle or a truncated file is refused with the fix.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from .errors import WeightsFormatError

__all__ = ["load_safetensors_checked", "read_safetensors_header"]


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, dict]:
    """The tensor table of a safetensors file (``{name: {"dtype", "shape", "data_offsets"}}``).

    Reads only the header. Raises :class:`WeightsFormatError` when the file is not safetensors
    or is shorter than its header says (truncated).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise WeightsFormatError(
                f"{path}: is a PyTorch pickle/zip file, not safetensors; convert it with "
                f"`deepexemplar convert {path}`"
            )
        if len(head) < 8:
            raise WeightsFormatError(f"{path}: too short for a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise WeightsFormatError(f"{path}: truncated safetensors header; re-create the file")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise WeightsFormatError(f"{path}: corrupt safetensors header ({e})") from e
    header.pop("__metadata__", None)
    end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    if 8 + n + end != size:
        raise WeightsFormatError(
            f"{path}: {size} bytes but the header describes {8 + n + end}; the file is "
            "truncated or corrupt, re-create it (deepexemplar convert) or re-download it"
        )
    return header


def load_safetensors_checked(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never pickle) after checking its header and size.

    Raises:
        WeightsFormatError: not safetensors, truncated or corrupt.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise WeightsFormatError(f"{path}: unreadable safetensors file ({e})") from e
