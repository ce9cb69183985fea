"""Archive-scale batches on Ray Data: ``deepexemplar batch`` and its Python API.

Ray is an optional extra (``pip install 'comfyui-deep-exemplar[distributed]'``) and is imported
only when a job starts (:func:`~deepexemplar_core.distributed.job.import_ray`); this package
imports without it. See ``docs/batch.md``.

* :class:`DatasetColorizer`, :func:`colorize_dataset`: colorize a ``ray.data.Dataset`` of images
  (``ds.map_batches(DatasetColorizer, fn_constructor_kwargs=..., concurrency=..., num_gpus=...)``).
* :class:`FileColorizer`: the actor of a batch job (files in, files and ledger rows out).
* :class:`BatchJob`, :class:`JobConfig`: the driver; :class:`Ledger`: the resume bookkeeping;
  :func:`list_tasks`: INPUT (folder tree or list of paths, local or remote) to tasks.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BatchJob": "job",
    "DatasetColorizer": "colorizer",
    "FileColorizer": "colorizer",
    "JobConfig": "job",
    "Ledger": "ledger",
    "RayMissingError": "job",
    "colorize_dataset": "colorizer",
    "list_tasks": "inputs",
    "model_options": "colorizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
