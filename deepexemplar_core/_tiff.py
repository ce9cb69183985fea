"""Baseline TIFF encoding (Deflate strips, 8/16 bit, alpha, ImageDescription) for 16-bit output.

Private to :mod:`deepexemplar_core.image_io`.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from ._png import ZLIB_LEVEL

DESCRIPTION_TAG = 270


def _entry(tag: int, kind: int, values: tuple, extra: bytearray, base: int) -> bytes:
    """One little-endian IFD entry; values that do not fit 4 bytes go to ``extra``."""
    codes = {2: "B", 3: "H", 4: "I", 5: "I"}  # ASCII, SHORT, LONG, RATIONAL (2 LONGs)
    code = codes[kind]
    count = len(values) // 2 if kind == 5 else len(values)
    payload = struct.pack(f"<{len(values)}{code}", *values)
    if len(payload) <= 4:
        return struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
    offset = base + len(extra)
    extra += payload + (b"\0" if len(payload) % 2 else b"")
    return struct.pack("<HHII", tag, kind, count, offset)


def write_tiff(f: BinaryIO, array: np.ndarray, description: bytes = b"") -> None:
    """Baseline little-endian TIFF, Deflate-compressed strips, ImageDescription = metadata.

    16-bit gray+alpha is stored as RGBA (gray repeated): neither Pillow nor OpenCV reads
    16-bit two-sample TIFFs.
    """
    if array.shape[2] == 2 and array.dtype == np.uint16:
        array = array[..., [0, 0, 0, 1]]
    height, width, channels = array.shape
    bits = array.dtype.itemsize * 8
    rows_per_strip = max(1, (1 << 20) // (width * channels * array.dtype.itemsize))
    f.write(b"II*\0\0\0\0\0")  # IFD offset patched below
    offsets, counts = [], []
    for start in range(0, height, rows_per_strip):
        strip = np.ascontiguousarray(
            array[start : start + rows_per_strip], dtype=array.dtype.newbyteorder("<")
        )
        data = zlib.compress(strip.tobytes(), ZLIB_LEVEL)
        offsets.append(f.tell())
        counts.append(len(data))
        f.write(data + (b"\0" if len(data) % 2 else b""))
    ifd_offset = f.tell()
    entries = [
        (256, 4, (width,)),
        (257, 4, (height,)),
        (258, 3, (bits,) * channels),
        (259, 3, (8,)),
        (262, 3, (1 if channels <= 2 else 2,)),
    ]
    if description:
        entries.append((DESCRIPTION_TAG, 2, tuple(description + b"\0")))
    entries += [
        (273, 4, tuple(offsets)),
        (277, 3, (channels,)),
        (278, 4, (rows_per_strip,)),
        (279, 4, tuple(counts)),
        (282, 5, (72, 1)),
        (283, 5, (72, 1)),
        (284, 3, (1,)),
        (296, 3, (2,)),
    ]
    if channels in (2, 4):
        entries.append((338, 3, (2,)))  # unassociated alpha
    entries.append((339, 3, (1,) * channels))
    extra = bytearray()
    base = ifd_offset + 2 + 12 * len(entries) + 4
    table = b"".join(_entry(tag, kind, values, extra, base) for tag, kind, values in entries)
    f.write(struct.pack("<H", len(entries)) + table + b"\0\0\0\0" + bytes(extra))
    f.seek(4)
    f.write(struct.pack("<I", ifd_offset))
