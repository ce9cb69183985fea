"""Querying: :class:`Index` (a loaded index), :func:`recommend`, :func:`recommend_from_images`
and :func:`pick_reference`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..files import sha256_file
from .descriptors import Describer, Descriptors, describe, is_gray_rgb, prepare_luminance
from .index import default_index_describer
from .loading import as_describer
from .pca import fit_projection
from .search import QUERY_THREADS, Recommendation, Searchable, cpu_threads, rank
from .storage import (
    MANIFEST,
    IndexError_,
    _read_tensors,
    check_compatible,
    projection_from,
    read_manifest,
)

__all__ = ["Index", "pick_reference", "pick_references", "recommend", "recommend_from_images"]

logger = logging.getLogger(__name__)


class Index:
    """A reference index loaded for queries.

    Attributes:
        path: the index folder.
        root: the photo folder it was built from (entries are relative to it).
        manifest: the parsed ``manifest.json``.
        describer: the network that computes query descriptors (same backbone and weights).
        data: the projected descriptors of every entry.
        global_projection, local_projection: the PCA the entries were projected with.
        canonical: ``(N,)`` int64, for each row the first row with identical file content.
    """

    def __init__(self, path: Path, manifest: dict, describer: Describer, tensors: dict) -> None:
        self.path = path
        self.manifest = manifest
        self.root = Path(manifest["root"])
        self.describer = describer
        self.data = Searchable(tensors["classes"], tensors["global"].float(), tensors["local"],
                               tensors["hist"])
        fitted = manifest["pca"]["fitted_rows"]
        self.global_projection = projection_from(tensors, "pca.global", fitted)
        self.local_projection = projection_from(tensors, "pca.local", fitted)
        self.canonical = tensors["canonical"].long()
        self.entries: list[dict] = manifest["entries"]
        self._by_path = {e["path"]: i for i, e in enumerate(self.entries)}
        self._by_sha = {}
        for i, e in enumerate(self.entries):
            self._by_sha.setdefault(e["sha256"], i)
        self._cache: dict = {}

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        backbone: object = None,
        device: str | torch.device = "cpu",
    ) -> Index:
        """Load an index folder built by :func:`~.index.build_index`.

        Args:
            path: the index folder (or its ``manifest.json``).
            backbone: ``None`` loads the family the index was built with; otherwise a family
                name or a loaded network (see :func:`~.loading.as_describer`), which must be
                the one the index was built with.
            device: where query descriptors are computed (names and ``None`` only).

        Raises:
            IndexError_: not an index, or damaged files.
            IndexMismatchError: another backbone, other weights or another format version.
        """
        path = Path(path)
        if path.name == MANIFEST:
            path = path.parent
        manifest = read_manifest(path)
        if backbone is None:
            describer = default_index_describer(manifest, device)
        else:
            describer = as_describer(backbone, device if isinstance(backbone, str) else None)
        check_compatible(manifest, describer, path)
        tensors, meta = _read_tensors(path / manifest["files"]["search"])
        if meta.get("generation") != manifest.get("generation"):
            raise IndexError_(f"index: {path}: the search file does not belong to the manifest; "
                              "re-run `deepexemplar index` to repair it")
        return cls(path, manifest, describer, tensors)

    def __len__(self) -> int:
        return len(self.entries)

    def absolute(self, row: int) -> Path:
        """Absolute path of the image in ``row`` (links followed).

        Raises:
            IndexError_: the indexed folder is not where the index recorded it (moved, or the
                index copied to another machine), or the entry leads outside it (an altered
                manifest, or a file replaced by a link to elsewhere since the build): it is
                never opened.
        """
        from ..files import PathOutsideError, resolve_inside

        if not self.root.is_dir():
            raise IndexError_(f"index: {self.path}: its photos were indexed in {self.root}, which "
                              "is not there any more; point the index at their folder with "
                              f"`deepexemplar index FOLDER -o {self.path}` (photos it already "
                              "holds are not computed again), or put the folder back")
        try:
            return resolve_inside(self.root, self.entries[row]["path"])
        except PathOutsideError as err:
            raise IndexError_(f"index: {self.path}: an entry points outside the indexed folder "
                              f"({err}) and is not used (the manifest was altered, or the file "
                              "was replaced by a link); rebuild the index with `deepexemplar "
                              f"index {self.root} -o {self.path} --rebuild`") from err

    def project(self, raw: Descriptors) -> Searchable:
        """Project raw descriptors like the entries (global float32, local/hist float16)."""
        return Searchable.from_descriptors(raw, self.global_projection, self.local_projection,
                                           self.data.local.dtype)

    def rows_of(self, target: str | os.PathLike) -> list[int]:
        """Rows holding the file ``target`` or a byte-identical copy of it."""
        path = Path(target).resolve()
        rows = []
        try:
            rel = path.relative_to(self.root).as_posix()
            if rel in self._by_path:
                rows.append(self._by_path[rel])
        except ValueError:
            pass
        try:
            sha = sha256_file(path)
        except OSError:
            return rows
        first = self._by_sha.get(sha)
        if first is not None:
            rows += [r for r in range(len(self)) if int(self.canonical[r]) == first]
        return sorted(set(rows))


def _target_pixels(target: object) -> tuple[torch.Tensor, Path | None]:
    """A target (path, LoadedImage or tensor) -> ``(C, H, W)`` pixels and its path if any."""
    from ..image_io import LoadedImage, read_image

    if isinstance(target, (str, os.PathLike)):
        return read_image(target).pixels, Path(target)
    if isinstance(target, LoadedImage):
        return target.pixels, target.path
    if isinstance(target, torch.Tensor):
        if target.dim() == 4 and target.shape[0] == 1:
            target = target[0]
        if target.dim() != 3 or target.shape[0] not in (1, 3):
            raise ValueError(f"target_image: expected (1|3, H, W) or (1, 1|3, H, W) in [0, 1], "
                             f"got {tuple(target.shape)}")
        return target, None
    raise TypeError(f"target_image: expected a path, a LoadedImage or a tensor, "
                    f"got {type(target).__name__}")


def _query_descriptors(describer: Describer, pixels: torch.Tensor) -> Descriptors:
    if describer.device.type != "cpu":
        return describe(describer, prepare_luminance(pixels)[None])
    with cpu_threads(QUERY_THREADS):
        return describe(describer, prepare_luminance(pixels)[None])


def recommend(
    index: Index | str | os.PathLike,
    target_image: object,
    k: int = 5,
    top_n: int = 200,
    beta: float = 0.25,
    restrict_class: bool = True,
    *,
    exclude_target: bool = True,
    backend: str = "auto",
) -> list[Recommendation]:
    """Recommend colour references for a (gray) target from an index.

    Args:
        index: an :class:`Index` or the path of an index folder (loaded with its own backbone).
        target_image: a path, a :class:`~deepexemplar_core.image_io.LoadedImage`, or pixels
            ``(1|3, H, W)`` float in [0, 1]; only its luminance is used.
        k: number of recommendations.
        top_n: candidates of the global ranking re-ranked locally (the paper's N = 200).
        beta: weight of the luminance-histogram term (the authors' 0.25).
        restrict_class: search only among images of the target's top-1 ImageNet class when
            that class has at least ``max(k, 5)`` images.
        exclude_target: when ``target_image`` is a file of the collection (or a byte-identical
            copy of one), never recommend it.
        backend: global stage: ``"auto"`` (FAISS when installed and the index is huge),
            ``"torch"`` (exact matrix product) or ``"faiss"``.

    Returns:
        Up to ``k`` :class:`~.search.Recommendation`, best first, with absolute paths.

    Raises:
        ValueError: bad arguments or an unreadable target (ImageReadError).
        IndexError_, IndexMismatchError: see :meth:`Index.load`.
    """
    if not isinstance(index, Index):
        index = Index.load(index)
    pixels, path = _target_pixels(target_image)
    query = index.project(_query_descriptors(index.describer, pixels))
    exclude = index.canonical != torch.arange(len(index))
    if exclude_target and path is not None:
        rows = index.rows_of(path)
        if rows:
            logger.info("the target %s is in the index; it is not recommended", path)
            exclude[rows] = True
    ranked = rank(query, index.data, k, top_n, beta, restrict_class, exclude, backend,
                  index._cache)
    return [Recommendation(index.absolute(row), *scores, row=row) for row, *scores in ranked]


def pick_reference(index_path: str | os.PathLike, target_path: str | os.PathLike,
                   index: Index | None = None) -> Path:
    """The best reference in an index for a target file (what ``colorize --reference-index``
    uses).

    Args:
        index_path: the index folder.
        target_path: the target image file.
        index: an already loaded index (saves reloading it for many targets).

    Returns:
        The absolute path of the top-1 recommendation.

    Raises:
        IndexError_: the index is empty for this target (nothing eligible) or unreadable.
    """
    index = index if index is not None else Index.load(index_path)
    return pick_references(index, target_path, 1)[0]


def pick_references(index: Index | str | os.PathLike, target_path: str | os.PathLike,
                    k: int) -> list[Path]:
    """The top-``k`` references in an index for a target file (``--reference-index -k K``).

    Args:
        index: an :class:`Index` or the path of an index folder.
        target_path: the target image file, or its pixels (as :func:`recommend` takes them).
        k: how many; fewer come back when the index has fewer eligible images.

    Returns:
        Absolute paths, best first, at least one.

    Raises:
        IndexError_: nothing eligible for this target, or the index is unreadable.
    """
    index = index if isinstance(index, Index) else Index.load(index)
    found = recommend(index, target_path, k=k)
    if not found:
        raise IndexError_(f"index: {index.path} has no eligible reference for {target_path}")
    return [Path(r.path) for r in found]


def _candidate_list(candidates: object) -> list[torch.Tensor]:
    if isinstance(candidates, torch.Tensor):
        if candidates.dim() == 3:
            candidates = candidates[None]
        if candidates.dim() != 4 or candidates.shape[1] != 3:
            raise ValueError(f"candidates: expected (B, 3, H, W) colour images in [0, 1], got "
                             f"{tuple(candidates.shape)}")
        return list(candidates)
    if isinstance(candidates, Sequence) and not isinstance(candidates, (str, bytes)):
        items = list(candidates)
        if not items:
            raise ValueError("candidates: expected at least one image, got an empty list")
        for i, item in enumerate(items):
            if not isinstance(item, torch.Tensor) or item.dim() != 3 or item.shape[0] != 3:
                raise ValueError(f"candidates[{i}]: expected a (3, H, W) colour image in [0, 1]")
        return items
    raise TypeError(f"candidates: expected a (B, 3, H, W) tensor or a list of (3, H, W) tensors, "
                    f"got {type(candidates).__name__}")


def recommend_from_images(
    target: object,
    candidates: object,
    k: int = 5,
    top_n: int = 200,
    beta: float = 0.25,
    restrict_class: bool = True,
    *,
    backbone: object = "lite",
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[Recommendation]:
    """Rank an in-memory batch of colour candidates for a target (no index).

    The descriptors are L2-normalised without PCA when the batch is small (fewer than 32
    images for the global descriptor), and PCA-projected as in an index otherwise. Gray
    candidates (no colour to transfer) are never recommended.

    Args:
        target: ``(1|3, H, W)`` or ``(1, 1|3, H, W)`` float in [0, 1], a path or a LoadedImage.
        candidates: ``(B, 3, H, W)`` float in [0, 1] or a list of ``(3, H, W)`` of any sizes.
        k, top_n, beta, restrict_class: as :func:`recommend`.
        backbone: family name or loaded network (see :func:`~.loading.as_describer`).
        batch_size: candidates per forward pass.
        progress: called as ``progress(done, total)`` over the candidates.

    Returns:
        Up to ``k`` :class:`~.search.Recommendation` with ``path=None`` and ``row`` = position
        in ``candidates``; empty when every candidate is gray.

    Example:
        >>> from deepexemplar_core.backbones import LiteBackbone
        >>> net = LiteBackbone().eval()   # random weights: the ranking means nothing here
        >>> found = recommend_from_images(torch.rand(1, 64, 64), torch.rand(3, 3, 48, 48), k=2,
        ...                               backbone=net)
        >>> len(found), sorted(r.row for r in found) == sorted(set(r.row for r in found))
        (2, True)
    """
    items = _candidate_list(candidates)
    pixels, _ = _target_pixels(target)
    describer = as_describer(backbone)
    parts = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        parts.append(describe(describer, torch.stack([prepare_luminance(c) for c in chunk])))
        if progress is not None:
            progress(start + len(chunk), len(items))
    raw = Descriptors.cat(parts)
    gray = torch.tensor([bool(is_gray_rgb(
        torch.nn.functional.interpolate(c[None].float(), size=(64, 64), mode="area"))[0])
        for c in items])
    global_p = fit_projection(raw.global_, 128, min_dims=16)
    local_p = fit_projection(raw.local.reshape(-1, raw.local.shape[2]), 64, min_dims=16)
    data = Searchable.from_descriptors(raw, global_p, local_p, torch.float32)
    query = Searchable.from_descriptors(_query_descriptors(describer, pixels), global_p, local_p,
                                        torch.float32)
    ranked = rank(query, data, k, top_n, beta, restrict_class, gray, "torch")
    return [Recommendation(None, *scores, row=row) for row, *scores in ranked]
