"""Building a reference index from a folder of colour photos, and updating it.

An index is a folder::

    INDEX/
      manifest.json                  format, version, backbone + weights sha256, root folder,
                                     one entry per image (path relative to the root, size,
                                     mtime, sha256), skipped files with the reason, PCA sizes
      raw-<generation>.safetensors   raw descriptors (kept so that PCA can be refitted)
      search-<generation>.safetensors  projected descriptors + the PCA axes (what queries load)
      partial/                       only during a build: checkpoints of finished batches
      .lock                          held by a running build (a second build is refused)

Every file is written to a temporary name and renamed; the manifest is written last and names
the generation of the two tensor files, so an interrupted build leaves the previous index intact
and the finished batches in ``partial/``, from which the next build resumes. Entry paths are
relative to the root and are read through :func:`deepexemplar_core.files.resolve_inside`: an
entry that leads outside the root (``..``, a link) is never opened.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..image_io import IMAGE_SUFFIXES
from .descriptors import Describer, Descriptors, describe
from .loading import as_describer, load_describer
from .pca import Projection, fit_projection
from .reading import _batches, _File, _Loaded, scan_folder
from .search import Searchable
from .storage import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PARTIAL,
    IndexError_,
    IndexMismatchError,
    _backbone_info,
    _Checkpoints,
    _projection_tensors,
    _raw_from,
    _raw_tensors,
    _read_tensors,
    _write_tensors,
    build_lock,
    check_compatible,
    projection_from,
    read_manifest,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GLOBAL_DIMS",
    "LOCAL_DIMS",
    "BuildReport",
    "IndexError_",
    "IndexMismatchError",
    "build_index",
    "read_manifest",
    "scan_folder",
]

logger = logging.getLogger(__name__)

#: PCA output sizes of the paper (fc6 4096 -> 128, relu5_4 512 -> 64).
GLOBAL_DIMS, LOCAL_DIMS = 128, 64
#: The PCA axes are refitted when the collection has changed by more than this fraction.
REFIT_FRACTION = 0.1

Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What a build did.

    Attributes:
        index: the index folder.
        indexed: images in the index now.
        added, changed, deleted, unchanged: files compared with the previous index.
        resumed: images taken from checkpoints of an interrupted build.
        computed: images whose descriptors were computed by this build.
        skipped: ``(relative path, reason)`` of files that are not in the index.
        duplicates: groups of relative paths with identical content (the first is returned by
            queries, the others never).
        pca_refitted: whether the PCA axes were (re)fitted.
        seconds: wall time.
    """

    index: Path
    indexed: int = 0
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    resumed: int = 0
    computed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    pca_refitted: bool = False
    seconds: float = 0.0


def _entry(loaded: _Loaded) -> dict:
    return {"path": loaded.file.path, "size": loaded.file.size, "mtime_ns": loaded.file.mtime_ns,
            "sha256": loaded.sha256, "height": loaded.size[0], "width": loaded.size[1]}


def _skip(file: _File, reason: str) -> dict:
    return {"path": file.path, "size": file.size, "mtime_ns": file.mtime_ns, "reason": reason}


def _previous(index: Path, describer: Describer, rebuild: bool) -> tuple[dict | None, Descriptors | None]:
    """The existing manifest and raw descriptors (None when there is no usable index)."""
    if rebuild or not (index / MANIFEST).is_file():
        return None, None
    manifest = read_manifest(index)
    check_compatible(manifest, describer, index)
    tensors, _ = _read_tensors(index / manifest["files"]["raw"])
    return manifest, _raw_from(tensors)


def _check_output(index: Path, folder: Path) -> None:
    if index == folder:
        raise IndexError_("out: the index cannot be the photo folder itself; give a new folder")
    if index.exists() and not index.is_dir():
        raise IndexError_(f"out: {index} exists and is not a folder; give a folder name")
    if index.is_dir() and not (index / MANIFEST).is_file():
        foreign = [p.name for p in index.iterdir() if p.name != PARTIAL and not p.name.startswith(".")]
        if foreign:
            raise IndexError_(f"out: {index} is a non-empty folder that is not a reference index "
                              f"({foreign[0]}, ...); give a new or empty folder")


def _duplicates(entries: list[dict]) -> tuple[list[list[str]], torch.Tensor]:
    """Groups of identical files and, per row, the row of the first file of its group."""
    first: dict[str, int] = {}
    canonical = torch.arange(len(entries))
    groups: dict[str, list[str]] = {}
    for row, entry in enumerate(entries):
        if entry["sha256"] in first:
            canonical[row] = first[entry["sha256"]]
            groups.setdefault(entry["sha256"], [entries[first[entry["sha256"]]]["path"]])
            groups[entry["sha256"]].append(entry["path"])
        else:
            first[entry["sha256"]] = row
    return list(groups.values()), canonical


