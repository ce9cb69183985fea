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
   with that L; out-of-gamut colours lose chroma at constant L (:func:`~deepexemplar_core.color.
   l_ab_to_rgb`).

Every stage result is a frozen dataclass (:mod:`~deepexemplar_core.results`) so that the
ComfyUI nodes and notebooks can run the stages separately and hand the results to
:func:`colorize`.

What depends on the reference alone is computed once by :func:`prepare_reference`;
:func:`colorize_iter` streams any number of targets through the chain chunk by chunk (memory
bounded by one chunk, one progress callback), and :func:`colorize` collects it.

The public functions check their arguments once, at the door (:mod:`~deepexemplar_core.inputs`
owns the checks and their typed errors); the private workers behind them (``_prepare``,
``_match``, ``_similarity``, ``_stream``) trust what they are given.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .color import l_ab_to_rgb, rgb_to_l, rgb_to_lab
from .confidence import confidence_map
from .fusion import Fusion, FusionConfig, fuse_references, resize_region
from .inputs import (
    MAX_SIZE,
    MIN_SIDE,
    ImageError,
    PrecomputedError,
    check_image,
    check_reference,
    working_size,
)
from .matching import MatchConfig, dense_match
from .models import Models, load_models
from .motion import MotionPrior
from .results import (
    ColorizedImage,
    ColorizeResult,
    Intermediates,
    MatchResult,
    PreparedReference,
    ReferenceSet,
    SetMatchResult,
    SetSimilarityResult,
    SimilarityResult,
)
from .similarity import similarity_maps
from .structures import ColorizerInputs, Correspondence, FeaturePyramid
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
    "ReferenceSet",
    "SetMatchResult",
    "SetSimilarityResult",
    "SimilarityResult",
    "check_image",
    "check_match_references",
    "colorize",
    "colorize_iter",
    "compute_similarity",
    "load_models",
    "match_images",
    "move_to",
    "prepare_reference",
    "prepare_references",
    "working_size",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: Called with ``(index, error)`` for a target the core refuses (see :func:`colorize_iter`).
OnInvalid = Callable[[int, ImageError], None]

#: Progress units per image reported by :func:`colorize_iter`.
PROGRESS_UNITS = 100


@dataclass(frozen=True)
class ColorizeConfig:
    """Settings of :func:`colorize`.

    Attributes:
        size: working short side in pixels (floored to a multiple of 8); 0 keeps the native size;
            a size above 256 is never applied to a smaller image (see ``inputs.working_size``).
            The authors' models were trained at
            256.
        upsample: ``"guided"`` (edge-aware, guided by the full-resolution L) or ``"bicubic"``
            (the authors' behaviour).
        gamut: ``"compress"`` (out-of-gamut colours lose chroma at constant L) or ``"clip"``
            (clip in RGB, the authors' behaviour).
        strength: multiplier of the predicted chroma (0 gives the gray image, 1 the prediction).
        match: matching schedule; ``None`` uses ``MatchConfig.default_for`` the backbone.
        motion: the targets are the frames of a video, in playing order: each frame is matched
            on its own, starting from the previous frame's field carried along the optical flow
            (:class:`~deepexemplar_core.motion.MotionPrior`; a scene cut restarts it). The one
            switch of that behaviour, for the streaming call and the staged calls alike.
    """

    size: int = 256
    upsample: str = "guided"
    gamut: str = "compress"
    strength: float = 1.0
    match: MatchConfig | None = None
    motion: bool = False

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
        if not isinstance(self.motion, bool):
            raise TypeError(f"motion: expected True or False, got {self.motion!r}")


# ----------------------------------------------------------------------------- door checks


def _check_models(models: object) -> Models:
    if not all(hasattr(models, a) for a in ("backbone", "colorizer", "device", "family")):
        raise TypeError(f"models: expected deepexemplar_core.Models (from load_models), got "
                        f"{type(models).__name__}")
    return models


def _check_config(config: object) -> ColorizeConfig:
    if config is None:
        return ColorizeConfig()
    if not all(hasattr(config, a) for a in ("size", "upsample", "gamut", "strength", "match",
                                            "motion")):
        raise TypeError(f"config: expected ColorizeConfig, got {type(config).__name__}; "
                        "build one with ColorizeConfig(size=..., ...)")
    return config


def _check_chunk_size(chunk_size: object) -> None:
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size: expected None or an int >= 1, got {chunk_size!r}")


def _check_motion(motion: object, config: ColorizeConfig) -> None:
    if motion is None:
        return
    if not isinstance(motion, MotionPrior):
        raise TypeError(f"motion: expected a MotionPrior, got {type(motion).__name__}")
    if not config.motion:
        raise ValueError("motion: a MotionPrior was passed but the config says the targets are "
                         "not video frames; use ColorizeConfig(motion=True)")


