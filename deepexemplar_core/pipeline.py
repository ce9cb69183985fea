"""The whole colorization chain as one call, and its stages as separate calls.

The chain follows the paper (and ``docs/ARCHITECTURE.md``):

1. targets and reference are brought to the working resolution (short side ``size``, floored to a
   multiple of 8); only the targets' luminance is used;
2. ``match_images``: a feature pyramid of both luminances and the bidirectional fields
   phi_T->R / phi_R->T (:func:`~deepexemplar_core.matching.dense_match`);
3. ``compute_similarity``: the ten similarity maps, the 3x3 patch-vote warp of the reference
   colours and a confidence map;
4. the colorizer (the authors' network or the weights-free propagation) predicts ab;
5. ab is upsampled to each target's **original** size, guided by its full-resolution L, and joined
   with that L; out-of-gamut colours lose chroma at constant L.

Every stage result is a frozen dataclass so that the ComfyUI nodes and notebooks can run the
stages separately and hand the results to :func:`colorize`.

What depends on the reference alone is computed once by :func:`prepare_reference`;
:func:`colorize_iter` streams any number of targets through the chain chunk by chunk (memory
bounded by one chunk, one progress callback), and :func:`colorize` collects it. The ComfyUI node
and the ``deepexemplar`` command each make one call into :func:`colorize_iter`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from . import _checks
from .color import lab_to_rgb, rgb_to_l, rgb_to_lab
from .confidence import confidence_map
from .matching import MatchConfig, dense_match
from .models import Models, load_models
from .motion import MotionPrior
from .similarity import similarity_maps
from .structures import ColorizerInputs, Correspondence, FeaturePyramid, Similarity
from .upsample import upsample_chroma
from .warp import warp_colors

__all__ = [
    "ColorizeConfig",
    "ColorizeResult",
    "ColorizedImage",
    "Intermediates",
    "MatchResult",
    "Models",
    "PreparedReference",
    "SimilarityResult",
    "check_image",
    "colorize",
    "colorize_iter",
    "compute_similarity",
    "load_models",
    "match_images",
    "move_to",
    "prepare_reference",
    "working_size",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: Smallest accepted image side in pixels: the coarsest pyramid level (stride 16 or 32) must keep
#: at least one feature pixel and the colour net needs sides that are multiples of 8.
MIN_SIDE = 32

#: Most pixels of a working image (2048 x 2048): bounds the work of any input, whatever its
#: aspect or the requested size.
MAX_WORK_PIXELS = 2048 * 2048

#: Largest accepted working short side (:attr:`ColorizeConfig.size`).
MAX_SIZE = 2048

#: A reference whose channels differ by less than this everywhere is gray (1/255).
GRAY_TOLERANCE = 1.0 / 255.0

#: Progress units per image reported by :func:`colorize_iter`.
PROGRESS_UNITS = 100

#: Rows of the full-resolution output converted at once (bounds memory for very large images).
_OUTPUT_TILE_ROWS = 1024


@dataclass(frozen=True)
class ColorizeConfig:
    """Settings of :func:`colorize`.

    Attributes:
        size: working short side in pixels (floored to a multiple of 8); 0 keeps the native size.
            The authors' models were trained at 256.
        upsample: ``"guided"`` (edge-aware, guided by the full-resolution L) or ``"bicubic"``
            (the authors' behaviour).
        gamut: ``"compress"`` (out-of-gamut colours lose chroma at constant L) or ``"clip"``
            (clip in RGB, the authors' behaviour).
        strength: multiplier of the predicted chroma (0 gives the gray image, 1 the prediction).
        match: matching schedule; ``None`` uses ``MatchConfig.default_for`` the backbone.
    """

    size: int = 256
    upsample: str = "guided"
    gamut: str = "compress"
    strength: float = 1.0
    match: MatchConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise TypeError(f"size: expected an int (pixels), got {type(self.size).__name__} "
                            f"{self.size!r}")
        if self.size != 0 and not MIN_SIDE <= self.size <= MAX_SIZE:
            raise ValueError(f"size: expected 0 (native) or {MIN_SIDE}..{MAX_SIZE} pixels, got "
                             f"{self.size}")
        if not isinstance(self.strength, (int, float)) or isinstance(self.strength, bool):
            raise TypeError(f"strength: expected a number, got {type(self.strength).__name__}")
        if self.upsample not in ("guided", "bicubic"):
            raise ValueError(f"upsample: expected 'guided' or 'bicubic', got {self.upsample!r}")
        if self.gamut not in ("compress", "clip"):
            raise ValueError(f"gamut: expected 'compress' or 'clip', got {self.gamut!r}")
        if not 0.0 <= self.strength <= 4.0:
            raise ValueError(f"strength: expected a value in [0, 4], got {self.strength}")


@dataclass(frozen=True)
class PreparedReference:
    """Everything that depends on the reference alone, computed once by :func:`prepare_reference`.

    Attributes:
        rgb_work: ``(1, 3, hr, wr)`` reference sRGB in [0, 1] at working resolution.
        lab_work: ``(1, 3, hr, wr)`` the same in CIELab.
        pyramid: the backbone's features of the reference luminance (batch 1).
        size: the working short side it was prepared for (:attr:`ColorizeConfig.size`).
        backbone: name of the backbone that computed :attr:`pyramid`.
        original_size: ``(H, W)`` of the reference as given.
        gray: the reference has no colour (R, G and B agree): results will be gray.
        timings: seconds, ``{"resize": ..., "features": ...}``.
    """

    rgb_work: torch.Tensor
    lab_work: torch.Tensor
    pyramid: FeaturePyramid
    size: int
    backbone: str
    original_size: tuple[int, int]
    gray: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MatchResult:
    """Output of :func:`match_images` for one chunk of same-sized targets.

    Attributes:
        target_l_work: ``(B, 1, h, w)`` target luminance in [0, 100] at working resolution.
        reference: the prepared reference the targets were matched against.
        target_pyramid: features of the targets.
        correspondence: the bidirectional fields at working resolution.
        original_size: ``(H, W)`` of the targets of this chunk.
        timings: seconds, ``{"resize": ..., "features": ..., "matching": ...}``.
    """

    target_l_work: torch.Tensor
    reference: PreparedReference
    target_pyramid: FeaturePyramid
    correspondence: Correspondence
    original_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def work_size(self) -> tuple[int, int]:
        """``(h, w)`` of the working resolution."""
        return int(self.target_l_work.shape[-2]), int(self.target_l_work.shape[-1])

    @property
    def reference_rgb_work(self) -> torch.Tensor:
        """``(1, 3, hr, wr)`` reference sRGB in [0, 1] at working resolution."""
        return self.reference.rgb_work

    @property
    def reference_lab_work(self) -> torch.Tensor:
        """``(1, 3, hr, wr)`` reference CIELab at working resolution."""
        return self.reference.lab_work

    @property
    def reference_pyramid(self) -> FeaturePyramid:
        """Features of the reference (batch 1)."""
        return self.reference.pyramid


@dataclass(frozen=True)
class SimilarityResult:
    """Output of :func:`compute_similarity`.

    Attributes:
        similarity: the ten maps (and their quantised distances).
        warped_rgb8: ``(B, 3, h, w)`` uint8 reference colours carried to the targets.
        warped_ab: ``(B, 2, h, w)`` CIELab a/b of ``warped_rgb8``.
        confidence: ``(B, 1, h, w)`` in [0, 1].
        timings: seconds, ``{"similarity": ..., "warp": ..., "confidence": ...}``.
    """

    similarity: Similarity
    warped_rgb8: torch.Tensor
    warped_ab: torch.Tensor
    confidence: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Intermediates:
    """Intermediate results of one chunk of same-sized targets.

    Attributes:
        indices: positions of this chunk's targets in the input.
        match: the correspondence stage.
        similarity: the similarity / warp stage.
        ab_work: ``(B, 2, h, w)`` predicted chroma at working resolution.
        timings: seconds of the colorizer on this chunk, ``{"colorize": ...}``.
    """

    indices: tuple[int, ...]
    match: MatchResult
    similarity: SimilarityResult
    ab_work: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ColorizedImage:
    """One finished target, as :func:`colorize_iter` yields it.

    Attributes:
        index: position of the target in the input.
        image: ``(3, H, W)`` float32 sRGB in [0, 1] at the target's original size.
        ab: ``(2, H, W)`` the final full-resolution chroma.
        timings: seconds per stage, this target's share of its chunk.
        intermediates: its chunk's intermediates (``keep_intermediates=True``), else ``None``.
    """

    index: int
    image: torch.Tensor
    ab: torch.Tensor
    timings: dict[str, float]
    intermediates: Intermediates | None = None


@dataclass(frozen=True)
class ColorizeResult:
    """What :func:`colorize` returns.

    Attributes:
        images: per target, ``(3, H, W)`` float32 sRGB in [0, 1] at the target's original size.
        ab: per target, ``(2, H, W)`` the final full-resolution chroma.
        intermediates: one entry per chunk of same-sized targets.
        timings: seconds per stage summed over chunks (``resize``, ``features``, ``matching``,
            ``similarity``, ``warp``, ``confidence``, ``colorize``, ``upsample``, ``total``).
        family: ``"paper"`` or ``"lite"``.
        colorizer: the colorizer's name.
        backend: the matching backend (``"torch"``, ``"cpp"``, ``"cuda"``).
    """

    images: list[torch.Tensor]
    ab: list[torch.Tensor]
    intermediates: tuple[Intermediates, ...]
    timings: dict[str, float]
    family: str
    colorizer: str
    backend: str

    def _single(self) -> Intermediates:
        if len(self.intermediates) != 1:
            raise ValueError(
                f"this result has {len(self.intermediates)} chunks (different sizes or chunk_size); "
                "read result.intermediates[i] instead"
            )
        return self.intermediates[0]

    @property
    def correspondence(self) -> Correspondence:
        """The fields of the (single) target group."""
        return self._single().match.correspondence

    @property
    def similarity(self) -> Similarity:
        """The similarity maps of the (single) target group."""
        return self._single().similarity.similarity

    @property
    def confidence(self) -> torch.Tensor:
        """``(B, 1, h, w)`` confidence of the (single) target group."""
        return self._single().similarity.confidence

    @property
    def warped_rgb8(self) -> torch.Tensor:
        """``(B, 3, h, w)`` uint8 warped reference colours of the (single) target group."""
        return self._single().similarity.warped_rgb8


def working_size(height: int, width: int, size: int, max_pixels: int | None = None) -> tuple[int, int]:
    """Working resolution for an image of ``height x width``.

    The short side becomes ``size`` (0 keeps the native size); when the result would exceed
    ``max_pixels`` (default :data:`MAX_WORK_PIXELS`, whatever the aspect, e.g. a 20000x40 strip)
    both sides shrink by the same factor until it fits, and a warning says so. Both sides are then
    floored to a multiple of 8, as the authors' colour net requires (A.3).

    Raises:
        ValueError: the result has a side under :data:`MIN_SIDE` (the message names the fix).

    >>> working_size(512, 683, 256)
    (256, 336)
    >>> working_size(40, 20000, 256)   # 256 x 128000 would be 33 M pixels: capped
    (88, 45792)
    """
    max_pixels = MAX_WORK_PIXELS if max_pixels is None else max_pixels
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
        raise ValueError(
            f"working size {height}x{width} is too small; the minimum side is {MIN_SIDE} pixels "
            f"and the working image holds at most {max_pixels} pixels (raise --size, or crop a "
            "very elongated image into pieces)"
        )
    return h8, w8


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of ``(B, C, H, W)`` (PIL-bilinear-like when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def check_image(name: str, image: torch.Tensor) -> torch.Tensor:
    """Validate one image ``(C, H, W)`` with C in {1, 3}, values in [0, 1]; return it as float32.

    The one validator of user images: the CLI calls it per file before the batch (so one bad
    file does not fail the others), :func:`colorize` per target, the nodes through both.

    Raises:
        TypeError: not a tensor.
        ValueError: wrong shape, 4 channels (alpha), empty, non-finite, out of [0, 1] or smaller
            than :data:`MIN_SIDE`; the message names the argument and the fix.
    """
    _checks.check_tensor(name, image)
    if image.dim() != 3:
        raise ValueError(f"{name}: expected (C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    if image.shape[0] == 4:
        raise ValueError(
            f"{name}: has 4 channels (RGBA); drop the alpha channel first "
            "(the CLI keeps alpha and puts it back on the result)"
        )
    if image.shape[0] not in (1, 3):
        raise ValueError(f"{name}: expected 1 (gray) or 3 (RGB) channels, got {image.shape[0]}")
    _checks.check_nonempty(name, image)
    image = image if image.dtype == torch.float32 else image.float()
    _checks.check_finite(name, image)
    _checks.check_range(name, image, 0.0, 1.0)
    _checks.check_min_size(name, image.shape[-2], image.shape[-1], MIN_SIDE, "the pyramid's coarsest level")
    return image.clamp(0.0, 1.0)


def _iter_images(targets: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """``(C, H, W)`` images of a ``(B, C, H, W)``/``(C, H, W)`` tensor or of any iterable."""
    if isinstance(targets, torch.Tensor):
        if targets.dim() == 3:
            targets = targets.unsqueeze(0)
        if targets.dim() != 4:
            raise ValueError(f"targets: expected (B, C, H, W) or (C, H, W), got {tuple(targets.shape)}")
        return iter(targets.unbind(0))
    if isinstance(targets, (str, bytes)) or not isinstance(targets, Iterable):
        raise TypeError(f"targets: expected a tensor or an iterable of (C, H, W) tensors, got "
                        f"{type(targets).__name__}")
    return iter(targets)


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` in [0, 1] -> ``(1, 1, H, W)`` CIELab L in [0, 100]."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    return rgb_to_l(rgb.unsqueeze(0))


def _reference_image(reference: torch.Tensor, allow_gray: bool) -> tuple[torch.Tensor, bool]:
    """Validate the reference; return it as ``(1, 3, H, W)`` RGB and whether it is gray."""
    _checks.check_tensor("reference", reference)
    if reference.dim() == 4:
        if reference.shape[0] != 1:
            raise ValueError(f"reference: expected one image, got a batch of {reference.shape[0]}; "
                             "one reference colours all targets")
        reference = reference[0]
    reference = check_image("reference", reference)
    gray = reference.shape[0] == 1 or bool(
        (reference.amax(dim=0) - reference.amin(dim=0)).max() <= GRAY_TOLERANCE)
    if gray and not allow_gray:
        raise ValueError("reference: has no colour (R, G and B agree), so the result would be "
                         "gray; pass a colour photo as the reference (were the target and the "
                         "reference swapped?)")
    if gray:
        logger.warning("reference is a gray image: the result will have no colour")
    return reference.expand(3, -1, -1).unsqueeze(0), gray


def _tick(timings: dict[str, float], key: str, start: float, device: torch.device) -> float:
    """Add the time since ``start`` to ``timings[key]`` (synchronising CUDA) and return now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - start
    return now


def _check_models(models: object) -> Models:
    if not all(hasattr(models, a) for a in ("backbone", "colorizer", "device", "family")):
        raise TypeError(f"models: expected deepexemplar_core.Models (from load_models), got "
                        f"{type(models).__name__}")
    return models


def _check_config(config: object) -> ColorizeConfig:
    if config is None:
        return ColorizeConfig()
    if not all(hasattr(config, a) for a in ("size", "upsample", "gamut", "strength", "match")):
        raise TypeError(f"config: expected ColorizeConfig, got {type(config).__name__}; "
                        "build one with ColorizeConfig(size=..., ...)")
    return config


@torch.no_grad()
def prepare_reference(
    models: Models, reference: torch.Tensor, config: ColorizeConfig | None = None, *,
    allow_gray: bool = False,
) -> PreparedReference:
    """Compute once what depends on the reference alone: its working-size colours and features.

    Pass the result to :func:`colorize`, :func:`colorize_iter` or :func:`match_images` in place
    of the reference image; the backbone then never runs on the reference again.

    Args:
        models: from :func:`~deepexemplar_core.models.load_models`.
        reference: ``(1|3, Hr, Wr)`` or ``(1, 1|3, Hr, Wr)`` sRGB in [0, 1], any size and aspect.
        config: its ``size`` is the working short side.
        allow_gray: accept a reference without colour (the result is then gray); by default it
            is refused, since it is almost always a swapped target and reference.

    Returns:
        PreparedReference on ``models.device``.

    Raises:
        TypeError, ValueError: bad arguments (the message names the argument), a gray reference.

    Example:
        >>> from deepexemplar_core import load_models
        >>> prepared = prepare_reference(load_models("lite"), torch.rand(3, 64, 96),
        ...                              ColorizeConfig(size=64))
        >>> tuple(prepared.lab_work.shape), prepared.backbone
        ((1, 3, 64, 96), 'lite')
    """
    models, config = _check_models(models), _check_config(config)
    ref, gray = _reference_image(reference, allow_gray)
    device, timings = models.device, {}
    start = time.perf_counter()
    ref_rgb = _resize(ref.to(device), working_size(ref.shape[-2], ref.shape[-1], config.size))
    ref_lab = rgb_to_lab(ref_rgb.clamp(0.0, 1.0))
    start = _tick(timings, "resize", start, device)
    pyramid = models.backbone.pyramid(ref_lab[:, :1])
    _tick(timings, "features", start, device)
    return PreparedReference(ref_rgb.clamp(0.0, 1.0), ref_lab, pyramid, config.size,
                             getattr(models.backbone, "name", models.family),
                             (int(ref.shape[-2]), int(ref.shape[-1])), gray, timings)


def _prepared(models: Models, reference: torch.Tensor | PreparedReference,
              config: ColorizeConfig) -> PreparedReference:
    """``reference`` prepared for ``models`` and ``config`` (checked when already prepared)."""
    if not isinstance(reference, PreparedReference):
        return prepare_reference(models, reference, config)
    backbone = getattr(models.backbone, "name", models.family)
    if reference.size != config.size or reference.backbone != backbone:
        raise ValueError(
            f"reference: prepared at size {reference.size} with the {reference.backbone!r} "
            f"backbone, but this run uses size {config.size} with {backbone!r}; call "
            "prepare_reference again with these models and config"
        )
    if reference.pyramid.features[0].device != models.device:
        reference = move_to(reference, models.device)
    return reference


@torch.no_grad()
def match_images(
    models: Models,
    targets: torch.Tensor | Sequence[torch.Tensor],
    reference: torch.Tensor | PreparedReference,
    config: ColorizeConfig | None = None,
    *,
    progress: Progress | None = None,
    motion: MotionPrior | None = None,
) -> MatchResult:
    """Features and bidirectional correspondence for same-sized targets and one reference.

    Args:
        models: from :func:`load_models`.
        targets: ``(B, 1|3, H, W)`` float in [0, 1], or a list of same-sized ``(1|3, H, W)``.
        reference: ``(1|3, Hr, Wr)`` sRGB in [0, 1], or a :func:`prepare_reference` result.
        config: the working size and matching schedule.
        progress: called with ``(done, total)`` after every pyramid level.
        motion: video frames, one at a time: start from the previous frame's field carried
            along the optical flow (:class:`~deepexemplar_core.motion.MotionPrior`), and keep
            this frame's for the next.

    Returns:
        MatchResult at working resolution.

    Raises:
        ValueError: bad shapes, values, sizes, or targets of different sizes.
    """
    models, config = _check_models(models), _check_config(config)
    images = [check_image(f"targets[{i}]", img) for i, img in enumerate(_iter_images(targets))]
    if not images:
        raise ValueError("targets: empty batch; pass at least one image")
    sizes = {tuple(img.shape[-2:]) for img in images}
    if len(sizes) != 1:
        raise ValueError(f"targets: match_images needs same-sized targets, got sizes {sorted(sizes)}")
    prepared = _prepared(models, reference, config)
    device, timings = models.device, {}
    start = time.perf_counter()
    (height, width), = sizes
    work = working_size(height, width, config.size)
    target_l = torch.cat([_resize(_luminance(img.to(device)), work) for img in images])
    start = _tick(timings, "resize", start, device)
    target_pyr = models.backbone.pyramid(target_l)
    start = _tick(timings, "features", start, device)
    match_config = config.match or MatchConfig.default_for(target_pyr)
    if motion is not None and len(images) != 1:
        raise ValueError(f"motion: frames are matched one at a time, got {len(images)}")
    prior = motion.prior_for(target_l) if motion is not None else None
    start = _tick(timings, "motion", start, device) if motion is not None else start
    corr = dense_match(target_pyr, prepared.pyramid, match_config, progress=progress, prior=prior)
    if motion is not None:
        motion.remember(target_l, corr.nnf_tr)
    _tick(timings, "matching", start, device)
    return MatchResult(target_l, prepared, target_pyr, corr, (height, width), timings)


@torch.no_grad()
def compute_similarity(models: Models, match: MatchResult) -> SimilarityResult:
    """The similarity stage: the ten maps, the warped reference colours and the confidence.

    Args:
        models: from :func:`load_models` (its device is used).
        match: from :func:`match_images`.

    Returns:
        SimilarityResult at working resolution.
    """
    device, timings = models.device, {}
    start = time.perf_counter()
    sim = similarity_maps(match.target_pyramid, match.reference_pyramid, match.correspondence)
    start = _tick(timings, "similarity", start, device)
    ref_rgb8 = (match.reference_rgb_work * 255.0).round().clamp(0, 255).to(torch.uint8)
    warped_rgb8 = warp_colors(ref_rgb8, match.correspondence.nnf_tr)
    warped_ab = rgb_to_lab(warped_rgb8.float() / 255.0)[:, 1:]
    start = _tick(timings, "warp", start, device)
    confidence = confidence_map(sim, match.correspondence)
    _tick(timings, "confidence", start, device)
    return SimilarityResult(sim, warped_rgb8, warped_ab, confidence, timings)


def _finish(
    image: torch.Tensor, ab_work: torch.Tensor, config: ColorizeConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-resolution result of one target: ``(rgb (3, H, W), ab (2, H, W))``.

    The chroma is upsampled guided by the original L and joined with that L; the conversion to
    RGB runs in row tiles so that memory stays bounded for very large images.
    """
    l_full = _luminance(image)
    ab_full = upsample_chroma(ab_work.unsqueeze(0), l_full, method=config.upsample)[0]
    ab_full = ab_full * config.strength
    rgb = torch.empty((3, *l_full.shape[-2:]), dtype=torch.float32, device=l_full.device)
    for top in range(0, rgb.shape[-2], _OUTPUT_TILE_ROWS):
        rows = slice(top, top + _OUTPUT_TILE_ROWS)
        lab = torch.cat([l_full[0, :, rows], ab_full[:, rows]]).unsqueeze(0)
        rgb[:, rows] = lab_to_rgb(lab, gamut=config.gamut)[0]
    return rgb.clamp_(0.0, 1.0), ab_full


def _chunks(images: Iterator[torch.Tensor], chunk_size: int | None) -> Iterator[list[tuple[int, torch.Tensor]]]:
    """Consecutive runs of same-sized, validated images, at most ``chunk_size`` long."""
    chunk: list[tuple[int, torch.Tensor]] = []
    for index, image in enumerate(images):
        image = check_image(f"targets[{index}]", image)
        if chunk and (tuple(chunk[0][1].shape[-2:]) != tuple(image.shape[-2:])
                      or (chunk_size and len(chunk) >= chunk_size)):
            yield chunk
            chunk = []
        chunk.append((index, image))
    if chunk:
        yield chunk


def _chunk_progress(progress: Progress | None, total: int, done: int, count: int,
                    start: float, end: float) -> Progress | None:
    """Map a stage's ``(done, total)`` within a chunk of ``count`` images onto the run's scale.

    The run's scale is :data:`PROGRESS_UNITS` per image (``total`` images, 0 when unknown); the
    stage covers the fraction ``[start, end]`` of the chunk's work.
    """
    if progress is None:
        return None

    def relay(step: int, steps: int) -> None:
        _report(progress, total, done, count, start + (end - start) * step / max(steps, 1))

    return relay


@torch.no_grad()
def colorize_iter(
    targets: torch.Tensor | Iterable[torch.Tensor],
    reference: torch.Tensor | PreparedReference,
    models: Models | None = None,
    config: ColorizeConfig | None = None,
    *,
    chunk_size: int | None = 8,
    progress: Progress | None = None,
    keep_intermediates: bool = False,
    output_device: torch.device | str | None = None,
    motion: MotionPrior | None = None,
) -> Iterator[ColorizedImage]:
    """Colorize any number of targets chunk by chunk, yielding each result as it finishes.

    Memory is bounded by one chunk whatever the number of targets (a film's frames can be a
    generator); with a :class:`PreparedReference` the backbone runs on the targets only.

    Args:
        targets: ``(B, 1|3, H, W)`` float in [0, 1], or any iterable (a list, a generator) of
            ``(1|3, H, W)`` images of any sizes; RGB targets are reduced to their luminance.
        reference: ``(1|3, Hr, Wr)`` sRGB in [0, 1], or a :func:`prepare_reference` result.
        models: from :func:`load_models`; ``None`` loads the ``auto`` family on the CPU.
        config: working size, upsampling, gamut handling, strength, matching schedule.
        chunk_size: targets matched together (consecutive, same size); ``None`` = unbounded.
        progress: ``(done, total)`` in units of 1/:data:`PROGRESS_UNITS` image, after every
            matching level and stage; ``total`` is 0 when ``targets`` has no length. It may
            raise (e.g. ComfyUI's interruption) to stop the run.
        keep_intermediates: attach each chunk's :class:`Intermediates` to its results.
        output_device: move each result there before yielding it (e.g. the CPU).
        motion: for the frames of a video: each frame's matching starts from the previous
            frame's field carried along the optical flow, and a scene cut restarts it
            (:class:`~deepexemplar_core.motion.MotionPrior`); frames are then matched one at a
            time (``chunk_size`` 1).

    Yields:
        ColorizedImage per target, in input order.

    Raises:
        TypeError, ValueError: bad arguments or a bad target (the message names it).
    """
    models = _check_models(models) if models is not None else load_models("auto")
    config = _check_config(config)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size: expected None or an int >= 1, got {chunk_size!r}")
    prepared = _prepared(models, reference, config)
    total = len(targets) if isinstance(targets, Sized) else 0
    done = 0
    if motion is not None:
        chunk_size = 1
    for chunk in _chunks(_iter_images(targets), chunk_size):
        indices, group = [i for i, _ in chunk], [img.to(models.device) for _, img in chunk]
        count = len(group)
        m = match_images(models, group, prepared, config, motion=motion,
                         progress=_chunk_progress(progress, total, done, count, 0.0, 0.6))
        s = compute_similarity(models, m)
        _report(progress, total, done, count, 0.8)
        inter = _colorize_chunk(models, config, indices, group, m, s)
        yield from _finish_chunk(inter, group, config, output_device, keep_intermediates)
        done += count
        _report(progress, total, done, 0, 0.0)


def _report(progress: Progress | None, total: int, done: int, count: int, fraction: float) -> None:
    """Report ``done`` images plus ``fraction`` of the next ``count``, in :data:`PROGRESS_UNITS`."""
    if progress is not None:
        progress(round(PROGRESS_UNITS * (done + count * fraction)), PROGRESS_UNITS * total)


def _colorize_chunk(models: Models, config: ColorizeConfig, indices: list[int],
                    group: list[torch.Tensor], match: MatchResult,
                    similarity: SimilarityResult) -> Intermediates:
    """Run the colorizer on one chunk; the chunk's intermediates with the ``colorize`` timing."""
    start, timings = time.perf_counter(), {}
    inputs = ColorizerInputs(match.target_l_work, similarity.warped_rgb8, similarity.warped_ab,
                             similarity.similarity, similarity.confidence, match.reference_lab_work)
    ab_work = models.colorizer(inputs).float()
    _tick(timings, "colorize", start, models.device)
    return Intermediates(tuple(indices), match, similarity, ab_work, timings)


def _finish_chunk(inter: Intermediates, group: list[torch.Tensor], config: ColorizeConfig,
                  output_device: torch.device | str | None,
                  keep_intermediates: bool) -> Iterator[ColorizedImage]:
    """Full-resolution results of one chunk; each carries its share of the chunk's timings."""
    stages = _sum_timings(inter.match.timings, inter.similarity.timings, inter.timings)
    share = {k: v / len(group) for k, v in stages.items()}
    device = group[0].device
    for j, index in enumerate(inter.indices):
        start = time.perf_counter()
        rgb, ab = _finish(group[j], inter.ab_work[j], config)
        timings = dict(share)
        _tick(timings, "upsample", start, device)
        if output_device is not None:
            rgb, ab = rgb.to(output_device), ab.to(output_device)
        yield ColorizedImage(index, rgb, ab, timings, inter if keep_intermediates else None)


def _sum_timings(*parts: dict[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


@torch.no_grad()
def colorize(
    targets: torch.Tensor | Iterable[torch.Tensor],
    reference: torch.Tensor | PreparedReference,
    models: Models | None = None,
    config: ColorizeConfig | None = None,
    *,
    match: MatchResult | None = None,
    similarity: SimilarityResult | None = None,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> ColorizeResult:
    """Colorize gray targets with the colours of a reference photo; all results at once.

    The same chain as :func:`colorize_iter` (which this collects), keeping every intermediate;
    for long batches prefer :func:`colorize_iter`, whose memory does not grow with the count.

    Args:
        targets: ``(B, 1|3, H, W)`` float in [0, 1] or a list of ``(1|3, H, W)`` images of any
            sizes; RGB targets are reduced to their luminance.
        reference: ``(1|3, Hr, Wr)`` or ``(1, 3, Hr, Wr)`` sRGB in [0, 1], any size and aspect,
            or a :func:`prepare_reference` result.
        models: from :func:`load_models`; ``None`` loads the ``auto`` family on the CPU.
        config: working size, upsampling, gamut handling, strength, matching schedule.
        match: a precomputed :func:`match_images` result for these targets (one size).
        similarity: a precomputed :func:`compute_similarity` result for ``match``.
        chunk_size: targets matched together; ``None`` matches each run of same-sized targets
            at once.
        progress: as in :func:`colorize_iter`.

    Returns:
        ColorizeResult with the full-resolution images, the intermediates and the timings.

    Raises:
        ValueError: bad inputs, or precomputed results that do not fit the targets.

    Example:
        >>> from deepexemplar_core import colorize, load_models
        >>> result = colorize(torch.rand(1, 1, 64, 80), torch.rand(3, 64, 64),
        ...                   load_models("lite"), ColorizeConfig(size=64))
        >>> result.images[0].shape
        torch.Size([3, 64, 80])
    """
    models = _check_models(models) if models is not None else load_models("auto")
    config = _check_config(config)
    start = time.perf_counter()
    if match is not None or similarity is not None:
        results = _colorize_precomputed(targets, models, config, match, similarity)
    else:
        results = list(colorize_iter(targets, reference, models, config, chunk_size=chunk_size,
                                     progress=progress, keep_intermediates=True))
    if not results:
        raise ValueError("targets: empty batch; pass at least one image")
    chunks = tuple(dict.fromkeys(r.intermediates for r in results))
    reference_timings = chunks[0].match.reference.timings if match is None else {}
    timings = _sum_timings(reference_timings, *(r.timings for r in results))
    timings["total"] = time.perf_counter() - start
    return ColorizeResult(
        images=[r.image for r in results],
        ab=[r.ab for r in results],
        intermediates=chunks,
        timings=timings,
        family=models.family,
        colorizer=models.colorizer.name,
        backend=chunks[0].match.correspondence.backend,
    )


def _colorize_precomputed(targets, models: Models, config: ColorizeConfig,
                          match: MatchResult | None,
                          similarity: SimilarityResult | None) -> list[ColorizedImage]:
    """One chunk colorized from precomputed stage results (the nodes' staged graph)."""
    if match is None:
        raise ValueError("similarity: pass the match result it was computed from as well")
    group = [check_image(f"targets[{i}]", img).to(models.device)
             for i, img in enumerate(_iter_images(targets))]
    _check_precomputed(match, similarity, group)
    s = similarity if similarity is not None else compute_similarity(models, match)
    inter = _colorize_chunk(models, config, list(range(len(group))), group, match, s)
    return list(_finish_chunk(inter, group, config, None, True))


def _check_precomputed(
    match: MatchResult, similarity: SimilarityResult | None, group: list[torch.Tensor]
) -> None:
    """Refuse precomputed stage results that belong to other targets."""
    sizes = {tuple(img.shape[-2:]) for img in group}
    if len(sizes) != 1:
        raise ValueError("match/similarity: precomputed results need targets of one size")
    size = next(iter(sizes))
    if match.original_size != size or match.target_l_work.shape[0] != len(group):
        raise ValueError(
            f"match: computed for {match.target_l_work.shape[0]} target(s) of size "
            f"{match.original_size}, got {len(group)} of size {size}; rerun the matching"
        )
    if similarity is not None and tuple(similarity.warped_ab.shape[-2:]) != match.work_size:
        raise ValueError("similarity: computed for another correspondence; rerun it from this match")


def move_to(value: Any, device: torch.device | str) -> Any:
    """A copy of ``value`` whose tensors live on ``device`` (dataclasses, tuples, lists, dicts).

    Objects that are not containers are returned unchanged; tensors already on ``device`` are
    not copied.

    >>> from deepexemplar_core.structures import Similarity
    >>> s = Similarity(*(torch.zeros(1, 2, 3, 3) for _ in range(4)), ("a", "b"))
    >>> move_to(s, "cpu").sim_tr.device.type
    'cpu'
    """
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: move_to(getattr(value, f.name), device)
                   for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(move_to(v, device) for v in value)
    if isinstance(value, list):
        return [move_to(v, device) for v in value]
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    return value
