"""The authors' colorization sub-net ``ExampleColorNet``, ``original-code-facts.md`` A.1-A.3.

* :class:`ExampleColorNet`: the 13-channel network (state-dict keys = ``example_net.pth``).
* :func:`encode_colornet_input`: the 13 input channels (A.2).
* :func:`colornet_working_size`: H and W floored to multiples of 8 (A.3).
* :class:`PaperColorizer`: the :class:`~deepexemplar_core.structures.Colorizer` running the net
  with the authors' resizing (bilinear to the floored size, bicubic back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_floating, check_same, check_shape
from ..structures import ColorizerInputs

#: Number of input channels: L, a, b, 5 errors T->R, 5 errors R->T.
COLORNET_CHANNELS = 13
#: Output scale of ``tanh`` (the authors use x100, not x110).
AB_SCALE = 100.0
SIZE_UNIT = 8


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, dilation, dilation)


def _subsample(channels: int) -> nn.Conv2d:
    """Depthwise 1x1 stride-2 conv: a learned per-channel scale of ``x[..., ::2, ::2]``."""
    return nn.Conv2d(channels, channels, 1, 2, bias=False, groups=channels)


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=False)


class ExampleColorNet(nn.Module):
    """The authors' colorization network (A.1), created in ``eval()`` mode.

    Input: the encoded ``(B, 13, H, W)`` tensor of :func:`encode_colornet_input`, H and W
    multiples of 8. Output: ``ab = tanh(conv10_ab) * 100``, ``(B, 2, H, W)`` in (-100, 100).

    Example:
        >>> net = ExampleColorNet()
        >>> tuple(net(torch.zeros(1, 13, 16, 24)).shape)
        (1, 2, 16, 24)
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1_1 = nn.Sequential(_conv(COLORNET_CHANNELS, 32), nn.ReLU(), _conv(32, 64))
        self.conv1_2 = _conv(64, 64)
        self.conv1_2norm = _norm(64)
        self.conv1_2norm_ss = _subsample(64)
        self.conv2_1, self.conv2_2 = _conv(64, 128), _conv(128, 128)
        self.conv2_2norm = _norm(128)
        self.conv2_2norm_ss = _subsample(128)
        self.conv3_1, self.conv3_2, self.conv3_3 = _conv(128, 256), _conv(256, 256), _conv(256, 256)
        self.conv3_3norm = _norm(256)
        self.conv3_3norm_ss = _subsample(256)
        self.conv4_1, self.conv4_2, self.conv4_3 = _conv(256, 512), _conv(512, 512), _conv(512, 512)
        self.conv4_3norm = _norm(512)
        self.conv5_1, self.conv5_2, self.conv5_3 = (_conv(512, 512, 2) for _ in range(3))
        self.conv5_3norm = _norm(512)
        self.conv6_1, self.conv6_2, self.conv6_3 = (_conv(512, 512, 2) for _ in range(3))
        self.conv6_3norm = _norm(512)
        self.conv7_1, self.conv7_2, self.conv7_3 = (_conv(512, 512) for _ in range(3))
        self.conv7_3norm = _norm(512)
        self.conv8_1 = nn.ConvTranspose2d(512, 256, 4, 2, 1)
        self.conv3_3_short = _conv(256, 256)
        self.conv8_2, self.conv8_3 = _conv(256, 256), _conv(256, 256)
        self.conv8_3norm = _norm(256)
        self.conv9_1 = nn.ConvTranspose2d(256, 128, 4, 2, 1)
        self.conv2_2_short = _conv(128, 128)
        self.conv9_2 = _conv(128, 128)
        self.conv9_2norm = _norm(128)
        self.conv10_1 = nn.ConvTranspose2d(128, 128, 4, 2, 1)
        self.conv1_2_short = _conv(64, 128)
        self.conv10_2 = _conv(128, 128)
        self.conv10_ab = nn.Conv2d(128, 2, 1, 1)
        self.eval()

    def _block(self, x: torch.Tensor, *names: str) -> torch.Tensor:
        for name in names:
            x = F.relu(getattr(self, name)(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict ab from the encoded input.

        Args:
            x: ``(B, 13, H, W)`` float, H and W multiples of 8 (see :func:`encode_colornet_input`).

        Returns:
            ``(B, 2, H, W)`` CIELab a/b in (-100, 100).
        """
        dims = check_shape("x", x, ("B", COLORNET_CHANNELS, "H", "W"))
        if dims["H"] % SIZE_UNIT or dims["W"] % SIZE_UNIT:
            raise ValueError(
                f"x: expected H and W multiples of 8, got {dims['H']}x{dims['W']}; "
                "resize with colornet_working_size() or use PaperColorizer"
            )
        n1 = self.conv1_2norm(self._block(x, "conv1_1", "conv1_2"))
        n2 = self.conv2_2norm(self._block(self.conv1_2norm_ss(n1), "conv2_1", "conv2_2"))
        n3 = self.conv3_3norm(self._block(self.conv2_2norm_ss(n2), "conv3_1", "conv3_2", "conv3_3"))
        n4 = self.conv4_3norm(self._block(self.conv3_3norm_ss(n3), "conv4_1", "conv4_2", "conv4_3"))
        n5 = self.conv5_3norm(self._block(n4, "conv5_1", "conv5_2", "conv5_3"))
        n6 = self.conv6_3norm(self._block(n5, "conv6_1", "conv6_2", "conv6_3"))
        n7 = self.conv7_3norm(self._block(n6, "conv7_1", "conv7_2", "conv7_3"))
        x8 = F.relu(self.conv8_1(n7) + self.conv3_3_short(n3))
        n8 = self.conv8_3norm(self._block(x8, "conv8_2", "conv8_3"))
        x9 = F.relu(self.conv9_1(n8) + self.conv2_2_short(n2))
        n9 = self.conv9_2norm(self._block(x9, "conv9_2"))
        x10 = F.relu(self.conv10_1(n9) + self.conv1_2_short(n1))
        x10 = F.leaky_relu(self.conv10_2(x10), 0.2)
        return torch.tanh(self.conv10_ab(x10)) * AB_SCALE


def encode_colornet_input(
    target_l: torch.Tensor, warped_ab: torch.Tensor, err_tr: torch.Tensor, err_rt: torch.Tensor
) -> torch.Tensor:
    """Build the 13 input channels of the colour net exactly as the authors (A.2).

    Channels: ``L - 50``, raw warped a and b, then ``(e - 127) / 2`` for the five T->R errors
    and the five R->T errors, each in the authors' coarse-to-fine order (conv5_1 first), as
    stored by :class:`~deepexemplar_core.structures.Similarity`.

    Args:
        target_l: ``(B, 1, H, W)`` float luminance in [0, 100].
        warped_ab: ``(B, 2, H, W)`` float CIELab a/b of the warped reference colours.
        err_tr: ``(B, 5, H, W)`` uint8 quantised distances ``floor((1 - sim_T->R) * 255)``.
        err_rt: ``(B, 5, H, W)`` uint8, the same for sim_R->T.

    Returns:
        ``(B, 13, H, W)`` float32 (float64 if ``target_l`` is float64); channels 3..12 lie in
        [-63.5, 64].

    Example:
        >>> e = torch.full((1, 5, 2, 2), 127, dtype=torch.uint8)
        >>> x = encode_colornet_input(torch.full((1, 1, 2, 2), 50.0), torch.zeros(1, 2, 2, 2), e, e)
        >>> bool((x == 0).all())
        True
    """
    dims = check_shape("target_l", target_l, ("B", 1, "H", "W"))
    check_floating("target_l", target_l)
    check_shape("warped_ab", warped_ab, (dims["B"], 2, dims["H"], dims["W"]))
    check_floating("warped_ab", warped_ab)
    for name, err in (("err_tr", err_tr), ("err_rt", err_rt)):
        check_shape(name, err, (dims["B"], 5, dims["H"], dims["W"]))
        if err.dtype != torch.uint8:
            raise TypeError(
                f"{name}: expected uint8 quantised distances (Similarity.err_*), got {err.dtype}"
            )
    dtype = torch.promote_types(target_l.dtype, torch.float32)
    errors = torch.cat((err_tr, err_rt), dim=1).to(dtype)
    return torch.cat(
        (target_l.to(dtype) - 50.0, warped_ab.to(dtype), (errors - 127.0) / 2.0), dim=1
    )


def colornet_working_size(h: int, w: int) -> tuple[int, int]:
    """Floor an image size to multiples of 8, as the authors do before the net (A.3).

    Args:
        h: height in pixels, >= 8.
        w: width in pixels, >= 8.

    Returns:
        ``(h8, w8)``.

    Example:
        >>> colornet_working_size(256, 341)
        (256, 336)
    """
    if h < SIZE_UNIT or w < SIZE_UNIT:
        raise ValueError(f"size: expected both sides >= 8 for the colour net, got {h}x{w}")
    return h // SIZE_UNIT * SIZE_UNIT, w // SIZE_UNIT * SIZE_UNIT


class PaperColorizer(nn.Module):
    """The authors' colorization step as a :class:`~deepexemplar_core.structures.Colorizer`.

    Encodes the inputs (A.2), resizes the 13-channel tensor to the floored size with bilinear
    interpolation (like ``cv2.resize``: half-pixel centres, no antialias), runs the net and
    resizes ab back to the input grid with bicubic (``cv2.INTER_CUBIC``-like, A = -0.75).

    Args:
        net: an :class:`ExampleColorNet` (or any module mapping ``(B, 13, h, w)`` to
            ``(B, 2, h, w)``) with loaded weights.
        dtype: the dtype to run the net in (e.g. ``torch.float16`` on CUDA); ``None`` keeps
            the net's dtype. The result is always float32.

    Example:
        >>> from deepexemplar_core.structures import ColorizerInputs, Similarity
        >>> e = torch.zeros(1, 5, 20, 27, dtype=torch.uint8)
        >>> sim = Similarity(e.float(), e.float(), e, e, ("relu5_1",) * 5)
        >>> inputs = ColorizerInputs(torch.rand(1, 1, 20, 27) * 100,
        ...     torch.zeros(1, 3, 20, 27, dtype=torch.uint8), torch.zeros(1, 2, 20, 27), sim,
        ...     torch.ones(1, 1, 20, 27), torch.zeros(1, 3, 20, 27))
        >>> tuple(PaperColorizer(ExampleColorNet())(inputs).shape)
        (1, 2, 20, 27)
    """

    name = "paper-colornet"

    def __init__(self, net: nn.Module, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.net = net if dtype is None else net.to(dtype)
        self.dtype = dtype

    def forward(self, inputs: ColorizerInputs) -> torch.Tensor:
        """Predict ``ab: (B, 2, H, W)`` float32 on ``inputs.target_l``'s grid and device."""
        if not all(hasattr(inputs, a) for a in ("target_l", "warped_ab", "similarity")):
            raise TypeError(f"inputs: expected ColorizerInputs, got {type(inputs).__name__}")
        sim = inputs.similarity
        x = encode_colornet_input(inputs.target_l, inputs.warped_ab, sim.err_tr, sim.err_rt)
        h, w = x.shape[-2:]
        h8, w8 = colornet_working_size(h, w)
        param = next(self.net.parameters())
        x = x.to(device=param.device, dtype=torch.float32)
        if (h8, w8) != (h, w):
            x = F.interpolate(x, size=(h8, w8), mode="bilinear", align_corners=False)
        x = x.to(self.dtype or param.dtype)
        with torch.no_grad():
            ab = self.net(x).float()
        check_same("net output channels", int(ab.shape[1]), "a/b channels", 2)
        if (h8, w8) != (h, w):
            ab = F.interpolate(ab, size=(h, w), mode="bicubic", align_corners=False)
        return ab.to(inputs.target_l.device)
