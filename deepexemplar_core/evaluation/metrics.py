"""Quality metrics of a colorization against the original colour image.

Formulas (per image; ``N`` pixels):

* **ab PSNR**: ``10 * log10(255^2 / MSE_ab)`` with ``MSE_ab = mean over pixels and the two
  channels a, b of (ab_pred - ab_true)^2``, ab in CIELab units (the a/b span is about 255).
* **RGB PSNR**: ``10 * log10(1 / MSE_rgb)`` for sRGB in [0, 1] (equal to the 8-bit form with
  peak 255), ``MSE_rgb`` over pixels and the three channels.
  Both PSNRs are ``+inf`` for identical images.
* **SSIM**: ``skimage.metrics.structural_similarity`` on ``(H, W, 3)`` sRGB in [0, 1]
  (``channel_axis=-1``, ``data_range=1``, its default 7x7 uniform window).
* **Colourfulness** (Hasler and Suesstrunk 2003), on sRGB scaled to [0, 255] in **R, G, B
  order**: ``rg = R - G``, ``yb = (R + G) / 2 - B``,
  ``CF = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)`` (population sd).
  ``variant="signed"`` is that formula (the paper's); ``variant="abs"`` uses ``|rg|`` and
  ``|yb|``, the variant used by DDColor, ColorMNet and PyImageSearch. Report which one.
* **Classifier top-5 agreement**: 1 when the classifier's top-1 class on the original image is
  among its top-5 classes on the colorized image, else 0 (top-5 accuracy with the original's
  prediction as the label).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks

__all__ = [
    "COLORFULNESS_VARIANTS",
    "ab_psnr",
    "colorfulness",
    "finite_mean",
    "rgb_psnr",
    "ssim",
    "top5_agreement",
]

COLORFULNESS_VARIANTS = ("signed", "abs")


def _pair(name: str, pred: torch.Tensor, true: torch.Tensor, channels: int) -> None:
    bound = _checks.check_shape(f"{name}_pred", pred, ("B", channels, "H", "W"))
    _checks.check_shape(f"{name}_true", true, (bound["B"], channels, bound["H"], bound["W"]))
    _checks.check_floating(f"{name}_pred", pred)
    _checks.check_floating(f"{name}_true", true)
    _checks.check_nonempty(f"{name}_pred", pred)


def _psnr(mse: torch.Tensor, peak: float) -> torch.Tensor:
    return 10.0 * torch.log10(peak**2 / mse)  # mse == 0 -> +inf


def ab_psnr(ab_pred: torch.Tensor, ab_true: torch.Tensor) -> torch.Tensor:
    """PSNR of the chroma in CIELab units, peak 255 (module docstring).

    Args:
        ab_pred: ``(B, 2, H, W)`` float a/b.
        ab_true: ``(B, 2, H, W)`` float a/b of the original.

    Returns:
        ``(B,)`` float64 dB (``inf`` where identical).

    Example:
        >>> ab = torch.zeros(1, 2, 4, 4)
        >>> round(float(ab_psnr(ab + 2.55, ab)), 6)
        40.0
    """
    _pair("ab", ab_pred, ab_true, 2)
    mse = ((ab_pred.double() - ab_true.double()) ** 2).mean(dim=(1, 2, 3))
    return _psnr(mse, 255.0)


def rgb_psnr(rgb_pred: torch.Tensor, rgb_true: torch.Tensor) -> torch.Tensor:
    """PSNR of sRGB in [0, 1], peak 1 (module docstring).

    Args:
        rgb_pred: ``(B, 3, H, W)`` float in [0, 1].
        rgb_true: ``(B, 3, H, W)`` float in [0, 1].

    Returns:
        ``(B,)`` float64 dB (``inf`` where identical).

    Example:
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> round(float(rgb_psnr(x + 0.1, x)), 6)
        20.0
    """
    _pair("rgb", rgb_pred, rgb_true, 3)
    mse = ((rgb_pred.double() - rgb_true.double()) ** 2).mean(dim=(1, 2, 3))
    return _psnr(mse, 1.0)


def ssim(rgb_pred: torch.Tensor, rgb_true: torch.Tensor) -> torch.Tensor:
    """Structural similarity of sRGB images with scikit-image (module docstring).

    Args:
        rgb_pred: ``(B, 3, H, W)`` float in [0, 1]; sides >= 7.
        rgb_true: ``(B, 3, H, W)`` float in [0, 1].

    Returns:
        ``(B,)`` float64 in [-1, 1] (1 for identical images).

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> float(ssim(x, x))
        1.0
    """
    from skimage.metrics import structural_similarity

    _pair("rgb", rgb_pred, rgb_true, 3)
    p = rgb_pred.detach().double().permute(0, 2, 3, 1).cpu().numpy()
    t = rgb_true.detach().double().permute(0, 2, 3, 1).cpu().numpy()
    values = [structural_similarity(a, b, channel_axis=-1, data_range=1.0) for a, b in zip(p, t)]
    return torch.tensor(values, dtype=torch.float64)


def colorfulness(rgb: torch.Tensor, variant: str = "signed") -> torch.Tensor:
    """Hasler and Suesstrunk colourfulness of sRGB images in R, G, B channel order.

    Args:
        rgb: ``(B, 3, H, W)`` float sRGB in [0, 1], channels **R, G, B**.
        variant: ``"signed"`` (the paper) or ``"abs"`` (``|rg|``, ``|yb|``, as DDColor).

    Returns:
        ``(B,)`` float64 (0 for a gray image; about 85.5 for pure red).

    Example:
        >>> red = torch.zeros(1, 3, 4, 4); red[:, 0] = 1
        >>> round(float(colorfulness(red)), 2)
        85.53
    """
    _checks.check_shape("rgb", rgb, ("B", 3, "H", "W"))
    _checks.check_floating("rgb", rgb)
    _checks.check_nonempty("rgb", rgb)
    if variant not in COLORFULNESS_VARIANTS:
        raise ValueError(f"variant: expected one of {COLORFULNESS_VARIANTS}, got {variant!r}")
    x = rgb.double() * 255.0
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    if variant == "abs":
        rg, yb = rg.abs(), yb.abs()
    dims = (1, 2)
    sd = torch.sqrt(rg.var(dim=dims, correction=0) + yb.var(dim=dims, correction=0))
    mean = torch.sqrt(rg.mean(dim=dims) ** 2 + yb.mean(dim=dims) ** 2)
    return sd + 0.3 * mean


def top5_agreement(logits_pred: torch.Tensor, logits_true: torch.Tensor) -> torch.Tensor:
    """Whether the original's top-1 class is in the colorized image's top-5 (module docstring).

    Args:
        logits_pred: ``(B, K)`` classifier logits of the colorized images (K >= 5).
        logits_true: ``(B, K)`` logits of the original colour images.

    Returns:
        ``(B,)`` float64, 1.0 or 0.0.

    Example:
        >>> a = torch.arange(10.0).view(1, 10)
        >>> top5_agreement(a, a), top5_agreement(a, -a)
        (tensor([1.], dtype=torch.float64), tensor([0.], dtype=torch.float64))
    """
    bound = _checks.check_shape("logits_pred", logits_pred, ("B", "K"))
    _checks.check_shape("logits_true", logits_true, (bound["B"], bound["K"]))
    if bound["K"] < 5:
        raise ValueError(f"logits_pred: expected at least 5 classes, got {bound['K']}")
    label = logits_true.argmax(dim=1, keepdim=True)
    top5 = logits_pred.topk(5, dim=1).indices
    return (top5 == label).any(dim=1).double()


def finite_mean(values: list[float] | np.ndarray) -> float:
    """Mean of the finite values (PSNR ``inf`` of identical images is left out); NaN if none."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan
