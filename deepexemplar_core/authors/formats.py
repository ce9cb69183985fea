r"""Readers and writers of the authors' flow ``.txt`` and ``.combo`` files (section 1 of the facts).

Flow file (written by their ``DeepAnalogy.cu``, read by their ``Combo.cu``): one line per pixel
of the *source* image in row-major order, ``dx dy`` as decimal integers separated by a space,
``\n`` line ends. The match of pixel ``(x, y)`` is ``(x + dx, y + dy)`` in the other image. The
file does not store its size: the caller passes the source image's ``(height, width)``.
Our fields are absolute ``(y, x)``; the conversion happens here.

Combo file (written by their ``Combo.cu``, read by their ``TestDataset.py``), little-endian:
``int32 height, int32 width`` of the source image, then length-prefixed PNG blobs
(``int32 nbytes`` + the bytes): ``warp_ba`` (colour), ``warp_aba`` (colour), then for each level
coarse to fine (conv5_1 ... conv1_1 in theirs) ``err_ba`` then ``err_ab`` (8-bit gray). The
blobs are made by OpenCV's ``imencode`` from BGR matrices and decoded by ``imdecode`` (which
returns BGR), so the PNGs themselves are ordinary RGB PNGs; we use OpenCV too, swap to RGB right
at the boundary, and :class:`Combo` holds RGB.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import check_shape
from ..files import atomic_write

__all__ = ["Combo", "ComboFormatError", "read_combo", "read_flow", "write_combo", "write_flow"]

_INT32 = struct.Struct("<i")


class ComboFormatError(ValueError):
    """A flow or combo file is truncated or does not follow the authors' layout."""


@dataclass(frozen=True)
class Combo:
    """The contents of one authors' ``.combo`` file, channels-first and RGB.

    Attributes:
        warp_ba: ``(3, H, W)`` uint8 RGB, reference colours patch-voted to the source grid.
        warp_aba: ``(3, H, W)`` uint8 RGB, source colours voted through the R->T o T->R cycle.
        err_ba: ``(L, H, W)`` uint8, ``floor(clamp(1 - sim_T->R, 0, 1) * 255)`` per level,
            coarse to fine (the authors' files hold L = 5: conv5_1 ... conv1_1).
        err_ab: ``(L, H, W)`` uint8, the same for sim_R->T looked up at phi_T->R.
    """

    warp_ba: torch.Tensor
    warp_aba: torch.Tensor
    err_ba: torch.Tensor
    err_ab: torch.Tensor

    def __post_init__(self) -> None:
        dims = check_shape("Combo.warp_ba", self.warp_ba, (3, "H", "W"))
        check_shape("Combo.warp_aba", self.warp_aba, (3, dims["H"], dims["W"]))
        levels = check_shape("Combo.err_ba", self.err_ba, ("L", dims["H"], dims["W"]))["L"]
        check_shape("Combo.err_ab", self.err_ab, (levels, dims["H"], dims["W"]))
        for name in ("warp_ba", "warp_aba", "err_ba", "err_ab"):
            if getattr(self, name).dtype != torch.uint8:
                raise TypeError(
                    f"Combo.{name}: expected torch.uint8, got {getattr(self, name).dtype}"
                )

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the source image."""
        return int(self.warp_ba.shape[1]), int(self.warp_ba.shape[2])

    @property
    def num_levels(self) -> int:
        """Number of similarity levels stored."""
        return int(self.err_ba.shape[0])


def _identity_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)`` int64 index grids of shape ``(height, width)``."""
    return np.mgrid[0:height, 0:width].astype(np.int64)