def _checked_targets(targets: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The images of a same-sized batch, each checked (one size, at least one)."""
    images = [check_image(f"targets[{i}]", img) for i, img in enumerate(_iter_images(targets))]
    if not images:
        raise ImageError("targets", "empty", "targets: empty batch; pass at least one image")
    sizes = {tuple(img.shape[-2:]) for img in images}
    if len(sizes) != 1:
        raise ImageError("targets", "shape",
                         f"targets: need same-sized targets here, got sizes {sorted(sizes)}")
    return images


def _prepared(models: Models, reference: torch.Tensor | PreparedReference | Sequence | ReferenceSet,
              config: ColorizeConfig) -> PreparedReference | ReferenceSet:
    """``reference`` prepared for ``models`` and ``config``: prepared here from an image, or
    checked to fit when it already is.

    Several references give a :class:`ReferenceSet`; a set of one without a region is that one
    :class:`PreparedReference` (the one-reference path, pixel for pixel), unless gray ones were
    left out of it: the set keeps saying which (a staged run checks the references again).
    """
    if _is_several(reference):
        refs = reference if isinstance(reference, ReferenceSet) else prepare_references(
            models, reference, config)
        refs = dataclasses.replace(refs, references=tuple(
            _prepared_one(models, r, config) for r in refs.references))
        alone = len(refs) == 1 and refs.masks[0] is None and not refs.skipped
        return refs.references[0] if alone else refs
    return _prepared_one(models, reference, config)


def _prepared_one(models: Models, reference: torch.Tensor | PreparedReference,
                  config: ColorizeConfig) -> PreparedReference:
    """One reference, prepared (or checked to fit, when it already is)."""
    if not isinstance(reference, PreparedReference):
        rgb, gray = check_reference(reference, allow_gray=False)
        return _prepare(models, rgb, gray, config)
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


def _check_precomputed(match: MatchResult | SetMatchResult,
                       similarity: SimilarityResult | SetSimilarityResult | None,
                       images: list[torch.Tensor], config: ColorizeConfig) -> None:
    """Refuse precomputed stage results that belong to other targets or settings."""
    first = match.matches[0] if isinstance(match, SetMatchResult) else match
    size = tuple(images[0].shape[-2:])
    if first.original_size != size or first.target_l_work.shape[0] != len(images):
        raise PrecomputedError(
            "match", "targets",
            f"match: computed for {first.target_l_work.shape[0]} target(s) of size "
            f"{first.original_size}, got {len(images)} of size {size}; rerun the matching")
    if first.reference.size != config.size:
        raise PrecomputedError(
            "match", "size", f"match: computed at working size {first.reference.size}, this "
                             f"run asks for {config.size}; rerun the matching at this size")
    if similarity is None:
        return
    several = isinstance(match, SetMatchResult)
    stages = len(similarity.stages) if isinstance(similarity, SetSimilarityResult) else None
    fused = similarity.fused if stages is not None else similarity
    if (several != (stages is not None) or (several and stages != len(match))
            or tuple(fused.warped_ab.shape[-2:]) != first.work_size):
        raise PrecomputedError("similarity", "similarity", "similarity: computed for another "
                               "correspondence; rerun it from this match")


def check_match_references(match: MatchResult | SetMatchResult, count: int,
                           masks: Sequence[torch.Tensor | None] | None = None) -> None:
    """Refuse reference images and regions other than the ones a precomputed match holds.

    A staged run (match, then colorize) gets the references and regions once, at the match;
    this checks what a caller passes again (e.g. the same inputs wired to two ComfyUI nodes).

    Args:
        match: from :func:`match_images`.
        count: how many reference images the caller has (gray ones left out of a set count).
        masks: the caller's regions in the references' order; ``None``: the match's own
            (nothing to check).

    Raises:
        PrecomputedError: ``references`` (another count), ``regions`` (a region where the match
            has none or another one, or none where it has one; a match of one reference has
            none).
    """
    held, regions = 1, {}
    if isinstance(match, SetMatchResult):
        refs = match.references
        held = len(refs.positions) + len(refs.skipped)
        regions = {p: m for p, m in zip(refs.positions, refs.masks, strict=True)}
    if count != held:
        raise PrecomputedError("reference", "references",
                               f"reference: {count} image(s), but the match was computed with "
                               f"{held}; pass the same references to both")
    if masks is None:
        return
    given = list(masks)
    for position in range(held):
        mine = given[position] if position < len(given) else None
        theirs = regions.get(position)
        same = (mine is None and theirs is None) or (
            mine is not None and theirs is not None and mine.shape == theirs.shape
            and torch.equal(mine.to(theirs.device).float(), theirs.float()))
        if not same:
            raise PrecomputedError("regions", "regions",
                                   f"regions: region {position} differs from the one the match "
                                   "was fused with; pass the same regions to both, or none here")


# ----------------------------------------------------------------------------- helpers


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of ``(B, C, H, W)`` (PIL-bilinear-like when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _iter_images(targets: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """``(C, H, W)`` images of a ``(B, C, H, W)``/``(C, H, W)`` tensor or of any iterable."""
    if isinstance(targets, torch.Tensor):
        if targets.dim() == 3:
            targets = targets.unsqueeze(0)
        if targets.dim() != 4:
            raise ImageError("targets", "shape", f"targets: expected (B, C, H, W) or (C, H, W), "
                                                 f"got {tuple(targets.shape)}")
        return iter(targets.unbind(0))
    if isinstance(targets, (str, bytes)) or not isinstance(targets, Iterable):
        raise TypeError(f"targets: expected a tensor or an iterable of (C, H, W) tensors, got "
                        f"{type(targets).__name__}")
    return iter(targets)


def _luminance(image: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` in [0, 1] -> ``(1, 1, H, W)`` CIELab L in [0, 100]."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    return rgb_to_l(rgb.unsqueeze(0))


def _tick(timings: dict[str, float], key: str, start: float, device: torch.device) -> float:
    """Add the time since ``start`` to ``timings[key]`` (synchronising CUDA) and return now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - start
    return now


def _sum_timings(*parts: dict[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


# ----------------------------------------------------------------------------- stages


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
        TypeError: bad argument types.
        ImageError: a reference the pipeline cannot use (``kind`` says why: ``gray``,
            ``batch``, ``too_small`` ...).

    Example:
        >>> from deepexemplar_core import load_models
        >>> prepared = prepare_reference(load_models("lite"), torch.rand(3, 64, 96),
        ...                              ColorizeConfig(size=64))
        >>> tuple(prepared.lab_work.shape), prepared.backbone
        ((1, 3, 64, 96), 'lite')
    """
    models, config = _check_models(models), _check_config(config)
    rgb, gray = check_reference(reference, allow_gray)
    return _prepare(models, rgb, gray, config)


def _prepare(models: Models, rgb: torch.Tensor, gray: bool,
             config: ColorizeConfig) -> PreparedReference:
    """:func:`prepare_reference` on a checked ``(1, 3, Hr, Wr)`` reference."""
    device, timings = models.device, {}
    start = time.perf_counter()
    work = working_size(rgb.shape[-2], rgb.shape[-1], config.size)
    ref_rgb = _resize(rgb.to(device), work).clamp(0.0, 1.0)
    ref_lab = rgb_to_lab(ref_rgb)
    start = _tick(timings, "resize", start, device)
    pyramid = models.backbone.pyramid(ref_lab[:, :1])
    _tick(timings, "features", start, device)
    return PreparedReference(ref_rgb, ref_lab, pyramid, config.size,
                             getattr(models.backbone, "name", models.family),
                             (int(rgb.shape[-2]), int(rgb.shape[-1])), gray, timings)


@torch.no_grad()
def match_images(
    models: Models,
    targets: torch.Tensor | Sequence[torch.Tensor],
    reference: torch.Tensor | PreparedReference | Sequence | ReferenceSet,
    config: ColorizeConfig | None = None,
    *,
    progress: Progress | None = None,
    motion: MotionPrior | None = None,
) -> MatchResult | SetMatchResult:
    """Features and bidirectional correspondence for same-sized targets and the reference(s).

    Args:
        models: from :func:`load_models`.
        targets: ``(B, 1|3, H, W)`` float in [0, 1], or a list of same-sized ``(1|3, H, W)``.
        reference: ``(1|3, Hr, Wr)`` sRGB in [0, 1], or a :func:`prepare_reference` result; or
            several (a list, a ``(K, 3, Hr, Wr)`` batch, a :func:`prepare_references` set), each
            matched in turn (as :func:`colorize` matches them).
        config: the working size and matching schedule; with ``motion=True`` the targets are
            a video's frames, matched one after the other, each from the previous one's field.
        progress: called with ``(done, total)`` after every pyramid level.
        motion: the state carried from frame to frame when ``config.motion`` is on (to continue
            a clip across calls, or to read ``motion.cuts``); a fresh one by default.

    Returns:
        MatchResult at working resolution; for several references a :class:`SetMatchResult`
        (a set of one without a region is the one-reference path and gives a MatchResult).

    Raises:
        TypeError: bad argument types.
        ImageError: bad shapes, values, sizes, or targets of different sizes.
    """
    models, config = _check_models(models), _check_config(config)
    _check_motion(motion, config)
    images = _checked_targets(targets)
    prepared = _prepared(models, reference, config)
    if config.motion and motion is None:
        motion = MotionPrior()
    if isinstance(prepared, ReferenceSet):
        return _match_set(models, images, prepared, config, progress, motion)
    return _match(models, images, prepared, config, progress, motion)


def _match(models: Models, images: list[torch.Tensor], prepared: PreparedReference,
           config: ColorizeConfig, progress: Progress | None,
           motion: MotionPrior | None) -> MatchResult:
    """:func:`match_images` on checked, same-sized images.

    With ``motion`` every frame runs alone (features, then matching from the carried field), so
    that a frame gets the same numbers whether it is matched in a chunk of 8 or a batch of 100.
    """
    timings: dict[str, float] = {}
    height, width = images[0].shape[-2:]
    target_l, _ = _target_luminance(models, images, config, timings)
    target_pyr, (corr,) = _match_each(models, target_l, [prepared], config, progress, motion,
                                      [timings])
    return MatchResult(target_l, prepared, target_pyr, corr, (int(height), int(width)), timings)


def _target_luminance(models: Models, images: list[torch.Tensor], config: ColorizeConfig,
                      timings: dict[str, float]) -> tuple[torch.Tensor, float]:
    """``(B, 1, h, w)`` working-size luminance of same-sized images (``resize`` timed); also
    the time it ended."""
    device, start = models.device, time.perf_counter()
    work = working_size(images[0].shape[-2], images[0].shape[-1], config.size)
    target_l = torch.cat([_resize(_luminance(img.to(device)), work) for img in images])
    return target_l, _tick(timings, "resize", start, device)


def _match_config(config: ColorizeConfig, pyramid: FeaturePyramid) -> MatchConfig:
    return config.match or MatchConfig.default_for(pyramid)


def _match_each(models: Models, target_l: torch.Tensor,
                references: Sequence[PreparedReference], config: ColorizeConfig,
                progress: Progress | None, motion: MotionPrior | None,
                timings: list[dict[str, float]]) -> tuple[FeaturePyramid, list[Correspondence]]:
    """Targets ``(B, 1, h, w)`` matched against each reference; the targets' features once.

    With ``motion`` every frame runs alone (features, then each reference's matching from its
    field carried from the previous frame), so that a frame gets the same numbers whether it is
    matched in a chunk of 8 or a batch of 100; the frame's fields are remembered for the next.
    ``timings``: one dict per reference (the features and the motion go to the first).

    Returns:
        The targets' pyramid and one correspondence per reference.
    """
    device, count = models.device, len(references)
    frames = [target_l] if motion is None else list(target_l.split(1))
    pyramids, fields = [], [[] for _ in range(count)]
    for f, l in enumerate(frames):
        start = time.perf_counter()
        pyramid = models.backbone.pyramid(l)
        start = _tick(timings[0], "features", start, device)
        priors = None
        if motion is not None:
            priors = motion.prior_for(l)
            start = _tick(timings[0], "motion", start, device)
            if priors is not None and priors.shape[0] != count:
                priors = None  # the previous frame had another set of references
        for k, reference in enumerate(references):
            relay = None if progress is None else _relay(progress, f * count + k,
                                                         len(frames) * count)
            fields[k].append(dense_match(pyramid, reference.pyramid, _match_config(config, pyramid),
                                         progress=relay,
                                         prior=None if priors is None else priors[k:k + 1]))
            start = _tick(timings[k], "matching", start, device)
        if motion is not None:
            motion.remember(l, torch.cat([field[-1].nnf_tr for field in fields]))
        pyramids.append(pyramid)
    if len(frames) == 1:
        return pyramids[0], [field[0] for field in fields]
    return _joined(pyramids), [_joined(field) for field in fields]


def _relay(progress: Progress, index: int, count: int) -> Progress:
    """Progress of frame ``index`` of ``count`` on the batch's scale."""
    def relay(step: int, steps: int) -> None:
        progress(index * steps + step, count * steps)

    return relay


@torch.no_grad()
def compute_similarity(match: MatchResult | SetMatchResult,
                       device: torch.device | str | None = None
                       ) -> SimilarityResult | SetSimilarityResult:
    """The similarity stage: the ten maps, the warped reference colours and the confidence.

    Args:
        match: from :func:`match_images`.
        device: where to compute (``match`` is moved there); ``None`` computes where ``match``
            lives.

    Returns:
        SimilarityResult at working resolution; for a :class:`SetMatchResult` a
        :class:`SetSimilarityResult`: every reference's stage and their fusion.

    Raises:
        TypeError: ``match`` is not a :class:`~deepexemplar_core.results.MatchResult` or
            :class:`~deepexemplar_core.results.SetMatchResult`.
    """
    if not isinstance(match, (MatchResult, SetMatchResult)):
        raise TypeError(f"match: expected a MatchResult (from match_images), got "
                        f"{type(match).__name__}")
    if device is not None:
        match = move_to(match, device)
    return _stage(match)


def _stage(match: MatchResult | SetMatchResult) -> SimilarityResult | SetSimilarityResult:
    """:func:`compute_similarity` where ``match`` lives."""
    return _fuse_set(match) if isinstance(match, SetMatchResult) else _similarity(match)


def _similarity(match: MatchResult) -> SimilarityResult:
    """:func:`compute_similarity` where ``match`` lives."""
    device, timings = match.target_l_work.device, {}
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


def _colorize_chunk(models: Models, indices: list[int], match: MatchResult,
                    similarity: SimilarityResult,
                    references: tuple[tuple[MatchResult, SimilarityResult], ...] = (),
                    fusion: Fusion | None = None) -> Intermediates:
    """Run the colorizer on one chunk; the chunk's intermediates with the ``colorize`` timing.

    With several references (``references`` and ``fusion`` from :func:`_fuse_set`) the
    colorizer gets every reference's colours and the fusion weights (each pixel's prior comes
    from the references that colour it), and all references' pixels pooled as
    ``reference_lab``.
    """
    start, timings = time.perf_counter(), {}
    labs = tuple(m.reference_lab_work for m, _ in references)
    reference_lab = match.reference_lab_work if not references else torch.cat(
        [lab.flatten(2) for lab in labs], dim=2).unsqueeze(2)
    inputs = ColorizerInputs(match.target_l_work, similarity.warped_rgb8, similarity.warped_ab,
                             similarity.similarity, similarity.confidence, reference_lab,
                             match.target_pyramid, labs,
                             fusion.weights if fusion is not None else None)
    ab_work = models.colorizer(inputs).float()
    _tick(timings, "colorize", start, models.device)
    return Intermediates(tuple(indices), match, similarity, ab_work, timings, references, fusion)


def _colorize_stages(models: Models, indices: list[int], match: MatchResult | SetMatchResult,
                     similarity: SimilarityResult | SetSimilarityResult) -> Intermediates:
    """:func:`_colorize_chunk` on one reference's stages or a set's (then the colorizer gets
    the fused stage, and the intermediates every reference's and the fusion)."""
    if isinstance(match, SetMatchResult):
        stages = tuple(zip(match.matches, similarity.stages, strict=True))
        return _colorize_chunk(models, indices, match.matches[0], similarity.fused, stages,
                               similarity.fusion)
    return _colorize_chunk(models, indices, match, similarity)


def _finish(image: torch.Tensor, ab_work: torch.Tensor,
            config: ColorizeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-resolution result of one target: ``(rgb (3, H, W), ab (2, H, W))``: the chroma
    upsampled guided by the original L, scaled by the strength and joined with that L."""
    l_full = _luminance(image)
    ab_full = upsample_chroma(ab_work.unsqueeze(0), l_full, method=config.upsample)[0]
    ab_full = ab_full * config.strength
    return l_ab_to_rgb(l_full[0], ab_full, gamut=config.gamut), ab_full


def _finish_chunk(inter: Intermediates, group: list[torch.Tensor], config: ColorizeConfig,
                  output_device: torch.device | str | None,
                  keep_intermediates: bool) -> Iterator[ColorizedImage]:
    """Full-resolution results of one chunk; each carries its share of the chunk's timings."""
    matched = [t for m, s in inter.references for t in (m.timings, s.timings)]
    stages = _sum_timings(*(matched or [inter.match.timings]), inter.similarity.timings,
                          inter.timings)
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


# ----------------------------------------------------------------------------- the whole chain


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
    on_invalid: OnInvalid | None = None,
) -> Iterator[ColorizedImage]:
    """Colorize any number of targets chunk by chunk, yielding each result as it finishes.

    Memory is bounded by one chunk whatever the number of targets (a film's frames can be a
    generator); with a :class:`PreparedReference` the backbone runs on the targets only.

    Args:
        targets: ``(B, 1|3, H, W)`` float in [0, 1], or any iterable (a list, a generator) of
            ``(1|3, H, W)`` images of any sizes; RGB targets are reduced to their luminance.
        reference: ``(1|3, Hr, Wr)`` sRGB in [0, 1], or a :func:`prepare_reference` result.
        models: from :func:`load_models`; ``None`` loads the ``auto`` family on the CPU.
        config: working size, upsampling, gamut handling, strength, matching schedule, and
            whether the targets are a video's frames (``motion``: each frame's matching starts
            from the previous frame's field carried along the optical flow).
        chunk_size: targets colorized together (consecutive, same size); ``None`` = unbounded.
        progress: ``(done, total)`` in units of 1/:data:`PROGRESS_UNITS` image, after every
            matching level and stage; ``total`` is 0 when ``targets`` has no length. It may
            raise (e.g. ComfyUI's interruption) to stop the run.
        keep_intermediates: attach each chunk's :class:`Intermediates` to its results.
        output_device: move each result there before yielding it (e.g. the CPU).
        motion: with ``config.motion``, the frame-to-frame state (to read ``motion.cuts``
            afterwards, or to continue a clip); a fresh one by default.
        on_invalid: called with ``(index, error)`` for a target the core refuses, which is then
            left out (the others are still colorized; indices keep counting it). Without it the
            first invalid target raises.

    Yields:
        ColorizedImage per target, in input order.

    Raises:
        TypeError: bad argument types.
        ValueError: bad arguments; :class:`~deepexemplar_core.inputs.ImageError` for a bad
            target or reference (the message names it).
    """
    models = _check_models(models) if models is not None else load_models("auto")
    config = _check_config(config)
    _check_chunk_size(chunk_size)
    _check_motion(motion, config)
    prepared = _prepared(models, reference, config)
    if config.motion and motion is None:
        motion = MotionPrior()
    total = len(targets) if isinstance(targets, Sized) else 0
    checked = _checked_stream(_iter_images(targets), on_invalid)
    return _stream(models, config, prepared, checked, total, chunk_size, progress,
                   keep_intermediates, output_device, motion)


def _checked_stream(images: Iterator[torch.Tensor],
                    on_invalid: OnInvalid | None) -> Iterator[tuple[int, torch.Tensor]]:
    """``(index, checked image)`` of each target; invalid ones go to ``on_invalid`` if given."""
    for index, image in enumerate(images):
        try:
            yield index, check_image(f"targets[{index}]", image)
        except ImageError as err:
            if on_invalid is None:
                raise
            on_invalid(index, err)


def _stream(models: Models, config: ColorizeConfig, prepared: PreparedReference | ReferenceSet,
            images: Iterator[tuple[int, torch.Tensor]], total: int, chunk_size: int | None,
            progress: Progress | None, keep_intermediates: bool,
            output_device: torch.device | str | None,
            motion: MotionPrior | None) -> Iterator[ColorizedImage]:
    """:func:`colorize_iter` on checked arguments and checked ``(index, image)`` pairs."""
    done = 0
    for chunk in _chunks(images, chunk_size):
        indices, group = [i for i, _ in chunk], [img.to(models.device) for _, img in chunk]
        count = len(group)
        relay = _chunk_progress(progress, total, done, count, 0.0, 0.6)
        if isinstance(prepared, ReferenceSet):
            m = _match_set(models, group, prepared, config, relay, motion)
        else:
            m = _match(models, group, prepared, config, relay, motion)
        s = _stage(m)
        _report(progress, total, done, count, 0.8)
        inter = _colorize_stages(models, indices, m, s)
        yield from _finish_chunk(inter, group, config, output_device, keep_intermediates)
        done += count
        _report(progress, total, done, 0, 0.0)


def _chunks(images: Iterator[tuple[int, torch.Tensor]],
            chunk_size: int | None) -> Iterator[list[tuple[int, torch.Tensor]]]:
    """Consecutive runs of same-sized images, at most ``chunk_size`` long."""
    chunk: list[tuple[int, torch.Tensor]] = []
    for index, image in images:
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


def _report(progress: Progress | None, total: int, done: int, count: int, fraction: float) -> None:
    """Report ``done`` images plus ``fraction`` of the next ``count``, in :data:`PROGRESS_UNITS`."""
    if progress is not None:
        progress(round(PROGRESS_UNITS * (done + count * fraction)), PROGRESS_UNITS * total)


@torch.no_grad()
def colorize(
    targets: torch.Tensor | Iterable[torch.Tensor],
    reference: torch.Tensor | PreparedReference | None,
    models: Models | None = None,
    config: ColorizeConfig | None = None,
    *,
    match: MatchResult | SetMatchResult | None = None,
    similarity: SimilarityResult | SetSimilarityResult | None = None,
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
            or a :func:`prepare_reference` result; ``None`` with ``match`` (which holds it).
        models: from :func:`load_models`; ``None`` loads the ``auto`` family on the CPU.
        config: working size, upsampling, gamut handling, strength, matching schedule.
        match: a precomputed :func:`match_images` result for these targets (one size), at this
            config's working size; a :class:`SetMatchResult` colours as its references would
            (the same pixels as passing them as ``reference``).
        similarity: a precomputed :func:`compute_similarity` result for ``match``.
        chunk_size: targets matched together; ``None`` matches each run of same-sized targets
            at once. With ``match``, the targets colorized together (as :func:`colorize_iter`
            would, so that the staged and the streaming calls give the same numbers).
        progress: as in :func:`colorize_iter`.

    Returns:
        ColorizeResult with the full-resolution images, the intermediates and the timings.

    Raises:
        ValueError: bad inputs; :class:`~deepexemplar_core.inputs.PrecomputedError` for
            precomputed results that do not fit the targets, or a reference given as well.

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
        results = _colorize_precomputed(targets, reference, models, config, match, similarity,
                                        chunk_size)
    else:
        _check_chunk_size(chunk_size)
        prepared = _prepared(models, reference, config)
        checked = _checked_stream(_iter_images(targets), None)
        motion = MotionPrior() if config.motion else None
        total = len(targets) if isinstance(targets, Sized) else 0
        results = list(_stream(models, config, prepared, checked, total, chunk_size, progress,
                               True, None, motion))
    if not results:
        raise ImageError("targets", "empty", "targets: empty batch; pass at least one image")
    chunks = tuple(dict.fromkeys(r.intermediates for r in results))
    prepared = [m.reference for m, _ in chunks[0].references] or [chunks[0].match.reference]
    reference_timings = _sum_timings(*(r.timings for r in prepared)) if match is None else {}
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


def _colorize_precomputed(targets, reference, models: Models, config: ColorizeConfig,
                          match: MatchResult | SetMatchResult | None,
                          similarity: SimilarityResult | SetSimilarityResult | None,
                          chunk_size: int | None) -> list[ColorizedImage]:
    """Targets colorized from precomputed stage results (the nodes' staged graph), in the same
    chunks as :func:`colorize_iter` would use, so both give the same numbers."""
    if match is None:
        raise PrecomputedError("similarity", "missing", "similarity: pass the match result it "
                                                        "was computed from as well")
    if reference is not None:
        raise PrecomputedError("reference", "reference", "reference: the match already holds "
                               "its reference; pass reference=None with match=")
    _check_chunk_size(chunk_size)
    group = [img.to(models.device) for img in _checked_targets(targets)]
    _check_precomputed(match, similarity, group, config)
    match = move_to(match, models.device)
    step = chunk_size or len(group)
    results = []
    for first in range(0, len(group), step):
        rows = slice(first, first + step)
        m = _rows(match, rows)
        s = _stage(m) if similarity is None else move_to(_rows(similarity, rows), models.device)
        inter = _colorize_stages(models, list(range(len(group)))[rows], m, s)
        results.extend(_finish_chunk(inter, group[rows], config, None, True))
    return results


def _rows(value: Any, rows: slice) -> Any:
    """The targets ``rows`` of a stage result: every tensor (in dataclasses, tuples, lists) cut
    along its batch axis. The prepared reference(s) (batch 1, shared) are kept whole."""
    if isinstance(value, torch.Tensor):
        return value[rows]
    if isinstance(value, (PreparedReference, ReferenceSet)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _rows(getattr(value, f.name), rows)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, (tuple, list)):
        return type(value)(_rows(v, rows) for v in value)
    return value


def _joined(parts: list[Any]) -> Any:
    """Per-target stage results joined along the batch axis (the inverse of :func:`_rows`):
    tensors concatenated, timings summed, everything else taken from the first part."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(first, **{
            f.name: _joined([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(first) if f.init})
    if isinstance(first, (tuple, list)):
        return type(first)(_joined(list(level)) for level in zip(*parts, strict=True))
    if isinstance(first, dict):
        return _sum_timings(*parts)
    return first


# ----------------------------------------------------------------------------- several references


def _is_several(reference: object) -> bool:
    """A set, a list/tuple of images, or a ``(K, C, H, W)`` batch with ``K > 1``."""
    if isinstance(reference, ReferenceSet):
        return True
    if isinstance(reference, torch.Tensor):
        return reference.dim() == 4 and reference.shape[0] > 1
    return isinstance(reference, (list, tuple))


@torch.no_grad()
def prepare_references(
    models: Models,
    references: torch.Tensor | Sequence[torch.Tensor | PreparedReference],
    config: ColorizeConfig | None = None,
    *,
    masks: Sequence[torch.Tensor | None] | torch.Tensor | None = None,
    fusion: FusionConfig | None = None,
) -> ReferenceSet:
    """Prepare several colour references (and their regions) once, for :func:`colorize`.

    Every target is matched against every reference; per pixel the reference whose
    correspondence is best colours it, softly across boundaries, unless a region says otherwise
    (:mod:`deepexemplar_core.fusion`). The backbone runs once per reference.

    Args:
        models: from :func:`load_models`.
        references: a ``(K, 1|3, Hr, Wr)`` batch or a list of ``(1|3, Hr, Wr)`` sRGB images in
            [0, 1] of any sizes and aspects, or of :func:`prepare_reference` results.
        config: its ``size`` is the working short side.
        masks: ``None``, or up to ``K`` regions in the references' order (a list whose entries
            are ``(H, W)`` masks in [0, 1] drawn on the targets, or ``None`` for an unmasked
            reference; or a ``(N, H, W)`` batch): a masked reference colours only inside its
            region (or is preferred there, :attr:`FusionConfig.region_weight`).
        fusion: score, smoothing and region weight; ``None`` uses the defaults.

    Returns:
        ReferenceSet. A gray reference among colour ones is left out (named in
        :attr:`ReferenceSet.skipped` and logged), together with its region.

    Raises:
        TypeError, ValueError: no reference, a bad image (the message names its position),
            more regions than references, a bad region, or only gray references.

    Example:
        >>> from deepexemplar_core import load_models
        >>> refs = prepare_references(load_models("lite"), [torch.rand(3, 64, 96),
        ...                           torch.rand(3, 80, 64)], ColorizeConfig(size=64))
        >>> len(refs), refs.skipped
        (2, ())
    """
    models, config = _check_models(models), _check_config(config)
    if isinstance(references, (str, bytes)):
        raise TypeError("references: expected images or prepared references, got a string")
    items = list(references.unbind(0) if isinstance(references, torch.Tensor)
                 and references.dim() == 4 else references)
    if not items:
        raise ValueError("references: expected at least one colour image")
    masks = [] if masks is None else list(masks.unbind(0) if isinstance(masks, torch.Tensor)
                                          else masks)
    if len(masks) > len(items):
        raise ValueError(f"masks: {len(masks)} regions for {len(items)} references; give at "
                         "most one region per reference, in the references' order")
    masks += [None] * (len(items) - len(masks))
    for k, mask in enumerate(masks):
        if mask is not None:
            resize_region(f"masks[{k}]", mask, tuple(mask.shape[-2:]))
            if float(mask.max()) <= 0.0:
                raise ImageError(f"masks[{k}]", "empty_region",
                                 f"masks[{k}]: is empty (all 0), so references[{k}] would colour "
                                 "nothing; draw its region or give no mask for it")
    kept, skipped = [], []
    for k, item in enumerate(items):
        if isinstance(item, PreparedReference):
            kept.append((k, item))
            continue
        try:
            rgb, gray = check_reference(item, allow_gray=False)
        except ImageError as err:
            if err.kind != "gray":
                raise ImageError(f"references[{k}]", err.kind,
                                 f"references[{k}]: {err}") from None
            skipped.append(f"references[{k}]: has no colour (R, G and B agree); left out")
            logger.warning("%s", skipped[-1])
            continue
        kept.append((k, _prepare(models, rgb, gray, config)))
    if not kept:
        raise ImageError("references", "gray", "references: every reference is gray, so the "
                                               "result would be gray; pass colour photos")
    return ReferenceSet(tuple(p for _, p in kept), tuple(masks[k] for k, _ in kept),
                        fusion or FusionConfig(), tuple(k for k, _ in kept), tuple(skipped))


def _match_set(models: Models, images: list[torch.Tensor], references: ReferenceSet,
               config: ColorizeConfig, progress: Progress | None, motion: MotionPrior | None
               ) -> SetMatchResult:
    """Match same-sized targets against every reference of a set.

    The targets' features are computed once; each reference is matched in turn. With ``motion``
    each frame runs alone and every reference's field is carried to the next frame.
    """
    count = len(references)
    timings: list[dict[str, float]] = [{} for _ in range(count)]
    height, width = images[0].shape[-2:]
    target_l, _ = _target_luminance(models, images, config, timings[0])
    pyramid, fields = _match_each(models, target_l, references.references, config, progress,
                                  motion, timings)
    return SetMatchResult(tuple(
        MatchResult(target_l, reference, pyramid, fields[k], (int(height), int(width)),
                    timings[k]) for k, reference in enumerate(references.references)),
        references)


def _fuse_set(match: SetMatchResult) -> SetSimilarityResult:
    """Every reference's similarity stage (maps, warp, confidence), fused by
    :func:`~deepexemplar_core.fusion.fuse_references` with the set's regions and settings."""
    stages = tuple(_similarity(m) for m in match.matches)
    start, fusion_timings = time.perf_counter(), {}
    references, first = match.references, match.matches[0]
    regions = [None if mask is None else  # checked against the target's own aspect ratio
               resize_region(f"masks[{k}]", mask, first.work_size, first.original_size)[0, 0]
               for k, mask in zip(references.positions, references.masks, strict=True)]
    fused = fuse_references(stages, [m.correspondence for m in match.matches], regions,
                            references.fusion)
    _tick(fusion_timings, "fusion", start, match.matches[0].target_l_work.device)
    similarity = SimilarityResult(fused.similarity, fused.warped_rgb8, fused.warped_ab,
                                  fused.confidence, fusion_timings)
    return SetSimilarityResult(similarity, stages, fused)


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
