"""Backend dispatch: compiled kernels from ``deepexemplar_core.ops`` or the PyTorch reference."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from types import ModuleType

import torch

from .config import BACKENDS
from .patchmatch import patchmatch_reference
from .window import window_search_reference

logger = logging.getLogger(__name__)


def _ops_module(backend: str) -> ModuleType | None:
    """``deepexemplar_core.ops.patchmatch`` or ``None`` (reference) for ``backend``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return None
    try:
        ops_patchmatch = importlib.import_module("..ops.patchmatch", __package__)
    except ImportError as err:
        if backend != "auto":
            raise ValueError(
                f"backend: {backend!r} needs deepexemplar_core.ops.patchmatch, which failed to "
                f"import ({err}); use backend='auto' or 'torch'"
            ) from err
        logger.debug("deepexemplar_core.ops.patchmatch not importable (%s); using PyTorch", err)
        return None
    return ops_patchmatch


def patchmatch(
    source: torch.Tensor,
    target: torch.Tensor,
    init: torch.Tensor | None = None,
    *,
    patch_size: int = 3,
    iterations: int = 10,
    radius: int | None = None,
    jumps: Sequence[int] = (8, 4, 2, 1),
    seed: int = 0,
    level: int = 0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """PatchMatch through the best available backend.

    Same arguments and results as :func:`patchmatch_reference`, plus ``backend`` (``"auto"``,
    ``"torch"``, ``"cpp"``, ``"cuda"``) and the name of the backend that ran.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 4, 8, 8), dim=1)
        >>> nnf, score, used = patchmatch(a, a, iterations=2, backend="torch")
        >>> used
        'torch'
    """
    ops = _ops_module(backend)
    options = {
        "patch_size": patch_size,
        "iterations": iterations,
        "radius": radius,
        "jumps": jumps,
        "seed": seed,
        "level": level,
    }
    if ops is None:
        return (*patchmatch_reference(source, target, init, **options), "torch")
    return ops.patchmatch(source, target, init, backend=backend, **options)


def window_search(
    source: torch.Tensor,
    target: torch.Tensor,
    init: torch.Tensor,
    *,
    patch_size: int = 3,
    radius: int = 4,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Window search through the best available backend.

    Same arguments and results as :func:`window_search_reference`, plus ``backend`` and the
    name of the backend that ran.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 4, 8, 8), dim=1)
        >>> init = torch.zeros(1, 8, 8, 2, dtype=torch.int64)
        >>> window_search(a, a, init, radius=2, backend="torch")[2]
        'torch'
    """
    ops = _ops_module(backend)
    if ops is None:
        return (
            *window_search_reference(source, target, init, patch_size=patch_size, radius=radius),
            "torch",
        )
    return ops.window_search(
        source, target, init, patch_size=patch_size, radius=radius, backend=backend
    )
