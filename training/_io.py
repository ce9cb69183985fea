"""Atomic writes of the files the training steps produce, through the core's one atomic writer."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from deepexemplar_core.files import atomic_path


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path`` (its folder is created),
    then move it over ``path`` (:func:`deepexemplar_core.files.atomic_path`).

    Nothing is left at ``path`` (or beside it) when ``write`` fails or is interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        write(str(temporary))
    return path


def write_json_atomic(path: str | os.PathLike[str], value: object) -> Path:
    """Write ``value`` as indented JSON atomically."""
    text = json.dumps(value, indent=2) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_safetensors_atomic(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """``safetensors.torch.save_file`` through a temporary file."""
    from safetensors.torch import save_file

    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(data, tmp, metadata=dict(metadata or {})))


def torch_save_atomic(obj: object, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` through a temporary file (checkpoints)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
