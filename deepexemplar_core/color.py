"""sRGB (D65) <-> CIE Lab in PyTorch, batched and differentiable, as scikit-image computes it.

The authors convert with ``skimage.color.rgb2lab`` / ``lab2rgb`` (sRGB companding, the
``xyz_from_rgb`` matrix of scikit-image, the D65 2-degree white ``(0.95047, 1, 1.08883)`` and the
``7.787 t + 16/116`` linear segment). This module uses the very same constants so that the colour
network sees the numbers it was trained on; results agree with scikit-image to about 1e-4 in
float32.

Layout is channels-first: ``(B, 3, H, W)`` or a single image ``(3, H, W)``. Constants are created
on the input's device and dtype; float16/bfloat16 inputs are computed in float32 and returned in
their own dtype.
"""

from __future__ import annotations

import torch
from torch import nn

from deepexemplar_core._checks import check_floating, check_tensor

# scikit-image's sRGB -> XYZ matrix (colorconv.xyz_from_rgb) and D65 2-degree white point.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_RGB_FROM_XYZ = tuple(
    tuple(row)
    for row in torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)).tolist()
)

# Piecewise-curve breakpoints, exactly as scikit-image.
_SRGB_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308
_LAB_EPSILON = 0.008856
_LAB_F_KNEE = 0.2068966
_LAB_KAPPA = 7.787
_LAB_OFFSET = 16.0 / 116.0

GAMUT_MODES = ("compress", "clip", "none")
_GAMUT_SLACK_EPS = 8  # rounding slack (in machine epsilons) for "already inside the gamut"
_BISECTION_STEPS = 16  # chroma scale resolved to 2**-16


