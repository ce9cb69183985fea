"""Semantic fill: colour unmatched pixels from matched pixels whose target features are alike.

The propagation colorizer spreads confident colours along the *luminance* of the target; a
region that matched nothing in the reference and has no confident luminance neighbour only gets
the reference's mood. Semantic fill looks at the *target's own* backbone features instead: a
pixel takes the colour of the confident pixels of the same image that look alike to the network
(another part of the same sky, shirt or leaf texture), wherever they are.

Algorithm (batched tensor code, the same on CPU and GPU):

1. **Descriptors.** Levels ``s8``, ``s16`` and ``s32`` of the target pyramid, each centred on
   its image mean and L2-normalised per pixel, bilinearly resized to the grid of the first one
   and concatenated, then L2-normalised again: ``d(p)``, a unit vector per grid cell.
2. **Sources.** The confidence and the confidence-weighted colours pooled to the grid
   (area average): ``c(q)`` and ``ab(q) = sum(conf * ab) / sum(conf)`` over the cell.
   The source grid is further area-pooled when it has more than ``max_sources`` cells.
3. **Soft k-nearest neighbours.** For every cell ``p``, the ``k`` sources with the largest
   ``(d(p) . d(q) - 1) / T + log c(q)`` (cosine similarity, sharpened by the temperature ``T``,
   weighted by the source's confidence) are kept and
   ``ab_sem(p) = sum_q w_q * ab(q)`` with ``w = softmax(.)``. The support
   ``s(p) = sum_q w_q * c(q) * clamp((d(p) . d(q) - lo) / (hi - lo), 0, 1)`` says how much
   alike-and-confident evidence there is: 1 when the chosen sources are confident and at least
   ``hi`` alike (cosine), 0 when none is confident or none is more alike than ``lo``. The band
   (0.3, 0.7) is where the lite features of a texture and of its copy elsewhere in the image fall
   (about 0.5-0.6 at 128 px, the coarse levels seeing different surroundings) against 0.1-0.3
   for unrelated stuff.

Queries run in chunks of rows, so memory is ``O(chunk * sources)`` on top of the inputs:
linear in the pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _checks
from ..structures import FeaturePyramid

__all__ = ["DESCRIPTOR_STRIDES", "semantic_colors", "target_descriptors"]

#: Strides of the pyramid levels that form the descriptor (the lite backbone's s8, s16, s32).
DESCRIPTOR_STRIDES = (8, 16, 32)

_CHUNK_ELEMENTS = 1 << 22  # query x source similarities held at once (16 MB in float32)


def target_descriptors(
    pyramid: FeaturePyramid, strides: tuple[int, ...] = DESCRIPTOR_STRIDES
) -> torch.Tensor:
    """Unit descriptors of the target on the grid of the finest chosen level (step 1).

    Args:
        pyramid: the target's features; levels are picked by stride. A stride the pyramid lacks
            is replaced by its nearest coarser level (the coarsest when none is coarser).
        strides: strides of the levels to join, fine to coarse.

    Returns:
        ``(B, C, h, w)`` float32, unit L2 norm along ``C`` (``C`` = sum of the levels' channels).

    Raises:
        ValueError: empty ``strides``.

    Example:
        >>> feats = tuple(torch.rand(1, 4, 64 // s, 64 // s) for s in (2, 4, 8, 16, 32))
        >>> pyr = FeaturePyramid(feats, (2, 4, 8, 16, 32), tuple("abcde"), (64, 64))
        >>> target_descriptors(pyr).shape
        torch.Size([1, 12, 8, 8])
    """
    if not strides:
        raise ValueError("strides: expected at least one pyramid stride, got ()")
    chosen = []
    for s in strides:
        coarser = [i for i, ps in enumerate(pyramid.strides) if ps >= s]
        chosen.append(coarser[0] if coarser else len(pyramid.strides) - 1)
    size = pyramid.features[chosen[0]].shape[-2:]
    parts = []
    for i in chosen:
        f = pyramid.features[i].float()
        f = f - f.mean(dim=(2, 3), keepdim=True)
        f = F.normalize(f, dim=1)
        if f.shape[-2:] != size:
            f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
        parts.append(f)
    return F.normalize(torch.cat(parts, dim=1), dim=1)


def semantic_colors(
    descriptors: torch.Tensor,
    confidence: torch.Tensor,
    ab: torch.Tensor,
    *,
    temperature: float = 0.05,
    neighbours: int = 32,
    similar_low: float = 0.3,
    similar_high: float = 0.7,
    max_sources: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-weighted soft k-NN colours in descriptor space (steps 2 and 3).

    Args:
        descriptors: ``(B, C, h, w)`` float, unit vectors (:func:`target_descriptors`).
        confidence: ``(B, 1, H, W)`` float in [0, 1] at working resolution.
        ab: ``(B, 2, H, W)`` float, the colours the confidence is about (warped ab).
        temperature: ``T`` of the cosine similarity (smaller = only near-identical cells).
        neighbours: ``k`` sources kept per cell.
        similar_low: cosine at and below which a source supports nothing.
        similar_high: cosine at and above which a source supports fully.
        max_sources: source cells at most (the source grid is area-pooled above it).

    Returns:
        ``(ab_sem, support)``: ``(B, 2, h, w)`` float32 ab and ``(B, 1, h, w)`` float32 in
        [0, 1], on the descriptor grid.

    Raises:
        ValueError: shapes disagree or parameters out of range.

    Example:
        >>> d = F.normalize(torch.rand(1, 8, 4, 4), dim=1)
        >>> ab_sem, support = semantic_colors(d, torch.ones(1, 1, 16, 16),
        ...                                   torch.full((1, 2, 16, 16), 7.0))
        >>> round(float(ab_sem.mean()), 3), ab_sem.shape, support.shape
        (7.0, torch.Size([1, 2, 4, 4]), torch.Size([1, 1, 4, 4]))
    """
    bound = _checks.check_shape("descriptors", descriptors, ("B", "C", "h", "w"))
    big = _checks.check_shape("confidence", confidence, (bound["B"], 1, "H", "W"))
    _checks.check_shape("ab", ab, (bound["B"], 2, big["H"], big["W"]))
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")
    if not similar_low < similar_high:
        raise ValueError(f"similar_low ({similar_low}) must be smaller than similar_high "
                         f"({similar_high})")
    if neighbours < 1 or max_sources < 1:
        raise ValueError(f"neighbours and max_sources: expected >= 1, got {neighbours}, "
                         f"{max_sources}")
    b, _, h, w = descriptors.shape
    conf = confidence.float()
    desc = descriptors.float()
    scale = max(1.0, (h * w / max_sources) ** 0.5)
    sh, sw = max(1, int(h / scale)), max(1, int(w / scale))
    src_c = F.adaptive_avg_pool2d(conf, (sh, sw))
    src_ab = F.adaptive_avg_pool2d(conf * ab.float(), (sh, sw)) / src_c.clamp_min(1e-6)
    src_d = desc if (sh, sw) == (h, w) else F.normalize(F.adaptive_avg_pool2d(desc, (sh, sw)), dim=1)
    keys = src_d.flatten(2)  # (B, C, S)
    log_c = torch.log(src_c.flatten(1).clamp_min(1e-6)).unsqueeze(1)  # (B, 1, S)
    values = src_ab.flatten(2).transpose(1, 2)  # (B, S, 2)
    queries = desc.flatten(2).transpose(1, 2)  # (B, N, C)
    n, s = h * w, sh * sw
    k = min(neighbours, s)
    chunk = max(1, _CHUNK_ELEMENTS // s)
    out_ab = torch.empty(b, n, 2, device=desc.device)
    out_support = torch.empty(b, n, device=desc.device)
    for start in range(0, n, chunk):
        sim = (queries[:, start:start + chunk] @ keys - 1.0) / temperature  # (B, n, S)
        top, index = (sim + log_c).topk(k, dim=-1)
        weights = torch.softmax(top, dim=-1)
        picked = torch.gather(values.unsqueeze(1).expand(-1, index.shape[1], -1, -1), 2,
                              index.unsqueeze(-1).expand(-1, -1, -1, 2))
        out_ab[:, start:start + chunk] = (weights.unsqueeze(-1) * picked).sum(dim=2)
        cos = 1.0 + temperature * torch.gather(sim, 2, index)
        alike = ((cos - similar_low) / (similar_high - similar_low)).clamp(0.0, 1.0)
        sure = torch.gather(src_c.flatten(1).unsqueeze(1).expand(-1, index.shape[1], -1), 2, index)
        out_support[:, start:start + chunk] = (weights * alike * sure).sum(dim=-1)
    return (out_ab.transpose(1, 2).reshape(b, 2, h, w),
            out_support.reshape(b, 1, h, w))
