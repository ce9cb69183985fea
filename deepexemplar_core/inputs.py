"""The one place that validates what a user hands the pipeline: images, the reference, sizes.

The public entries of :mod:`~deepexemplar_core.pipeline` call these checks once, at the door;
the stages behind them trust their inputs. Every refusal is an :class:`InputError` (a
``ValueError``) whose ``kind`` says what is wrong, so that the command line and the ComfyUI nodes
only phrase it for their users (and never parse the text).
"""

from __future__ import annotations

import logging

import torch

from . import _checks

__all__ = [
    "GRAY_TOLERANCE",
    "MAX_SIZE",
    "MAX_WORK_PIXELS",
    "MIN_SIDE",
    "TRAINED_SIZE",
    "ImageError",
    "InputError",
    "PrecomputedError",
    "check_channels",
    "check_image",
    "check_reference",
    "working_size",
]

logger = logging.getLogger(__name__)

#: Smallest accepted image side in pixels: the coarsest pyramid level (stride 16 or 32) must keep
#: at least one feature pixel and the colour net needs sides that are multiples of 8.
MIN_SIDE = 32

#: Most pixels of a working image (2048 x 2048): bounds the work of any input, whatever its
#: aspect or the requested size.
MAX_WORK_PIXELS = 2048 * 2048

#: The working short side the authors' models were trained at (the default ``size``); a larger
#: size is never applied to a smaller image (:func:`working_size`).
TRAINED_SIZE = 256

#: Largest accepted working short side (``ColorizeConfig.size``).
MAX_SIZE = 2048

#: A reference whose channels differ by less than this everywhere is gray (1/255).
GRAY_TOLERANCE = 1.0 / 255.0


