"""Finding and decoding the images of a collection for indexing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ..image_io import IMAGE_SUFFIXES
from .descriptors import INPUT_SIZE, is_gray_rgb, prepare_luminance

__all__ = ["scan_folder"]



@dataclass(frozen=True)
class _File:
    path: str          # relative, with forward slashes
    size: int
    mtime_ns: int

    def same(self, entry: dict) -> bool:
        return entry.get("size") == self.size and entry.get("mtime_ns") == self.mtime_ns


def scan_folder(folder: Path, exclude: Path | None = None) -> list[_File]:
    """Image files under ``folder`` (recursively, sorted, hidden names and ``exclude`` skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (exclude is None or (here / d).resolve() != exclude))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = here / name
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append(_File(path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return found


@dataclass
class _Loaded:
    file: _File
    l: torch.Tensor | None = None       # (1, 224, 224)
    sha256: str = ""
    size: tuple[int, int] = (0, 0)
    problem: str = ""


def _jpeg_draft(data: bytes) -> tuple[torch.Tensor, tuple[int, int]] | None:
    """Fast path for 8-bit JPEGs: decode at a reduced scale (DCT scaling, at least 448 px), apply
    the EXIF orientation. Returns ``(pixels (C, h, w) in [0, 1], original (H, W))`` or None for
    anything else (then :func:`~deepexemplar_core.image_io.read_image` decodes it)."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return None
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
            image.draft(image.mode, (2 * INPUT_SIZE, 2 * INPUT_SIZE))
            array = np.asarray(ImageOps.exif_transpose(image))
    except Exception:  # noqa: BLE001 - let read_image decode it and phrase the error
        return None
    pixels = torch.from_numpy(array.copy()).float().div_(255.0)
    pixels = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    return pixels, (height, width)


def _load_one(root: Path, file: _File) -> _Loaded:
    import hashlib

    from ..files import PathOutsideError, resolve_inside
    from ..image_io import ImageReadError, read_image
    from ..inputs import check_image

    try:
        path = resolve_inside(root, file.path)
    except PathOutsideError as err:
        return _Loaded(file, problem=f"a link outside the indexed folder: {err}")
    try:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        fast = _jpeg_draft(data) if data else None
        if fast is None:
            image = read_image(path)
            pixels, size = image.pixels, image.size
        else:
            pixels, size = fast
    except (ImageReadError, OSError) as err:
        return _Loaded(file, problem=f"unreadable: {err}")
    if pixels.shape[0] == 1:
        return _Loaded(file, problem="gray image: a reference must have colour")
    try:  # the size colorize accepts (a JPEG decoded at a reduced scale is still >= 448 px)
        check_image("reference", pixels)
    except ValueError as err:
        return _Loaded(file, problem=f"not usable by colorize: {err}")
    small = torch.nn.functional.interpolate(pixels[None], size=(64, 64), mode="area")
    if bool(is_gray_rgb(small)[0]):
        return _Loaded(file, problem="no colour (R = G = B everywhere): a reference must have colour")
    return _Loaded(file, prepare_luminance(pixels), digest, size)


def _batches(root: Path, files: list[_File], batch_size: int) -> Iterator[list[_Loaded]]:
    """Decode batches in two background threads, one batch ahead."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        chunks = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
        pending = [pool.submit(lambda c=c: [_load_one(root, f) for f in c]) for c in chunks[:2]]
        for i in range(len(chunks)):
            batch = pending[i].result()
            if i + 2 < len(chunks):
                pending.append(pool.submit(lambda c=chunks[i + 2]: [_load_one(root, f) for f in c]))
            yield batch
