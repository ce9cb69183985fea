"""Choosing and loading a model family: ``paper`` (the authors' networks) or ``lite`` (built in).

``auto`` picks ``paper`` when both of its weight files resolve locally (explicit paths,
``$DEEPEXEMPLAR_WEIGHTS``, the given search folders, the local cache or the Hugging Face cache),
and ``lite`` otherwise; :attr:`Models.provenance` says which was used and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .structures import Backbone, Colorizer

__all__ = ["FAMILIES", "COLORIZERS", "Models", "load_models", "resolve_device"]

logger = logging.getLogger(__name__)

FAMILIES = ("auto", "paper", "lite")
COLORIZERS = ("auto", "paper", "propagation")


@dataclass
class Models:
    """A backbone and a colorizer ready to run on one device.

    Attributes:
        family: ``"paper"`` or ``"lite"`` (the backbone's family).
        backbone: the feature extractor (:class:`~deepexemplar_core.structures.Backbone`).
        colorizer: the ab predictor (:class:`~deepexemplar_core.structures.Colorizer`).
        device: where both run.
        provenance: strings written into output metadata: family, colorizer, weights sha256,
            package version, and why ``auto`` chose this family.
    """

    family: str
    backbone: Backbone
    colorizer: Colorizer
    device: torch.device
    provenance: dict[str, str] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Models:
        """Move both networks to ``device`` (in place) and return ``self``."""
        self.device = torch.device(device)
        for part in (self.backbone, self.colorizer):
            if isinstance(part, torch.nn.Module):
                part.to(self.device)
        return self


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``.

    Raises:
        ValueError: CUDA was asked for but is not available.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but is not available; use --device cpu")
    return device


def _load_paper_backbone(path: Path) -> tuple[Backbone, str]:
    from .models.vgg_gray import GrayVGG19BN
    from .weights import load_state_checked, read_safetensors_header, sha256_file

    net = GrayVGG19BN(with_classifier="fc6.weight" in read_safetensors_header(path))
    load_state_checked(path, net, "GrayVGG19BN")
    return net.eval(), sha256_file(path)


def _load_paper_colorizer(path: Path) -> tuple[Colorizer, str]:
    from .models.colornet import ExampleColorNet, PaperColorizer
    from .weights import load_state_checked, sha256_file

    net = ExampleColorNet()
    load_state_checked(path, net, "ExampleColorNet")
    return PaperColorizer(net.eval()), sha256_file(path)


def _resolve(
    name: str,
    path: str | Path | None,
    allow_download: bool,
    repo_id: str | None,
    search_dirs: Sequence[str | Path],
) -> Path:
    from .weights import resolve_weights

    return resolve_weights(
        name, path, allow_download=allow_download, repo_id=repo_id, search_dirs=tuple(search_dirs)
    )


def load_models(
    family: str = "auto",
    *,
    colorizer: str = "auto",
    backbone_path: str | Path | None = None,
    colornet_path: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    allow_download: bool = False,
    repo_id: str | None = None,
    search_dirs: Sequence[str | Path] = (),
) -> Models:
    """Load a backbone and a colorizer.

    Args:
        family: ``"auto"``, ``"paper"`` or ``"lite"``.
        colorizer: ``"auto"`` (the family's own: the authors' network for ``paper``, the
            weights-free propagation for ``lite``), ``"paper"`` or ``"propagation"``.
        backbone_path: explicit gray VGG19-BN safetensors file (``paper``).
        colornet_path: explicit ExampleColorNet safetensors file.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device``.
        allow_download: let the resolver download from the Hugging Face Hub.
        repo_id: Hub repository of the converted weights (overrides the configured one).
        search_dirs: extra folders to search (ComfyUI's ``models/deepexemplar``).

    Returns:
        Models on ``device`` in eval mode.

    Raises:
        ValueError: unknown family/colorizer or unavailable device.
        deepexemplar_core.weights.WeightsNotFoundError: ``paper`` weights missing (with the fix).
    """
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if colorizer not in COLORIZERS:
        raise ValueError(f"colorizer: expected one of {COLORIZERS}, got {colorizer!r}")
    device = resolve_device(device)
    provenance = {"deepexemplar_version": __version__}
    where = (allow_download, repo_id, search_dirs)
    if family == "auto":
        from .weights import WeightsNotFoundError

        try:
            _resolve("gray_vgg", backbone_path, *where)
            _resolve("colornet", colornet_path, *where)
            family, provenance["family_reason"] = "paper", "the paper weights resolved locally"
        except WeightsNotFoundError as err:
            family = "lite"
            provenance["family_reason"] = (
                "the paper weights were not found, so the built-in lite family is used; convert "
                "the authors' files with `deepexemplar convert` (docs/weights.md). "
                + str(err).splitlines()[0].split(" Searched")[0]
            )
        logger.info("auto model choice: %s (%s)", family, provenance["family_reason"])
    if family == "paper":
        vgg_path = _resolve("gray_vgg", backbone_path, *where)
        backbone, provenance["backbone_sha256"] = _load_paper_backbone(vgg_path)
        provenance["backbone_weights"] = str(vgg_path)
    else:
        from .lite import load_lite_backbone

        backbone = load_lite_backbone()
        provenance["backbone_sha256"] = str(getattr(backbone, "weights_sha256", ""))
    if colorizer == "paper" or (colorizer == "auto" and family == "paper"):
        net_path = _resolve("colornet", colornet_path, *where)
        chosen, provenance["colornet_sha256"] = _load_paper_colorizer(net_path)
        provenance["colornet_weights"] = str(net_path)
    else:
        from .lite import PropagationColorizer

        chosen = PropagationColorizer()
    provenance["family"], provenance["colorizer"] = family, chosen.name
    return Models(family, backbone, chosen, device, provenance).to(device)
