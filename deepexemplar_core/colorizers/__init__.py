"""Predictors of the chrominance at working resolution: the paper's network and the weights-free one.

Both satisfy :class:`~deepexemplar_core.structures.Colorizer` and are ``torch.nn.Module`` s.
:func:`load_colorizer` loads one by name and returns it with a ``provenance`` attribute; for the
paper's network it records the backbone whose similarity maps it was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..structures import Colorizer
from .colornet import ExampleColorNet, PaperColorizer, colornet_working_size, encode_colornet_input
from .propagation import (
    PropagationColorizer,
    PropagationConfig,
    bilateral_grid_filter,
    propagate_colors,
    reference_prior,
)

__all__ = [
    "COLORIZER_NAMES",
    "Colorizer",
    "ExampleColorNet",
    "PaperColorizer",
    "PropagationColorizer",
    "PropagationConfig",
    "bilateral_grid_filter",
    "colornet_working_size",
    "encode_colornet_input",
    "load_colorizer",
    "propagate_colors",
    "reference_prior",
]

#: Colorizer names: the paper's 13-channel network, the weights-free propagation.
COLORIZER_NAMES = ("colornet", "propagation")

#: The backbone the authors' released network was trained on (when a manifest does not say).
AUTHORS_BACKBONE = "gray_vgg"


def load_colorizer(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    allow_download: bool = False,
    repo_id: str | None = None,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Colorizer:
    """Load one colorizer, in eval mode on ``device``.

    Args:
        name: ``"colornet"`` (the paper's network, weights resolved like every weights file)
            or ``"propagation"`` (weights-free).
        path: an explicit safetensors file for ``"colornet"``; ``None`` resolves it.
        device: where to put the network.
        allow_download: let the resolver download from the Hugging Face Hub.
        repo_id: Hub repository overriding the configured one.
        search_dirs: extra folders to search (ComfyUI's ``models/deepexemplar``).

    Returns:
        The colorizer; ``colorizer.provenance.trained_on_backbone`` names the backbone its
        similarity maps came from (``"gray_vgg"`` for the authors' weights).

    Raises:
        ValueError: unknown ``name``.
        deepexemplar_core.weights.WeightsError: missing, corrupt or mismatched weights.
    """
    from ..weights import load_state_checked, resolve_weights
    from ..weights.provenance import Provenance

    if name not in COLORIZER_NAMES:
        raise ValueError(f"name: expected one of {COLORIZER_NAMES}, got {name!r}")
    if name == "propagation":
        colorizer = PropagationColorizer()
        colorizer.provenance = Provenance("propagation")
        return colorizer
    path = resolve_weights(name, path, allow_download=allow_download, repo_id=repo_id,
                           search_dirs=tuple(search_dirs))
    net = ExampleColorNet()
    load_state_checked(path, net, "ExampleColorNet")
    colorizer = PaperColorizer(net.eval())
    colorizer.provenance = Provenance.of_file(name, path, default_backbone=AUTHORS_BACKBONE)
    return colorizer.eval().to(device)
