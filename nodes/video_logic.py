"""Plain-function logic behind the video nodes; imports nothing from ComfyUI.

* :func:`smooth_image_batch`: a batch of colorized frames (ComfyUI ``IMAGE``, ``(B, H, W, 3)``)
  smoothed over time on the ab channels only; the luminance of every frame is kept.
* :func:`make_example_clip`: the small gray clip the video workflows load (generated from the
  pack's CC0 example photo, so no third-party clip has to ship).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .logic import NodeInputError

logger = logging.getLogger(__name__)

Report = Callable[[int, int], None]

#: File name of the generated example clip in ComfyUI's input folder.
EXAMPLE_CLIP = "deepexemplar_example_clip.mp4"

NODE = "VideoTemporalSmooth"


@dataclass(frozen=True)
class SmoothReport:
    """What the smoothing did, for the node's STRING output.

    Attributes:
        mode: the temporal mode.
        scene_cuts: indices of the frames that start a new shot.
        weight_means: mean temporal weight per frame (1.0 for the first frame of a shot).
    """

    mode: str
    scene_cuts: tuple[int, ...]
    weight_means: tuple[float, ...]

    def text(self) -> str:
        """One paragraph a user can read in a text preview node.

        >>> SmoothReport("fast", (3,), (1.0, 0.9, 0.8, 0.1)).text().splitlines()[0]
        'temporal smoothing: fast, 4 frames; scene cuts at frames: 3'
        """
        cuts = ", ".join(map(str, self.scene_cuts)) if self.scene_cuts else "none"
        head = (f"temporal smoothing: {self.mode}, {len(self.weight_means)} frames; "
                f"scene cuts at frames: {cuts}")
        lines = [head]
        if self.mode != "off" and len(self.weight_means) > 1:
            weights = torch.tensor(self.weight_means[1:])
            low = int(weights.argmin()) + 1
            lines.append(f"temporal weight per frame (1 = fully carried from the previous frame): "
                         f"min {float(weights.min()):.2f} (frame {low}), "
                         f"median {float(weights.median()):.2f}, max {float(weights.max()):.2f}")
        return "\n".join(lines)


def temporal_defaults():
    """``TemporalConfig()``: the core owns the defaults of the node's widgets."""
    from deepexemplar_core.temporal import TemporalConfig

    return TemporalConfig()


def make_temporal_config(mode: str, lam: float, flow_preset: str, scene_cut: float):
    """The core ``TemporalConfig`` of the node's widgets; bad values become NodeInputError."""
    try:
        from deepexemplar_core.temporal import TemporalConfig
    except ImportError as err:
        raise NodeInputError(NODE, f"temporal smoothing is not available in this install ({err}).",
                             "update the pack.") from err
    try:
        return TemporalConfig(mode=mode, lam=lam, flow_preset=flow_preset, scene_cut=scene_cut)
    except (TypeError, ValueError) as err:
        raise NodeInputError(NODE, str(err), "check this node's widgets.") from err


