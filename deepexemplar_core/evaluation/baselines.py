"""Classical exemplar colorization baselines: Reinhard et al. 2001 and Welsh et al. 2002.

Both work in CIELab (the common simplification of the papers' l-alpha-beta space) and return
only ``ab``; the caller joins it with the target's own L.

* :func:`reinhard_transfer` (global statistics). Per chroma channel ``k`` in ``(a, b)``:
  ``out_k = (sigma_ref_k / sigma_tgt_k) * (tgt_k - mu_tgt_k) + mu_ref_k``, with the means and
  standard deviations (population, over all pixels) of the target and the reference. For a
  **gray** target (only L given, or a/b constant) ``sigma_tgt = 0`` and the result is the
  reference's mean ab everywhere: "target L plus the reference's colour statistics", a global
  tint. A zero ``sigma_tgt`` is treated as such (the ratio term vanishes).
* :func:`welsh_transfer` (Welsh, Ashikhmin and Mueller, "Transferring Color to Greyscale
  Images"): the reference L is remapped to the target's L mean and standard deviation,
  ``L_ref' = (sigma_t / sigma_r) * (L_ref - mu_r) + mu_t``; ``samples`` reference pixels are
  drawn on a jittered grid; every pixel gets the feature ``(0.5 * L, 0.5 * sd5(L))`` with
  ``sd5`` the standard deviation of L in its 5x5 neighbourhood (replicated borders); every
  target pixel copies the ab of the sample nearest in that feature (Euclidean distance).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _checks

__all__ = ["local_std", "reinhard_transfer", "welsh_transfer"]


def _check_inputs(target: torch.Tensor, reference_lab: torch.Tensor) -> tuple[int, int]:
    _checks.check_tensor("target_l", target)
    if target.dim() != 4 or target.shape[1] not in (1, 3):
        raise ValueError(
            f"target_l: expected (B, 1, H, W) L or (B, 3, H, W) Lab, got {tuple(target.shape)}"
        )
    _checks.check_shape("reference_lab", reference_lab, ("Br", 3, "Hr", "Wr"))
    for name, t in (("target_l", target), ("reference_lab", reference_lab)):
        _checks.check_floating(name, t)
        _checks.check_nonempty(name, t)
        _checks.check_finite(name, t)
    b, br = int(target.shape[0]), int(reference_lab.shape[0])
    if br not in (1, b):
        raise ValueError(f"reference_lab: expected batch 1 or {b}, got {br}")
    return b, br


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and population std, each ``(B, C, 1, 1)``."""
    return x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True, correction=0)


def reinhard_transfer(target_l: torch.Tensor, reference_lab: torch.Tensor) -> torch.Tensor:
    """Global colour-statistics transfer (Reinhard et al. 2001, CIELab variant).

    Args:
        target_l: ``(B, 1, H, W)`` float L in [0, 100] (a gray target), or ``(B, 3, H, W)``
            float CIELab (a colour target whose ab statistics are replaced).
        reference_lab: ``(1 | B, 3, Hr, Wr)`` float CIELab of the reference.

    Returns:
        ``(B, 2, H, W)`` float32 ab. For a gray target: the reference's mean ab everywhere.

    Raises:
        TypeError, ValueError: see :mod:`deepexemplar_core._checks`.

    Example:
        >>> ref = torch.cat([torch.rand(1, 1, 8, 8) * 100, torch.full((1, 2, 8, 8), 7.0)], 1)
        >>> reinhard_transfer(torch.rand(2, 1, 4, 4) * 100, ref)[0, :, 0, 0]
        tensor([7., 7.])
    """
    b, _ = _check_inputs(target_l, reference_lab)
    mu_r, sd_r = _stats(reference_lab[:, 1:].float())
    h, w = target_l.shape[-2:]
    if target_l.shape[1] == 1:
        return mu_r.expand(b, 2, h, w).contiguous()
    ab_t = target_l[:, 1:].float()
    mu_t, sd_t = _stats(ab_t)
    ratio = torch.where(sd_t > 1e-6, sd_r / sd_t.clamp_min(1e-6), torch.zeros_like(sd_t))
    return ratio * (ab_t - mu_t) + mu_r


