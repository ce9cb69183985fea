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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import _checks
from .color import lab_to_rgb, rgb_to_l, rgb_to_lab
from .confidence import confidence_map
from .matching import MatchConfig, dense_match
from .models_loading import Models, load_models
from .similarity import similarity_maps
from .structures import ColorizerInputs, Correspondence, FeaturePyramid, Similarity
from .upsample import upsample_chroma
from .warp import warp_colors

__all__ = [
    "ColorizeConfig",
    "ColorizeResult",
    "Intermediates",
    "MatchResult",
    "Models",
    "SimilarityResult",
    "colorize",
    "compute_similarity",
    "load_models",
    "match_images",
    "working_size",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: Smallest accepted image side in pixels: the coarsest pyramid level (stride 16 or 32) must keep
#: at least one feature pixel and the colour net needs sides that are multiples of 8.
MIN_SIDE = 32

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
        if self.size != 0 and self.size < MIN_SIDE:
            raise ValueError(f"size: expected 0 or >= {MIN_SIDE}, got {self.size}")
        if self.upsample not in ("guided", "bicubic"):
            raise ValueError(f"upsample: expected 'guided' or 'bicubic', got {self.upsample!r}")
        if self.gamut not in ("compress", "clip"):
            raise ValueError(f"gamut: expected 'compress' or 'clip', got {self.gamut!r}")
        if not 0.0 <= self.strength <= 4.0:
            raise ValueError(f"strength: expected a value in [0, 4], got {self.strength}")


@dataclass(frozen=True)
class MatchResult:
    """Output of :func:`match_images` for one group of same-sized targets.

    Attributes:
        target_l_work: ``(B, 1, h, w)`` target luminance in [0, 100] at working resolution.
        reference_rgb_work: ``(1, 3, hr, wr)`` reference sRGB in [0, 1] at working resolution.
        reference_lab_work: ``(1, 3, hr, wr)`` the same in CIELab.
        target_pyramid: features of the targets.
        reference_pyramid: features of the reference (batch 1).
        correspondence: the bidirectional fields at working resolution.
        original_size: ``(H, W)`` of the targets of this group.
        timings: seconds, ``{"resize": ..., "features": ..., "matching": ...}``.
    """

    target_l_work: torch.Tensor
    reference_rgb_work: torch.Tensor
    reference_lab_work: torch.Tensor
    target_pyramid: FeaturePyramid
    reference_pyramid: FeaturePyramid
    correspondence: Correspondence
    original_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def work_size(self) -> tuple[int, int]:
        """``(h, w)`` of the working resolution."""
        return int(self.target_l_work.shape[-2]), int(self.target_l_work.shape[-1])


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


@dataclass(frozen=True)
class Intermediates:
    """Intermediate results of one group of same-sized targets.

    Attributes:
        indices: positions of this group's targets in the input list.
        match: the correspondence stage.
        similarity: the similarity / warp stage.
        ab_work: ``(B, 2, h, w)`` predicted chroma at working resolution.
    """

    indices: tuple[int, ...]
    match: MatchResult
    similarity: SimilarityResult
    ab_work: torch.Tensor


@dataclass(frozen=True)
class ColorizeResult:
    """What :func:`colorize` returns.

    Attributes:
        images: per target, ``(3, H, W)`` float32 sRGB in [0, 1] at the target's original size.
        ab: per target, ``(2, H, W)`` the final full-resolution chroma.
        intermediates: one entry per group of same-sized targets.
        timings: seconds per stage summed over groups (``resize``, ``features``, ``matching``,
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
                f"this result has {len(self.intermediates)} groups of differently sized targets; "
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


def working_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Working resolution for an image of ``height x width``.

    The short side becomes ``size`` (0 keeps the native size); both sides are then floored to a
    multiple of 8, as the authors' colour net requires (A.3).

    >>> working_size(512, 683, 256)
    (256, 336)
    """
    if size:
        scale = size / min(height, width)
        height, width = round(height * scale), round(width * scale)
    h8, w8 = (height // 8) * 8, (width // 8) * 8
    if min(h8, w8) < MIN_SIDE:
        raise ValueError(
            f"working size {height}x{width} is too small; the minimum side is {MIN_SIDE} pixels "
            "(raise --size or use a larger image)"
        )
    return h8, w8


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of ``(B, C, H, W)`` (PIL-bilinear-like when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _check_image(name: str, image: torch.Tensor) -> torch.Tensor:
    """Validate one image ``(C, H, W)`` with C in {1, 3}, values in [0, 1]; return float32."""
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
    image = image.float() if not image.is_floating_point() or image.dtype != torch.float32 else image
    _checks.check_finite(name, image)
    _checks.check_range(name, image, 0.0, 1.0)
    _checks.check_min_size(name, image.shape[-2], image.shape[-1], MIN_SIDE, "the pyramid's coarsest level")
    return image.clamp(0.0, 1.0)


def _as_image_list(targets: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split ``targets`` into a list of validated ``(C, H, W)`` images."""
    if isinstance(targets, torch.Tensor):
        if targets.dim() == 3:
            targets = targets.unsqueeze(0)
        if targets.dim() != 4:
            raise ValueError(f"targets: expected (B, C, H, W) or (C, H, W), got {tuple(targets.shape)}")
        images = list(targets.unbind(0))
    else:
        images = list(targets)
    if not images:
        raise ValueError("targets: empty batch; pass at least one image")
    return [_check_image(f"targets[{i}]", img) for i, img in enumerate(images)]


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` in [0, 1] -> ``(1, 1, H, W)`` CIELab L in [0, 100]."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    return rgb_to_l(rgb.unsqueeze(0))


def _prepare_reference(reference: torch.Tensor) -> torch.Tensor:
    """Validate the reference and return it as ``(1, 3, H, W)`` RGB."""
    _checks.check_tensor("reference", reference)
    if reference.dim() == 4:
        if reference.shape[0] != 1:
            raise ValueError(f"reference: expected one image, got a batch of {reference.shape[0]}")
        reference = reference[0]
    reference = _check_image("reference", reference)
    if reference.shape[0] == 1:
        logger.warning("reference is a gray image: the result will have no colour")
        reference = reference.expand(3, -1, -1)
    return reference.unsqueeze(0)


def _tick(timings: dict[str, float], key: str, start: float, device: torch.device) -> float:
    """Add the time since ``start`` to ``timings[key]`` (synchronising CUDA) and return now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - start
    return now


@torch.no_grad()
def match_images(
    models: Models,
    targets: torch.Tensor | Sequence[torch.Tensor],
    reference: torch.Tensor,
    config: ColorizeConfig | None = None,
    *,
    progress: Progress | None = None,
) -> MatchResult:
    """Features and bidirectional correspondence for same-sized targets and one reference.

    Args:
        models: from :func:`load_models`.
        targets: ``(B, 1|3, H, W)`` float in [0, 1], or a list of same-sized ``(1|3, H, W)``.
        reference: ``(1|3, Hr, Wr)`` or ``(1, 1|3, Hr, Wr)`` sRGB in [0, 1].
        config: the working size and matching schedule.
        progress: called with ``(done, total)`` after every pyramid level.

    Returns:
        MatchResult at working resolution.

    Raises:
        ValueError: bad shapes, values, sizes, or targets of different sizes.
    """
    config = config or ColorizeConfig()
    images = _as_image_list(targets)
    sizes = {tuple(img.shape[-2:]) for img in images}
    if len(sizes) != 1:
        raise ValueError(f"targets: match_images needs same-sized targets, got sizes {sorted(sizes)}")
    ref = _prepare_reference(reference)
    device, timings = models.device, {}
    start = time.perf_counter()
    (height, width), = sizes
    work = working_size(height, width, config.size)
    ref_work = working_size(ref.shape[-2], ref.shape[-1], config.size)
    target_l = torch.cat([_resize(_luminance(img.to(device)), work) for img in images])
    ref_rgb = _resize(ref.to(device), ref_work).clamp(0.0, 1.0)
    ref_lab = rgb_to_lab(ref_rgb)
    start = _tick(timings, "resize", start, device)
    target_pyr = models.backbone.pyramid(target_l)
    reference_pyr = models.backbone.pyramid(ref_lab[:, :1])
    start = _tick(timings, "features", start, device)
    match_config = config.match or MatchConfig.default_for(target_pyr)
    corr = dense_match(target_pyr, reference_pyr, match_config, progress=progress)
    _tick(timings, "matching", start, device)
    return MatchResult(target_l, ref_rgb, ref_lab, target_pyr, reference_pyr, corr, (height, width), timings)


@torch.no_grad()
def compute_similarity(models: Models, match: MatchResult) -> SimilarityResult:
    """The ten similarity maps, the warped reference colours and the confidence.

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


def _group_by_size(images: list[torch.Tensor]) -> list[list[int]]:
    """Indices of the images grouped by ``(H, W)``, in order of first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape[-2:]), []).append(i)
    return list(groups.values())


@torch.no_grad()
def colorize(
    targets: torch.Tensor | Sequence[torch.Tensor],
    reference: torch.Tensor,
    models: Models | None = None,
    config: ColorizeConfig | None = None,
    *,
    match: MatchResult | None = None,
    similarity: SimilarityResult | None = None,
    progress: Progress | None = None,
) -> ColorizeResult:
    """Colorize gray targets with the colours of a reference photo.

    Args:
        targets: ``(B, 1|3, H, W)`` float in [0, 1] or a list of ``(1|3, H, W)`` images of any
            sizes; RGB targets are reduced to their luminance.
        reference: ``(1|3, Hr, Wr)`` or ``(1, 3, Hr, Wr)`` sRGB in [0, 1], any size and aspect.
        models: from :func:`load_models`; ``None`` loads the ``auto`` family on the CPU.
        config: working size, upsampling, gamut handling, strength, matching schedule.
        match: a precomputed :func:`match_images` result for these targets (one size group).
        similarity: a precomputed :func:`compute_similarity` result for ``match``.
        progress: called with ``(done, total)`` after each stage of each size group.

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
    config = config or ColorizeConfig()
    models = models or load_models("auto")
    images = _as_image_list(targets)
    groups = _group_by_size(images)
    if (match is not None or similarity is not None) and len(groups) != 1:
        raise ValueError("match/similarity: precomputed results need targets of one size")
    if similarity is not None and match is None:
        raise ValueError("similarity: pass the match result it was computed from as well")
    total_start, timings = time.perf_counter(), {}
    results: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(images)
    inter: list[Intermediates] = []
    steps, done = 3 * len(groups), 0
    for indices in groups:
        group = [images[i].to(models.device) for i in indices]
        m = match if match is not None else match_images(models, group, reference, config)
        _check_precomputed(m, similarity, group)
        s = similarity if similarity is not None else compute_similarity(models, m)
        for stage_timings in (m.timings, s.timings):
            for key, value in stage_timings.items():
                timings[key] = timings.get(key, 0.0) + value
        done += 2
        if progress:
            progress(done, steps)
        start = time.perf_counter()
        inputs = ColorizerInputs(m.target_l_work, s.warped_rgb8, s.warped_ab, s.similarity,
                                 s.confidence, m.reference_lab_work)
        ab_work = models.colorizer(inputs).float()
        start = _tick(timings, "colorize", start, models.device)
        for j, i in enumerate(indices):
            results[i] = _finish(group[j], ab_work[j], config)
        _tick(timings, "upsample", start, models.device)
        inter.append(Intermediates(tuple(indices), m, s, ab_work))
        done += 1
        if progress:
            progress(done, steps)
    timings["total"] = time.perf_counter() - total_start
    backend = inter[0].match.correspondence.backend
    return ColorizeResult(
        images=[r[0] for r in results if r is not None],
        ab=[r[1] for r in results if r is not None],
        intermediates=tuple(inter),
        timings=timings,
        family=models.family,
        colorizer=models.colorizer.name,
        backend=backend,
    )


def _check_precomputed(
    match: MatchResult, similarity: SimilarityResult | None, group: list[torch.Tensor]
) -> None:
    """Refuse precomputed stage results that belong to other targets."""
    size = tuple(group[0].shape[-2:])
    if match.original_size != size or match.target_l_work.shape[0] != len(group):
        raise ValueError(
            f"match: computed for {match.target_l_work.shape[0]} target(s) of size "
            f"{match.original_size}, got {len(group)} of size {size}; rerun the matching"
        )
    if similarity is not None and tuple(similarity.warped_ab.shape[-2:]) != match.work_size:
        raise ValueError("similarity: computed for another correspondence; rerun it from this match")
