"""Several references: per pixel, the reference whose correspondence is best colours the target.

Each of ``K`` references is matched with the target as usual, giving per reference ``k`` the
warped colours ``ab_k``, the ten similarity maps ``sim_k`` and the confidence ``c_k``
(:func:`~deepexemplar_core.pipeline.compute_similarity`). This module fuses them into one set
of the same shapes, so that both colorizers run unchanged (the colour network's 13 channels
included):

1. **Score.** Per pixel and reference, ``s_k(p)``: with ``score="similarity"`` (default) the
   mean of sim_T->R and sim_R->T over the coarser half of the levels (the most semantic ones:
   relu5_1 and relu4_1 of the gray VGG; the finest are near 1 between unrelated photos) plus
   ``cycle_weight`` times the cycle agreement ``exp(-e^2 / (2 * 8^2))`` of
   :mod:`~deepexemplar_core.confidence` (``e``: the cycle error in pixels); with
   ``score="finest"`` the paper's finest-level similarity; with ``score="confidence"`` ``c_k``.
   On two photos side by side with a mirrored copy of each as references (128 and 256 px,
   four pairs, lite), the default picks the right photo on 96.6..100 % of each half away from
   the seam; every level but the finest gave 87.8 %, the finest alone 67 %.
2. **Smooth.** ``s_k`` is blurred by a Gaussian of ``smooth`` times the short side, so that a
   region is taken by one reference as a whole and boundaries are soft (no seam).
3. **Regions.** A user's soft mask ``m_k`` (one per reference, optional, values in [0, 1] on the
   target) multiplies the reference's weight. With ``region_weight = inf`` (default) a masked
   reference colours only inside its mask, where it also has precedence over the unmasked ones
   (their weight is multiplied by ``1 - max_k m_k``); with a finite ``region_weight`` a masked
   reference may colour anywhere and is preferred inside its mask by
   ``exp(region_weight * m_k)``. Where no reference is allowed (outside every mask and no
   unmasked reference), all compete again.
4. **Weights.** ``w_k = softmax_k(s_k / temperature) * factor_k``, normalised over ``k``.
5. **Fuse.** ``ab = sum_k w_k ab_k`` (likewise the similarity maps, their quantised distances
   recomputed exactly as for one reference, and the confidence). The **choice map** is
   ``argmax_k w_k``.

Memory and time are linear in ``K`` (each reference's maps are stacked once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import _checks
from .confidence import cycle_error
from .similarity import _quantise
from .structures import Correspondence, Similarity

__all__ = [
    "CHOICE_COLOURS",
    "Fusion",
    "FusionConfig",
    "choice_image",
    "fuse_references",
    "fusion_weights",
    "reference_score",
    "region_factors",
    "resize_region",
]

#: Scores of :class:`FusionConfig`.
SCORES = ("similarity", "finest", "confidence")

#: sRGB colours of the choice map (:func:`choice_image`), reference 0 first; repeats after 8.
CHOICE_COLOURS = ((0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (0.0, 0.51, 0.78), (1.0, 0.88, 0.10),
                  (0.57, 0.12, 0.71), (0.27, 0.94, 0.94), (0.96, 0.51, 0.19), (0.5, 0.5, 0.5))

#: Largest mismatch of aspect ratios (relative) between a region mask and its target.
ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class FusionConfig:
    """How several references are fused (meaning in the module docstring).

    Attributes:
        score: ``"similarity"`` (default), ``"finest"`` (the paper's finest level) or
            ``"confidence"``.
        cycle_weight: weight of the cycle agreement in the ``"similarity"`` score (0..1).
        temperature: softmax temperature in score units (smaller = sharper choice).
        smooth: Gaussian sigma of the score's blur, as a fraction of the short side (0 = none).
        region_weight: ``inf`` (a masked reference colours only inside its mask) or a finite
            preference >= 0 inside the mask (the reference may colour elsewhere).
    """

    score: str = "similarity"
    cycle_weight: float = 0.1
    temperature: float = 0.02
    smooth: float = 0.04
    region_weight: float = math.inf

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score: expected one of {SCORES}, got {self.score!r}")
        if not 0 <= self.cycle_weight <= 1:
            raise ValueError(f"cycle_weight: expected a value in [0, 1], got {self.cycle_weight}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature}")
        if not 0 <= self.smooth <= 1:
            raise ValueError(f"smooth: expected a fraction of the short side in [0, 1], got "
                             f"{self.smooth}")
        if not self.region_weight >= 0:
            raise ValueError(f"region_weight: expected >= 0 (inf = only inside the mask), got "
                             f"{self.region_weight}")


@dataclass(frozen=True)
class Fusion:
    """The fused stage results of ``K`` references (shapes at working resolution).

    Attributes:
        warped_rgb8: ``(B, 3, h, w)`` uint8 fused warped colours.
        warped_ab: ``(B, 2, h, w)`` float32 fused warped a/b.
        similarity: the fused ten maps (quantised distances recomputed from the fused cosines).
        confidence: ``(B, 1, h, w)`` float32 in [0, 1], the fused confidence.
        weights: ``(B, K, h, w)`` float32, each reference's share per pixel (sums to 1).
        choice: ``(B, 1, h, w)`` int64, the reference with the largest share per pixel.
    """

    warped_rgb8: torch.Tensor
    warped_ab: torch.Tensor
    similarity: Similarity
    confidence: torch.Tensor
    weights: torch.Tensor
    choice: torch.Tensor


def resize_region(name: str, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A region mask drawn on a target, checked and resized to ``size``.

    Args:
        name: the argument's name for messages (e.g. ``"masks[1]"``).
        mask: ``(H, W)`` or ``(1, H, W)`` float in [0, 1] with the target's aspect ratio.
        size: ``(h, w)`` of the target (working or original resolution).

    Returns:
        ``(1, 1, h, w)`` float32 in [0, 1].

    Raises:
        TypeError, ValueError: not a float tensor in [0, 1], or an aspect ratio other than the
            target's (the message names both sizes).

    Example:
        >>> resize_region("masks[0]", torch.ones(64, 96), (32, 48)).shape
        torch.Size([1, 1, 32, 48])
    """
    _checks.check_tensor(name, mask)
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2:
        raise ValueError(f"{name}: expected a (H, W) mask, got {tuple(mask.shape)}")
    _checks.check_nonempty(name, mask)
    mask = mask.float()
    _checks.check_finite(name, mask)
    _checks.check_range(name, mask, 0.0, 1.0)
    (h, w), (mh, mw) = size, mask.shape
    if abs((mw / mh) / (w / h) - 1.0) > ASPECT_TOLERANCE + 8 / h + 8 / w:  # sizes floored to 8
        raise ValueError(f"{name}: a {mw}x{mh} mask does not fit a {w}x{h} target (another "
                         "aspect ratio); draw the region on the target itself")
    out = mask[None, None]
    if (mh, mw) != (h, w):
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False,
                            antialias=mh > h)
    return out.clamp(0.0, 1.0)


