"""Dense patch matching of feature pyramids (exact, window search and PatchMatch).

The algorithm is specified in ``docs/matching.md``; the compiled kernels of ``cuda_ext``
implement the same spec and are used through :mod:`deepexemplar_core.ops` when available.
"""

from .config import LevelConfig, MatchConfig
from .dense import DenseMatch, dense_match
from .dispatch import patchmatch, window_search
from .exact import exact_nn, exact_nn_bidirectional
from .patchmatch import patchmatch_reference
from .rng import counter_hash
from .scores import l2_normalize
from .upsample import upsample_nnf
from .window import window_search_reference

__all__ = [
    "DenseMatch",
    "LevelConfig",
    "MatchConfig",
    "counter_hash",
    "dense_match",
    "exact_nn",
    "exact_nn_bidirectional",
    "l2_normalize",
    "patchmatch",
    "patchmatch_reference",
    "upsample_nnf",
    "window_search",
    "window_search_reference",
]
