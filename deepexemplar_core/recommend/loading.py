"""Choosing and loading the network that computes retrieval descriptors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .descriptors import Describer, LiteDescriber, VGGDescriber

__all__ = ["DESCRIBER_FAMILIES", "as_describer", "load_describer"]

logger = logging.getLogger(__name__)

DESCRIBER_FAMILIES = ("auto", "lite", "paper")


def _load_vgg(path: str | Path | None, search_dirs: Sequence[str | Path], allow_download: bool) -> Describer:
    from ..backbones import load_backbone

    net = load_backbone("gray_vgg", path, allow_download=allow_download, search_dirs=search_dirs)
    if not net.with_classifier:
        raise ValueError(f"backbone: {net.provenance.file} holds the gray VGG without its "
                         "classifier (fc6..fc8), which reference recommendation needs; convert "
                         "the authors' caffemodel with its fc layers (docs/weights.md) or use "
                         "--family lite")
    return VGGDescriber(net.eval())


def load_describer(
    family: str = "auto",
    device: str | torch.device = "cpu",
    *,
    backbone_path: str | Path | None = None,
    search_dirs: Sequence[str | Path] = (),
    allow_download: bool = False,
) -> Describer:
    """Load the descriptor network of a family.

    Args:
        family: ``"lite"`` (EfficientNet-Lite0, built in), ``"paper"`` (the authors' gray
            VGG19-BN with its fc layers, as the paper) or ``"auto"`` (paper when its weights
            resolve locally with the classifier, else lite).
        device: where to run it.
        backbone_path: explicit gray VGG safetensors file (``paper``).
        search_dirs: extra folders to search for the paper weights.
        allow_download: let the weights resolver use the Hugging Face Hub.

    Returns:
        A :class:`~.descriptors.Describer` in eval mode on ``device``.

    Raises:
        ValueError: unknown family, or paper weights without the classifier.
        deepexemplar_core.weights.WeightsNotFoundError: ``paper`` weights not found.
    """
    if family not in DESCRIBER_FAMILIES:
        raise ValueError(f"family: expected one of {DESCRIBER_FAMILIES}, got {family!r}")
    if family in ("auto", "paper"):
        from ..weights import WeightsNotFoundError

        try:
            return _load_vgg(backbone_path, search_dirs, allow_download).to(device)
        except (WeightsNotFoundError, ValueError) as err:
            if family == "paper":
                raise
            reason = err.headline if isinstance(err, WeightsNotFoundError) else str(err)
            logger.info("recommendation uses the lite backbone: %s", reason)
    from ..backbones import load_backbone

    return LiteDescriber(load_backbone("lite")).eval().to(device)


def as_describer(backbone: object, device: str | torch.device | None = None) -> Describer:
    """Turn ``backbone`` into a :class:`~.descriptors.Describer`.

    Args:
        backbone: a family name (see :func:`load_describer`), a ``Describer``, a
            :class:`~deepexemplar_core.backbones.LiteBackbone` or a
            :class:`~deepexemplar_core.models.vgg_gray.GrayVGG19BN` with its classifier.
        device: where to run it (``None`` keeps a module where it is; ``"cpu"`` for names).

    Raises:
        TypeError: an unsupported object.
    """
    if isinstance(backbone, str):
        return load_describer(backbone, device or "cpu")
    if isinstance(backbone, Describer):
        describer = backbone
    elif getattr(backbone, "family", None) == "lite" and hasattr(backbone, "net"):
        describer = LiteDescriber(backbone)
    elif isinstance(backbone, nn.Module) and getattr(backbone, "family", None) == "paper":
        describer = VGGDescriber(backbone)
    else:
        raise TypeError(f"backbone: expected 'auto', 'lite', 'paper', a Describer, a LiteBackbone "
                        f"or a GrayVGG19BN, got {type(backbone).__name__}")
    describer.eval()
    return describer if device is None else describer.to(device)
