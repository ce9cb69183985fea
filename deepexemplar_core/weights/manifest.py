"""The one manifest schema that travels with every weights file: ``<stem>.manifest.json``.

It records the tensor names, shapes and dtypes, the file's size and sha256, the network, model
family, where the file came from (source and its sha256), the licence, notes, and for a trained
colour network the backbone whose similarity maps it learned from (``trained_on_backbone`` and
that backbone's weights ``backbone_sha256``).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..files import sha256_file, write_text_atomic
from .errors import WeightsFormatError
from .safetensors_files import read_safetensors_header

__all__ = ["MANIFEST_FORMAT", "manifest_path", "read_manifest", "write_manifest"]

MANIFEST_FORMAT = "deepexemplar-weights-manifest/1"


def manifest_path(weights_path: str | os.PathLike[str]) -> Path:
    """``<folder>/<stem>.manifest.json`` for ``<folder>/<stem>.safetensors``."""
    weights_path = Path(weights_path)
    if weights_path.name.endswith(".manifest.json"):
        return weights_path
    return weights_path.with_name(weights_path.stem + ".manifest.json")


def write_manifest(
    weights_path: str | os.PathLike[str],
    *,
    network: str,
    family: str,
    source: str,
    source_sha256: str,
    licence: str,
    notes: str | Iterable[str] = (),
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write ``<stem>.manifest.json`` next to a safetensors file (atomically).

    The manifest records the tensor names, shapes and dtypes, the file's size and sha256, the
    network, model family, source file and its sha256, licence and free-form notes; ``extra``
    adds fields such as ``trained_on_backbone`` and ``backbone_sha256`` (a trained colour net).

    Returns:
        The manifest path.
    """
    weights_path = Path(weights_path)
    header = read_safetensors_header(weights_path)
    from .. import __version__

    manifest = {
        "format": MANIFEST_FORMAT,
        "file": weights_path.name,
        "network": network,
        "family": family,
        "sha256": sha256_file(weights_path),
        "size_bytes": weights_path.stat().st_size,
        "source": source,
        "source_sha256": source_sha256,
        "licence": licence,
        "notes": [notes] if isinstance(notes, str) else list(notes),
        "deepexemplar_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **dict(extra or {}),
        "tensors": {
            k: {"shape": list(v["shape"]), "dtype": v["dtype"]} for k, v in sorted(header.items())
        },
    }
    target = manifest_path(weights_path)
    write_text_atomic(target, json.dumps(manifest, indent=2) + "\n")
    return target


def read_manifest(path: str | os.PathLike[str]) -> dict:
    """Read the manifest of a weights file (pass the safetensors or the manifest path).

    Raises:
        FileNotFoundError: no manifest.
        WeightsFormatError: not a deepexemplar manifest.
    """
    target = manifest_path(path)
    try:
        manifest = json.loads(target.read_text(encoding="utf-8"))
    except ValueError as e:
        raise WeightsFormatError(f"{target}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise WeightsFormatError(f"{target}: not a {MANIFEST_FORMAT} manifest")
    return manifest
