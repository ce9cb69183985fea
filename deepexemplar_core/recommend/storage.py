"""On-disk parts of a reference index: manifest, tensor files and build checkpoints.

See :mod:`.index` for the layout. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from .descriptors import Describer, Descriptors
from .pca import Projection
from .reading import _File

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LOCK",
    "MANIFEST",
    "PARTIAL",
    "IndexError_",
    "IndexMismatchError",
    "build_lock",
    "check_compatible",
    "projection_from",
    "read_manifest",
]

logger = logging.getLogger(__name__)

FORMAT = "deepexemplar-reference-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTIAL = "partial"
#: The lock file a build holds (hidden, so the folder still reads as an index or as empty).
LOCK = ".lock"


class IndexError_(ValueError):
    """An index folder that cannot be read or built (the message says why and what to do)."""


class IndexMismatchError(IndexError_):
    """An index built with another backbone, other weights or another format version."""


def read_manifest(index: str | os.PathLike) -> dict:
    """The manifest of an index folder.

    Raises:
        IndexError_: missing, unreadable or not an index manifest.
    """
    path = Path(index) / MANIFEST
    if not path.is_file():
        raise IndexError_(f"index: {Path(index)} is not a reference index (no {MANIFEST}); "
                          "build one with `deepexemplar index FOLDER -o INDEX`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise IndexError_(f"index: {path} cannot be read ({err}); rebuild the index") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexError_(f"index: {path} is not a {FORMAT} manifest")
    return manifest


def _try_lock(handle) -> None:
    """Take an exclusive lock on an open file without waiting (``OSError`` when it is held)."""
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def build_lock(index: Path) -> Iterator[None]:
    """Hold the build lock of the index folder ``index`` (created when missing) for a block.

    The lock is an OS file lock on ``INDEX/.lock``, released when the process ends however it
    ends, so a crashed build never blocks the next one. A folder this call created is removed
    again when the block fails before anything else was written in it.

    Raises:
        IndexError_: another process holds the lock (another build of this index is running).
    """
    created = not index.exists()
    index.mkdir(parents=True, exist_ok=True)
    path = index / LOCK
    with open(path, "a+b") as handle:
        try:
            _try_lock(handle)
        except OSError as err:
            raise IndexError_(f"index: another build of {index} is running (it holds {path}); "
                              "wait for it to finish, then run this one again") from err
        try:
            yield
        except BaseException:
            if created and [p.name for p in index.iterdir()] == [LOCK]:
                path.unlink(missing_ok=True)
                index.rmdir()
            raise


def check_compatible(manifest: dict, describer: Describer, where: Path) -> None:
    """Refuse an index of another format version, backbone or weights.

    Raises:
        IndexMismatchError: with both values and the fix.
    """
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index: {where} has format version {version}, this deepexemplar reads version "
            f"{FORMAT_VERSION}; rebuild it with `deepexemplar index ROOT -o {where} --rebuild`")
    backbone = manifest.get("backbone", {})
    if backbone.get("family") != describer.family:
        raise IndexMismatchError(
            f"index: {where} was built with the '{backbone.get('family')}' backbone, not "
            f"'{describer.family}'; query it with --family {backbone.get('family')} or rebuild it "
            f"with --rebuild")
    if backbone.get("weights_sha256") != describer.weights_sha256:
        raise IndexMismatchError(
            f"index: {where} was built with other '{describer.family}' weights (sha256 "
            f"{str(backbone.get('weights_sha256'))[:12]}..., loaded {describer.weights_sha256[:12]}...); "
            f"use the same weights or rebuild it with --rebuild")


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from ..files import atomic_write

    data = save_safetensors({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    atomic_write(path, lambda f: f.write(data))


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except Exception as err:
        raise IndexError_(f"index: {path} is damaged or missing ({err}); rebuild the index with "
                          "--rebuild") from err


def _raw_tensors(raw: Descriptors) -> dict[str, torch.Tensor]:
    return {
        "classes": raw.classes.to(torch.int64),
        "global": raw.global_.to(torch.float16),
        "local": raw.local.to(torch.float16),
        "hist": raw.hist.to(torch.float32),
    }


def _raw_from(tensors: dict[str, torch.Tensor]) -> Descriptors:
    return Descriptors(tensors["classes"], tensors["global"], tensors["local"],
                       tensors["hist"].float())


def _projection_tensors(prefix: str, p: Projection) -> dict[str, torch.Tensor]:
    return {f"{prefix}.mean": p.mean, f"{prefix}.components": p.components}


def projection_from(tensors: dict[str, torch.Tensor], prefix: str, fitted_on: int) -> Projection:
    """The :class:`Projection` stored under ``prefix`` in a search file."""
    return Projection(tensors[f"{prefix}.mean"].float(), tensors[f"{prefix}.components"].float(),
                      fitted_on)


def _backbone_info(describer: Describer) -> dict:
    return {"family": describer.family, "weights_sha256": describer.weights_sha256}


class _Checkpoints:
    """Finished batches of the current build in ``INDEX/partial/``."""

    def __init__(self, index: Path, describer: Describer) -> None:
        self.folder = index / PARTIAL
        self.backbone = _backbone_info(describer)
        self.count = len(list(self.folder.glob("chunk-*.safetensors"))) if self.folder.is_dir() else 0

    def load(self, current: dict[str, _File]) -> tuple[list[dict], list[Descriptors], list[dict]]:
        """Entries, descriptors and skipped files of earlier checkpoints still valid now."""
        entries, parts, skipped = [], [], []
        if not self.folder.is_dir():
            return entries, parts, skipped
        for chunk in sorted(self.folder.glob("chunk-*.safetensors")):
            try:
                tensors, meta = _read_tensors(chunk)
                info = json.loads(meta["info"])
            except (IndexError_, KeyError, ValueError):
                logger.warning("ignoring a damaged checkpoint %s", chunk)
                continue
            if info.get("backbone") != self.backbone or info.get("version") != FORMAT_VERSION:
                continue
            keep = [i for i, e in enumerate(info["entries"])
                    if e["path"] in current and current[e["path"]].same(e)]
            if keep:
                entries += [info["entries"][i] for i in keep]
                parts.append(_raw_from(tensors).select(keep))
            skipped += [s for s in info["skipped"] if s["path"] in current and current[s["path"]].same(s)]
        return entries, parts, skipped

    def save(self, entries: list[dict], raw: Descriptors | None, skipped: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        info = {"backbone": self.backbone, "version": FORMAT_VERSION, "entries": entries,
                "skipped": skipped}
        tensors = _raw_tensors(raw) if raw is not None else {"empty": torch.zeros(0)}
        if raw is None:
            info["entries"] = []
        self.count += 1
        _write_tensors(self.folder / f"chunk-{self.count:06d}.safetensors", tensors,
                       {"info": json.dumps(info)})

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
