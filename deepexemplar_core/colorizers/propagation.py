"""The weights-free colorizer: keep confident warped colours, propagate them edge-aware.

Algorithm (all batched tensor code, the same on CPU and GPU):

1. **Weights.** ``w = confidence`` (0..1) per target pixel.
2. **Multi-scale normalized convolution in a bilateral grid** (Paris and Durand 2006), guided by
   the target luminance ``L``. For a spatial scale ``s`` (pixels) and a range scale ``r``
   (L units) the channels ``(w * a, w * b, w, 1)`` are splatted into a grid of cells
   ``(round(L / r), round(y / s), round(x / s))``, blurred with a ``[1, 2, 1] / 4`` kernel
   (twice) along the three axes and sliced back at every pixel (trilinear). This gives, per
   pixel, ``N`` (weighted ab), ``D`` (weight) and ``C`` (number of pixels) of its neighbourhood
   *in space and luminance*, so colours spread within regions of similar luminance and stop
   at luminance edges.
3. **Coarse to fine (push-pull).** The coarsest estimate is global in space but still
   luminance-selective (one spatial cell, range ``global_range``), pulled towards the prior
   colour (step 4). Then for ``s = ..., 4 * finest, 2 * finest, finest``:
   ``ab_s = (N_s + lam * C_s * ab_coarser) / (D_s + lam * C_s)``: where at least a fraction
   ``lam`` of the pixels around (in space and luminance) is confident, the local colours win;
   where none is, the coarser estimate is kept.
4. **Prior and fallback.** The prior is the reference's mean ab per luminance (the target's L
   mapped to the reference's L mean and standard deviation, Reinhard-like, then looked up in a
   luminance histogram of the reference's ab; the global mean ab where a bin is empty). When the
   mean confidence of an image is below ``fallback_below`` the result is blended towards the
   prior: ``ab = m * ab + (1 - m) * prior`` with ``m = mean(confidence) / fallback_below``.
5. **Keep confident colours.** ``ab = k * warped_ab + (1 - k) * ab`` with
   ``k = clamp((confidence - keep_above) / (1 - keep_above), 0, 1)``.

**Fill** (:attr:`PropagationConfig.fill`). ``"propagate"`` (the default) is the algorithm above.
``"semantic"`` replaces the prior of step 4 by the colours of the confident pixels whose target
features are alike (:mod:`.semantic`): ``prior = s * ab_sem + (1 - s) * prior_ref`` with the
support ``s``, both bilinearly resized from the descriptor grid, and this prior replaces the
global and the wide levels of step 3: the coarse-to-fine pass starts from it at
``semantic_reach`` pixels. A region with no confident luminance neighbour within that reach
takes the colour of the confident regions the network finds alike instead of the reference's
mood. The sources are weighted by
:func:`~deepexemplar_core.confidence.fill_confidence` (forward similarity and luminance
agreement of the warped pixel). It needs the target's features
(``ColorizerInputs.target_pyramid``) and falls back to ``"propagate"`` without them. ``"auto"``
is the measured best (:func:`choose_fill`). Measured comparison in ``docs/lite.md``.

The defaults of :class:`PropagationConfig` were chosen with the lite backbone at 128 px on
five pairs (self-references and different photos) by the ab error of the result; a range
cell of 4 L units beat 6 and 10 there, ``lam`` trades the self-reference error (lower with
larger ``lam``) against the different-photo error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..color import rgb_to_lab
from ..confidence import fill_confidence
from ..structures import ColorizerInputs, FeaturePyramid
from .semantic import semantic_colors, target_descriptors

__all__ = [
    "FILLS",
    "PropagationColorizer",
    "PropagationConfig",
    "bilateral_grid_filter",
    "choose_fill",
    "fused_prior",
    "propagate_colors",
    "reference_prior",
]


#: Fill methods of :class:`PropagationConfig` (module docstring).
FILLS = ("propagate", "semantic", "auto")


@dataclass(frozen=True)
class PropagationConfig:
    """Parameters of :func:`propagate_colors` (meaning in the module docstring).

    Attributes:
        finest: spatial scale of the finest level, pixels (>= 1).
        range_sigma: luminance cell size ``r`` of the local levels, L units.
        global_range: luminance cell size of the global level, L units.
        lam: fraction of confident neighbours at which a level and its coarser estimate weigh
            the same.
        keep_above: confidence above which the warped colour is kept unchanged at 1.
        fallback_below: mean confidence below which the result leans on the prior.
        fill: one of :data:`FILLS`: how pixels with no confident neighbour are coloured.
        semantic_temperature: temperature ``T`` of the semantic fill's cosine similarity.
        semantic_neighbours: confident cells ``k`` each cell of the semantic fill looks at.
        semantic_reach: with the semantic fill, the widest luminance-guided level, pixels
            (colours spread along luminance up to about this far; beyond, the semantic
            estimate rules).
    """

    finest: float = 4.0
    range_sigma: float = 4.0
    global_range: float = 10.0
    lam: float = 0.05
    keep_above: float = 0.6
    fallback_below: float = 0.05
    fill: str = "propagate"
    semantic_temperature: float = 0.05
    semantic_neighbours: int = 32
    semantic_reach: float = 32.0

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"fill: expected one of {FILLS}, got {self.fill!r}")
        if isinstance(self.semantic_neighbours, bool) or not isinstance(
                self.semantic_neighbours, int) or self.semantic_neighbours < 1:
            raise ValueError(f"semantic_neighbours: expected an int >= 1, got "
                             f"{self.semantic_neighbours!r}")
        for name in ("finest", "range_sigma", "global_range", "lam", "fallback_below",
                     "semantic_temperature", "semantic_reach"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if not 0 <= self.keep_above < 1:
            raise ValueError(f"keep_above: expected a value in [0, 1), got {self.keep_above}")


_BLUR = torch.tensor([0.25, 0.5, 0.25])


def _blur3d(grid: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """Separable [1, 2, 1] / 4 blur of ``(B, C, D, H, W)`` along D, H and W (zero borders)."""
    c = grid.shape[1]
    k = _BLUR.to(grid)
    kernels = (k.view(1, 1, 3, 1, 1), k.view(1, 1, 1, 3, 1), k.view(1, 1, 1, 1, 3))
    pads = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    for _ in range(passes):
        for kern, pad in zip(kernels, pads, strict=True):
            grid = F.conv3d(grid, kern.expand(c, 1, *kern.shape[2:]), padding=pad, groups=c)
    return grid


def bilateral_grid_filter(
    l: torch.Tensor, values: torch.Tensor, spatial: float, range_: float
) -> torch.Tensor:
    """Cross-bilateral filtering of ``values`` guided by ``l`` in a bilateral grid (unnormalized).

    Args:
        l: ``(B, 1, H, W)`` float guide luminance in [0, 100].
        values: ``(B, C, H, W)`` float to filter (sums, not averages: divide two outputs to get
            a normalized convolution).
        spatial: grid cell size in pixels; ``inf`` gives one spatial cell (range-only filter).
        range_: grid cell size in L units.

    Returns:
        ``(B, C, H, W)`` float32, the blurred grid sampled at every pixel.

    Example:
        >>> l = torch.zeros(1, 1, 16, 16)
        >>> out = bilateral_grid_filter(l, torch.ones(1, 1, 16, 16), 4.0, 10.0)
        >>> out.shape
        torch.Size([1, 1, 16, 16])
    """
    b, c, h, w = values.shape
    gh = 1 if spatial == float("inf") else int(round((h - 1) / spatial)) + 1
    gw = 1 if spatial == float("inf") else int(round((w - 1) / spatial)) + 1
    gd = int(round(100.0 / range_)) + 1
    dev = values.device
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w)
    fy = ys / spatial if gh > 1 else ys * 0
    fx = xs / spatial if gw > 1 else xs * 0
    fz = (l[:, 0].float().clamp(0, 100) / range_)
    iy = fy.round().long().clamp(0, gh - 1)
    ix = fx.round().long().clamp(0, gw - 1)
    iz = fz.round().long().clamp(0, gd - 1)
    index = ((iz * gh + iy) * gw + ix).view(b, 1, h * w).expand(b, c, h * w)
    grid = torch.zeros(b, c, gd * gh * gw, device=dev, dtype=torch.float32)
    grid.scatter_add_(2, index, values.float().reshape(b, c, h * w))
    grid = _blur3d(grid.view(b, c, gd, gh, gw))

    def norm(f: torch.Tensor, size: int) -> torch.Tensor:
        return f * (2.0 / (size - 1)) - 1.0 if size > 1 else f * 0

    coords = torch.stack(
        (norm(fx, gw).expand(b, h, w), norm(fy, gh).expand(b, h, w), norm(fz, gd)), dim=-1
    )
    out = F.grid_sample(grid, coords.unsqueeze(1), mode="bilinear", align_corners=True)
    return out[:, :, 0]


def reference_prior(
    target_l: torch.Tensor, reference_lab: torch.Tensor | None, range_: float = 10.0
) -> torch.Tensor:
    """The reference's mean ab per luminance, looked up at the (remapped) target luminance.

    Args:
        target_l: ``(B, 1, H, W)`` float in [0, 100].
        reference_lab: ``(1 | B, 3, Hr, Wr)`` float CIELab, or ``None`` (the prior is gray).
        range_: luminance bin size, L units.

    Returns:
        ``(B, 2, H, W)`` float32 ab.

    Example:
        >>> ref = torch.cat([torch.rand(1, 1, 8, 8) * 100, torch.full((1, 2, 8, 8), 20.0)], 1)
        >>> reference_prior(torch.rand(2, 1, 4, 4) * 100, ref).mean().round()
        tensor(20.)
    """
    b, _, h, w = target_l.shape
    if reference_lab is None:
        return target_l.new_zeros(b, 2, h, w).float()
    ref = reference_lab.float().expand(b, -1, -1, -1)
    lr, abr = ref[:, :1], ref[:, 1:]
    tl = target_l.float()
    dims = (1, 2, 3)
    t_mean, t_std = tl.mean(dim=dims, keepdim=True), tl.std(dim=dims, keepdim=True, correction=0)
    r_mean, r_std = lr.mean(dim=dims, keepdim=True), lr.std(dim=dims, keepdim=True, correction=0)
    mapped = ((tl - t_mean) * (r_std / t_std.clamp_min(1e-3)) + r_mean).clamp(0, 100)
    # Range-only histogram of the reference (one spatial cell), sampled at the mapped target L.
    rb, _, hr, wr = lr.shape
    gd = int(round(100.0 / range_)) + 1
    iz = (lr[:, 0] / range_).round().long().clamp(0, gd - 1).view(rb, 1, hr * wr)
    sums = torch.zeros(rb, 3, gd, device=ref.device)
    vals = torch.cat([abr, torch.ones_like(lr)], 1).reshape(rb, 3, hr * wr)
    sums.scatter_add_(2, iz.expand(rb, 3, hr * wr), vals)
    sums = F.conv1d(sums.view(rb * 3, 1, gd), _BLUR.to(sums).view(1, 1, 3), padding=1)
    sums = sums.view(rb, 3, 1, gd)
    coords = torch.stack((mapped[:, 0] / range_ * (2.0 / (gd - 1)) - 1.0,
                          torch.zeros_like(mapped[:, 0])), -1)
    looked = F.grid_sample(sums, coords, mode="bilinear", align_corners=True)
    mean_ab = abr.mean(dim=(2, 3), keepdim=True)
    count = looked[:, 2:3]
    return (looked[:, :2] + 1e-3 * mean_ab) / (count + 1e-3)


def fused_prior(target_l: torch.Tensor, references_lab: tuple[torch.Tensor, ...],
                weights: torch.Tensor, range_: float = 10.0) -> torch.Tensor:
    """Several references' prior: each pixel takes the priors of the references it is
    coloured by, ``sum_k w_k * reference_prior(L, ref_k)``.

    A region (or a user's mask) given to one reference thus gets that reference's colours per
    luminance, not the mean of all references' pixels (which drifts every unmatched pixel
    towards the references' common cast).

    Args:
        target_l: ``(B, 1, H, W)`` float in [0, 100].
        references_lab: ``K`` tensors ``(1 | B, 3, Hr_k, Wr_k)`` float CIELab.
        weights: ``(B, K, H, W)`` float >= 0, summing to 1 over ``K``.
        range_: luminance bin size, L units.

    Returns:
        ``(B, 2, H, W)`` float32 ab.

    Raises:
        ValueError: ``weights`` has another number of references or another grid.

    Example:
        >>> l = torch.rand(1, 1, 8, 8) * 100
        >>> red = torch.cat([l, torch.full((1, 1, 8, 8), 40.0), torch.zeros(1, 1, 8, 8)], 1)
        >>> blue = torch.cat([l, torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), -40.0)], 1)
        >>> w = torch.zeros(1, 2, 8, 8); w[:, 0, :, :4] = 1; w[:, 1, :, 4:] = 1
        >>> ab = fused_prior(l, (red, blue), w)
        >>> ab[0, :, 0, 0].round().tolist(), ab[0, :, 0, 7].round().tolist()
        ([40.0, 0.0], [0.0, -40.0])
    """
    b, _, h, w = target_l.shape
    if weights.shape != (b, len(references_lab), h, w):
        raise ValueError(f"weights: expected {(b, len(references_lab), h, w)} (one map per "
                         f"reference on the target's grid), got {tuple(weights.shape)}")
    out = target_l.new_zeros(b, 2, h, w).float()
    for k, lab in enumerate(references_lab):
        out += weights[:, k : k + 1].float() * reference_prior(target_l, lab, range_)
    return out


def _scales(h: int, w: int, finest: float) -> list[float]:
    """Spatial scales, coarse to fine: ``finest * 2^k`` up to the image size."""
    out = [finest]
    while out[-1] * 2 < max(h, w):
        out.append(out[-1] * 2)
    return out[::-1]


def propagate_colors(
    target_l: torch.Tensor,
    warped_ab: torch.Tensor,
    confidence: torch.Tensor,
    reference_lab: torch.Tensor | None = None,
    config: PropagationConfig | None = None,
    *,
    target_pyramid: FeaturePyramid | None = None,
    source_confidence: torch.Tensor | None = None,
    prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fill low-confidence pixels with colours propagated along luminance (module docstring).

    Args:
        target_l: ``(B, 1, H, W)`` float target luminance in [0, 100].
        warped_ab: ``(B, 2, H, W)`` float reference ab carried to the target.
        confidence: ``(B, 1, H, W)`` float in [0, 1].
        reference_lab: ``(1 | B, 3, Hr, Wr)`` float CIELab of the reference, for the prior and
            fallback colours; ``None`` uses gray (ab = 0).
        config: parameters; ``None`` uses :class:`PropagationConfig` defaults.
        target_pyramid: the targets' backbone features, for ``fill="semantic"``/``"auto"``
            (without them the fill is ``"propagate"``).
        source_confidence: ``(B, 1, H, W)`` in [0, 1], which warped colours the semantic fill
            may copy; ``None`` uses ``confidence``.
        prior: ``(B, 2, H, W)`` float ab of step 4 (e.g. :func:`fused_prior` of several
            references); ``None`` computes :func:`reference_prior` of ``reference_lab``.

    Returns:
        ``(B, 2, H, W)`` float32 ab.

    Raises:
        TypeError: non-floating inputs.
        ValueError: shapes disagree, empty or non-finite inputs, confidence outside [0, 1].

    Example:
        >>> l = torch.rand(1, 1, 32, 32) * 100
        >>> ab = propagate_colors(l, torch.randn(1, 2, 32, 32) * 20, torch.rand(1, 1, 32, 32))
        >>> ab.shape
        torch.Size([1, 2, 32, 32])
    """
    cfg = config or PropagationConfig()
    bound = _checks.check_shape("target_l", target_l, ("B", 1, "H", "W"))
    _checks.check_shape("warped_ab", warped_ab, (bound["B"], 2, bound["H"], bound["W"]))
    _checks.check_shape("confidence", confidence, (bound["B"], 1, bound["H"], bound["W"]))
    for name, t in (("target_l", target_l), ("warped_ab", warped_ab), ("confidence", confidence)):
        _checks.check_floating(name, t)
        _checks.check_nonempty(name, t)
        _checks.check_finite(name, t)
    _checks.check_range("confidence", confidence, 0.0, 1.0)
    if reference_lab is not None:
        _checks.check_shape("reference_lab", reference_lab, ("Br", 3, "Hr", "Wr"))
        if reference_lab.shape[0] not in (1, bound["B"]):
            raise ValueError(
                f"reference_lab: expected batch 1 or {bound['B']}, got {reference_lab.shape[0]}"
            )
    l = target_l.float()
    conf = confidence.float().clamp(0.0, 1.0)
    ab_in = warped_ab.float()
    if prior is None:
        prior = reference_prior(l, reference_lab, cfg.global_range)
    else:
        _checks.check_shape("prior", prior, (bound["B"], 2, bound["H"], bound["W"]))
        prior = prior.float()
    semantic = target_pyramid is not None and choose_fill(cfg.fill) == "semantic"
    ones = torch.ones_like(conf)
    values = torch.cat([conf * ab_in, conf, ones], dim=1)

    def level(spatial: float, range_: float, coarser: torch.Tensor) -> torch.Tensor:
        n = bilateral_grid_filter(l, values, spatial, range_)
        pull = cfg.lam * n[:, 3:4].clamp_min(1e-6)
        return (n[:, :2] + pull * coarser) / (n[:, 2:3] + pull)

    scales = _scales(l.shape[-2], l.shape[-1], cfg.finest)
    if semantic:
        src = conf if source_confidence is None else source_confidence.float().clamp(0.0, 1.0)
        prior = _semantic_prior(l, ab_in, src, prior, target_pyramid, cfg)
        ab = prior  # the semantic estimate replaces the global and the wide levels
        scales = [s for s in scales if s <= cfg.semantic_reach] or scales[-1:]
    else:
        ab = level(float("inf"), cfg.global_range, prior)
    for spatial in scales:
        ab = level(spatial, cfg.range_sigma, ab)
    m = (conf.mean(dim=(1, 2, 3), keepdim=True) / cfg.fallback_below).clamp(max=1.0)
    ab = m * ab + (1.0 - m) * prior
    keep = ((conf - cfg.keep_above) / (1.0 - cfg.keep_above)).clamp(0.0, 1.0)
    return keep * ab_in + (1.0 - keep) * ab


