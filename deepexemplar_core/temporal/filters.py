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


def _downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-downsample ``(C, H, W)`` by ``factor`` (the last block row/column replicated)."""
    if factor == 1:
        return x
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    xp = F.pad(x[None], (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x[None]
    return F.avg_pool2d(xp, factor)[0]


def _upsample(x: torch.Tensor, factor: int, height: int, width: int) -> torch.Tensor:
    """Bilinear upsampling of a :func:`_downsample` result back to ``(H, W)``."""
    if factor == 1:
        return x
    up = F.interpolate(x[None], scale_factor=factor, mode="bilinear", align_corners=False)
    return up[0, :, :height, :width]


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
    small = _blur(_downsample(x, factor), sigma / factor)
    return _upsample(small, factor, *x.shape[-2:])


def masked_lowpass(
    values: torch.Tensor, weight: torch.Tensor, sigma: float, min_weight: float = 0.0
) -> torch.Tensor:
    """Normalised convolution: ``G*(w v) / max(G*w, min_weight)``.

    Where the blurred weight is at least ``min_weight`` this is the weighted local mean of
    ``values``; where the neighbourhood carries less weight the result fades towards 0. The
    ratio is formed on the downsampled grid and then upsampled.

    Args:
        values: ``(C, H, W)`` float.
        weight: ``(1, H, W)`` float in [0, 1].
        sigma: blur standard deviation in pixels.
        min_weight: floor of the denominator (> 0 keeps unsupported regions near 0).

    Returns:
        ``(C, H, W)`` low-passed values.

    Example:
        >>> v = torch.full((2, 30, 40), 3.0); w = torch.zeros(1, 30, 40); w[..., :20] = 1
        >>> out = masked_lowpass(v, w, 4.0, 0.25)
        >>> round(float(out[0, 15, 5]), 4), round(float(out[0, 15, 39]), 4)
        (3.0, 0.0)
    """
    factor = _factor(sigma)
    small = _blur(_downsample(torch.cat((values * weight, weight)), factor), sigma / factor)
    ratio = small[:-1] / small[-1:].clamp_min(max(min_weight, 1e-6))
    return _upsample(ratio, factor, *values.shape[-2:])
