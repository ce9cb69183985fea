"""Optical flow between video frames, backward warping and the forward-backward occlusion test.

Flow is computed on the CPU with OpenCV's DIS (Kroeger et al. 2016, ``cv2.DISOpticalFlow``) on the
8-bit luminance, at most ``max_width`` pixels wide, then resized and rescaled to the frame size.
Everything after that (warping, masks, weights) is torch on the frame's device.

Conventions: a flow is ``(2, H, W)`` float32 ``(dx, dy)`` in pixels. The flow ``f`` from ``src``
to ``dst`` says that ``src(p) ~ dst(p + f(p))``; the *backward* flow of frame t is the flow from
frame t to frame t-1, so ``warp(x_{t-1}, f_bw)`` brings frame t-1's values onto frame t's grid.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "FLOW_PRESETS",
    "DisFlow",
    "flow_consistent",
    "luminance_u8",
    "warp",
    "warp_weight",
]

#: ``flow_preset`` names and the OpenCV DIS presets they select.
FLOW_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def luminance_u8(l: torch.Tensor) -> np.ndarray:
    """CIELab L to the 8-bit gray image DIS works on.

    Args:
        l: ``(1, H, W)`` float in [0, 100], any device.

    Returns:
        ``(H, W)`` uint8 numpy array, C-contiguous, ``round(2.55 * L)``.

    Example:
        >>> luminance_u8(torch.full((1, 2, 3), 100.0))[0, 0]
        np.uint8(255)
    """
    scaled = (l[0].detach().float() * 2.55).round().clamp(0, 255)
    return np.ascontiguousarray(scaled.to(torch.uint8).cpu().numpy())


class DisFlow:
    """Dense optical flow with OpenCV DIS at a bounded width.

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (see :data:`FLOW_PRESETS`).
        max_width: the flow is computed on images downscaled (area) to at most this width and
            then upsampled (bilinear) and rescaled to the full size.
    """

    def __init__(self, preset: str = "medium", max_width: int = 960) -> None:
        if preset not in FLOW_PRESETS:
            raise ValueError(f"flow_preset: expected one of {sorted(FLOW_PRESETS)}, got {preset!r}")
        if max_width < 16:
            raise ValueError(f"flow_width: expected >= 16 pixels, got {max_width}")
        self.preset = preset
        self.max_width = int(max_width)
        self._dis = cv2.DISOpticalFlow_create(FLOW_PRESETS[preset])

    def _small(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        if width <= self.max_width:
            return image
        small_h = max(8, round(height * self.max_width / width))
        return cv2.resize(image, (self.max_width, small_h), interpolation=cv2.INTER_AREA)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from ``src`` to ``dst`` (``src(p) ~ dst(p + f(p))``).

        Args:
            src: ``(H, W)`` uint8.
            dst: ``(H, W)`` uint8, same size.

        Returns:
            ``(H, W, 2)`` float32 numpy ``(dx, dy)`` in full-resolution pixels.
        """
        height, width = src.shape
        small_src, small_dst = self._small(src), self._small(dst)
        flow = self._dis.calc(small_src, small_dst, None)
        small_h, small_w = small_src.shape
        if (small_h, small_w) != (height, width):
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= width / small_w
            flow[..., 1] *= height / small_h
        return flow


_GRIDS: dict[tuple[int, int, str], torch.Tensor] = {}


def _base_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """``(2, H, W)`` pixel coordinates ``(x, y)``, cached per size and device."""
    key = (height, width, str(device))
    grid = _GRIDS.get(key)
    if grid is None:
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float32, device=device),
            torch.arange(width, dtype=torch.float32, device=device),
            indexing="ij",
        )
        grid = torch.stack((xs, ys))
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def warp(x: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward-warp ``x`` by ``flow``: ``out(p) = x(p + flow(p))``, bilinear.

    Args:
        x: ``(C, H, W)`` float values on the source grid.
        flow: ``(2, H, W)`` float32 ``(dx, dy)`` in pixels, same device.

    Returns:
        ``(warped, inside)``: ``(C, H, W)`` the warped values (border-clamped where the flow
        leaves the frame) and ``(1, H, W)`` bool, True where ``p + flow(p)`` lies in the frame.

    Example:
        >>> x = torch.arange(12.0).reshape(1, 3, 4)
        >>> flow = torch.zeros(2, 3, 4); flow[0] = 1.0      # look one pixel to the right
        >>> out, inside = warp(x, flow)
        >>> out[0, 0].tolist(), inside[0, 0].tolist()
        ([1.0, 2.0, 3.0, 3.0], [True, True, True, False])
    """
    _, height, width = x.shape
    pos = _base_grid(height, width, x.device) + flow
    inside = (
        (pos[0] >= 0) & (pos[0] <= width - 1) & (pos[1] >= 0) & (pos[1] <= height - 1)
    ).unsqueeze(0)
    grid = torch.stack(
        (pos[0] * (2.0 / max(width - 1, 1)) - 1.0, pos[1] * (2.0 / max(height - 1, 1)) - 1.0),
        dim=-1,
    )
    out = F.grid_sample(
        x.unsqueeze(0), grid.unsqueeze(0), mode="bilinear", padding_mode="border",
        align_corners=True,
    )
    return out[0], inside


def flow_consistent(flow_bw: torch.Tensor, flow_fw: torch.Tensor) -> torch.Tensor:
    """Forward-backward consistency test (Sundaram et al. 2010; Lai et al. 2018's threshold).

    A pixel p of frame t is kept when following the backward flow to frame t-1 and the forward
    flow back lands near p: ``|f_fw(p + f_bw(p)) + f_bw(p)|^2 <= 0.01 (|f_fw(.)|^2 +
    |f_bw(p)|^2) + 0.5``.

    Args:
        flow_bw: ``(2, H, W)`` flow from frame t to frame t-1.
        flow_fw: ``(2, H, W)`` flow from frame t-1 to frame t.

    Returns:
        ``(1, H, W)`` bool, True where the flows agree (not occluded).
    """
    fw_at_p, _ = warp(flow_fw, flow_bw)
    mismatch = (fw_at_p + flow_bw).square().sum(0)
    scale = fw_at_p.square().sum(0) + flow_bw.square().sum(0)
    return (mismatch <= 0.01 * scale + 0.5).unsqueeze(0)


def warp_weight(l: torch.Tensor, l_prev_warped: torch.Tensor, sigma: float) -> torch.Tensor:
    """Bonneel et al.'s temporal weight from the luminance warp error.

    Args:
        l: ``(1, H, W)`` L of frame t in [0, 100].
        l_prev_warped: ``(1, H, W)`` L of frame t-1 warped onto frame t.
        sigma: width of the Gaussian in L units (Bonneel's 0.05 on [0, 1] is 5).

    Returns:
        ``(1, H, W)`` ``exp(-(l - l_prev_warped)^2 / (2 sigma^2))`` in [0, 1].
    """
    return torch.exp((l - l_prev_warped).square() * (-0.5 / (sigma * sigma)))
