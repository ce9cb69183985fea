"""Deep Exemplar-based Colorization (He et al., SIGGRAPH 2018) in PyTorch.

Everything the ComfyUI nodes and the ``deepexemplar`` command do is available here::

    from deepexemplar_core import colorize, load_models, read_image
    models = load_models("auto")            # paper weights when converted, else the built-in lite
    result = colorize(read_image("gray.png").pixels, read_image("ref.jpg").rgb(), models)
    result.images[0]                        # (3, H, W) in [0, 1] at the target's original size

    # a film: the reference's features once, frames streamed, memory bounded by one chunk
    prepared = prepare_reference(models, read_image("ref.jpg").rgb())
    for done in colorize_iter(frames, prepared, models):   # frames: any iterable of (C, H, W)
        save(done.index, done.image)

Names are imported lazily so that ``import deepexemplar_core`` stays cheap (no torch hub, no
compiled extension, no progress bars until used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Backbone": "structures",
    "ColorizeConfig": "pipeline",
    "ColorizeResult": "results",
    "ColorizedImage": "results",
    "Colorizer": "structures",
    "ColorizerInputs": "structures",
    "Correspondence": "structures",
    "DenseMatch": "matching",
    "DenseMatcher": "matching",
    "ExampleColorNet": "colorizers",
    "FeaturePyramid": "structures",
    "FusionConfig": "fusion",
    "GrayVGG19BN": "backbones",
    "ImageError": "inputs",
    "ImageReadError": "image_io",
    "InputError": "inputs",
    "LevelConfig": "matching",
    "LoadedImage": "image_io",
    "MatchConfig": "matching",
    "MatchResult": "results",
    "Models": "models",
    "MotionPrior": "motion",
    "PaperColorizer": "colorizers",
    "PrecomputedError": "inputs",
    "PreparedReference": "results",
    "PropagationColorizer": "colorizers",
    "Recommendation": "recommend",
    "ReferenceSet": "results",
    "SetMatchResult": "results",
    "SetSimilarityResult": "results",
    "Similarity": "structures",
    "SimilarityResult": "results",
    "TemporalConfig": "temporal",
    "TemporalSmoother": "temporal",
    "WeightsError": "weights",
    "WeightsNotFoundError": "weights",
    "build_index": "recommend",
    "colorize": "pipeline",
    "colorize_iter": "pipeline",
    "compute_similarity": "pipeline",
    "confidence_map": "confidence",
    "dense_match": "matching",
    "encode_colornet_input": "colorizers",
    "l_ab_to_rgb": "color",
    "lab_to_rgb": "color",
    "load_backbone": "backbones",
    "load_colorizer": "colorizers",
    "load_models": "models",
    "match_images": "pipeline",
    "pick_reference": "recommend",
    "prepare_reference": "pipeline",
    "prepare_references": "pipeline",
    "read_combo": "authors.formats",
    "read_flow": "authors.formats",
    "read_image": "image_io",
    "recommend_from_images": "recommend",
    "reinhard_transfer": "evaluation.baselines",
    "resolve_weights": "weights",
    "rgb_to_lab": "color",
    "similarity_maps": "similarity",
    "smooth_iter": "temporal",
    "temporal_smooth": "temporal",
    "upsample_chroma": "upsample",
    "warp_colors": "warp",
    "welsh_transfer": "evaluation.baselines",
    "write_combo": "authors.formats",
    "write_flow": "authors.formats",
    "write_image": "image_io",
}

__all__ = sorted(["__version__", *_EXPORTS])


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepexemplar_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