def region_factors(masks: Sequence[torch.Tensor | None], size: tuple[int, int],
                   region_weight: float = math.inf) -> torch.Tensor | None:
    """Per reference, the factor its weight is multiplied by (module docstring, step 3).

    Args:
        masks: one entry per reference: ``None`` (unmasked) or a ``(H, W)`` mask in [0, 1]
            drawn on the target.
        size: ``(h, w)`` of the working resolution.
        region_weight: ``inf`` (only inside the mask) or a preference >= 0.

    Returns:
        ``(1, K, h, w)`` float32 >= 0, or ``None`` when no reference has a mask.

    Example:
        >>> half = torch.zeros(8, 8); half[:, :4] = 1
        >>> f = region_factors([half, None], (8, 8))
        >>> f[0, :, 0, 0].tolist(), f[0, :, 0, 7].tolist()
        ([1.0, 0.0], [0.0, 1.0])
    """
    if all(m is None for m in masks):
        return None
    regions = [None if m is None else resize_region(f"masks[{k}]", m, size)[0, 0]
               for k, m in enumerate(masks)]
    drawn = torch.stack([r for r in regions if r is not None])
    if math.isinf(region_weight):
        free = 1.0 - drawn.amax(dim=0)
        factors = torch.stack([free if r is None else r for r in regions])
        nobody = factors.sum(dim=0, keepdim=True) <= 1e-6
        factors = torch.where(nobody, torch.ones_like(factors), factors)
    else:
        ones = torch.ones_like(drawn[0])
        factors = torch.stack([ones if r is None else torch.exp(region_weight * r)
                               for r in regions])
    return factors.unsqueeze(0)