def choose_fill(fill: str) -> str:
    """The fill that runs: ``fill`` itself, or for ``"auto"`` the measured best (docs/lite.md:
    ``"propagate"``, which no other fill beat on every kind of reference).

    Args:
        fill: one of :data:`FILLS`.

    Returns:
        ``"propagate"`` or ``"semantic"``.

    Raises:
        ValueError: an unknown fill.

    Example:
        >>> choose_fill("semantic"), choose_fill("auto")
        ('semantic', 'propagate')
    """
    if fill not in FILLS:
        raise ValueError(f"fill: expected one of {FILLS}, got {fill!r}")
    return "propagate" if fill == "auto" else fill


def _semantic_prior(
    l: torch.Tensor, ab: torch.Tensor, source_conf: torch.Tensor, prior: torch.Tensor,
    pyramid: FeaturePyramid, cfg: PropagationConfig,
) -> torch.Tensor:
    """``s * ab_sem + (1 - s) * prior`` at working resolution (module docstring)."""
    desc = target_descriptors(pyramid).to(l.device)
    if desc.shape[0] != l.shape[0]:
        raise ValueError(f"target_pyramid: expected batch {l.shape[0]}, got {desc.shape[0]}")
    ab_sem, support = semantic_colors(desc, source_conf, ab, temperature=cfg.semantic_temperature,
                                      neighbours=cfg.semantic_neighbours)
    size = l.shape[-2:]
    ab_sem = F.interpolate(ab_sem, size=size, mode="bilinear", align_corners=False)
    support = F.interpolate(support, size=size, mode="bilinear", align_corners=False)
    return support * ab_sem + (1.0 - support) * prior