def _fit_or_reuse(raw: Descriptors, previous: dict | None, index: Path) -> tuple[Projection, Projection, bool]:
    """The PCA axes: refitted when missing or when the collection changed by > 10 %."""
    n = len(raw)
    if previous is not None:
        pca = previous["pca"]
        fitted = pca["fitted_rows"]
        same_dims = (min(GLOBAL_DIMS, raw.global_.shape[1], n // 2) == pca["global"]["fit_dims"]
                     and min(LOCAL_DIMS, raw.local.shape[2], n * raw.local.shape[1] // 2)
                     == pca["local"]["fit_dims"])
        if same_dims and abs(n - fitted) <= REFIT_FRACTION * fitted:
            tensors, _ = _read_tensors(index / previous["files"]["search"])
            return (projection_from(tensors, "pca.global", fitted),
                    projection_from(tensors, "pca.local", fitted), False)
    return (fit_projection(raw.global_, GLOBAL_DIMS),
            fit_projection(raw.local.reshape(-1, raw.local.shape[2]), LOCAL_DIMS), True)


def _pca_info(p: Projection, wanted: int, samples: int, in_dims: int) -> dict:
    return {"dims": p.out_dims, "identity": p.identity, "fitted_on": p.fitted_on,
            "fit_dims": min(wanted, in_dims, samples // 2)}


def build_index(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    backbone: object = "auto",
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    checkpoint_every: int = 64,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Index the colour images under ``folder`` into the index folder ``out``.

    A re-run computes descriptors only for added and changed files and drops deleted ones; a
    build interrupted (Ctrl-C, crash) resumes from its checkpoints. Gray and unreadable files,
    images ``colorize`` refuses (:func:`~deepexemplar_core.inputs.check_image`: smaller than
    :data:`~deepexemplar_core.inputs.MIN_SIDE`) and links that lead out of ``folder`` are
    skipped and listed; identical files are indexed once per copy but grouped so that
    queries return only one of them.

    Args:
        folder: the photo folder (searched recursively; hidden files and ``out`` are skipped).
        out: the index folder (created; an existing index is updated).
        backbone: ``"auto"``, ``"lite"``, ``"paper"`` or a loaded network (see
            :func:`~.loading.as_describer`).
        device: where descriptors are computed when ``backbone`` is a name.
        batch_size: images per forward pass.
        checkpoint_every: images between checkpoints of an unfinished build.
        rebuild: ignore (and replace) an existing index, e.g. one built with another backbone.
        progress: called as ``progress(done, total)`` over the files to process.

    Returns:
        A :class:`BuildReport`.

    Raises:
        IndexError_: ``folder`` is not a folder, holds no usable colour image, ``out`` is not
            an index folder, or another build of ``out`` is running (builds hold a lock,
            :func:`~.storage.build_lock`).
        IndexMismatchError: ``out`` holds an index of another backbone or version (use
            ``rebuild=True``).
    """
    start = time.perf_counter()
    folder, index = Path(folder).resolve(), Path(out).resolve()
    if not folder.is_dir():
        raise IndexError_(f"folder: {folder} is not a folder of images")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    _check_output(index, folder)
    describer = as_describer(backbone, device if isinstance(backbone, str) else None)
    with build_lock(index):
        report = _build(folder, index, describer, batch_size, checkpoint_every, rebuild, progress)
    report.seconds = time.perf_counter() - start
    return report


def _build(
    folder: Path, index: Path, describer: Describer, batch_size: int, checkpoint_every: int,
    rebuild: bool, progress: Progress | None,
) -> BuildReport:
    """The body of :func:`build_index`, run while holding the index's build lock."""
    previous, previous_raw = _previous(index, describer, rebuild)
    report = BuildReport(index)
    files = scan_folder(folder, exclude=index)
    current = {f.path: f for f in files}
    if previous is not None and previous.get("root") != str(folder):
        logger.info("index %s was built from %s; updating it from %s", index, previous["root"], folder)

    kept_entries, kept_rows, kept_skipped = [], [], []
    if previous is not None:
        old_files = {e["path"]: e for e in previous["entries"] + previous["skipped"]}
        for row, entry in enumerate(previous["entries"]):
            if entry["path"] in current and current[entry["path"]].same(entry):
                kept_entries.append(entry)
                kept_rows.append(row)
        kept_skipped = [s for s in previous["skipped"]
                        if s["path"] in current and current[s["path"]].same(s)]
        report.deleted = sum(1 for p in old_files if p not in current)
        report.changed = sum(1 for p, e in old_files.items() if p in current and not current[p].same(e))
        report.added = sum(1 for p in current if p not in old_files)
        report.unchanged = len(kept_entries) + len(kept_skipped)
    else:
        report.added = len(files)
    if rebuild:
        _Checkpoints(index, describer).clear()
    checkpoints = _Checkpoints(index, describer)
    done = {e["path"] for e in kept_entries} | {s["path"] for s in kept_skipped}
    resumed_entries, resumed_parts, resumed_skipped = checkpoints.load(
        {p: f for p, f in current.items() if p not in done})
    report.resumed = len(resumed_entries) + len(resumed_skipped)
    done |= {e["path"] for e in resumed_entries} | {s["path"] for s in resumed_skipped}
    todo = [f for f in files if f.path not in done]

    new_entries, new_parts, new_skipped = _compute(folder, todo, describer, batch_size,
                                                   checkpoint_every, checkpoints, progress)
    report.computed = len(new_entries)
    entries = kept_entries + resumed_entries + new_entries
    skipped = kept_skipped + resumed_skipped + new_skipped
    parts = ([previous_raw.select(kept_rows)] if kept_rows else []) + resumed_parts + new_parts
    report.skipped = [(s["path"], s["reason"]) for s in sorted(skipped, key=lambda s: s["path"])]
    if not entries:
        reasons = f" ({len(skipped)} skipped: {skipped[0]['path']}: {skipped[0]['reason']}, ...)" if skipped else ""
        raise IndexError_(f"folder: {folder} holds no usable colour image{reasons}; nothing was "
                          f"written (image types: {', '.join(IMAGE_SUFFIXES)})")
    order = sorted(range(len(entries)), key=lambda i: entries[i]["path"])
    entries = [entries[i] for i in order]
    raw = Descriptors.cat(parts).select(order)
    _finish(index, folder, describer, entries, skipped, raw, previous, report)
    checkpoints.clear()
    return report


def _compute(
    folder: Path, todo: list[_File], describer: Describer, batch_size: int,
    checkpoint_every: int, checkpoints: _Checkpoints, progress: Progress | None,
) -> tuple[list[dict], list[Descriptors], list[dict]]:
    """Descriptors of ``todo``, checkpointed every ``checkpoint_every`` images."""
    entries, parts, skipped = [], [], []
    pending_entries, pending_parts, pending_skipped = [], [], []
    done = 0
    if progress is not None:
        progress(0, len(todo))

    def flush() -> None:
        raw = Descriptors.cat(pending_parts) if pending_parts else None
        checkpoints.save(list(pending_entries), raw, list(pending_skipped))
        entries.extend(pending_entries)
        skipped.extend(pending_skipped)
        if raw is not None:
            parts.append(raw)
        pending_entries.clear(), pending_parts.clear(), pending_skipped.clear()

    for batch in _batches(folder, todo, batch_size):
        good = [b for b in batch if not b.problem]
        for bad in (b for b in batch if b.problem):
            logger.info("skipping %s: %s", bad.file.path, bad.problem)
            pending_skipped.append(_skip(bad.file, bad.problem))
        if good:
            pending_parts.append(describe(describer, torch.stack([b.l for b in good])).half())
            pending_entries.extend(_entry(b) for b in good)
        done += len(batch)
        if len(pending_entries) + len(pending_skipped) >= checkpoint_every:
            flush()
        if progress is not None:
            progress(done, len(todo))
    if pending_entries or pending_skipped:
        flush()
    return entries, parts, skipped


def _finish(
    index: Path, folder: Path, describer: Describer, entries: list[dict], skipped: list[dict],
    raw: Descriptors, previous: dict | None, report: BuildReport,
) -> None:
    """Fit or reuse PCA, write the tensor files of a new generation, then the manifest."""
    from .. import __version__
    from ..files import write_text_atomic

    global_p, local_p, report.pca_refitted = _fit_or_reuse(raw, previous, index)
    search = Searchable.from_descriptors(raw, global_p, local_p)
    report.duplicates, canonical = _duplicates(entries)
    generation = f"{int(time.time())}-{secrets.token_hex(4)}"
    files = {"raw": f"raw-{generation}.safetensors", "search": f"search-{generation}.safetensors"}
    index.mkdir(parents=True, exist_ok=True)
    meta = {"generation": generation}
    _write_tensors(index / files["raw"], _raw_tensors(raw), meta)
    _write_tensors(index / files["search"], {
        "classes": search.classes, "global": search.global_, "local": search.local,
        "hist": search.hist, "canonical": canonical,
        **_projection_tensors("pca.global", global_p), **_projection_tensors("pca.local", local_p),
    }, meta)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    n_cells = len(raw) * raw.local.shape[1]
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "deepexemplar_version": __version__,
        "root": str(folder),
        "backbone": _backbone_info(describer),
        "generation": generation,
        "files": files,
        "created": previous.get("created", now) if previous else now,
        "updated": now,
        "pca": {
            "fitted_rows": global_p.fitted_on if report.pca_refitted else previous["pca"]["fitted_rows"],
            "global": _pca_info(global_p, GLOBAL_DIMS, len(raw), raw.global_.shape[1]),
            "local": _pca_info(local_p, LOCAL_DIMS, n_cells, raw.local.shape[2]),
        },
        "duplicates": report.duplicates,
        "entries": entries,
        "skipped": sorted(skipped, key=lambda s: s["path"]),
    }
    write_text_atomic(index / MANIFEST, json.dumps(manifest, indent=1))
    report.indexed = len(entries)
    for old in index.glob("*.safetensors"):
        if old.name not in files.values():
            old.unlink(missing_ok=True)
    for tmp in index.glob(".*.tmp"):
        if time.time() - tmp.stat().st_mtime > 3600:
            tmp.unlink(missing_ok=True)


def default_index_describer(manifest: dict, device: str | torch.device) -> Describer:
    """Load the backbone family an index was built with."""
    return load_describer(manifest.get("backbone", {}).get("family", "lite"), device)