def local_std(l: torch.Tensor, size: int = 5) -> torch.Tensor:
    """Standard deviation of ``l: (B, 1, H, W)`` in ``size x size`` windows (replicated borders).

    Example:
        >>> float(local_std(torch.full((1, 1, 6, 6), 3.0)).max())
        0.0
    """
    pad = size // 2
    x = F.pad(l.float(), (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(x, size, stride=1)
    mean_sq = F.avg_pool2d(x * x, size, stride=1)
    return (mean_sq - mean * mean).clamp_min(0.0).sqrt()


def _jittered_grid(h: int, w: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    """Flat indices of about ``samples`` pixels, one uniform draw per cell of a regular grid."""
    rows = max(1, min(h, round(math.sqrt(samples * h / w))))
    cols = max(1, min(w, round(samples / rows)))
    cy = torch.arange(rows, dtype=torch.float64).view(rows, 1)
    cx = torch.arange(cols, dtype=torch.float64).view(1, cols)
    jy = torch.rand(rows, cols, generator=gen, dtype=torch.float64)
    jx = torch.rand(rows, cols, generator=gen, dtype=torch.float64)
    y = ((cy + jy) * h / rows).floor().long().clamp(0, h - 1)
    x = ((cx + jx) * w / cols).floor().long().clamp(0, w - 1)
    return (y * w + x).flatten()


def welsh_transfer(
    target_l: torch.Tensor, reference_lab: torch.Tensor, *, samples: int = 200, seed: int = 0
) -> torch.Tensor:
    """Welsh et al. 2002 global transfer to a grayscale image (module docstring).

    Args:
        target_l: ``(B, 1, H, W)`` float L in [0, 100].
        reference_lab: ``(1 | B, 3, Hr, Wr)`` float CIELab.
        samples: about how many jittered reference samples (the paper uses about 200).
        seed: seed of the jitter (the result is deterministic for a given seed).

    Returns:
        ``(B, 2, H, W)`` float32 ab, each value one of the samples' ab.

    Raises:
        TypeError, ValueError: bad inputs or ``samples < 1``.

    Example:
        >>> ref = torch.cat([torch.rand(1, 1, 16, 16) * 100, torch.randn(1, 2, 16, 16)], 1)
        >>> welsh_transfer(torch.rand(2, 1, 8, 8) * 100, ref, samples=20).shape
        torch.Size([2, 2, 8, 8])
    """
    b, _ = _check_inputs(target_l, reference_lab)
    if target_l.shape[1] != 1:
        raise ValueError(f"target_l: expected (B, 1, H, W), got {tuple(target_l.shape)}")
    if samples < 1:
        raise ValueError(f"samples: expected >= 1, got {samples}")
    ref = reference_lab.float().expand(b, -1, -1, -1)
    tl = target_l.float()
    mu_t, sd_t = _stats(tl)
    mu_r, sd_r = _stats(ref[:, :1])
    lr = (sd_t / sd_r.clamp_min(1e-6)) * (ref[:, :1] - mu_r) + mu_t
    hr, wr = ref.shape[-2:]
    gen = torch.Generator().manual_seed(seed)
    index = _jittered_grid(hr, wr, samples, gen).to(ref.device)
    feat_r = torch.cat([lr, local_std(lr)], 1).flatten(2)[:, :, index] * 0.5
    ab_r = ref[:, 1:].flatten(2)[:, :, index]
    feat_t = torch.cat([tl, local_std(tl)], 1).flatten(2) * 0.5
    nearest = torch.cdist(feat_t.transpose(1, 2), feat_r.transpose(1, 2)).argmin(dim=2)
    ab = torch.gather(ab_r, 2, nearest.unsqueeze(1).expand(-1, 2, -1))
    return ab.view(b, 2, *tl.shape[-2:])
