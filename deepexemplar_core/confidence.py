"""Per-pixel confidence of the warped reference colours.

Two cues, both at working resolution, multiplied:

* **feature similarity**. With ``sim_tr`` (sim_T->R) and ``sim_rt`` (sim_R->T looked up
  through phi_T->R) of a set ``K`` of levels (default: every level but the finest),
  ``s(p) = (1 / 2|K|) * sum_{k in K} (sim_tr_k(p) + sim_rt_k(p))`` and
  ``c_sim(p) = clamp((s(p) - s_low) / (s_high - s_low), 0, 1)``;
* **bidirectional agreement** (the cycle). With ``q = phi_T->R(p)`` and ``p' = phi_R->T(q)``,
  the cycle error ``e(p) = ||p' - p||_2`` in working-resolution pixels is mapped through a soft
  threshold ``c_cyc(p) = exp(-e(p)^2 / (2 * tau^2))`` (1 at ``e = 0``, 0.61 at ``e = tau``,
  0.14 at ``e = 2 tau``).

``confidence(p) = c_sim(p) * c_cyc(p)``, in [0, 1].

The defaults (``s_low = 0.3``, ``s_high = 0.7``, ``tau = 8``, finest level left out) suit the
lite backbone's default (signed, "bottleneck") features, whose cosines are lower than those of
ReLU features. On ``benchmarks/quality.py`` (8 photos, 256 px) they raised the lite ab PSNR from
35.84 to 36.10 dB on self-references and from 21.55 to 21.90 dB with a different photo as
reference, against the band first tuned on the expansion features (0.5..0.9, ``tau = 3``), which
kept only 0.6 % of the bundled example's pixels confident (4.6 % now). A stricter band
(0.75..0.95) lowers the error of self-references but raises that of different-photo pairs. The
finest level is left out because its similarity is near 1 almost everywhere (median 0.98 for
the lite stride-2 level even between unrelated photos), so it ranks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _checks
from .structures import Correspondence, Similarity

__all__ = ["confidence_map", "cycle_error", "fill_confidence"]


def cycle_error(corr: Correspondence) -> torch.Tensor:
    """Cycle error ``||phi_R->T(phi_T->R(p)) - p||_2`` in pixels.

    Args:
        corr: fields ``nnf_tr (B, Ht, Wt, 2)`` and ``nnf_rt (B | 1, Hr, Wr, 2)`` int64 absolute
            ``(y, x)``.

    Returns:
        ``(B, 1, Ht, Wt)`` float32, >= 0.

    Example:
        >>> ident = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij"), -1)
        >>> corr = Correspondence(ident[None], ident[None])
        >>> float(cycle_error(corr).max())
        0.0
    """
    tr, rt = corr.nnf_tr, corr.nnf_rt
    _checks.check_shape("corr.nnf_tr", tr, ("B", "H", "W", 2))
    _checks.check_shape("corr.nnf_rt", rt, ("Br", "Hr", "Wr", 2))
    b, h, w, _ = tr.shape
    br, hr, wr, _ = rt.shape
    if br not in (1, b):
        raise ValueError(f"corr.nnf_rt: expected batch 1 or {b}, got {br}")
    qy = tr[..., 0].long().clamp(0, hr - 1)
    qx = tr[..., 1].long().clamp(0, wr - 1)
    flat = rt.expand(b, -1, -1, -1).reshape(b, hr * wr, 2)
    index = (qy * wr + qx).reshape(b, h * w, 1).expand(-1, -1, 2)
    back = torch.gather(flat, 1, index).reshape(b, h, w, 2)
    ys = torch.arange(h, device=tr.device).view(1, h, 1)
    xs = torch.arange(w, device=tr.device).view(1, 1, w)
    dy = (back[..., 0] - ys).float()
    dx = (back[..., 1] - xs).float()
    return torch.sqrt(dy * dy + dx * dx).unsqueeze(1)


def confidence_map(
    similarity: Similarity,
    corr: Correspondence,
    *,
    levels: Sequence[int] | None = None,
    sim_low: float = 0.3,
    sim_high: float = 0.7,
    cycle_tolerance: float = 8.0,
) -> torch.Tensor:
    """Confidence of each target pixel's warped colour (formula in the module docstring).

    Args:
        similarity: ``sim_tr``/``sim_rt`` ``(B, L, H, W)``, coarse to fine (last = finest).
        corr: the fields that produced ``similarity``; ``nnf_tr`` is ``(B, H, W, 2)``.
        levels: ``K``, indices into the maps' level axis (coarse to fine, as ``Similarity``
            stores them); ``None`` takes every level but the last (finest) one, or the only
            level when there is one.
        sim_low: ``s`` at and below which ``c_sim = 0``.
        sim_high: ``s`` at and above which ``c_sim = 1``.
        cycle_tolerance: ``tau`` in working-resolution pixels.

    Returns:
        ``(B, 1, H, W)`` float32 in [0, 1].

    Raises:
        ValueError: shapes disagree or the parameters are out of range.

    Example:
        >>> ident = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij"), -1)
        >>> ones = torch.ones(1, 5, 8, 8)
        >>> sim = Similarity(ones, ones, ones.byte(), ones.byte(), ("a", "b", "c", "d", "e"))
        >>> float(confidence_map(sim, Correspondence(ident[None], ident[None])).min())
        1.0
    """
    bound = _checks.check_shape("similarity.sim_tr", similarity.sim_tr, ("B", "L", "H", "W"))
    _checks.check_shape("similarity.sim_rt", similarity.sim_rt, tuple(similarity.sim_tr.shape))
    _checks.check_shape("corr.nnf_tr", corr.nnf_tr, (bound["B"], bound["H"], bound["W"], 2))
    n = bound["L"]
    chosen = list(range(max(1, n - 1))) if levels is None else list(levels)
    if not chosen or any(not -n <= k < n for k in chosen):
        raise ValueError(f"levels: expected indices in [-{n}, {n - 1}], got {levels}")
    if not sim_low < sim_high:
        raise ValueError(f"sim_low ({sim_low}) must be smaller than sim_high ({sim_high})")
    if cycle_tolerance <= 0:
        raise ValueError(f"cycle_tolerance: expected > 0 pixels, got {cycle_tolerance}")
    s = 0.5 * (similarity.sim_tr[:, chosen].float() + similarity.sim_rt[:, chosen].float())
    c_sim = ((s.mean(dim=1, keepdim=True) - sim_low) / (sim_high - sim_low)).clamp(0.0, 1.0)
    err = cycle_error(corr).to(c_sim.device)
    c_cyc = torch.exp(-(err * err) / (2.0 * cycle_tolerance**2))
    return (c_sim * c_cyc).clamp(0.0, 1.0)


def fill_confidence(
    similarity: Similarity,
    target_l: torch.Tensor,
    warped_l: torch.Tensor,
    *,
    sim_low: float = 0.25,
    sim_high: float = 0.65,
    luminance_scale: float = 20.0,
) -> torch.Tensor:
    """Where the warped colour is right: forward similarity and luminance agreement.

    ``s(p)`` = mean of ``sim_T->R`` over every level but the coarsest, ``dL(p) =
    |L_target(p) - L_warped(p)|`` (the warped reference pixel should be about as bright as the
    target pixel it colours), and ``c(p) = clamp((s - dL / luminance_scale - sim_low) /
    (sim_high - sim_low), 0, 1)``. Used by the semantic fill; :func:`confidence_map` stays the
    pipeline's confidence (measured comparison in ``docs/lite.md``).

    Args:
        similarity: ``sim_tr`` ``(B, L, H, W)``, coarse to fine.
        target_l: ``(B, 1, H, W)`` float in [0, 100].
        warped_l: ``(B, 1, H, W)`` float in [0, 100], the luminance of the warped reference.
        sim_low: score at and below which the confidence is 0.
        sim_high: score at and above which the confidence is 1.
        luminance_scale: L units of disagreement that cost 1 in similarity.

    Returns:
        ``(B, 1, H, W)`` float32 in [0, 1].

    Raises:
        ValueError: shapes disagree or the parameters are out of range.

    Example:
        >>> ones = torch.ones(1, 5, 8, 8)
        >>> sim = Similarity(ones, ones, ones.byte(), ones.byte(), ("a", "b", "c", "d", "e"))
        >>> l = torch.full((1, 1, 8, 8), 50.0)
        >>> float(fill_confidence(sim, l, l).min()), float(fill_confidence(sim, l, l + 30).max())
        (1.0, 0.0)
    """
    bound = _checks.check_shape("similarity.sim_tr", similarity.sim_tr, ("B", "L", "H", "W"))
    shape = (bound["B"], 1, bound["H"], bound["W"])
    _checks.check_shape("target_l", target_l, shape)
    _checks.check_shape("warped_l", warped_l, shape)
    if not sim_low < sim_high:
        raise ValueError(f"sim_low ({sim_low}) must be smaller than sim_high ({sim_high})")
    if not luminance_scale > 0:
        raise ValueError(f"luminance_scale: expected > 0 L units, got {luminance_scale}")
    sim = similarity.sim_tr.float()
    s = sim[:, 1:].mean(dim=1, keepdim=True) if sim.shape[1] > 1 else sim
    dl = (target_l.float() - warped_l.float()).abs()
    return ((s - dl / luminance_scale - sim_low) / (sim_high - sim_low)).clamp(0.0, 1.0)
