"""Where a loaded network's weights came from, read from its file and manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..files import sha256_file_cached
from .errors import WeightsFormatError

__all__ = ["Provenance"]


@dataclass(frozen=True)
class Provenance:
    """The weights behind a loaded backbone or colorizer.

    Attributes:
        name: the weights name (``"gray_vgg"``, ``"colornet"``, ``"lite"``) or ``"propagation"``
            for the weights-free colorizer.
        file: path of the safetensors file, ``""`` without weights.
        sha256: sha256 of the bytes loaded (checked against the manifest's), ``""`` without
            weights.
        source: where the file came from (its manifest's ``source``), ``"built in"`` without
            weights, ``"unknown"`` without a manifest.
        trained_on_backbone: for a colour network, the backbone whose similarity maps it was
            trained on (``"gray_vgg"`` for the authors' network); ``""`` otherwise.
        backbone_sha256: that backbone's weights sha256 when the manifest records it.
    """

    name: str
    file: str = ""
    sha256: str = ""
    source: str = "built in"
    trained_on_backbone: str = ""
    backbone_sha256: str = ""

    @classmethod
    def of_file(cls, name: str, path: str | os.PathLike[str], default_backbone: str = "") -> Provenance:
        """Provenance of the weights file ``path``, from its manifest when it has one.

        The file's sha256 is computed (cached by size and mtime, :func:`sha256_file_cached`)
        and must be the manifest's: outputs record the hash of the bytes really used.

        Args:
            name: the weights name.
            path: the safetensors file.
            default_backbone: ``trained_on_backbone`` when the manifest does not say.

        Raises:
            WeightsFormatError: the file's sha256 is not its manifest's (changed after it was
                written: a damaged copy, or replaced); the message says how to fix it.
        """
        from .manifest import manifest_path, read_manifest

        try:
            manifest = read_manifest(path)
        except (OSError, ValueError):
            manifest = {}
        sha256 = sha256_file_cached(path)
        if manifest.get("sha256") and manifest["sha256"] != sha256:
            raise WeightsFormatError(
                f"{path}: its sha256 is {sha256} but its manifest {manifest_path(path)} says "
                f"{manifest['sha256']}: the file changed after it was written (a damaged copy, "
                "or replaced). Re-create it (`deepexemplar convert` on the authors' file) or copy "
                "it again; if you replaced it on purpose, delete the manifest (outputs then "
                "record the file's own hash)")
        return cls(
            name=name,
            file=str(Path(path)),
            sha256=sha256,
            source=str(manifest.get("source") or "unknown"),
            trained_on_backbone=str(manifest.get("trained_on_backbone") or default_backbone),
            backbone_sha256=str(manifest.get("backbone_sha256") or ""),
        )

    def as_metadata(self, prefix: str) -> dict[str, str]:
        """Non-empty fields as ``{f"{prefix}_{field}": value}`` strings (output metadata).

        >>> Provenance("lite", "/w/l.safetensors", "ab").as_metadata("backbone")["backbone_sha256"]
        'ab'
        """
        return {f"{prefix}_{k}": v for k, v in vars(self).items() if v and k != "name"} | {
            prefix: self.name}
