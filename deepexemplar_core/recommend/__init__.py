"""Colour reference recommendation (paper section 4): index a photo collection, then rank it
for a gray target by global semantics, local correspondence and luminance statistics.

>>> from deepexemplar_core.recommend import build_index, Index, recommend   # doctest: +SKIP
>>> build_index("photos/", "photos.index", backbone="lite")                  # doctest: +SKIP
>>> recommend(Index.load("photos.index"), "gray.jpg", k=5)[0].path           # doctest: +SKIP
"""

from .descriptors import Describer, Descriptors, LiteDescriber, VGGDescriber
from .index import (
    FORMAT_VERSION,
    BuildReport,
    IndexError_,
    IndexMismatchError,
    build_index,
    read_manifest,
)
from .loading import as_describer, load_describer
from .query import Index, pick_reference, pick_references, recommend, recommend_from_images
from .search import Recommendation

__all__ = [
    "FORMAT_VERSION",
    "BuildReport",
    "Describer",
    "Descriptors",
    "Index",
    "IndexError_",
    "IndexMismatchError",
    "LiteDescriber",
    "Recommendation",
    "VGGDescriber",
    "as_describer",
    "build_index",
    "load_describer",
    "pick_reference",
    "pick_references",
    "read_manifest",
    "recommend",
    "recommend_from_images",
]
