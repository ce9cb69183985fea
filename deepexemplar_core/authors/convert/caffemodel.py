"""A Caffe ``.caffemodel`` reader that decodes the protobuf wire format directly (no Caffe).

Only the fields needed to extract weights are decoded (``caffe.proto`` numbers):

* ``NetParameter``: ``layer`` = 100 (``LayerParameter``: ``name`` = 1, ``blobs`` = 7) and the
  legacy V1 ``layers`` = 2 (``V1LayerParameter``: ``name`` = 4, ``blobs`` = 6);
* ``BlobProto``: ``shape`` = 7 (``BlobShape.dim`` = 1, int64, packed or not), legacy
  ``num``/``channels``/``height``/``width`` = 1..4, ``data`` = 5 (float32, packed or not),
  ``double_data`` = 8 (float64, packed or not).

Every other field is skipped by its wire type. The file is memory-mapped and float arrays are
read with ``numpy.frombuffer`` from the mapping, so a 548 MB model is copied once.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field

import numpy as np

from ...weights.errors import WeightsFormatError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
NET_LAYER, NET_LAYERS_V1 = 100, 2
LAYER_NAME, LAYER_BLOBS = 1, 7
V1_NAME, V1_BLOBS = 4, 6
BLOB_LEGACY_DIMS = {1: 0, 2: 1, 3: 2, 4: 3}  # num, channels, height, width
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE = 5, 7, 8
SHAPE_DIM = 1


class CaffeModelError(WeightsFormatError):
    """The file is not a readable caffemodel (truncated, corrupt or another format)."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise CaffeModelError("truncated varint; the file is truncated or not a caffemodel")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CaffeModelError("varint longer than 10 bytes; not a protobuf file")


def _fields(buf: memoryview, start: int, end: int):
    """Yield ``(field_number, wire_type, value)``; LENGTH values are ``(offset, stop)``."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire == LENGTH:
            size, pos = _varint(buf, pos, end)
            value = (pos, pos + size)
            pos += size
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            value = (pos, pos + size)
            pos += size
        else:
            raise CaffeModelError(
                f"unsupported wire type {wire} (field {number}); not a caffemodel"
            )
        if pos > end or number == 0:
            raise CaffeModelError("field runs past its message; the file is truncated or corrupt")
        yield number, wire, value


@dataclass
class _Blob:
    shape: list[int] = field(default_factory=list)
    legacy: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    has_legacy: bool = False
    chunks: list[np.ndarray] = field(default_factory=list)


def _numbers(buf: memoryview, value: tuple[int, int], dtype: str) -> np.ndarray:
    """A packed run (LENGTH) or one non-packed fixed-width value, as a numpy array view."""
    start, stop = value
    width = np.dtype(dtype).itemsize
    if (stop - start) % width:
        raise CaffeModelError(f"packed {dtype} run of {stop - start} bytes; corrupt blob")
    return np.frombuffer(buf[start:stop], dtype=dtype)


def _packed_varints(buf: memoryview, wire: int, value) -> list[int]:
    if wire == VARINT:
        return [value]
    out, pos = [], value[0]
    while pos < value[1]:
        number, pos = _varint(buf, pos, value[1])
        out.append(number)
    return out


def _read_blob(buf: memoryview, start: int, end: int, where: str) -> np.ndarray:
    blob = _Blob()
    float_type = None
    for number, wire, value in _fields(buf, start, end):
        if number == BLOB_SHAPE and wire == LENGTH:
            for dim_number, dim_wire, dim in _fields(buf, *value):
                if dim_number == SHAPE_DIM:
                    blob.shape.extend(_packed_varints(buf, dim_wire, dim))
        elif number in BLOB_LEGACY_DIMS and wire == VARINT:
            blob.legacy[BLOB_LEGACY_DIMS[number]] = value
            blob.has_legacy = True
        elif number in (BLOB_DATA, BLOB_DOUBLE):
            dtype = "<f4" if number == BLOB_DATA else "<f8"
            if wire not in (LENGTH, FIXED32 if number == BLOB_DATA else FIXED64):
                raise CaffeModelError(f"{where}: unexpected wire type {wire} for blob data")
            if float_type not in (None, dtype):
                raise CaffeModelError(f"{where}: blob holds both float and double data")
            float_type = dtype
            blob.chunks.append(_numbers(buf, value, dtype))
    if not blob.chunks:
        blob.chunks.append(np.zeros(0, np.float32))
    data = np.concatenate(blob.chunks) if len(blob.chunks) > 1 else blob.chunks[0]
    shape = blob.shape if blob.shape else (blob.legacy if blob.has_legacy else [data.size])
    if int(np.prod(shape, dtype=np.int64)) != data.size:
        raise CaffeModelError(f"{where}: shape {shape} does not match {data.size} values")
    return data.astype(np.float32).reshape(shape)  # astype copies out of the mapping


def read_caffemodel(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Read the weight blobs of every layer of a ``.caffemodel``.

    Supports the new-style ``layer`` messages and the legacy V1 ``layers``; blob shapes come
    from ``BlobShape`` or the legacy num/channels/height/width (always 4-D then). Values are
    returned as float32 (``double_data`` is converted).

    Args:
        path: the ``.caffemodel`` file.

    Returns:
        ``{layer_name: [blob, ...]}`` in file order, layers without blobs omitted; each blob a
        C-contiguous float32 array in Caffe order (Convolution ``[out, in, kh, kw]``).

    Raises:
        CaffeModelError: truncated/corrupt file, no layer with blobs, or a duplicated name.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise CaffeModelError(f"{path}: empty file")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return _read_net(memoryview(mapped), str(path))
        finally:
            try:
                mapped.close()
            except BufferError:  # views kept alive by an exception's traceback; freed with it
                pass


def _read_net(buf: memoryview, where: str) -> dict[str, list[np.ndarray]]:
    layers: dict[str, list[np.ndarray]] = {}
    for number, wire, value in _fields(buf, 0, len(buf)):
        if wire != LENGTH or number not in (NET_LAYER, NET_LAYERS_V1):
            continue
        name_field, blobs_field = (
            (LAYER_NAME, LAYER_BLOBS) if number == NET_LAYER else (V1_NAME, V1_BLOBS)
        )
        name, blob_spans = None, []
        for sub, sub_wire, sub_value in _fields(buf, *value):
            if sub == name_field and sub_wire == LENGTH:
                name = bytes(buf[sub_value[0] : sub_value[1]]).decode("utf-8", "replace")
            elif sub == blobs_field and sub_wire == LENGTH:
                blob_spans.append(sub_value)
        if not blob_spans:
            continue
        if name is None:
            raise CaffeModelError(f"{where}: a layer with blobs has no name")
        if name in layers:
            raise CaffeModelError(f"{where}: layer {name!r} appears twice")
        layers[name] = [
            _read_blob(buf, a, b, f"{where}: layer {name!r} blob {i}")
            for i, (a, b) in enumerate(blob_spans)
        ]
    if not layers:
        raise CaffeModelError(f"{where}: no layer with weights; is it a caffemodel?")
    return layers
