"""Input guards shared by every public function of the core.

Each guard raises a ``TypeError`` or ``ValueError`` whose message names the argument, what was
expected and what was received, e.g. ``target_l: expected (B, 1, H, W), got (2, 3, 64, 64)``.
User input is never checked with ``assert``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .structures import FeaturePyramid


def check_tensor(name: str, value: object) -> torch.Tensor:
    """Return ``value`` if it is a tensor, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_shape(name: str, value: torch.Tensor, pattern: Sequence[str | int]) -> dict[str, int]:
    """Check ``value`` against a symbolic shape such as ``("B", 1, "H", "W")``.

    Letters bind to sizes (the same letter must bind to the same size); integers must match
    exactly. Returns the bound letters, e.g. ``{"B": 2, "H": 64, "W": 64}``.

    Raises:
        TypeError: ``value`` is not a tensor.
        ValueError: rank or a fixed size differs, or a letter binds to two sizes.
    """
    check_tensor(name, value)
    expected = "(" + ", ".join(str(p) for p in pattern) + ")"
    got = tuple(value.shape)
    if value.dim() != len(pattern):
        raise ValueError(f"{name}: expected {expected}, got {got}")
    bound: dict[str, int] = {}
    for dim, want in zip(got, pattern, strict=True):
        if isinstance(want, int):
            if dim != want:
                raise ValueError(f"{name}: expected {expected}, got {got}")
        elif bound.setdefault(want, dim) != dim:
            raise ValueError(f"{name}: expected {expected}, got {got}")
    return bound


def check_same(name_a: str, a: int, name_b: str, b: int) -> None:
    """Raise ``ValueError`` when two sizes that must agree differ."""
    if a != b:
        raise ValueError(f"{name_a} ({a}) and {name_b} ({b}) must be equal")


def check_floating(name: str, value: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``value`` has a floating dtype."""
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating dtype, got {value.dtype}")


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` when ``value`` holds NaN or infinity."""
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}: contains NaN or infinite values; clean the input first")


def check_nonempty(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` for a tensor with a zero-sized dimension (an empty batch)."""
    if value.numel() == 0:
        raise ValueError(f"{name}: is empty (shape {tuple(value.shape)}); pass at least one image")


def check_range(name: str, value: torch.Tensor, low: float, high: float, tol: float = 1e-3) -> None:
    """Raise ``ValueError`` when ``value`` leaves ``[low, high]`` by more than ``tol``."""
    if value.numel() == 0:
        return
    lo, hi = float(value.min()), float(value.max())
    if lo < low - tol or hi > high + tol:
        raise ValueError(f"{name}: expected values in [{low}, {high}], got [{lo:.4g}, {hi:.4g}]")


def check_min_size(name: str, height: int, width: int, minimum: int, why: str) -> None:
    """Raise ``ValueError`` when an image is smaller than ``minimum`` on either side."""
    if height < minimum or width < minimum:
        raise ValueError(
            f"{name}: {width}x{height} (width x height) is too small; the minimum is "
            f"{minimum}x{minimum} ({why})"
        )


def check_pyramid_pair(target: object, reference: object) -> None:
    """Check that two pyramids can be matched: same levels, channels, and a reference batch of 1
    (shared by every target) or of the target batch.

    Raises:
        TypeError: either argument is not a :class:`FeaturePyramid`.
        ValueError: levels, channels or batch sizes disagree (the message names which).
    """
    for name, pyr in (("target", target), ("reference", reference)):
        if not isinstance(pyr, FeaturePyramid):
            raise TypeError(f"{name}: expected a FeaturePyramid, got {type(pyr).__name__}")
    if target.names != reference.names or target.strides != reference.strides:
        raise ValueError(
            f"target and reference pyramids must have the same levels; got names {target.names} / "
            f"{reference.names} and strides {target.strides} / {reference.strides}"
        )
    if reference.batch_size not in (1, target.batch_size):
        raise ValueError(
            f"reference: batch {reference.batch_size} must be 1 or {target.batch_size} "
            "(the target batch)"
        )
    for name, ft, fr in zip(target.names, target.features, reference.features, strict=True):
        if ft.shape[1] != fr.shape[1]:
            raise ValueError(
                f"level {name}: target has {ft.shape[1]} channels, reference {fr.shape[1]}"
            )