class InputError(ValueError):
    """An input the pipeline refuses.

    Attributes:
        name: the argument, e.g. ``"targets[3]"`` or ``"reference"``.
        kind: what is wrong, one word from the subclass's ``KINDS``.
    """

    KINDS: tuple[str, ...] = ()

    def __init__(self, name: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.name, self.kind = name, kind

    def __reduce__(self) -> tuple:
        """Pickle with all three arguments (a worker process, e.g. Ray's, sends errors back
        pickled; the default would call ``cls(message)``)."""
        return type(self), (self.name, self.kind, str(self))


class ImageError(InputError):
    """An image the pipeline cannot use; ``kind`` is one of :attr:`KINDS`:

    ``shape`` (not ``(C, H, W)``), ``alpha`` (4 channels), ``channels`` (not 1 or 3), ``empty``,
    ``nonfinite`` (NaN or infinity), ``range`` (outside [0, 1]), ``too_small`` (a side under
    :data:`MIN_SIDE`), ``gray`` (a reference without colour), ``batch`` (several references
    where one is expected), ``empty_region`` (a region mask that is 0 everywhere).
    """

    KINDS = ("shape", "alpha", "channels", "empty", "nonfinite", "range", "too_small", "gray",
             "batch", "empty_region")


class PrecomputedError(InputError):
    """A precomputed stage result that does not belong to these targets or settings; ``kind``
    is one of :attr:`KINDS`: ``targets`` (other count or size), ``size`` (another working size),
    ``similarity`` (from another correspondence), ``missing`` (a similarity without its match),
    ``reference`` (a reference passed as well: the match already holds one), ``references``
    (another number of references than the match holds), ``regions`` (other regions than the
    ones the match was fused with)."""

    KINDS = ("targets", "size", "similarity", "missing", "reference", "references", "regions")


def working_size(height: int, width: int, size: int, max_pixels: int | None = None) -> tuple[int, int]:
    """Working resolution for an image of ``height x width``.

    The short side becomes ``size`` (0 keeps the native size). A ``size`` above both
    :data:`TRAINED_SIZE` and the image's short side is lowered to the larger of the two, with an
    info message: upsampling a small image beyond the size the models were trained at adds time,
    not detail (2048 on a 192 px photo took 190 s), while sizes up to 256 keep their result.
    When the result would exceed ``max_pixels``
    (default :data:`MAX_WORK_PIXELS`, whatever the aspect, e.g. a 300x40000 strip) both sides
    shrink by the same factor until it fits, and a warning says so. Both sides are then floored
    to a multiple of 8, as the authors' colour net requires (A.3).

    Raises:
        ImageError: the result has a side under :data:`MIN_SIDE` (``too_small``; the message
            names the fix).

    >>> working_size(512, 683, 256)
    (256, 336)
    >>> working_size(300, 40000, 256)   # 256 x 34133 would be 8.7 M pixels: capped
    (176, 23648)
    >>> working_size(192, 288, 2048)   # above the image and 256: lowered to 256
    (256, 384)
    """
    max_pixels = MAX_WORK_PIXELS if max_pixels is None else max_pixels
    ceiling = max(TRAINED_SIZE, min(height, width))
    if size > ceiling:
        logger.info("working size %d exceeds both %d and the image's short side (%dx%d); using %d",
                    size, TRAINED_SIZE, height, width, ceiling)
        size = ceiling
    if size:
        scale = size / min(height, width)
        height, width = round(height * scale), round(width * scale)
    if height * width > max_pixels:
        shrink = (max_pixels / (height * width)) ** 0.5
        logger.warning("working size %dx%d exceeds %d pixels; using %dx%d instead", height, width,
                       max_pixels, int(height * shrink), int(width * shrink))
        height, width = int(height * shrink), int(width * shrink)
    h8, w8 = (height // 8) * 8, (width // 8) * 8
    if min(h8, w8) < MIN_SIDE:
        raise ImageError(
            "size", "too_small",
            f"working size {width}x{height} is too small; the minimum side is {MIN_SIDE} pixels "
            f"and the working image holds at most {max_pixels} pixels (raise --size, or crop a "
            "very elongated image into pieces)")
    return h8, w8


def check_channels(name: str, channels: int) -> None:
    """The channel policy: 1 (gray) or 3 (RGB); RGBA is refused (drop alpha first).

    Raises:
        ImageError: ``alpha`` for 4 channels, ``channels`` for any other count.
    """
    if channels == 4:
        raise ImageError(name, "alpha", f"{name}: has 4 channels (RGBA); drop the alpha channel "
                                        "first (the CLI keeps alpha and puts it back on the result)")
    if channels not in (1, 3):
        raise ImageError(name, "channels", f"{name}: expected 1 (gray) or 3 (RGB) channels, got "
                                           f"{channels}")


def check_image(name: str, image: torch.Tensor) -> torch.Tensor:
    """Validate one image ``(C, H, W)`` with C in {1, 3}, values in [0, 1]; return it as float32.

    Raises:
        TypeError: not a tensor.
        ImageError: wrong shape, 4 channels (alpha), empty, non-finite, out of [0, 1] or smaller
            than :data:`MIN_SIDE`; ``kind`` says which, the message names the argument and fix.

    >>> check_image("target", torch.rand(1, 40, 48)).dtype
    torch.float32
    >>> try:
    ...     check_image("target", torch.rand(4, 40, 48))
    ... except ImageError as err:
    ...     print(err.kind, "|", err)
    alpha | target: has 4 channels (RGBA); drop the alpha channel first (the CLI keeps alpha ...
    """
    _checks.check_tensor(name, image)
    if image.dim() != 3:
        raise ImageError(name, "shape", f"{name}: expected (C, H, W) with C = 1 or 3, got "
                                        f"{tuple(image.shape)}")
    check_channels(name, image.shape[0])
    _refuse_as(name, "empty", _checks.check_nonempty, name, image)
    image = image if image.dtype == torch.float32 else image.float()
    _refuse_as(name, "nonfinite", _checks.check_finite, name, image)
    _refuse_as(name, "range", _checks.check_range, name, image, 0.0, 1.0)
    _refuse_as(name, "too_small", _checks.check_min_size, name, image.shape[-2], image.shape[-1],
               MIN_SIDE, "the pyramid's coarsest level")
    return image.clamp(0.0, 1.0)


def _refuse_as(name: str, kind: str, guard, *args) -> None:
    """Run a ``_checks`` guard; its ``ValueError`` becomes an :class:`ImageError` of ``kind``."""
    try:
        guard(*args)
    except ValueError as err:
        raise ImageError(name, kind, str(err)) from None


def check_reference(reference: torch.Tensor, allow_gray: bool) -> tuple[torch.Tensor, bool]:
    """Validate the reference; return it as ``(1, 3, H, W)`` RGB and whether it is gray.

    Args:
        reference: ``(1|3, H, W)`` or ``(1, 1|3, H, W)`` sRGB in [0, 1].
        allow_gray: accept a reference without colour (with a warning).

    Raises:
        TypeError: not a tensor.
        ImageError: as :func:`check_image`, plus ``batch`` (several images) and ``gray``.
    """
    _checks.check_tensor("reference", reference)
    if reference.dim() == 4:
        if reference.shape[0] != 1:
            raise ImageError("reference", "batch",
                             f"reference: expected one image, got a batch of "
                             f"{reference.shape[0]}; one reference colours all targets")
        reference = reference[0]
    reference = check_image("reference", reference)
    gray = reference.shape[0] == 1 or bool(
        (reference.amax(dim=0) - reference.amin(dim=0)).max() <= GRAY_TOLERANCE)
    if gray and not allow_gray:
        raise ImageError("reference", "gray",
                         "reference: has no colour (R, G and B agree), so the result would be "
                         "gray; pass a colour photo as the reference (were the target and the "
                         "reference swapped?)")
    if gray:
        logger.warning("reference is a gray image: the result will have no colour")
    return reference.expand(3, -1, -1).unsqueeze(0), gray
