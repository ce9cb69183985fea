"""Image files <-> tensors: gray scans, RGB(A), 8/16 bit, EXIF orientation, metadata, atomic writes.

Reading uses Pillow for everything it decodes losslessly and OpenCV (``IMREAD_UNCHANGED``)
for 16-bit colour PNG/TIFF, which Pillow would reduce to 8 bit. The EXIF orientation
(tag 274, all 8 values) is applied by this module for both decoders.

Writing supports PNG (8/16 bit; text chunks), TIFF (8/16 bit, Deflate; ImageDescription) and
JPEG (8 bit, quality 95, 4:4:4; COM segment). PNG and TIFF are encoded here so that every
combination of gray/RGB, alpha and bit depth carries its metadata; JPEG is encoded by Pillow.
Files are written to a temporary file in the destination folder and moved into place with
``os.replace``, so a failure never leaves a partial output.

Memory: conversion works on row blocks; no float64 copy of an image is ever made, so
50-megapixel images need about their float32 size plus the decoded 8/16-bit buffer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from deepexemplar_core import _png, _tiff
from deepexemplar_core._checks import (
    check_finite,
    check_floating,
    check_range,
    check_shape,
    check_tensor,
)
from deepexemplar_core.color import rgb_to_l
from deepexemplar_core.files import atomic_write

logger = logging.getLogger(__name__)

_BLOCK_PIXELS = 1 << 22  # rows per block of row-wise conversions: about 4 M pixels
_ORIENTATION_TAG = 0x0112
_METADATA_PREFIX = "deepexemplar-metadata:"  # JPEG comment / TIFF description payload marker
#: Suffixes of the image files a folder is searched for (by the CLI, the index, training).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_WRITE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
_PILLOW_CONVERSIONS = {"1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the path and the reason."""


