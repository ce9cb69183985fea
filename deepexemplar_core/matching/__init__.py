"""Dense patch matching of feature pyramids (exact, window search and PatchMatch).

The algorithm is specified in ``docs/matching.md``. :mod:`.ops` is the one dispatch of the two
searches (the compiled kernels of ``cuda_ext`` when built, else the PyTorch references);
:mod:`.extension` builds and loads those kernels.
"""

from .config import LevelConfig, MatchConfig
from .dense import DenseMatch, DenseMatcher, dense_match
from .exact import exact_nn, exact_nn_bidirectional
from .ops import BACKENDS, ExtensionNotAvailableError, active_backend, patchmatch, window_search
from .patchmatch_reference import patchmatch_reference
from .rng import counter_hash
from .scores import l2_normalize
from .upsample import upsample_nnf
from .window_reference import window_search_reference

__all__ = [
    "BACKENDS",
    "DenseMatch",
    "DenseMatcher",
    "ExtensionNotAvailableError",
    "LevelConfig",
    "MatchConfig",
    "active_backend",
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
