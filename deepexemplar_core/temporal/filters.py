"""Fast low-pass filters for the temporal smoother: a Gaussian blur computed on a downsampled
grid, and the normalised (masked) low-pass built on it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_lowpass", "masked_lowpass"]

_KERNELS: dict[tuple[float, str], torch.Tensor] = {}


def _kernel(sigma: float, device: torch.device) -> torch.Tensor:
    key = (round(sigma, 4), str(device))
    k = _KERNELS.get(key)
    if k is None:
        radius = max(1, math.ceil(3.0 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        if len(_KERNELS) > 16:
            _KERNELS.clear()
        _KERNELS[key] = k
    return k


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(C, h, w)`` with replicate borders."""
    channels = x.shape[0]
    k = _kernel(sigma, x.device)
    radius = (k.numel() - 1) // 2
    xb = F.pad(x.unsqueeze(0), (radius, radius, 0, 0), mode="replicate")
    xb = F.conv2d(xb, k.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    xb = F.pad(xb, (0, 0, radius, radius), mode="replicate")
    xb = F.conv2d(xb, k.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return xb[0]


def _factor(sigma: float) -> int:
    """Downsampling factor that keeps at least 2 low-resolution pixels per sigma."""
    return max(1, int(sigma // 2))


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Approximate Gaussian blur: area-downsample, blur, bilinear upsample.

    Args:
        x: ``(C, H, W)`` float.
        sigma: standard deviation in full-resolution pixels (> 0).

    Returns:
        ``(C, H, W)`` the low-passed values (a constant stays exactly constant).

    Example:
        >>> y = gaussian_lowpass(torch.ones(2, 40, 50), 6.0)
        >>> bool(torch.allclose(y, torch.ones(2, 40, 50)))
        True
    """
    factor = _factor(sigma)
    if factor == 1:
        return _blur(x, sigma)
    _, height, width = x.shape
    pad_h, pad_w = (-height) % factor, (-width) % factor
    xp = F.pad(x.unsqueeze(0), (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x[None]
    small = F.avg_pool2d(xp, factor)[0]
    small = _blur(small, sigma / factor)
    up = F.interpolate(small[None], scale_factor=factor, mode="bilinear", align_corners=False)
    return up[0, :, :height, :width]


def masked_lowpass(
    values: torch.Tensor, weight: torch.Tensor, sigma: float, min_weight: float = 0.0
) -> torch.Tensor:
    """Normalised convolution: ``G*(w v) / max(G*w, min_weight)``.

    Where the blurred weight is at least ``min_weight`` this is the weighted local mean of
    ``values``; where the neighbourhood carries less weight the result fades towards 0.

    Args:
        values: ``(C, H, W)`` float.
        weight: ``(1, H, W)`` float in [0, 1].
        sigma: blur standard deviation in pixels.
        min_weight: floor of the denominator (> 0 keeps unsupported regions near 0).

    Returns:
        ``(C, H, W)`` low-passed values.
    """
    stacked = gaussian_lowpass(torch.cat((values * weight, weight)), sigma)
    return stacked[:-1] / stacked[-1:].clamp_min(max(min_weight, 1e-6))