class PropagationColorizer(nn.Module):
    """The ``lite`` family's :class:`~deepexemplar_core.structures.Colorizer` (no weights).

    Attributes:
        name: ``"lite-propagation"``.
        config: the :class:`PropagationConfig` used.

    Example:
        >>> from deepexemplar_core.structures import Similarity
        >>> z = torch.zeros(1, 5, 16, 16)
        >>> inputs = ColorizerInputs(torch.rand(1, 1, 16, 16) * 100,
        ...     torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 2, 16, 16),
        ...     Similarity(z, z, z.byte(), z.byte(), tuple("abcde")), torch.rand(1, 1, 16, 16),
        ...     torch.zeros(1, 3, 16, 16))
        >>> PropagationColorizer()(inputs).shape
        torch.Size([1, 2, 16, 16])
    """

    name = "lite-propagation"

    def __init__(self, config: PropagationConfig | None = None) -> None:
        super().__init__()
        self.config = config or PropagationConfig()

    def forward(self, inputs: ColorizerInputs) -> torch.Tensor:
        """Return ``ab: (B, 2, H, W)`` float32 for ``inputs.target_l``'s grid."""
        pyramid = getattr(inputs, "target_pyramid", None)
        source = None
        if pyramid is not None and choose_fill(self.config.fill) == "semantic":
            warped_l = rgb_to_lab(inputs.warped_rgb8.float() / 255.0)[:, :1]
            source = fill_confidence(inputs.similarity, inputs.target_l, warped_l)
        prior = None
        if inputs.reference_weights is not None:
            prior = fused_prior(inputs.target_l, inputs.references_lab, inputs.reference_weights,
                                self.config.global_range)
        return propagate_colors(
            inputs.target_l, inputs.warped_ab, inputs.confidence, inputs.reference_lab,
            self.config, target_pyramid=pyramid, source_confidence=source, prior=prior,
        )