@dataclass(frozen=True)
class LoadedImage:
    """An image file decoded to tensors.

    Attributes:
        pixels: ``(C, H, W)`` float32 in [0, 1]; ``C = 1`` for gray files, 3 for colour files.
            Values are sRGB-encoded as stored in the file (no colour management).
        alpha: ``(1, H, W)`` float32 in [0, 1] (1 = opaque), or ``None`` without alpha channel.
        bit_depth: bits per sample in the file: 8, 16, or 32 for float TIFF.
        path: the file it was read from.
    """

    pixels: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    path: Path

    def __post_init__(self) -> None:
        if check_tensor("pixels", self.pixels).dim() != 3 or self.pixels.shape[0] not in (1, 3):
            raise ValueError(f"pixels: expected (1|3, H, W), got {tuple(self.pixels.shape)}")
        check_floating("pixels", self.pixels)
        if self.alpha is not None:
            check_shape("alpha", self.alpha, (1, *self.pixels.shape[1:]))
        if self.bit_depth not in (8, 16, 32):
            raise ValueError(f"bit_depth: expected 8, 16 or 32, got {self.bit_depth!r}")

    @property
    def is_gray(self) -> bool:
        """True for one-channel (gray) images."""
        return self.pixels.shape[0] == 1

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` after EXIF orientation."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    def rgb(self) -> torch.Tensor:
        """``(3, H, W)`` float32 in [0, 1]; for gray images an expanded view (read-only)."""
        return self.pixels.expand(3, -1, -1) if self.is_gray else self.pixels

    def luminance(self) -> torch.Tensor:
        """CIE L* ``(1, H, W)`` float32 in [0, 100] (gray values are sRGB grays).

        Computed in row blocks, so the temporaries stay small for very large images.

        Example:
            >>> image = LoadedImage(torch.full((1, 2, 2), 0.5), None, 8, Path("x.png"))
            >>> round(image.luminance()[0, 0, 0].item(), 2)
            53.39
        """
        height, width = self.size
        out = torch.empty(1, height, width, dtype=torch.float32, device=self.pixels.device)
        for start, stop in _row_blocks(height, width):
            out[:, start:stop] = rgb_to_l(self.pixels[:, start:stop])
        return out


def _row_blocks(height: int, width: int) -> list[tuple[int, int]]:
    rows = max(1, _BLOCK_PIXELS // max(width, 1))
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


# ----------------------------------------------------------------------------------------------
# reading


def _fail(path: Path, reason: str) -> ImageReadError:
    return ImageReadError(f"{path}: cannot read the image ({reason})")


def _orientation(image: Image.Image, path: Path) -> int:
    try:
        value = int(image.getexif().get(_ORIENTATION_TAG, 1))
    except (ValueError, TypeError, OSError, SyntaxError) as error:  # keep the pixels as stored
        logger.warning("%s: EXIF not readable (%s); orientation ignored", path, error)
        return 1
    if value not in range(1, 9):
        logger.warning("%s: invalid EXIF orientation %r, ignored", path, value)
        return 1
    return value


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an ``(H, W, C)`` array stored with EXIF ``orientation`` upright (a view)."""
    if orientation in (5, 6, 7, 8):
        array = array.swapaxes(0, 1)  # transpose, then mirror as below
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        array = array[::-1]
    if flip_cols:
        array = array[:, ::-1]
    return array


def _png_header(path: Path) -> tuple[int, int]:
    """``(bit_depth, colour_type)`` from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24], head[25]


def _opencv_samples(image: Image.Image, path: Path) -> int:
    """Channels of a 16-bit or float multi-channel file (Pillow would make it 8-bit), else 0."""
    if image.format == "PNG":
        depth, colour_type = _png_header(path)
        return {2: 3, 4: 2, 6: 4}.get(colour_type, 0) if depth == 16 else 0
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return len(bits) if len(bits) > 1 and max(bits) > 8 else 0
    return 0


def _decode_opencv(path: Path, file_format: str, samples: int) -> tuple[np.ndarray, int]:
    """Decode with OpenCV; returns ``(H, W, C)`` gray/gray+alpha/RGB/RGBA and the bit depth.

    ``samples`` is the channel count the file declares; OpenCV must return it (a gray+alpha
    PNG comes back as BGRA), else the file is refused rather than misread.
    """
    import cv2

    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise _fail(path, "OpenCV could not decode this high-bit-depth file")
    array = array[..., None] if array.ndim == 2 else array
    if array.shape[2] != samples and not (samples == 2 and array.shape[2] == 4):
        raise _fail(path, f"{samples}-channel high-bit-depth {file_format} is not supported")
    gray_alpha_png = file_format == "PNG" and _png_header(path)[1] == 4
    if gray_alpha_png and array.shape[2] == 4:  # OpenCV expands gray+alpha to BGRA
        array = array[..., [0, 3]]
    elif array.shape[2] in (3, 4):
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]  # BGR(A) -> RGB(A)
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}
    if array.dtype not in depth:
        raise _fail(path, f"unsupported sample type {array.dtype}")
    return array, depth[array.dtype]


def _decode_pillow(image: Image.Image, path: Path) -> tuple[np.ndarray, int]:
    """Decode with Pillow; returns ``(H, W, C)`` gray/gray+alpha/RGB/RGBA and the bit depth."""
    mode = image.mode
    if mode.startswith("I;16") or (mode == "I" and _sixteen_bit_int(image, path)):
        return np.asarray(image).astype(np.uint16, copy=False)[..., None], 16
    if mode == "I":
        raise _fail(path, "32-bit integer images are not supported; save it as 16-bit")
    if mode == "F":
        return np.asarray(image, dtype=np.float32)[..., None], 32
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode in _PILLOW_CONVERSIONS:
        image = image.convert(_PILLOW_CONVERSIONS[mode])
    elif mode not in ("L", "LA", "RGB", "RGBA"):  # CMYK, YCbCr, LAB, HSV, ...
        image = image.convert("RGB")
    array = np.asarray(image)
    return (array[..., None] if array.ndim == 2 else array), 8


def _sixteen_bit_int(image: Image.Image, path: Path) -> bool:
    if image.format == "PNG":
        return _png_header(path)[0] == 16
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (32,))
        return (bits[0] if isinstance(bits, tuple) else bits) == 16
    return False


def _to_float_chw(array: np.ndarray, scale: float) -> torch.Tensor:
    """``(H, W, C)`` uint8/uint16/float32 -> contiguous ``(C, H, W)`` float32 / ``scale``."""
    height, width, channels = array.shape
    out = torch.empty(channels, height, width, dtype=torch.float32)
    for start, stop in _row_blocks(height, width):
        block = torch.from_numpy(np.require(array[start:stop], requirements=("C", "W")))
        out[:, start:stop].copy_(block.permute(2, 0, 1))
    if scale != 1.0:
        out.mul_(1.0 / scale)
    return out


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise _fail(path, "no such file")
    if not path.is_file():
        raise _fail(path, "not a regular file")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file (PNG, JPEG, TIFF, BMP, WebP, ...) into float tensors.

    Gray files (1-bit, 8-bit, 16-bit, float) give one channel, colour and palette files three;
    an alpha channel (gray+alpha, RGBA, palette transparency) is returned separately. 16-bit
    samples are divided by 65535, 8-bit by 255; float TIFFs are clipped to [0, 1] (NaN -> 0).
    The EXIF orientation is applied. Only the first frame of multi-frame files is read.

    Args:
        path: the file to read.

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageReadError: missing, empty, truncated or non-image file, or an unsupported sample
            format; the message names the path and the reason.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> write_image(f"{folder}/x.png", torch.rand(3, 4, 5))
        >>> read_image(f"{folder}/x.png").pixels.shape
        torch.Size([3, 4, 5])
    """
    path = Path(path)
    _check_readable_file(path)
    try:
        with Image.open(path) as image:
            orientation = _orientation(image, path)
            if getattr(image, "n_frames", 1) > 1:
                logger.info("%s: %d frames, reading the first", path, image.n_frames)
            file_format, samples = image.format, _opencv_samples(image, path)
            if not samples:
                array, bit_depth = _decode_pillow(image, path)
        if samples:  # decoded after Pillow has released its file
            array, bit_depth = _decode_opencv(path, file_format, samples)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise _fail(path, f"not a recognised image format or too large: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise _fail(path, f"damaged or truncated file: {error}") from error
    array = _apply_orientation(array, orientation)
    return _loaded(array, bit_depth, path)


def _loaded(array: np.ndarray, bit_depth: int, path: Path) -> LoadedImage:
    channels = array.shape[2]
    scale = {8: 255.0, 16: 65535.0, 32: 1.0}[bit_depth]
    color_channels = 1 if channels in (1, 2) else 3
    pixels = _to_float_chw(array[..., :color_channels], scale)
    alpha = _to_float_chw(array[..., color_channels:], scale) if channels in (2, 4) else None
    if bit_depth == 32:
        if not bool(((pixels >= 0) & (pixels <= 1)).all()):
            logger.warning("%s: float samples outside [0, 1] (or NaN) were clipped", path)
        pixels.nan_to_num_(0.0).clamp_(0.0, 1.0)
        if alpha is not None:
            alpha.nan_to_num_(1.0).clamp_(0.0, 1.0)
    return LoadedImage(pixels=pixels, alpha=alpha, bit_depth=bit_depth, path=path)


# ----------------------------------------------------------------------------------------------
# writing


def _check_write_args(
    path: Path, rgb: object, alpha: object, bit_depth: object, metadata: object
) -> str:
    """Validate the arguments of :func:`write_image`; return the format name."""
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"path: expected a suffix in {sorted(_WRITE_FORMATS)}, got {path.suffix!r} ({path})"
        )
    if not path.parent.is_dir():
        raise ValueError(f"path: folder {path.parent} does not exist; create it first")
    if isinstance(rgb, torch.Tensor) and rgb.dim() == 3 and rgb.shape[0] == 1:
        dims = check_shape("rgb", rgb, (1, "H", "W"))
    else:
        dims = check_shape("rgb", rgb, (3, "H", "W"))
    check_floating("rgb", rgb)
    if alpha is not None:
        check_shape("alpha", alpha, (1, dims["H"], dims["W"]))
        check_floating("alpha", alpha)
    if bit_depth not in (8, 16) or isinstance(bit_depth, bool):
        raise ValueError(f"bit_depth: expected 8 or 16, got {bit_depth!r}")
    if fmt == "jpeg" and (bit_depth != 8 or alpha is not None):
        raise ValueError(
            f"path: JPEG stores 8-bit images without alpha, got bit_depth={bit_depth} and "
            f"alpha={'given' if alpha is not None else None}; use a .png or .tif path"
        )
    _check_metadata(metadata, fmt)
    return fmt


def _check_metadata(metadata: object, fmt: str) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TypeError("metadata: expected a dict[str, str]")
    for key in metadata:
        valid = 0 < len(key) < 80 and key == key.strip() and "  " not in key
        if not valid or not all(32 <= ord(ch) <= 126 or 161 <= ord(ch) <= 255 for ch in key):
            raise ValueError(
                f"metadata: key {key!r} is not a valid PNG keyword (1-79 Latin-1 printable "
                f"characters, no leading, trailing or double spaces); rename it"
            )
    if fmt == "jpeg" and len(_encode_metadata(metadata)) > 65533:
        raise ValueError("metadata: more than 64 KiB does not fit a JPEG comment; use PNG or TIFF")


def _encode_metadata(metadata: Mapping[str, str]) -> bytes:
    return (_METADATA_PREFIX + json.dumps(dict(metadata), ensure_ascii=True)).encode("ascii")


def _quantize(planes: dict[str, torch.Tensor], bit_depth: int) -> np.ndarray:
    """Named ``(C_i, H, W)`` float planes -> ``(H, W, sum C_i)`` uint8/uint16, by row blocks.

    Each block is checked (finite, in [0, 1]) as it is converted, so validation needs no
    full-size temporary.

    Raises:
        ValueError: NaN/inf or values outside [0, 1] (1e-3 slack, then clamped).
    """
    first = next(iter(planes.values()))
    height, width = first.shape[1:]
    channels = sum(p.shape[0] for p in planes.values())
    top = 255 if bit_depth == 8 else 65535
    out = np.empty((height, width, channels), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    for start, stop in _row_blocks(height, width):
        parts = []
        for name, plane in planes.items():
            part = plane[:, start:stop].detach().cpu().float()
            check_finite(name, part)
            check_range(name, part, 0.0, 1.0)
            parts.append(part)
        block = torch.cat(parts).mul_(top).round_().clamp_(0, top)
        block = block.to(torch.uint8 if bit_depth == 8 else torch.int32)
        out[start:stop] = block.permute(1, 2, 0).numpy()
    return out


def _write_jpeg(f: BinaryIO, array: np.ndarray, metadata: Mapping[str, str]) -> None:
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    options = {"comment": _encode_metadata(metadata)} if metadata else {}
    image.save(f, format="JPEG", quality=95, subsampling=0, **options)


_ENCODERS: dict[str, Callable[[BinaryIO, np.ndarray, Mapping[str, str]], None]] = {
    "png": _png.write_png,
    "tiff": lambda f, array, metadata: _tiff.write_tiff(
        f, array, _encode_metadata(metadata) if metadata else b""),
    "jpeg": _write_jpeg,
}


def write_image(
    path: str | os.PathLike,
    rgb: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    bit_depth: int = 8,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write an image atomically as PNG, TIFF or JPEG (chosen by the suffix).

    Values are rounded to the nearest 8- or 16-bit level. ``metadata`` is stored as PNG text
    chunks (tEXt, or iTXt for non-Latin-1 values), as the TIFF ImageDescription or as a JPEG
    comment, and is read back by :func:`read_metadata`. JPEG uses quality 95 without chroma
    subsampling.

    Args:
        path: destination ``.png``, ``.tif``/``.tiff`` or ``.jpg``/``.jpeg``; its folder must
            exist. An existing file is replaced only once the new one is complete.
        rgb: ``(3, H, W)`` float in [0, 1] (a ``(1, H, W)`` gray image is also accepted and is
            written as a gray file, except 16-bit gray+alpha TIFF, stored as RGBA). Any device.
        alpha: optional ``(1, H, W)`` float in [0, 1] (not for JPEG).
        bit_depth: 8 or 16 (16 not for JPEG).
        metadata: optional ``dict[str, str]``; keys must be valid PNG keywords.

    Raises:
        TypeError: non-tensor or non-float images, or metadata that is not ``dict[str, str]``.
        ValueError: NaN/inf or values outside [0, 1], wrong shapes, unsupported suffix,
            bit depth or alpha for the format, missing folder, invalid metadata keys.
        OSError: the file system refused the write (nothing is left behind).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> write_image(f"{folder}/x.png", torch.rand(3, 4, 5), bit_depth=16, metadata={"a": "b"})
        >>> read_metadata(f"{folder}/x.png")
        {'a': 'b'}
    """
    path = Path(path)
    fmt = _check_write_args(path, rgb, alpha, bit_depth, metadata)
    planes = {"rgb": rgb} if alpha is None else {"rgb": rgb, "alpha": alpha}
    array = _quantize(planes, bit_depth)  # also checks values, before any file is created
    encoder = _ENCODERS[fmt]
    atomic_write(path, lambda f: encoder(f, array, metadata or {}))


def _decode_metadata(text: str | bytes, fallback_key: str) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.rstrip("\0")
    if text.startswith(_METADATA_PREFIX):
        with contextlib.suppress(ValueError):
            decoded = json.loads(text[len(_METADATA_PREFIX) :])
            if isinstance(decoded, dict):
                return {str(k): str(v) for k, v in decoded.items()}
    return {fallback_key: text} if text else {}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Read the text metadata of an image file, as written by :func:`write_image`.

    PNG: all text chunks (tEXt, zTXt, iTXt). TIFF: the ImageDescription (a foreign description
    is returned as ``{"ImageDescription": text}``). JPEG: the comment (a foreign comment as
    ``{"comment": text}``). Other formats give ``{}``.

    Args:
        path: the image file.

    Returns:
        ``dict[str, str]``, empty when the file has no metadata.

    Raises:
        ImageReadError: missing, empty or non-image file.
    """
    path = Path(path)
    _check_readable_file(path)
    try:
        with Image.open(path) as image:
            if image.format == "PNG":
                return _png.read_text_chunks(path)
            if image.format == "TIFF":
                return _decode_metadata(
                    image.tag_v2.get(_tiff.DESCRIPTION_TAG, ""), "ImageDescription"
                )
            if image.format == "JPEG":
                return _decode_metadata(image.info.get("comment", b""), "comment")
            return {}
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        zlib.error,
    ) as error:
        raise _fail(path, f"cannot read its metadata: {error}") from error
