"""A backbone and a colorizer composed into :class:`Models`, and the ``auto`` family policy.

The parts load on their own (:func:`~deepexemplar_core.backbones.load_backbone`,
:func:`~deepexemplar_core.colorizers.load_colorizer`); :func:`load_models` only chooses them:
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

__all__ = ["COLORIZERS", "FAMILIES", "IncompatibleModelsError", "Models", "check_compatible",
           "load_models", "resolve_device"]

logger = logging.getLogger(__name__)

FAMILIES = ("auto", "paper", "lite")
COLORIZERS = ("auto", "paper", "propagation")
#: The backbone of each family.
FAMILY_BACKBONE = {"paper": "gray_vgg", "lite": "lite"}


class IncompatibleModelsError(ValueError):
    """A colour network was trained on another backbone's similarity maps than the one given."""


def check_compatible(backbone: Backbone, colorizer: Colorizer, strict: bool = False) -> str:
    """Say whether ``colorizer`` was trained on ``backbone``'s similarity maps.

    Args:
        backbone: a loaded backbone (its ``name``).
        colorizer: a loaded colorizer (its ``provenance.trained_on_backbone``).
        strict: raise instead of returning the warning.

    Returns:
        ``""`` when they fit (or the colorizer has no weights), else the warning, which names the
        reason and the fix.

    Raises:
        IncompatibleModelsError: they do not fit and ``strict`` is set.
    """
    provenance = getattr(colorizer, "provenance", None)
    trained_on = getattr(provenance, "trained_on_backbone", "")
    name = getattr(backbone, "name", "")
    if not trained_on or not name or trained_on == name:
        return ""
    warning = (
        f"the colour network {getattr(provenance, 'file', '') or colorizer.name} was trained on "
        f"the {trained_on!r} backbone's similarity maps, but the backbone is {name!r}: its "
        f"colours will be off. Use the {trained_on!r} backbone, a network trained on {name!r} "
        "(python -m training.train), or the weights-free propagation colorizer."
    )
    if strict:
        raise IncompatibleModelsError(warning)
    return warning


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

    @classmethod
    def compose(cls, backbone: Backbone, colorizer: Colorizer, device: str | torch.device = "cpu",
                **provenance: str) -> Models:
        """Join a loaded backbone and colorizer; warns when they do not fit (:func:`check_compatible`).

        Args:
            backbone: from :func:`~deepexemplar_core.backbones.load_backbone`.
            colorizer: from :func:`~deepexemplar_core.colorizers.load_colorizer`.
            device: where both run (they are moved there).
            provenance: extra strings for :attr:`provenance` (e.g. ``family_reason``).
        """
        info = {"deepexemplar_version": __version__, "family": backbone.family,
                "colorizer": colorizer.name, **provenance}
        for prefix, part in (("backbone", backbone), ("colornet", colorizer)):
            part_provenance = getattr(part, "provenance", None)
            if part_provenance is not None and part_provenance.file:
                info[f"{prefix}_weights"] = part_provenance.file
                info[f"{prefix}_sha256"] = part_provenance.sha256
        warning = check_compatible(backbone, colorizer)
        if warning:
            logger.warning("%s", warning)
            info["warning"] = warning
        return cls(backbone.family, backbone, colorizer, resolve_device(device), info).to(device)

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
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was requested but is not available; use --device cpu")
    return device


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
    """Load a backbone and a colorizer of a family (``auto`` chooses the family).

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
        deepexemplar_core.weights.WeightsError: weights missing or corrupt (with the fix); an
            explicit path that does not exist is always an error, also under ``auto``.
    """
    from .backbones import load_backbone
    from .colorizers import load_colorizer

    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if colorizer not in COLORIZERS:
        raise ValueError(f"colorizer: expected one of {COLORIZERS}, got {colorizer!r}")
    device = resolve_device(device)
    where = {"allow_download": allow_download, "repo_id": repo_id,
             "search_dirs": tuple(search_dirs)}
    reason = "as requested"
    if family == "auto":
        family, reason = _auto_family(backbone_path, colornet_path, where)
        logger.info("auto model choice: %s (%s)", family, reason)
    backbone = load_backbone(FAMILY_BACKBONE[family],
                             backbone_path if family == "paper" else None, device=device, **where)
    explicit_net = colornet_path is not None  # an explicit file is used, never silently ignored
    wants_net = colorizer == "paper" or (colorizer == "auto" and (family == "paper" or explicit_net))
    chosen = (load_colorizer("colornet", colornet_path, device=device, **where) if wants_net
              else load_colorizer("propagation", device=device))
    return Models.compose(backbone, chosen, device, family_reason=reason)


def _auto_family(backbone_path, colornet_path, where) -> tuple[str, str]:
    """``("paper", why)`` when both paper weights resolve locally, else ``("lite", why)``.

    An explicit path that does not exist is an error, not a reason to fall back.
    """
    from .weights import WeightsNotFoundError, resolve_weights

    for name, path in (("gray_vgg", backbone_path), ("colornet", colornet_path)):
        if path is not None:
            resolve_weights(name, path)
    if backbone_path is not None:
        return "paper", "an explicit gray VGG19-BN file was given"
    try:
        resolve_weights("gray_vgg", backbone_path, **where)
        resolve_weights("colornet", colornet_path, **where)
    except WeightsNotFoundError as err:
        return "lite", (
            "the paper weights were not found, so the built-in lite family is used; convert "
            "the authors' files with `deepexemplar convert` (docs/weights.md). "
            + err.headline
        )
    return "paper", "the paper weights resolved locally"