def _frames_to_core(images: object) -> torch.Tensor:
    """``IMAGE (B, H, W, 3)`` -> ``(B, 3, H, W)`` float32, with messages for ComfyUI users."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise NodeInputError(NODE, f"'images' expected an RGB IMAGE batch (B, H, W, 3), got {shape}.",
                             "connect the colorized frames (e.g. Exemplar Colorize's output).")
    if images.shape[0] == 0:
        raise NodeInputError(NODE, "'images' is an empty batch.", "connect at least one frame.")
    return images.movedim(-1, 1).float()


@torch.no_grad()
def smooth_image_batch(
    images: torch.Tensor,
    config,
    *,
    device: torch.device | str = "cpu",
    output_device: torch.device | str = "cpu",
    report: Report | None = None,
) -> tuple[torch.Tensor, SmoothReport]:
    """Smooth colorized frames over time; the luminance of each frame is kept.

    Every frame is converted to CIELab, its ab channels go through the core's streaming
    ``smooth_iter`` in batch order, and L (unchanged) and the smoothed ab are converted back
    to RGB (out-of-gamut colours lose chroma at constant L). One frame is on ``device`` at a time.

    Args:
        images: ``(B, H, W, 3)`` float in [0, 1], the frames in playing order.
        config: a ``deepexemplar_core.temporal.TemporalConfig``.
        device: where the smoothing runs.
        output_device: where the result batch is assembled (ComfyUI's intermediate device).
        report: called with ``(frames done, B)`` after each frame (may raise to interrupt).

    Returns:
        ``(images (B, H, W, 3) float32, SmoothReport)``; with mode ``off`` the input itself.
    """
    from deepexemplar_core import l_ab_to_rgb, rgb_to_lab, smooth_iter

    frames = _frames_to_core(images)
    count = frames.shape[0]
    if config.mode == "off":
        if report is not None:
            report(count, count)
        return images, SmoothReport("off", (), (1.0,) * count)
    out = torch.empty(images.shape, dtype=torch.float32, device=output_device)
    cuts, weights = [], []
    lums: list[torch.Tensor] = []  # the L of the frame inside smooth_iter

    def pairs():
        for index in range(count):
            lab = rgb_to_lab(frames[index:index + 1].to(device).clamp(0.0, 1.0))[0]
            lums.append(lab[:1])
            yield lab[:1], lab[1:]

    for index, step in enumerate(smooth_iter(pairs(), config, device=device)):
        l = lums.pop()
        if step.scene_cut:
            cuts.append(index)
        weights.append(step.weight_mean)
        rgb = l_ab_to_rgb(l, step.ab)
        out[index] = rgb.movedim(0, -1).to(output_device)
        if report is not None:
            report(index + 1, count)
    return out, SmoothReport(config.mode, tuple(cuts), tuple(weights))


def example_clip_frames(photo: torch.Tensor, count: int = 24, size: tuple[int, int] = (120, 160)):
    """Frames of a slow pan and zoom across ``photo``, for the example clip.

    Args:
        photo: ``(C, H, W)`` float in [0, 1], C = 1 or 3.
        count: number of frames.
        size: ``(height, width)`` of every frame.

    Yields:
        ``(3, height, width)`` float32 in [0, 1].

    >>> frames = list(example_clip_frames(torch.rand(1, 192, 192), count=3))
    >>> len(frames), frames[0].shape
    (3, torch.Size([3, 120, 160]))
    """
    height, width = photo.shape[-2:]
    aspect = size[1] / size[0]
    for index in range(count):
        t = index / max(count - 1, 1)
        crop_w = min(width, height * aspect) * (0.92 - 0.17 * t)  # zoom in by about 20 %
        crop_h = crop_w / aspect
        left = (width - crop_w) * (0.1 + 0.8 * t)  # pan left to right
        top = (height - crop_h) * (0.5 + 0.3 * t)
        theta = torch.tensor([[[crop_w / width, 0.0, (2 * left + crop_w) / width - 1.0],
                               [0.0, crop_h / height, (2 * top + crop_h) / height - 1.0]]])
        grid = F.affine_grid(theta, [1, photo.shape[0], *size], align_corners=False)
        frame = F.grid_sample(photo[None].float(), grid, mode="bilinear", align_corners=False)[0]
        yield frame.expand(3, -1, -1).clamp(0.0, 1.0)


def make_example_clip(photo_path: str | os.PathLike, output: str | os.PathLike,
                      count: int = 24, fps: int = 12) -> Path:
    """Write the gray example clip (H.264, ``count`` frames at ``fps``) from a photo, atomically.

    Args:
        photo_path: the pack's gray example photo (``workflows/images/deepexemplar_target_cat.jpg``).
        output: the ``.mp4`` file to write (its folder must exist).
        count: number of frames (24 at 12 fps: two seconds).
        fps: frame rate.

    Returns:
        ``output`` as a Path.
    """
    from deepexemplar_core import read_image
    from deepexemplar_core.video import write_video

    photo = read_image(photo_path).pixels
    if photo.shape[0] == 3:  # made gray: the workflows colorize it
        photo = torch.einsum("chw,c->hw", photo, torch.tensor([0.2126, 0.7152, 0.0722]))[None]
    write_video(output, example_clip_frames(photo, count), fps=fps, crf=16)
    return Path(output)
