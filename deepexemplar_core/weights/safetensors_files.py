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

__all__ = ["describe_file", "load_safetensors_checked", "read_safetensors_header"]

SAFETENSORS = "a safetensors file"
TORCH_ZIP = "a zip archive (PyTorch's torch.save format)"
TORCH_PICKLE = "a Python pickle (PyTorch's legacy torch.save format)"
#: How :func:`describe_file` starts for bytes it does not recognise (perhaps a ``.caffemodel``).
UNKNOWN = "not a known weights format"


def describe_file(path: str | os.PathLike[str]) -> str:
    """What a weights file is, judged from its size and first bytes (for messages).

    One of :data:`SAFETENSORS`, :data:`TORCH_ZIP`, :data:`TORCH_PICKLE`, a phrase for an empty
    file, a Git LFS pointer or text (an error page saved in place of the file), or a phrase
    starting with :data:`UNKNOWN` for other bytes.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> _ = path.write_text("<html>404</html>")
        >>> describe_file(path).split(";")[0]
        "text, not weights (it starts with '<html>404</html>'"
    """
    size = os.path.getsize(path)
    if size == 0:
        return "an empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(b"PK\x03\x04"):
        return TORCH_ZIP
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return TORCH_PICKLE
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 28:
        return SAFETENSORS  # (perhaps truncated: the caller checks the sizes)
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the file itself (fetch it with `git lfs pull`)"
    text = head.decode("utf-8", errors="replace")  # the last character may be cut
    if text.count("\ufffd") <= 1 and all(c.isprintable() or c in "\t\r\n\ufffd" for c in text):
        first = (text.strip().splitlines() or [""])[0][:60]
        return (f"text, not weights (it starts with {first!r}; a web page saved in place of "
                "the file?)")
    return f"{UNKNOWN} ({size} bytes starting with {head[:8].hex(' ')})"


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, dict]:
    """The tensor table of a safetensors file (``{name: {"dtype", "shape", "data_offsets"}}``).

    Reads only the header. Raises :class:`WeightsFormatError` when the file is not safetensors
    or is shorter than its header says (truncated).
    """
    path = Path(path)
    size = path.stat().st_size
    what = describe_file(path)
    if what in (TORCH_ZIP, TORCH_PICKLE):
        raise WeightsFormatError(
            f"{path}: is {what}, not safetensors; convert it with `deepexemplar convert {path}`")
    if what != SAFETENSORS:
        raise WeightsFormatError(
            f"{path}: not a safetensors file: it is {what}; copy or download it again, or "
            "re-create it with `deepexemplar convert` from the authors' file")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
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
