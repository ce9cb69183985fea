"""Temporal consistency for per-frame colorized video (Bonneel et al. 2015 on the ab channels).

See ``docs/temporal.md``. The public names::

    from deepexemplar_core.temporal import TemporalConfig, TemporalSmoother, smooth_iter, temporal_smooth
"""

from __future__ import annotations

from .smooth import (
    MODES,
    SmoothedFrame,
    TemporalConfig,
    TemporalResult,
    TemporalSmoother,
    smooth_iter,
    temporal_smooth,
)
from .solver import SolveResult, laplacian, solve_screened_poisson

__all__ = [
    "MODES",
    "SmoothedFrame",
    "SolveResult",
    "TemporalConfig",
    "TemporalResult",
    "TemporalSmoother",
    "laplacian",
    "smooth_iter",
    "solve_screened_poisson",
    "temporal_smooth",
]
