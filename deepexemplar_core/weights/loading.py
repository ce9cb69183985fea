"""Loading a safetensors file into a network, with name and shape checks that say what went wrong."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from .errors import WeightsMismatchError
from .manifest import read_manifest
from .safetensors_files import load_safetensors_checked

__all__ = ["describe_state", "load_state_checked"]


def describe_state(keys: Iterable[str], manifest: Mapping | None = None) -> str:
    """Guess which network a set of state-dict keys belongs to (for error messages)."""
    keys = set(keys)
    if manifest and manifest.get("network"):
        return f"{manifest['network']} (per its manifest)"
    guesses = (
        ("conv10_ab.weight" in keys and "conv8_1.weight" in keys, "ExampleColorNet (colornet)"),
        ("data_bn.weight" in keys and "fc6.weight" in keys, "GrayVGG19BN with classifier"),
        ("data_bn.weight" in keys, "GrayVGG19BN without fc layers (gray_vgg)"),
        ("0.weight" in keys and "34.weight" in keys, "the unconverted video vgg19_gray.pth"),
        ("conv8_1.1.weight" in keys, "the video release's ColorVidNet"),
        ("theta.weight" in keys, "the video release's WarpNet"),
        ("conv5_4.weight" in keys, "a colour VGG19 (vgg19_conv.pth)"),
        ("stem.conv.weight" in keys or any("blocks." in k for k in keys), "an EfficientNet"),
    )
    return next((what for hit, what in guesses if hit), f"unknown ({len(keys)} tensors)")


def load_state_checked(
    path: str | os.PathLike[str], model: nn.Module, network_name: str
) -> dict[str, torch.Tensor]:
    """Load safetensors weights into ``model`` after checking names and shapes.

    ``num_batches_tracked`` buffers are optional in the file and never required.

    Args:
        path: the safetensors file.
        model: the module to fill (its current dtype and device are kept).
        network_name: what the caller expects, used in error messages (e.g. ``"GrayVGG19BN"``).

    Returns:
        The loaded state dict (CPU tensors as stored).

    Raises:
        WeightsFormatError: not safetensors, truncated or corrupt.
        WeightsMismatchError: names the first missing key, unexpected key or shape mismatch
            and what the file seems to be.
    """
    state = load_safetensors_checked(path)
    expected = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    got = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    problem = _first_problem(expected, got)
    if problem:
        manifest = _try_manifest(path)
        hint = ""
        if all(k.startswith(("fc6", "fc7", "fc8")) for k in set(expected) - set(got)):
            hint = " (the file has no fc layers: build the model without its classifier)"
        raise WeightsMismatchError(
            f"{path}: not {network_name} weights: {problem}{hint}; the file seems to be "
            f"{describe_state(got, manifest)}"
        )
    model.load_state_dict(state, strict=False)
    return state


def _first_problem(expected: dict[str, tuple], got: dict[str, tuple]) -> str:
    for key, shape in expected.items():
        if key not in got:
            return f"missing key {key!r}"
        if got[key] != shape:
            return f"{key!r} has shape {list(got[key])}, expected {list(shape)}"
    extra = [k for k in got if k not in expected]
    return f"unexpected key {extra[0]!r}" if extra else ""


def _try_manifest(path: str | os.PathLike[str]) -> dict | None:
    try:
        return read_manifest(path)
    except (OSError, ValueError):
        return None
