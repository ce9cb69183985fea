"""The authors' gray VGG19-BN (similarity sub-net backbone), ``original-code-facts.md`` section B.

Layout of the Caffe model ``vgg19_bn_gray_ft_iter_150000.caffemodel``:

* ``data_bn``: the learned input normalisation (Caffe ``data/bn`` + ``data/scale`` folded into
  one ``BatchNorm2d(3, affine=True)``);
* the 16 VGG19 convolutions ``conv1_1 ... conv5_4``, each followed by ``<conv>_bn`` =
  ``BatchNorm2d(C, affine=False)`` (Caffe BatchNorm without Scale) and a ReLU;
* ``MaxPool2d(2, 2, ceil_mode=True)`` after each block (Caffe rounds pooled sizes up);
* optionally ``fc6``/``fc6_bn``/``fc7``/``fc7_bn``/``fc8`` (used by reference recommendation).

The module's state-dict keys are the safetensors keys written by ``deepexemplar convert``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_floating, check_min_size, check_nonempty, check_shape
from ..structures import FeaturePyramid

logger = logging.getLogger(__name__)

#: The convolutions per block, in order, with their output channels.
VGG_BLOCKS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("conv1_1", 64), ("conv1_2", 64)),
    (("conv2_1", 128), ("conv2_2", 128)),
    (("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), ("conv3_4", 256)),
    (("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), ("conv4_4", 512)),
    (("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512), ("conv5_4", 512)),
)
#: Names of the post-BN post-ReLU conv outputs, in network order.
CONV_OUTPUTS: tuple[str, ...] = tuple(
    "relu" + name[4:] for block in VGG_BLOCKS for name, _ in block
)
#: Every output ``GrayVGG19BN.forward`` can return, in network order.
ALL_OUTPUTS: tuple[str, ...] = CONV_OUTPUTS + ("pool5", "fc6", "fc7", "logits")
#: The pyramid levels used for matching and similarity (fine to coarse) and their strides.
PYRAMID_LEVELS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PYRAMID_STRIDES: tuple[int, ...] = (1, 2, 4, 8, 16)
BN_EPS = 1e-5
FC_GRID = 7


def encode_vgg_input(l: torch.Tensor) -> torch.Tensor:
    """Encode CIELab luminance as the gray VGG's input: ``L * 255 / 100`` in all 3 channels.

    The authors feed OpenCV's 8-bit L (0..255) replicated to 3 channels with zero mean
    subtraction (section B); we keep float precision instead of rounding to 8 bits.

    Args:
        l: ``(B, 1, H, W)`` float luminance in [0, 100].

    Returns:
        ``(B, 3, H, W)`` same dtype, values in [0, 255].

    Example:
        >>> encode_vgg_input(torch.full((1, 1, 2, 2), 100.0))[0, :, 0, 0]
        tensor([255., 255., 255.])
    """
    check_shape("l", l, ("B", 1, "H", "W"))
    check_floating("l", l)
    return (l * (255.0 / 100.0)).expand(-1, 3, -1, -1)


class GrayVGG19BN(nn.Module):
    """Gray VGG19 with BatchNorm after every convolution, as the authors' Caffe model.

    The module is created in ``eval()`` mode (BatchNorm uses the stored running statistics)
    and satisfies the :class:`~deepexemplar_core.structures.Backbone` protocol.

    Args:
        with_classifier: build ``fc6``..``fc8`` (needed for ``"fc6"``, ``"fc7"``, ``"logits"``
            outputs and recommendation; adds about 480 MB of float32 weights).

    Attributes:
        family: ``"paper"``.
        min_size: 16, the coarsest pyramid stride.

    Example:
        >>> net = GrayVGG19BN(with_classifier=False)
        >>> out = net(torch.rand(1, 1, 32, 40) * 100, outputs=("relu1_1", "relu3_1"))
        >>> tuple(out["relu3_1"].shape)
        (1, 256, 8, 10)
    """

    family = "paper"
    name = "gray_vgg"
    min_size = 16

    def __init__(self, with_classifier: bool = True) -> None:
        super().__init__()
        self.with_classifier = bool(with_classifier)
        self.data_bn = nn.BatchNorm2d(3, eps=BN_EPS, affine=True)
        in_channels = 3
        for block in VGG_BLOCKS:
            for name, out_channels in block:
                self.add_module(name, nn.Conv2d(in_channels, out_channels, 3, 1, 1))
                bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, affine=False)
                self.add_module(f"{name}_bn", bn)
                in_channels = out_channels
        if self.with_classifier:
            self.fc6 = nn.Linear(512 * FC_GRID * FC_GRID, 4096)
            self.fc6_bn = nn.BatchNorm1d(4096, eps=BN_EPS, affine=False)
            self.fc7 = nn.Linear(4096, 4096)
            self.fc7_bn = nn.BatchNorm1d(4096, eps=BN_EPS, affine=False)
            self.fc8 = nn.Linear(4096, 1000)
        self.eval()

    def forward(
        self, l: torch.Tensor, outputs: Sequence[str] = PYRAMID_LEVELS
    ) -> dict[str, torch.Tensor]:
        """Run the network up to the deepest requested output.

        Args:
            l: ``(B, 1, H, W)`` float luminance in [0, 100].
            outputs: names among ``relu1_1 .. relu5_4`` (post-BN, post-ReLU), ``"pool5"``,
                ``"fc6"``/``"fc7"`` (post-BN, post-ReLU, 4096-d) and ``"logits"`` (fc8, 1000-d).
                The fc outputs need a 7x7 ``pool5``: exact at 224x224 input as in Caffe; at
                other sizes ``pool5`` is adaptively max-pooled to 7x7 (our deviation).

        Returns:
            ``{name: tensor}`` for each requested name: conv outputs ``(B, C, h, w)`` with
            ``h = ceil(H / stride)``; fc outputs ``(B, 4096)`` or ``(B, 1000)``.

        Raises:
            ValueError: bad shape, unknown output name, or an fc output without classifier.
        """
        wanted = self._check_outputs(outputs)
        check_shape("l", l, ("B", 1, "H", "W"))
        check_floating("l", l)
        check_nonempty("l", l)
        deepest = max(ALL_OUTPUTS.index(name) for name in wanted)
        param = self.data_bn.weight
        x = self.data_bn(encode_vgg_input(l.to(device=param.device, dtype=param.dtype)))
        result: dict[str, torch.Tensor] = {}
        step = 0
        for block in VGG_BLOCKS:
            for name, _ in block:
                x = F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))
                out_name = CONV_OUTPUTS[step]
                if out_name in wanted:
                    result[out_name] = x
                if step == deepest:
                    return result
                step += 1
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        result.update(self._head(x, wanted, deepest))
        return result

    def _check_outputs(self, outputs: Sequence[str]) -> set[str]:
        if isinstance(outputs, str):
            outputs = (outputs,)
        wanted = set(outputs)
        unknown = sorted(wanted - set(ALL_OUTPUTS))
        if unknown or not wanted:
            raise ValueError(
                f"outputs: expected a non-empty subset of {ALL_OUTPUTS}, got unknown {unknown}"
            )
        needs_fc = wanted & {"fc6", "fc7", "logits"}
        if needs_fc and not self.with_classifier:
            raise ValueError(
                f"outputs: {sorted(needs_fc)} need the classifier; build "
                "GrayVGG19BN(with_classifier=True) and load weights converted with fc layers"
            )
        return wanted

    def _head(self, pool5: torch.Tensor, wanted: set[str], deepest: int) -> dict[str, torch.Tensor]:
        result: dict[str, torch.Tensor] = {}
        if "pool5" in wanted:
            result["pool5"] = pool5
        if deepest <= ALL_OUTPUTS.index("pool5"):
            return result
        if pool5.shape[-2:] != (FC_GRID, FC_GRID):
            logger.debug("pool5 is %s, adaptive max pooling to 7x7", tuple(pool5.shape[-2:]))
            pool5 = F.adaptive_max_pool2d(pool5, FC_GRID)
        fc6 = F.relu(self.fc6_bn(self.fc6(pool5.flatten(1))))
        result["fc6"] = fc6
        if "fc7" in wanted or "logits" in wanted:
            result["fc7"] = F.relu(self.fc7_bn(self.fc7(fc6)))
        if "logits" in wanted:
            result["logits"] = self.fc8(result["fc7"])
        return {name: value for name, value in result.items() if name in wanted}

    def pyramid(self, l: torch.Tensor) -> FeaturePyramid:
        """Matching/similarity features relu1_1..relu5_1, fine to coarse.

        Args:
            l: ``(B, 1, H, W)`` float luminance in [0, 100], both sides >= 16.

        Returns:
            :class:`FeaturePyramid` with strides ``(1, 2, 4, 8, 16)``, computed without
            autograd (``torch.no_grad``).

        Example:
            >>> pyr = GrayVGG19BN(with_classifier=False).pyramid(torch.rand(1, 1, 34, 50) * 100)
            >>> [tuple(f.shape[-2:]) for f in pyr.features]
            [(34, 50), (17, 25), (9, 13), (5, 7), (3, 4)]
        """
        dims = check_shape("l", l, ("B", 1, "H", "W"))
        check_min_size("l", dims["H"], dims["W"], self.min_size, "the gray VGG's coarsest stride")
        with torch.no_grad():
            out = self.forward(l, PYRAMID_LEVELS)
        return FeaturePyramid(
            tuple(out[name] for name in PYRAMID_LEVELS),
            PYRAMID_STRIDES,
            PYRAMID_LEVELS,
            (dims["H"], dims["W"]),
        )
