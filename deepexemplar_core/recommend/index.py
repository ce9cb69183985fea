"""A reference index on disk: build it from a folder of colour photos, update it, load it.

An index is a folder::

    INDEX/
      manifest.json                  format, version, backbone + weights sha256, root folder,
                                     one entry per image (path relative to the root, size,
                                     mtime, sha256), skipped files with the reason, PCA sizes
      raw-<generation>.safetensors   raw descriptors (kept so that PCA can be refitted)
      search-<generation>.safetensors  projected descriptors + the PCA axes (what queries load)
      partial/                       only during a build: checkpoints of finished batches

Every file is written to a temporary name and renamed; the manifest is written last and names
the generation of the two tensor files, so an interrupted build leaves the previous index intact
and the finished batches in ``partial/``, from which the next build resumes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from .descriptors import (
    INPUT_SIZE,
    Describer,
    Descriptors,
    describe,
    is_gray_rgb,
    prepare_luminance,
)
from .loading import as_describer, load_describer
from .pca import Projection, fit_projection
from .search import Searchable

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

FORMAT = "deepexemplar-reference-index"
FORMAT_VERSION = 1
#: PCA output sizes of the paper (fc6 4096 -> 128, relu5_4 512 -> 64).
GLOBAL_DIMS, LOCAL_DIMS = 128, 64
#: The PCA axes are refitted when the collection has changed by more than this fraction.
REFIT_FRACTION = 0.1
MANIFEST = "manifest.json"
PARTIAL = "partial"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

Progress = Callable[[int, int], None]


class IndexError_(ValueError):
    """An index folder that cannot be read or built (the message says why and what to do)."""


class IndexMismatchError(IndexError_):
    """An index built with another backbone, other weights or another format version."""


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


@dataclass(frozen=True)
class _File:
    path: str          # relative, with forward slashes
    size: int
    mtime_ns: int

    def same(self, entry: dict) -> bool:
        return entry.get("size") == self.size and entry.get("mtime_ns") == self.mtime_ns


def scan_folder(folder: Path, exclude: Path | None = None) -> list[_File]:
    """Image files under ``folder`` (recursively, sorted, hidden names and ``exclude`` skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (exclude is None or (here / d).resolve() != exclude))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = here / name
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append(_File(path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return found


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


# ----------------------------------------------------------------------------- tensor files

def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from ..image_io import _atomic_write

    data = save_safetensors({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    _atomic_write(path, lambda f: f.write(data))


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


# ----------------------------------------------------------------------------- reading images

@dataclass
class _Loaded:
    file: _File
    l: torch.Tensor | None = None       # (1, 224, 224)
    sha256: str = ""
    size: tuple[int, int] = (0, 0)
    problem: str = ""


def _jpeg_draft(data: bytes) -> tuple[torch.Tensor, tuple[int, int]] | None:
    """Fast path for 8-bit JPEGs: decode at a reduced scale (DCT scaling, at least 448 px), apply
    the EXIF orientation. Returns ``(pixels (C, h, w) in [0, 1], original (H, W))`` or None for
    anything else (then :func:`~deepexemplar_core.image_io.read_image` decodes it)."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return None
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
            image.draft(image.mode, (2 * INPUT_SIZE, 2 * INPUT_SIZE))
            array = np.asarray(ImageOps.exif_transpose(image))
    except Exception:  # noqa: BLE001 - let read_image decode it and phrase the error
        return None
    pixels = torch.from_numpy(array.copy()).float().div_(255.0)
    pixels = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)
    return pixels, (height, width)


def _load_one(root: Path, file: _File) -> _Loaded:
    import hashlib

    from ..image_io import ImageReadError, read_image

    path = root / file.path
    try:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        fast = _jpeg_draft(data) if data else None
        if fast is None:
            image = read_image(path)
            pixels, size = image.pixels, image.size
        else:
            pixels, size = fast
    except (ImageReadError, OSError) as err:
        return _Loaded(file, problem=f"unreadable: {err}")
    if pixels.shape[0] == 1:
        return _Loaded(file, problem="gray image: a reference must have colour")
    if min(pixels.shape[1:]) < 8:
        return _Loaded(file, problem=f"too small ({pixels.shape[2]}x{pixels.shape[1]} px)")
    small = torch.nn.functional.interpolate(pixels[None], size=(64, 64), mode="area")
    if bool(is_gray_rgb(small)[0]):
        return _Loaded(file, problem="no colour (R = G = B everywhere): a reference must have colour")
    return _Loaded(file, prepare_luminance(pixels), digest, size)


def _batches(root: Path, files: list[_File], batch_size: int) -> Iterator[list[_Loaded]]:
    """Decode batches in two background threads, one batch ahead."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        chunks = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
        pending = [pool.submit(lambda c=c: [_load_one(root, f) for f in c]) for c in chunks[:2]]
        for i in range(len(chunks)):
            batch = pending[i].result()
            if i + 2 < len(chunks):
                pending.append(pool.submit(lambda c=chunks[i + 2]: [_load_one(root, f) for f in c]))
            yield batch


# ----------------------------------------------------------------------------- build

def _entry(loaded: _Loaded) -> dict:
    return {"path": loaded.file.path, "size": loaded.file.size, "mtime_ns": loaded.file.mtime_ns,
            "sha256": loaded.sha256, "height": loaded.size[0], "width": loaded.size[1]}


def _skip(file: _File, reason: str) -> dict:
    return {"path": file.path, "size": file.size, "mtime_ns": file.mtime_ns, "reason": reason}


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
    build interrupted (Ctrl-C, crash) resumes from its checkpoints. Gray, unreadable and tiny
    files are skipped and listed; identical files are indexed once per copy but grouped so that
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
        IndexError_: ``folder`` is not a folder, holds no usable colour image, or ``out`` is not
            an index folder.
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
    report.seconds = time.perf_counter() - start
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
    from ..weights import write_text_atomic

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
