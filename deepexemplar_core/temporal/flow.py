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

    On the GPU this is ``torch.nn.functional.grid_sample``; on the CPU it is ``cv2.remap`` (the
    same bilinear interpolation with 1/32-pixel weights, several times faster than grid_sample on
    the CPU). Positions outside the frame take the nearest border value.

    Args:
        x: ``(C, H, W)`` float32 values on the source grid.
        flow: ``(2, H, W)`` float32 ``(dx, dy)`` in pixels, same device.

    Returns:
        ``(warped, inside)``: ``(C, H, W)`` the warped values and ``(1, H, W)`` bool, True where
        ``p + flow(p)`` lies in the frame.

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
    if x.device.type == "cpu":
        return _remap(x, pos), inside
    return _grid_sample(x, pos), inside


def _grid_sample(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of ``(C, H, W)`` at absolute pixel positions ``(2, H, W)``."""
    _, height, width = x.shape
    grid = torch.stack(
        (pos[0] * (2.0 / max(width - 1, 1)) - 1.0, pos[1] * (2.0 / max(height - 1, 1)) - 1.0),
        dim=-1,
    )
    out = F.grid_sample(
        x.unsqueeze(0).float(),
        grid.unsqueeze(0),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return out[0]


def _remap(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """:func:`_grid_sample` with OpenCV on the CPU (at most 4 channels per call)."""
    map_x, map_y = pos[0].numpy(), pos[1].numpy()
    src = x.detach().float().permute(1, 2, 0).contiguous().numpy()
    parts = []
    for c in range(0, src.shape[2], 4):
        chunk = np.ascontiguousarray(src[:, :, c : c + 4])
        out = cv2.remap(chunk, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        parts.append(torch.from_numpy(out.reshape(*out.shape[:2], -1)))
    return torch.cat(parts, dim=2).permute(2, 0, 1).contiguous()


def flow_consistent(flow_bw: torch.Tensor, flow_fw_warped: torch.Tensor) -> torch.Tensor:
    """Forward-backward consistency test (Sundaram et al. 2010; Lai et al. 2018's threshold).

    A pixel p of frame t is kept when following the backward flow to frame t-1 and the forward
    flow back lands near p: ``|f_fw(p + f_bw(p)) + f_bw(p)|^2 <= 0.01 (|f_fw(.)|^2 +
    |f_bw(p)|^2) + 0.5``.

    Args:
        flow_bw: ``(2, H, W)`` flow from frame t to frame t-1.
        flow_fw_warped: ``(2, H, W)`` the flow from frame t-1 to frame t, already warped onto
            frame t by ``flow_bw`` (``warp(flow_fw, flow_bw)``).

    Returns:
        ``(1, H, W)`` bool, True where the flows agree (not occluded).

    Example:
        >>> bw = torch.zeros(2, 4, 4); bw[0] = 2.0
        >>> bool(flow_consistent(bw, -bw).all()), bool(flow_consistent(bw, bw).any())
        (True, False)
    """
    mismatch = (flow_fw_warped + flow_bw).square().sum(0)
    scale = flow_fw_warped.square().sum(0) + flow_bw.square().sum(0)
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
