"""Ranking: global cosine ranking, then local re-ranking of the top N (paper section 4).

With projected, L2-normalised descriptors (see :mod:`.pca`):

1. **Global**: ``global_score = <g_target, g_candidate>`` for every candidate (one matrix
   product), optionally restricted to candidates whose top-1 class is the target's when that
   class has at least ``max(k, MIN_CLASS_SIZE)`` members. The best ``min(top_n, max(k,
   ceil(M / 2)))`` of the ``M`` eligible candidates are kept (the authors keep ``min(200, N/2)``).
2. **Local**: for each of the target's 49 grid cells ``p``, the candidate cell ``q`` of highest
   cosine; ``local_score`` is the mean of those cosines, ``histogram_score`` the mean correlation
   coefficient of the 10-bin luminance histograms of ``p`` and ``q``.
3. **Score** as the authors' code computes it (``source/search/main.cpp``):
   ``score = 1 - (dist0 + beta * dist1)`` with ``dist0 = 1 - local_score`` and
   ``dist1 = (1 - histogram_score + 1) / 2``, i.e. ``local_score - beta * (1 - histogram_score / 2)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .descriptors import Descriptors
from .pca import Projection, l2_normalize

__all__ = [
    "FAISS_MIN_ROWS",
    "MIN_CLASS_SIZE",
    "Recommendation",
    "Searchable",
    "faiss_available",
    "rank",
]

logger = logging.getLogger(__name__)

#: A class restriction applies only when the class has at least this many eligible members.
MIN_CLASS_SIZE = 5
#: Torch threads of a search on the CPU. Its operations are memory-bound: on the shared 2-core
#: development machine one thread searched 100k images in 27 ms (median), two in 164-416 ms.
SEARCH_THREADS = 1
#: Torch threads of a query's descriptor (one image) on the CPU: on the same busy machine one
#: thread took 51-75 ms (median), two 309-7668 ms.
QUERY_THREADS = 1
#: Images projected at a time when an index is (re)projected.
CHUNK = 4096
#: With ``backend="auto"``, FAISS is used for the global stage from this many rows on.
FAISS_MIN_ROWS = 300_000


@dataclass(frozen=True)
class Recommendation:
    """One recommended reference.

    Attributes:
        path: absolute path of the image (``None`` for in-memory candidates).
        score: the final score (higher is better; see the module docstring).
        global_score: cosine of the global descriptors, in [-1, 1].
        local_score: mean best-match cosine of the 7x7 local descriptors, in [-1, 1].
        histogram_score: mean luminance-histogram correlation of the matched cells, in [-1, 1].
        class_match: the candidate's top-1 class is the target's.
        row: the candidate's position (index row, or position in the candidate batch).
    """

    path: Path | None
    score: float
    global_score: float
    local_score: float
    histogram_score: float
    class_match: bool
    row: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (``path`` as a string)."""
        return {
            "path": None if self.path is None else str(self.path),
            "score": self.score,
            "global_score": self.global_score,
            "local_score": self.local_score,
            "histogram_score": self.histogram_score,
            "class_match": self.class_match,
            "row": self.row,
        }


