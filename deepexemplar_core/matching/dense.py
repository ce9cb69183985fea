"""Coarse-to-fine bidirectional dense matching of two feature pyramids."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

from .._checks import check_pyramid_pair
from ..structures import Correspondence, FeaturePyramid
from .config import LevelConfig, MatchConfig
from .exact import exact_nn_bidirectional
from .ops import patchmatch, window_search
from .patchmatch_reference import scaled_identity
from .scores import check_field, l2_normalize
from .upsample import upsample_nnf

logger = logging.getLogger(__name__)


def _init_field(prev: torch.Tensor | None, batch: int, src_size, tgt_size, device) -> torch.Tensor:
    if prev is None:
        return scaled_identity(batch, src_size, tgt_size, device)
    return upsample_nnf(prev, src_size, tgt_size)


def _better_start(a, b, init: torch.Tensor, prior: torch.Tensor, patch_size: int,
                  backend: str) -> torch.Tensor:
    """Per pixel, the start of ``init`` and ``prior`` with the higher patch score.

    A window of radius 0 scores a field without moving it.
    """
    _, score_init, _ = window_search(a, b, init, patch_size=patch_size, radius=0, backend=backend)
    _, score_prior, _ = window_search(a, b, prior, patch_size=patch_size, radius=0, backend=backend)
    return torch.where((score_prior > score_init).unsqueeze(-1), prior, init)


def _match_level(a, b, prev, level: LevelConfig, index: int, config: MatchConfig, prior=None):
    """Both fields of one level: ``((nnf_tr, nnf_rt), backend)``.

    ``prior``: a T->R field at this level's resolution; the T->R search starts, per pixel, from
    whichever of it and the coarser level's field scores higher.
    """
    if level.method == "exact":
        (tr, _), (rt, _) = exact_nn_bidirectional(
            a, b, patch_size=level.patch_size, chunk=config.chunk_elements
        )
        return (tr, rt), "torch"
    batch = max(a.shape[0], b.shape[0])
    fields, used = [], "torch"
    for src, tgt, prev_field, start in (
        (a, b, prev[0] if prev else None, prior),
        (b, a, prev[1] if prev else None, None),
    ):
        init = _init_field(prev_field, batch, tuple(src.shape[2:]), tuple(tgt.shape[2:]), a.device)
        if start is not None:
            init = _better_start(src, tgt, init, start, level.patch_size, config.backend)
        if level.method == "window":
            nnf, _, used = window_search(
                src,
                tgt,
                init,
                patch_size=level.patch_size,
                radius=level.radius,
                backend=config.backend,
            )
        else:
            nnf, _, used = patchmatch(
                src,
                tgt,
                init if prev or start is not None else None,
                patch_size=level.patch_size,
                iterations=level.iterations,
                radius=level.radius,
                seed=config.seed,
                level=index,
                backend=config.backend,
            )
        fields.append(nnf)
    return tuple(fields), used


def _pixel_level(target: FeaturePyramid, reference: FeaturePyramid, config: MatchConfig) -> int | None:
    """Index of a stride-1 level at image size left out by ``stop_stride``, if refining."""
    if not config.refine or config.stop_stride <= 1:
        return None
    for i, stride in enumerate(target.strides):
        if (
            stride == 1
            and tuple(target.features[i].shape[-2:]) == tuple(target.image_size)
            and tuple(reference.features[i].shape[-2:]) == tuple(reference.image_size)
        ):
            return i
    return None


def _refine(target, reference, index: int, fields, config: MatchConfig):
    """Exhaustive search of radius ``config.refine`` (patch 3) around both pixel fields."""
    a = l2_normalize(target.features[index])
    b = l2_normalize(reference.features[index])
    refined = []
    for src, tgt, init in ((a, b, fields[0]), (b, a, fields[1])):
        if src.shape[0] != init.shape[0]:
            src = src.expand(init.shape[0], -1, -1, -1)
        nnf, _, _ = window_search(
            src, tgt, init, patch_size=3, radius=config.refine, backend=config.backend
        )
        refined.append(nnf)
    return tuple(refined)


def dense_match(
    target: FeaturePyramid,
    reference: FeaturePyramid,
    config: MatchConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    keep_levels: bool | None = None,
    prior: torch.Tensor | None = None,
) -> Correspondence:
    """Bidirectional nearest-neighbour fields, coarse to fine, brought to pixel resolution.

    Every level of the schedule (``config.levels_for(target)``) is matched in both directions
    on L2-normalised features; a level's ``"window"``/``"patchmatch"`` search starts from the
    coarser level's field upsampled with :func:`upsample_nnf` (the scaled identity at the
    coarsest level). The last field is upsampled to ``image_size`` and, when the pyramid has a
    stride-1 level that the schedule left out (``MatchConfig.refine``), refined there.

    Args:
        target: pyramid of B targets.
        reference: pyramid of the reference, batch 1 (shared by all targets) or B.
        config: settings; ``None`` = ``MatchConfig()`` with the default schedule.
        progress: called as ``progress(done, total)`` after each level.
        keep_levels: override ``config.keep_levels``.
        prior: ``(B, Ht, Wt, 2)`` int64 absolute (y, x) T->R field at the target's image size,
            e.g. the previous video frame's field carried along the motion; at every window or
            PatchMatch level the T->R search starts, per pixel, from whichever of the prior and
            the coarser level's field has the higher patch score (steadier fields from frame to
            frame, none worse). Exact levels ignore it.

    Returns:
        :class:`Correspondence` with ``nnf_tr (B, Ht, Wt, 2)``, ``nnf_rt (B, Hr, Wr, 2)`` int64
        absolute (y, x) at image resolution, ``timings`` (seconds per level name, plus
        ``"upsample"`` and ``"total"``) and ``backend`` (``"torch"``, ``"cpp"``, ``"cuda"``; two
        names joined by ``+`` when levels used different ones).

    Raises:
        TypeError: not pyramids, or a bad config.
        ValueError: pyramids that do not match, or a schedule naming unknown levels.

    Example:
        >>> feats = tuple(torch.rand(1, 4, 64 // s, 64 // s) for s in (1, 2, 4, 8, 16))
        >>> pyr = FeaturePyramid(feats, (1, 2, 4, 8, 16), ("a", "b", "c", "d", "e"), (64, 64))
        >>> corr = dense_match(pyr, pyr)
        >>> corr.nnf_tr.shape, corr.level_names
        (torch.Size([1, 64, 64, 2]), ())
    """
    check_pyramid_pair(target, reference)
    if prior is not None:
        check_field("prior", prior, target.batch_size, *target.image_size)
    config = MatchConfig() if config is None else config
    if not isinstance(config, MatchConfig):
        raise TypeError(f"config: expected a MatchConfig or None, got {type(config).__name__}")
    keep = config.keep_levels if keep_levels is None else bool(keep_levels)
    schedule = config.levels_for(target)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    backends: list[str] = []
    kept, prev = [], None
    for done, (name, level) in enumerate(schedule.items(), start=1):
        tick = time.perf_counter()
        index = target.names.index(name)
        a = l2_normalize(target.features[index])
        b = l2_normalize(reference.features[index])
        level_prior = None
        if prior is not None and level.method != "exact":
            level_prior = upsample_nnf(prior, tuple(a.shape[2:]), tuple(b.shape[2:]))
        prev, used = _match_level(a, b, prev, level, index, config, level_prior)
        if used not in backends and level.method != "exact":
            backends.append(used)
        if keep:
            kept.append((name, prev))
        timings[name] = time.perf_counter() - tick
        logger.debug("matched %s (%s) in %.3f s", name, level.method, timings[name])
        if progress is not None:
            progress(done, len(schedule))
    tick = time.perf_counter()
    nnf_tr = upsample_nnf(prev[0], target.image_size, reference.image_size)
    nnf_rt = upsample_nnf(prev[1], reference.image_size, target.image_size)
    timings["upsample"] = time.perf_counter() - tick
    pixel_level = _pixel_level(target, reference, config)
    if pixel_level is not None:
        tick = time.perf_counter()
        nnf_tr, nnf_rt = _refine(target, reference, pixel_level, (nnf_tr, nnf_rt), config)
        timings["refine"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - start
    kept.reverse()  # fine to coarse
    return Correspondence(
        nnf_tr=nnf_tr,
        nnf_rt=nnf_rt,
        level_fields=tuple(fields for _, fields in kept),
        level_names=tuple(name for name, _ in kept),
        backend="+".join(backends) or "torch",
        timings=timings,
    )


class DenseMatcher(nn.Module):
    """Module wrapper of :func:`dense_match` holding a :class:`MatchConfig`.

    Example:
        >>> feats = tuple(torch.rand(1, 4, 32 // s, 32 // s) for s in (2, 4, 8))
        >>> pyr = FeaturePyramid(feats, (2, 4, 8), ("a", "b", "c"), (32, 32))
        >>> DenseMatcher()(pyr, pyr).nnf_rt.shape
        torch.Size([1, 32, 32, 2])
    """

    def __init__(self, config: MatchConfig | None = None):
        super().__init__()
        self.config = MatchConfig() if config is None else config

    def forward(
        self,
        target: FeaturePyramid,
        reference: FeaturePyramid,
        progress: Callable[[int, int], None] | None = None,
    ) -> Correspondence:
        """Run :func:`dense_match` with this module's config."""
        return dense_match(target, reference, self.config, progress=progress)


#: The name of :class:`DenseMatcher` before 0.2 (kept for users' imports; the ComfyUI node
#: ``DenseMatch`` is a different thing).
DenseMatch = DenseMatcher