def reference_score(similarity: Similarity, corr: Correspondence, confidence: torch.Tensor,
                    config: FusionConfig | None = None) -> torch.Tensor:
    """How well one reference matches each target pixel (module docstring, step 1).

    Args:
        similarity: the reference's maps ``(B, L, h, w)``, coarse to fine.
        corr: the fields that produced them.
        confidence: ``(B, 1, h, w)`` its confidence.
        config: which score.

    Returns:
        ``(B, 1, h, w)`` float32, higher = better.
    """
    config = config or FusionConfig()
    if config.score == "confidence":
        return confidence.float()
    sims = 0.5 * (similarity.sim_tr.float() + similarity.sim_rt.float())
    if config.score == "finest":
        return sims[:, -1:]
    coarse = sims[:, : max(1, sims.shape[1] // 2)].mean(dim=1, keepdim=True)
    err = cycle_error(corr).to(coarse.device)
    return coarse + config.cycle_weight * torch.exp(-(err * err) / (2.0 * 8.0**2))


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, h, w)`` with replicated borders."""
    if sigma < 0.5:
        return x
    radius = int(math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = k / k.sum()
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def fusion_weights(scores: torch.Tensor, factors: torch.Tensor | None,
                   config: FusionConfig | None = None) -> torch.Tensor:
    """Each reference's share per pixel (module docstring, steps 2 and 4).

    Args:
        scores: ``(B, K, h, w)`` float, higher = better correspondence.
        factors: ``(1 | B, K, h, w)`` from :func:`region_factors`, or ``None``.
        config: temperature and smoothing.

    Returns:
        ``(B, K, h, w)`` float32 >= 0, summing to 1 over ``K``.

    Example:
        >>> s = torch.zeros(1, 2, 16, 16); s[:, 0, :, :8] = 1; s[:, 1, :, 8:] = 1
        >>> w = fusion_weights(s, None)
        >>> round(float(w[0, 0, 8, 0]), 3), round(float(w[0, 1, 8, 15]), 3)
        (1.0, 1.0)
    """
    config = config or FusionConfig()
    bound = _checks.check_shape("scores", scores, ("B", "K", "H", "W"))
    sigma = config.smooth * min(bound["H"], bound["W"])
    logits = _blur(scores.float(), sigma) / config.temperature
    weights = torch.softmax(logits, dim=1)
    if factors is not None:
        weights = weights * factors.to(weights)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return weights


def fuse_references(stages: Sequence, correspondences: Sequence[Correspondence],
                    masks: Sequence[torch.Tensor | None] | None = None,
                    config: FusionConfig | None = None) -> Fusion:
    """Fuse the similarity-stage results of ``K`` references for the same targets.

    Args:
        stages: per reference, an object with ``similarity`` (:class:`Similarity`,
            ``(B, L, h, w)`` maps), ``warped_rgb8 (B, 3, h, w)`` uint8, ``warped_ab
            (B, 2, h, w)`` and ``confidence (B, 1, h, w)`` (a
            :class:`~deepexemplar_core.pipeline.SimilarityResult`).
        correspondences: per reference, the fields its stage was computed from.
        masks: ``None`` or one entry per reference: ``None`` or a ``(H, W)`` region in [0, 1]
            drawn on the target (any size with the target's aspect ratio).
        config: score, temperature, smoothing and region weight.

    Returns:
        Fusion with the fused maps, the weights and the choice map.

    Raises:
        ValueError: no stage, stages of different shapes, more masks than references, a bad
            mask.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> def stage(sim, ab):
        ...     s = torch.full((1, 5, 16, 16), sim)
        ...     return NS(similarity=Similarity(s, s, s.byte(), s.byte(), tuple("abcde")),
        ...               warped_rgb8=torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
        ...               warped_ab=torch.full((1, 2, 16, 16), ab),
        ...               confidence=torch.full((1, 1, 16, 16), sim))
        >>> ident = torch.stack(torch.meshgrid(torch.arange(16), torch.arange(16),
        ...                                    indexing="ij"), -1)[None]
        >>> corr = Correspondence(ident, ident)
        >>> fused = fuse_references([stage(0.9, 10.0), stage(0.2, -10.0)], [corr, corr])
        >>> int(fused.choice.max()), round(float(fused.warped_ab.mean()), 2)
        (0, 10.0)
    """
    config = config or FusionConfig()
    if not stages or len(stages) != len(correspondences):
        raise ValueError(f"stages: expected one or more references' results and as many "
                         f"correspondences, got {len(stages)} and {len(correspondences)}")
    masks = list(masks) if masks is not None else []
    if len(masks) > len(stages):
        raise ValueError(f"masks: {len(masks)} regions for {len(stages)} references; give at "
                         "most one region per reference, in the references' order")
    masks += [None] * (len(stages) - len(masks))
    shape = tuple(stages[0].warped_ab.shape)
    for k, stage in enumerate(stages):
        if tuple(stage.warped_ab.shape) != shape:
            raise ValueError(f"stages[{k}]: warped_ab is {tuple(stage.warped_ab.shape)}, "
                             f"expected {shape} (all references are matched to the same targets)")
    size = (shape[-2], shape[-1])
    scores = torch.cat([reference_score(s.similarity, c, s.confidence, config)
                        for s, c in zip(stages, correspondences, strict=True)], 1)
    weights = fusion_weights(scores, region_factors(masks, size, config.region_weight), config)

    def mix(values: Sequence[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros_like(values[0], dtype=torch.float32)
        for k, v in enumerate(values):
            out += weights[:, k : k + 1] * v.float()
        return out

    sim_tr = mix([s.similarity.sim_tr for s in stages])
    sim_rt = mix([s.similarity.sim_rt for s in stages])
    similarity = Similarity(sim_tr, sim_rt, _quantise(-sim_tr), _quantise(-sim_rt),
                            stages[0].similarity.level_names)
    rgb8 = mix([s.warped_rgb8 for s in stages]).round().clamp(0, 255).to(torch.uint8)
    return Fusion(rgb8, mix([s.warped_ab for s in stages]), similarity,
                  mix([s.confidence for s in stages]).clamp(0.0, 1.0), weights,
                  weights.argmax(dim=1, keepdim=True))



def choice_image(choice: torch.Tensor) -> torch.Tensor:
    """The choice map as colours (:data:`CHOICE_COLOURS`: red = reference 0, green = 1, ...).

    Args:
        choice: ``(B, 1, h, w)`` integer, the reference per pixel.

    Returns:
        ``(B, 3, h, w)`` float32 sRGB in [0, 1].

    Example:
        >>> [round(v, 2) for v in choice_image(torch.tensor([[[[0, 1]]]]))[0, :, 0, 1].tolist()]
        [0.24, 0.71, 0.29]
    """
    _checks.check_shape("choice", choice, ("B", 1, "H", "W"))
    palette = torch.tensor(CHOICE_COLOURS, dtype=torch.float32, device=choice.device)
    return palette[choice[:, 0].long() % len(CHOICE_COLOURS)].permute(0, 3, 1, 2).contiguous()