def _as_batch(name: str, value: object, channels: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
    """Validate a colour tensor and return it as ``(B, C, H, W)`` plus "was unbatched"."""
    tensor = check_tensor(name, value)
    check_floating(name, tensor)
    allowed = " or ".join(str(c) for c in channels)
    if tensor.dim() not in (3, 4) or tensor.shape[-3] not in channels:
        raise ValueError(
            f"{name}: expected (B, {allowed}, H, W) or ({allowed}, H, W), got {tuple(tensor.shape)}"
        )
    return (tensor.unsqueeze(0), True) if tensor.dim() == 3 else (tensor, False)


def _work_dtype(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` in a dtype precise enough for the conversion (float32 or float64)."""
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()


def _constant(values: tuple, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _mix_channels(matrix: tuple, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel dim of ``x: (B, 3, H, W)``."""
    return torch.einsum("ij,bjhw->bihw", _constant(matrix, x), x)


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    # clamp_min keeps the unused branch finite so gradients never see NaN.
    curve = ((c.clamp_min(_SRGB_KNEE) + 0.055) / 1.055) ** 2.4
    return torch.where(c > _SRGB_KNEE, curve, c / 12.92)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    curve = 1.055 * c.clamp_min(_LINEAR_KNEE) ** (1.0 / 2.4) - 0.055
    return torch.where(c > _LINEAR_KNEE, curve, c * 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    cube_root = t.clamp_min(_LAB_EPSILON) ** (1.0 / 3.0)
    return torch.where(t > _LAB_EPSILON, cube_root, _LAB_KAPPA * t + _LAB_OFFSET)


def _lab_f_inverse(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u > _LAB_F_KNEE, u**3, (u - _LAB_OFFSET) / _LAB_KAPPA)


def _lab_to_linear(lab: torch.Tensor, clip_negative_z: bool = False) -> torch.Tensor:
    """Lab ``(B, 3, H, W)`` -> linear sRGB ``(B, 3, H, W)`` (unbounded)."""
    fy = (lab[:, 0:1] + 16.0) / 116.0
    fx = lab[:, 1:2] / 500.0 + fy
    fz = fy - lab[:, 2:3] / 200.0
    if clip_negative_z:  # scikit-image sets negative f(Z) to 0 before inverting
        fz = fz.clamp_min(0.0)
    xyz = _lab_f_inverse(torch.cat([fx, fy, fz], dim=1)) * _constant(_WHITE_D65, lab).view(
        1, 3, 1, 1
    )
    return _mix_channels(_RGB_FROM_XYZ, xyz)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Convert sRGB to CIE Lab (D65, 2-degree observer), like ``skimage.color.rgb2lab``.

    Args:
        rgb: ``(B, 3, H, W)`` or ``(3, H, W)`` float in [0, 1] (values outside are converted
            by the same formulas, not checked).

    Returns:
        Lab of the same shape and dtype: L in [0, 100], a and b roughly in [-128, 127].

    Raises:
        TypeError: ``rgb`` is not a floating tensor.
        ValueError: ``rgb`` does not have 3 channels.

    Example:
        >>> lab = rgb_to_lab(torch.rand(2, 3, 8, 8))
        >>> lab.shape, bool(lab[:, 0].min() >= 0) and bool(lab[:, 0].max() <= 100)
        (torch.Size([2, 3, 8, 8]), True)
    """
    batch, unbatched = _as_batch("rgb", rgb, (3,))
    x = _work_dtype(batch)
    xyz = _mix_channels(_XYZ_FROM_RGB, _srgb_to_linear(x))
    f = _lab_f(xyz / _constant(_WHITE_D65, x).view(1, 3, 1, 1))
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    lab = torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
    lab = lab.to(rgb.dtype)
    return lab.squeeze(0) if unbatched else lab


def rgb_to_l(rgb: torch.Tensor) -> torch.Tensor:
    """CIE L* (luminance only) of sRGB images, equal to channel 0 of :func:`rgb_to_lab`.

    Cheaper than a full conversion (no X and Z). A one-channel input is an sRGB gray image
    (R = G = B = value).

    Args:
        rgb: ``(B, 3, H, W)``, ``(B, 1, H, W)``, ``(3, H, W)`` or ``(1, H, W)`` float in [0, 1].

    Returns:
        L: ``(B, 1, H, W)`` (or ``(1, H, W)`` for an unbatched input) in [0, 100], same dtype.

    Raises:
        TypeError: ``rgb`` is not a floating tensor.
        ValueError: ``rgb`` does not have 1 or 3 channels.

    Example:
        >>> rgb_to_l(torch.full((1, 1, 2, 2), 0.5))[0, 0, 0, 0].item()  # doctest: +ELLIPSIS
        53.38...
    """
    batch, unbatched = _as_batch("rgb", rgb, (1, 3))
    x = _work_dtype(batch)
    if x.shape[1] == 1:
        y = _srgb_to_linear(x)  # the Y row of the matrix sums to 1
    else:
        weights = _XYZ_FROM_RGB[1]
        y = sum(w * _srgb_to_linear(x[:, c : c + 1]) for c, w in enumerate(weights))
    lum = (116.0 * _lab_f(y) - 16.0).to(rgb.dtype)
    return lum.squeeze(0) if unbatched else lum


def _inside_gamut(linear: torch.Tensor, slack: float = 0.0) -> torch.Tensor:
    """``(N, 3, ...)`` linear RGB -> ``(N, ...)`` bool, True where all channels are in [0, 1]."""
    ok = (linear >= -slack) & (linear <= 1.0 + slack)
    return ok.all(dim=1)


def _max_chroma_scale(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Largest ``s`` in [0, 1] (to 2**-16) with ``(L, s*a, s*b)`` inside the sRGB gamut.

    Args:
        lightness: ``(N,)`` L in [0, 100]; ``s = 0`` (gray) is always inside.
        ab: ``(N, 2)`` chroma of colours known to be outside at ``s = 1``.

    Returns:
        ``(N,)`` scale; the colour at the returned scale is inside the gamut.
    """
    low = torch.zeros_like(lightness)
    high = torch.ones_like(lightness)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        lab = torch.cat([lightness[:, None], ab * mid[:, None]], dim=1)[:, :, None, None]
        ok = _inside_gamut(_lab_to_linear(lab))[:, 0, 0]
        low = torch.where(ok, mid, low)
        high = torch.where(ok, high, mid)
    return low


def compress_gamut(lab: torch.Tensor) -> torch.Tensor:
    """Bring out-of-gamut Lab colours into sRGB by reducing chroma at constant L and hue.

    Each pixel's ``(a, b)`` is multiplied by the largest factor in [0, 1] that keeps its linear
    sRGB in [0, 1] (vectorised bisection over the out-of-gamut pixels only, 16 steps, so the
    chroma is at most 2**-16 relatively below the gamut boundary). In-gamut pixels are returned
    unchanged (a rounding slack of 8 machine epsilons in linear RGB is accepted as inside, so a
    photo converted to Lab comes back bit for bit). L is clamped to [0, 100] first (no chroma can
    bring a lightness outside that range into the gamut).

    Gradients flow to L and to ``(a, b)`` through the multiplication; the factor itself is
    treated as a constant.

    Args:
        lab: ``(B, 3, H, W)`` or ``(3, H, W)`` float Lab.

    Returns:
        Lab of the same shape and dtype, inside the sRGB gamut.

    Raises:
        TypeError: ``lab`` is not a floating tensor.
        ValueError: ``lab`` does not have 3 channels.

    Example:
        >>> vivid = torch.tensor([50.0, 120.0, -120.0]).view(1, 3, 1, 1)
        >>> out = compress_gamut(vivid)
        >>> out[0, 0].item(), bool(out[0, 1].abs() < 120)
        (50.0, True)
    """
    batch, unbatched = _as_batch("lab", lab, (3,))
    x = _work_dtype(batch)
    x = torch.cat([x[:, 0:1].clamp(0.0, 100.0), x[:, 1:3]], dim=1)
    with torch.no_grad():
        slack = _GAMUT_SLACK_EPS * torch.finfo(x.dtype).eps
        outside = ~_inside_gamut(_lab_to_linear(x), slack)  # (B, H, W)
        scale = torch.ones_like(x[:, 0])
        if bool(outside.any()):
            pixels = x.detach().permute(0, 2, 3, 1)[outside]  # (N, 3)
            scale[outside] = _max_chroma_scale(pixels[:, 0], pixels[:, 1:3])
    out = torch.cat([x[:, 0:1], x[:, 1:3] * scale[:, None]], dim=1).to(lab.dtype)
    return out.squeeze(0) if unbatched else out


def lab_to_rgb(lab: torch.Tensor, gamut: str = "compress") -> torch.Tensor:
    """Convert CIE Lab (D65) to sRGB, like ``skimage.color.lab2rgb``.

    Args:
        lab: ``(B, 3, H, W)`` or ``(3, H, W)`` float Lab, L in [0, 100].
        gamut: what to do with colours sRGB cannot show:
            ``"compress"`` (default) reduces their chroma at constant L and hue
            (:func:`compress_gamut`) then clamps rounding residue;
            ``"clip"`` clips each channel to [0, 1] exactly as scikit-image (which first sets
            negative f(Z) to 0), i.e. the authors' behaviour;
            ``"none"`` returns the unbounded values (for losses and tests).

    Returns:
        RGB of the same shape and dtype, in [0, 1] unless ``gamut="none"``.

    Raises:
        TypeError: ``lab`` is not a floating tensor.
        ValueError: wrong channel count, or ``gamut`` is not one of the modes above.

    Example:
        >>> rgb = torch.rand(1, 3, 4, 4)
        >>> bool(torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4))
        True
    """
    if gamut not in GAMUT_MODES:
        raise ValueError(f"gamut: expected one of {GAMUT_MODES}, got {gamut!r}")
    batch, unbatched = _as_batch("lab", lab, (3,))
    x = _work_dtype(batch)
    if gamut == "compress":
        x = compress_gamut(x)
    rgb = _linear_to_srgb(_lab_to_linear(x, clip_negative_z=gamut == "clip"))
    if gamut != "none":
        rgb = rgb.clamp(0.0, 1.0)
    rgb = rgb.to(lab.dtype)
    return rgb.squeeze(0) if unbatched else rgb


#: Rows of a full-resolution image converted at once by :func:`l_ab_to_rgb` (bounds memory).
_TILE_ROWS = 1024


def l_ab_to_rgb(l: torch.Tensor, ab: torch.Tensor, gamut: str = "compress") -> torch.Tensor:
    """A colorized image from its planes: ``L (1, H, W)`` and ``ab (2, H, W)`` -> sRGB.

    The one conversion of a colorized result to RGB (the pipeline, the ``video`` command and the
    ComfyUI nodes all use it). Rows are converted in tiles of 1024, so that memory stays bounded
    for very large images; ``ab`` moves to ``l``'s device.

    Args:
        l: ``(1, H, W)`` float CIELab L in [0, 100].
        ab: ``(2, H, W)`` float CIELab a/b.
        gamut: as in :func:`lab_to_rgb` (``"compress"`` keeps L exact and lowers the chroma of
            colours sRGB cannot show).

    Returns:
        ``(3, H, W)`` float32 sRGB in [0, 1].

    Example:
        >>> l_ab_to_rgb(torch.full((1, 4, 5), 50.0), torch.zeros(2, 4, 5)).shape
        torch.Size([3, 4, 5])
    """
    if l.dim() != 3 or l.shape[0] != 1 or ab.dim() != 3 or ab.shape[0] != 2 \
            or l.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"l, ab: expected (1, H, W) and (2, H, W), got {tuple(l.shape)} and "
                         f"{tuple(ab.shape)}")
    ab = ab.to(l.device)
    rgb = torch.empty((3, *l.shape[-2:]), dtype=torch.float32, device=l.device)
    for top in range(0, rgb.shape[-2], _TILE_ROWS):
        rows = slice(top, top + _TILE_ROWS)
        lab = torch.cat([l[:, rows], ab[:, rows]]).unsqueeze(0)
        rgb[:, rows] = lab_to_rgb(lab, gamut=gamut)[0]
    return rgb.clamp_(0.0, 1.0)


class RgbToLab(nn.Module):
    """Module form of :func:`rgb_to_lab` (no parameters)."""

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """See :func:`rgb_to_lab`."""
        return rgb_to_lab(rgb)


class LabToRgb(nn.Module):
    """Module form of :func:`lab_to_rgb`.

    Args:
        gamut: ``"compress"``, ``"clip"`` or ``"none"`` (see :func:`lab_to_rgb`).
    """

    def __init__(self, gamut: str = "compress") -> None:
        super().__init__()
        if gamut not in GAMUT_MODES:
            raise ValueError(f"gamut: expected one of {GAMUT_MODES}, got {gamut!r}")
        self.gamut = gamut

    def forward(self, lab: torch.Tensor) -> torch.Tensor:
        """See :func:`lab_to_rgb`."""
        return lab_to_rgb(lab, gamut=self.gamut)

    def extra_repr(self) -> str:
        """Show the gamut mode in the module's repr."""
        return f"gamut={self.gamut!r}"