def read_flow(path: str | os.PathLike[str], size: tuple[int, int]) -> torch.Tensor:
    """Read an authors' flow file as an absolute field.

    Args:
        path: the ``.txt`` flow file.
        size: ``(height, width)`` of the flow's *source* image (the file does not store it).

    Returns:
        ``(1, height, width, 2)`` int64 absolute ``(y, x)`` coordinates in the other image.

    Raises:
        ComboFormatError: the file does not hold exactly ``height * width`` integer pairs.
        ValueError: a non-positive size.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a_b.txt")
        >>> nnf = torch.zeros(1, 2, 3, 2, dtype=torch.int64)
        >>> write_flow(path, nnf)
        >>> torch.equal(read_flow(path, (2, 3)), nnf)
        True
    """
    height, width = _check_size("size", size)
    text = Path(path).read_bytes()
    try:
        values = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError) as e:
        raise ComboFormatError(
            f"path: {os.fspath(path)!r} holds non-integer tokens or integers beyond 64 bits; "
            "not a flow file"
        ) from e
    if values.size != height * width * 2:
        raise ComboFormatError(
            f"path: {os.fspath(path)!r} holds {values.size} integers, expected "
            f"{height * width * 2} (2 per pixel of a {width}x{height} (width x height) source); "
            "pass the (height, width) of the image the flow starts from"
        )
    offsets = values.reshape(height, width, 2)  # (dx, dy) per pixel
    ys, xs = _identity_grid(height, width)
    absolute = np.stack((ys + offsets[..., 1], xs + offsets[..., 0]), axis=-1)
    return torch.from_numpy(absolute)[None]


def write_flow(path: str | os.PathLike[str], nnf: torch.Tensor) -> None:
    """Write an absolute field in the authors' flow format (atomically).

    Args:
        path: destination ``.txt``.
        nnf: ``(1, H, W, 2)`` or ``(H, W, 2)`` integer absolute ``(y, x)`` field.

    Raises:
        TypeError: ``nnf`` is not an integer tensor.
        ValueError: wrong shape, a batch other than 1, or a missing destination folder.
    """
    if isinstance(nnf, torch.Tensor) and nnf.dim() == 3:
        nnf = nnf[None]
    check_shape("nnf", nnf, (1, "H", "W", 2))
    if nnf.is_floating_point() or nnf.dtype == torch.bool:
        raise TypeError(f"nnf: expected an integer dtype, got {nnf.dtype}")
    field = nnf[0].long().cpu().numpy()
    ys, xs = _identity_grid(field.shape[0], field.shape[1])
    offsets = np.stack((field[..., 1] - xs, field[..., 0] - ys), axis=-1).reshape(-1, 2)
    lines = "\n".join(f"{dx} {dy}" for dx, dy in offsets.tolist())
    _check_folder(path)
    atomic_write(path, lambda f: f.write((lines + "\n").encode("ascii")))


def _check_folder(path: str | os.PathLike[str]) -> None:
    """Refuse a destination whose folder is missing (as ``write_image`` does), before writing."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ValueError(f"path: folder {folder} does not exist or is a file; create it first")


def _check_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    """Validate a ``(height, width)`` pair of positive integers."""
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected (height, width), got {size!r}") from e
    if height <= 0 or width <= 0:
        raise ValueError(f"{name}: expected positive (height, width), got {size!r}")
    return height, width


def _decode_png(blob: bytes, colour: bool, what: str) -> np.ndarray:
    """Decode one PNG blob with OpenCV, as their reader does; ``(H, W, 3)`` BGR or ``(H, W)``."""
    import cv2

    flag = cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE
    try:
        image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), flag)
    except cv2.error as e:  # e.g. a PNG header declaring more pixels than OpenCV's limit
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ComboFormatError(f"combo: the {what} blob cannot be decoded ({first})") from e
    if image is None:
        raise ComboFormatError(f"combo: the {what} blob is not a decodable PNG")
    return image


def _encode_png(image: np.ndarray, what: str) -> bytes:
    """Encode an ``(H, W, 3)`` BGR or ``(H, W)`` uint8 array as PNG with OpenCV."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise ComboFormatError(f"combo: OpenCV could not encode {what} as PNG")
    return buf.tobytes()


