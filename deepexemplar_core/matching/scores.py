"""Shared pieces of the patch score used by every matching method.

``score(p, q) = (1 / k^2) * sum_{d in [-r, r]^2} < A[clampA(p + d)], B[clampB(q + d)] >`` with
``r = k // 2`` and per-image edge clamping. Replicate padding by ``r`` turns the clamps into
plain indexing: with ``Ap = pad(A, r)`` and ``Bp = pad(B, r)`` (edge replication),
``score(p, q) = (1 / k^2) * sum_d < Ap[p + d + r], Bp[q + d + r] >`` for every ``p`` in A and
``q`` in B.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_finite, check_floating, check_nonempty, check_shape


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """Normalise every pixel's feature vector to unit length, in float32.

    Args:
        features: ``(B, C, H, W)`` float features.

    Returns:
        ``(B, C, H, W)`` float32, ``x / max(||x||, 1e-8)`` along C.

    Example:
        >>> x = l2_normalize(torch.rand(1, 4, 3, 3))
        >>> bool(torch.allclose(x.norm(dim=1), torch.ones(1, 3, 3)))
        True
    """
    x = features.float()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)


def check_patch_size(patch_size: int) -> int:
    """Return ``patch_size`` if it is a positive odd int, else raise ``ValueError``."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int):
        raise TypeError(f"patch_size: expected an odd int, got {type(patch_size).__name__}")
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(
            f"patch_size: expected a positive odd int (1, 3, 5, ...), got {patch_size}"
        )
    return patch_size


def check_pair(source: torch.Tensor, target: torch.Tensor) -> int:
    """Validate a source/target feature pair and return the broadcast batch size.

    Either batch may be 1 (it is shared by every item of the other); otherwise they must agree.

    Raises:
        TypeError: not float tensors.
        ValueError: wrong rank, channel mismatch, batch mismatch, empty or non-finite input.
    """
    src = check_shape("source", source, ("B", "C", "H", "W"))
    tgt = check_shape("target", target, ("B", "C", "H", "W"))
    for name, value in (("source", source), ("target", target)):
        check_floating(name, value)
        check_nonempty(name, value)
        check_finite(name, value)
    if src["C"] != tgt["C"]:
        raise ValueError(
            f"source ({src['C']} channels) and target ({tgt['C']} channels) must have the same "
            "number of channels; pass features of the same pyramid level"
        )
    if src["B"] != tgt["B"] and 1 not in (src["B"], tgt["B"]):
        raise ValueError(
            f"source batch ({src['B']}) and target batch ({tgt['B']}) must be equal or one of "
            "them must be 1"
        )
    return max(src["B"], tgt["B"])


def check_field(name: str, field: torch.Tensor, batch: int, height: int, width: int) -> None:
    """Raise unless ``field`` is an integer ``(batch, height, width, 2)`` tensor."""
    check_shape(name, field, (batch, height, width, 2))
    if field.is_floating_point() or field.dtype == torch.bool:
        raise TypeError(
            f"{name}: expected an integer dtype (int64 (y, x) field), got {field.dtype}"
        )


def clamp_field(field: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clamp an absolute ``(..., 2)`` (y, x) int64 field into a ``height x width`` image."""
    y = field[..., 0].clamp(0, height - 1)
    x = field[..., 1].clamp(0, width - 1)
    return torch.stack((y, x), dim=-1)


def padded_rows(features: torch.Tensor, radius: int) -> torch.Tensor:
    """Replicate-pad by ``radius`` and lay out channels last.

    Args:
        features: ``(B, C, H, W)`` float32.
        radius: padding on every side, ``>= 0``.

    Returns:
        ``(B, H + 2 * radius, W + 2 * radius, C)`` contiguous float32.
    """
    if radius > 0:
        features = F.pad(features, (radius, radius, radius, radius), mode="replicate")
    return features.permute(0, 2, 3, 1).contiguous()


def diagonal_patch_sums(pixel_scores: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Patch scores from pixel cosines of padded maps by summing the k^2 diagonal shifts.

    ``out[..., y, x, y2, x2] = (1 / k^2) * sum_{dy, dx < k} s[..., y + dy, x + dx, y2 + dy, x2 + dx]``,
    done separably (k shifts along x, then k along y).

    Args:
        pixel_scores: ``(..., ha + 2r, wa + 2r, hb + 2r, wb + 2r)`` float32 cosines between
            padded source rows and padded target rows.
        patch_size: odd ``k``.

    Returns:
        ``(..., ha, wa, hb, wb)`` float32 patch scores.
    """
    k = patch_size
    hap, wap, hbp, wbp = pixel_scores.shape[-4:]
    ha, wa, hb, wb = hap - k + 1, wap - k + 1, hbp - k + 1, wbp - k + 1
    u = pixel_scores[..., 0:wa, :, 0:wb].clone()
    for dx in range(1, k):
        u += pixel_scores[..., dx : dx + wa, :, dx : dx + wb]
    v = u[..., 0:ha, :, 0:hb, :].clone()
    for dy in range(1, k):
        v += u[..., dy : dy + ha, :, dy : dy + hb, :]
    return v.mul_(1.0 / (k * k))