@dataclass(frozen=True)
class Searchable:
    """Projected descriptors ready for ranking.

    Attributes:
        classes: ``(N, 5)`` int64 top class ids.
        global_: ``(N, Dg)`` float32, L2-normalised.
        local: ``(N, 49, Dl)`` float16 or float32, L2-normalised per cell.
        hist: ``(N, 49, 10)`` float16 or float32, centred and L2-normalised per cell (so a dot
            product is the correlation coefficient).
    """

    classes: torch.Tensor
    global_: torch.Tensor
    local: torch.Tensor
    hist: torch.Tensor

    def __len__(self) -> int:
        return int(self.classes.shape[0])

    @staticmethod
    def from_descriptors(
        raw: Descriptors,
        global_projection: Projection,
        local_projection: Projection,
        dtype: torch.dtype = torch.float16,
    ) -> Searchable:
        """Project raw descriptors; ``local`` and ``hist`` are stored in ``dtype``. Works in
        chunks of :data:`CHUNK` images, so float32 copies of a whole collection never exist."""

        def chunked(fn, x: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
            if len(x) == 0:
                return fn(x).to(out_dtype)
            return torch.cat([fn(x[i:i + CHUNK]).to(out_dtype) for i in range(0, len(x), CHUNK)])

        return Searchable(
            raw.classes,
            chunked(global_projection, raw.global_, torch.float32),
            chunked(local_projection, raw.local, dtype),
            chunked(normalize_histograms, raw.hist, dtype),
        )

    def nbytes(self) -> int:
        """Bytes held by the four tensors."""
        return sum(t.numel() * t.element_size() for t in (self.classes, self.global_, self.local,
                                                            self.hist))


def normalize_histograms(hist: torch.Tensor) -> torch.Tensor:
    """Centre each histogram over its bins and L2-normalise it (flat ones become zero).

    Example:
        >>> h = normalize_histograms(torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0]]))
        >>> round(float((h[0] * h[1]).sum()), 4)   # correlation coefficient
        0.5
    """
    centred = hist.float() - hist.float().mean(dim=-1, keepdim=True)
    return l2_normalize(centred)


def faiss_available() -> bool:
    """True when the optional ``faiss`` package imports."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class _FaissGlobal:
    """Inner-product FAISS index over the global descriptors (built once, lazily)."""

    def __init__(self, global_: torch.Tensor) -> None:
        import faiss

        self.index = faiss.IndexFlatIP(int(global_.shape[1]))
        self.index.add(global_.float().contiguous().numpy())

    def top(self, query: torch.Tensor, eligible: torch.Tensor, n: int) -> torch.Tensor | None:
        """Rows of the best ``n`` eligible candidates, or None when over-fetching fell short."""
        fetch = min(self.index.ntotal, max(4 * n, n + 64))
        _, found = self.index.search(query[None].float().numpy(), fetch)
        rows = torch.from_numpy(found[0]).long()
        rows = rows[(rows >= 0)]
        rows = rows[eligible[rows]]
        return rows[:n] if rows.numel() >= n else None


def _global_top(
    data: Searchable, query: torch.Tensor, eligible: torch.Tensor, n: int, backend: str,
    cache: dict,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the ``n`` best eligible candidates by global cosine and every row's cosine."""
    scores = data.global_ @ query.to(data.global_.device, data.global_.dtype)
    use_faiss = backend == "faiss" or (
        backend == "auto" and len(data) >= FAISS_MIN_ROWS and faiss_available())
    if use_faiss:
        if "faiss" not in cache:
            cache["faiss"] = _FaissGlobal(data.global_.cpu())
        rows = cache["faiss"].top(query.cpu(), eligible.cpu(), n)
        if rows is not None:
            return rows.to(scores.device), scores
        logger.debug("faiss over-fetch fell short; exact search instead")
    masked = scores.masked_fill(~eligible, -math.inf)
    return masked.topk(n).indices, scores


def rank(
    query: Searchable,
    data: Searchable,
    k: int = 5,
    top_n: int = 200,
    beta: float = 0.25,
    restrict_class: bool = True,
    exclude: torch.Tensor | None = None,
    backend: str = "auto",
    cache: dict | None = None,
) -> list[tuple[int, float, float, float, float, bool]]:
    """Rank ``data`` for one ``query``.

    Args:
        query: :class:`Searchable` of one image (projected like ``data``).
        data: the candidates.
        k: number of results (>= 1).
        top_n: candidates kept by the global stage for local re-ranking (>= 1).
        beta: weight of the luminance term (the authors' 0.25; 0 ignores luminance).
        restrict_class: search only the target's top-1 class when it has enough members.
        exclude: ``(N,)`` bool, rows never returned (the target itself, duplicates).
        backend: ``"auto"``, ``"torch"`` or ``"faiss"`` for the global stage.
        cache: a dict the caller keeps between queries (holds the FAISS index).

    Returns:
        Up to ``k`` tuples ``(row, score, global_score, local_score, histogram_score,
        class_match)``, best first; empty when nothing is eligible.

    Raises:
        ValueError: bad ``k``, ``top_n``, ``beta`` or ``backend``, or mismatched dimensions.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected an integer >= 1, got {k!r}")
    if not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n: expected an integer >= 1, got {top_n!r}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta: expected a finite number >= 0, got {beta!r}")
    if backend not in ("auto", "torch", "faiss"):
        raise ValueError(f"backend: expected 'auto', 'torch' or 'faiss', got {backend!r}")
    if backend == "faiss" and not faiss_available():
        raise ValueError("backend: 'faiss' needs the optional faiss package "
                         "(pip install 'deepexemplar[faiss]')")
    if query.global_.shape[1:] != data.global_.shape[1:] or query.local.shape[1:] != data.local.shape[1:]:
        raise ValueError(f"query: descriptor dimensions {tuple(query.local.shape[1:])} do not "
                         f"match the candidates' {tuple(data.local.shape[1:])}")
    if data.global_.device.type != "cpu":
        return _rank(query, data, k, top_n, beta, restrict_class, exclude, backend, cache)
    with cpu_threads(SEARCH_THREADS):
        return _rank(query, data, k, top_n, beta, restrict_class, exclude, backend, cache)


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Run the block with at most ``count`` torch CPU threads (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, count)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _rank(
    query: Searchable, data: Searchable, k: int, top_n: int, beta: float, restrict_class: bool,
    exclude: torch.Tensor | None, backend: str, cache: dict | None,
) -> list[tuple[int, float, float, float, float, bool]]:
    """:func:`rank` after validation."""
    n_rows = len(data)
    eligible = torch.ones(n_rows, dtype=torch.bool) if exclude is None else ~exclude.cpu()
    class_match = data.classes[:, 0] == query.classes[0, 0]
    if restrict_class and int((class_match & eligible).sum()) >= max(k, MIN_CLASS_SIZE):
        eligible = eligible & class_match
    count = int(eligible.sum())
    if count == 0:
        return []
    keep = min(top_n, count, max(k, math.ceil(count / 2)))
    device = data.global_.device
    rows, global_scores = _global_top(data, query.global_[0], eligible.to(device), keep, backend,
                                      {} if cache is None else cache)
    local, hist = _local_terms(query, data, rows)
    scores = local - beta * (1.0 - hist / 2.0)
    order = scores.argsort(descending=True, stable=True)[:k]
    return [
        (int(rows[i]), float(scores[i]), float(global_scores[rows[i]]), float(local[i]),
         float(hist[i]), bool(class_match[int(rows[i])]))
        for i in order.tolist()
    ]


def _local_terms(query: Searchable, data: Searchable, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean best-match cosine and matched-cell histogram correlation for ``rows``.

    Returns:
        ``(local_score (n,), histogram_score (n,))`` float32.
    """
    device = data.local.device
    q_local = query.local[0].to(device).float()             # (49, Dl)
    q_hist = query.hist[0].to(device).float()               # (49, 10)
    cand = data.local[rows.to(device)].float()              # (n, 49, Dl)
    cos = torch.einsum("ncd,pd->npc", cand, q_local)        # (n, 49 target, 49 candidate)
    best, match = cos.max(dim=2)                            # (n, 49)
    cand_hist = data.hist[rows.to(device)].float()          # (n, 49, 10)
    matched = torch.gather(cand_hist, 1, match[..., None].expand(-1, -1, cand_hist.shape[2]))
    corr = (matched * q_hist[None]).sum(dim=2)              # (n, 49)
    return best.mean(dim=1).cpu(), corr.mean(dim=1).cpu()