def _split_blobs(data: bytes, path: str) -> tuple[int, int, list[bytes]]:
    """Parse the header and the length-prefixed blobs of a combo file."""
    if len(data) < 8:
        raise ComboFormatError(f"path: {path!r} is too short for a combo header")
    height, width = struct.unpack_from("<ii", data, 0)
    blobs, offset = [], 8
    while offset < len(data):
        if offset + 4 > len(data):
            raise ComboFormatError(f"path: {path!r} ends inside a blob length at byte {offset}")
        (size,) = _INT32.unpack_from(data, offset)
        offset += 4
        if size <= 0 or offset + size > len(data):
            raise ComboFormatError(
                f"path: {path!r} has a blob of {size} bytes at byte {offset - 4} that does not "
                f"fit the {len(data)}-byte file (truncated or not a combo file)"
            )
        blobs.append(data[offset : offset + size])
        offset += size
    return height, width, blobs


def read_combo(path: str | os.PathLike[str]) -> Combo:
    """Read an authors' ``.combo`` file.

    Args:
        path: the combo file.

    Returns:
        :class:`Combo` with RGB colour images and ``L = (number of blobs - 2) / 2`` levels
        (5 in the authors' files), coarse to fine.

    Raises:
        ComboFormatError: truncated file, odd blob count, undecodable PNG or a size that
            disagrees with the header.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t_r.combo")
        >>> rgb = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
        >>> err = torch.randint(0, 256, (5, 4, 5), dtype=torch.uint8)
        >>> write_combo(path, Combo(rgb, rgb, err, err))
        >>> torch.equal(read_combo(path).err_ba, err)
        True
    """
    name = os.fspath(path)
    height, width, blobs = _split_blobs(Path(path).read_bytes(), name)
    if len(blobs) < 2 or len(blobs) % 2:
        raise ComboFormatError(
            f"path: {name!r} holds {len(blobs)} blobs; expected 2 colour images plus a pair "
            "of error maps per level (12 in the authors' files)"
        )
    warps = [
        _decode_png(b, True, w)[..., ::-1]
        for b, w in zip(blobs[:2], ("warp_ba", "warp_aba"), strict=True)
    ]
    errs = [_decode_png(b, False, f"error map {i}") for i, b in enumerate(blobs[2:])]
    for i, image in enumerate(warps + errs):
        if image.shape[:2] != (height, width):
            raise ComboFormatError(
                f"path: {name!r} blob {i} is {image.shape[1]}x{image.shape[0]}, but the header "
                f"says {width}x{height} (width x height)"
            )

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        if not arrays:
            return torch.zeros(0, height, width, dtype=torch.uint8)
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays)))

    return Combo(
        warp_ba=torch.from_numpy(np.ascontiguousarray(warps[0].transpose(2, 0, 1))),
        warp_aba=torch.from_numpy(np.ascontiguousarray(warps[1].transpose(2, 0, 1))),
        err_ba=stack(errs[0::2]),
        err_ab=stack(errs[1::2]),
    )


def write_combo(path: str | os.PathLike[str], combo: Combo) -> None:
    """Write ``combo`` in the authors' layout (atomically; PNGs encoded by OpenCV).

    Args:
        path: destination ``.combo``.
        combo: the contents (RGB); handed to OpenCV as BGR matrices, as the authors do.

    Raises:
        TypeError: ``combo`` is not a :class:`Combo`.
        ValueError: the destination folder does not exist.
    """
    if not isinstance(combo, Combo):
        raise TypeError(f"combo: expected a Combo, got {type(combo).__name__}")
    _check_folder(path)
    height, width = combo.size
    parts = [struct.pack("<ii", height, width)]
    images = [
        (combo.warp_ba.cpu().permute(1, 2, 0).numpy()[..., ::-1], "warp_ba"),
        (combo.warp_aba.cpu().permute(1, 2, 0).numpy()[..., ::-1], "warp_aba"),
    ]
    for level in range(combo.num_levels):
        images.append((combo.err_ba[level].cpu().numpy(), f"err_ba[{level}]"))
        images.append((combo.err_ab[level].cpu().numpy(), f"err_ab[{level}]"))
    for image, what in images:
        blob = _encode_png(image, what)
        parts += [_INT32.pack(len(blob)), blob]
    atomic_write(path, lambda f: f.write(b"".join(parts)))
