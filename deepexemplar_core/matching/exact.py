"""Global exact nearest-neighbour fields (method ``"exact"``), chunked.

The patch score is computed with the *diagonal-sum* form: the 1x1 cosine matrix ``S`` between
the replicate-padded maps is formed by one matmul per tile, and the k x k patch score is the
sum of ``S`` along the k^2 diagonal shifts, done separably (k shifts along x, then k along y).
That costs ``2 * C`` multiply-adds plus ``2k`` additions per pair, instead of ``2 * C * k^2``
for a matmul of unfolded patches (9x to 25x fewer FLOPs on CPU; results equal up to float
rounding). The pair space is cut into tiles of source rows x target rows so that no tile holds
more than about ``chunk`` similarity entries; the argmax is reduced per tile and merged with a
strictly-greater rule, so ties go to the smallest flat index ``qy * Wb + qx`` as the spec asks.
"""

from __future__ import annotations

import torch

from .scores import check_pair, check_patch_size, diagonal_patch_sums, padded_rows

DEFAULT_CHUNK = 2**24


def _tile_rows(ha: int, wa: int, hb: int, wb: int, r: int, chunk: int) -> tuple[int, int]:
    """Source and target rows per tile so that one tile's matrix has ~``chunk`` entries."""
    wap, wbp = wa + 2 * r, wb + 2 * r
    full_b = (hb + 2 * r) * wbp
    rows_a = chunk // (wap * full_b) - 2 * r
    if rows_a >= 1:
        return min(rows_a, ha), hb
    rows_b = chunk // ((1 + 2 * r) * wap * wbp) - 2 * r
    return 1, max(1, min(rows_b, hb))


def _tile_scores(a_rows: torch.Tensor, b_rows: torch.Tensor, k: int) -> torch.Tensor:
    """Patch scores ``(ha, Wa, hb, Wb)`` of every pair of a padded source and target tile."""
    hap, wap, c = a_rows.shape
    hbp, wbp = b_rows.shape[:2]
    s = (a_rows.reshape(-1, c) @ b_rows.reshape(-1, c).T).view(hap, wap, hbp, wbp)
    return diagonal_patch_sums(s, k)


def _merge(best: torch.Tensor, arg: torch.Tensor, val: torch.Tensor, idx: torch.Tensor) -> None:
    """In place: take ``(val, idx)`` where ``val`` is strictly greater than ``best``."""
    better = val > best
    best[better] = val[better]
    arg[better] = idx[better]


def _to_field(flat: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack((flat // width, flat % width), dim=-1)


def _exact_pair(a: torch.Tensor, b: torch.Tensor, k: int, chunk: int, both: bool):
    """Exact fields of one source map ``a: (C, Ha, Wa)`` and one target map ``b: (C, Hb, Wb)``."""
    r = k // 2
    ha, wa = a.shape[1:]
    hb, wb = b.shape[1:]
    ap = padded_rows(a.unsqueeze(0), r)[0]
    bp = padded_rows(b.unsqueeze(0), r)[0]
    rows_a, rows_b = _tile_rows(ha, wa, hb, wb, r, chunk)
    ab_val = torch.full((ha * wa,), -float("inf"), device=a.device)
    ab_idx = torch.zeros(ha * wa, dtype=torch.int64, device=a.device)
    ba_val = torch.full((hb * wb,), -float("inf"), device=a.device)
    ba_idx = torch.zeros(hb * wb, dtype=torch.int64, device=a.device)
    for ya in range(0, ha, rows_a):
        ya1 = min(ya + rows_a, ha)
        a_sl = slice(ya * wa, ya1 * wa)
        for yb in range(0, hb, rows_b):
            yb1 = min(yb + rows_b, hb)
            b_sl = slice(yb * wb, yb1 * wb)
            scores = _tile_scores(ap[ya : ya1 + 2 * r], bp[yb : yb1 + 2 * r], k)
            scores = scores.view((ya1 - ya) * wa, (yb1 - yb) * wb)
            val, idx = scores.max(dim=1)
            _merge(ab_val[a_sl], ab_idx[a_sl], val, idx + yb * wb)
            if both:
                val, idx = scores.max(dim=0)
                _merge(ba_val[b_sl], ba_idx[b_sl], val, idx + ya * wa)
    fwd = (_to_field(ab_idx, wb).view(ha, wa, 2), ab_val.view(ha, wa))
    bwd = (_to_field(ba_idx, wa).view(hb, wb, 2), ba_val.view(hb, wb))
    return fwd, bwd


def _run(source, target, patch_size, chunk, both):
    batch = check_pair(source, target)
    k = check_patch_size(patch_size)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(
            f"chunk: expected a positive int (similarity entries per tile), got {chunk}"
        )
    a, b = source.float(), target.float()
    results = []
    for i in range(batch):
        ai = a[i if a.shape[0] > 1 else 0]
        bi = b[i if b.shape[0] > 1 else 0]
        results.append(_exact_pair(ai, bi, k, chunk, both))
    fwd = tuple(torch.stack([res[0][j] for res in results]) for j in range(2))
    bwd = tuple(torch.stack([res[1][j] for res in results]) for j in range(2))
    return fwd, bwd


def exact_nn(
    source: torch.Tensor, target: torch.Tensor, *, patch_size: int = 3, chunk: int = DEFAULT_CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global exact nearest neighbour of every source patch among all target patches.

    Args:
        source: ``(B, C, Ha, Wa)`` float, L2-normalised per pixel (batch 1 is broadcast).
        target: ``(B, C, Hb, Wb)`` float, L2-normalised per pixel (batch 1 is broadcast).
        patch_size: odd patch side ``k``.
        chunk: at most about this many similarity entries are held per tile (float32); the
            working memory is about three times ``4 * chunk`` bytes plus the padded maps.

    Returns:
        ``(nnf, score)``: ``nnf (B, Ha, Wa, 2)`` int64 absolute (y, x) in the target and
        ``score (B, Ha, Wa)`` float32, the best patch score (mean cosine, ``[-1, 1]``). Ties go
        to the smallest flat target index ``qy * Wb + qx``.

    Raises:
        TypeError: non-float features or a non-int ``patch_size``.
        ValueError: mismatched shapes, even ``patch_size`` or a non-positive ``chunk``.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 8, 6, 7), dim=1)
        >>> nnf, score = exact_nn(a, a, patch_size=3)
        >>> nnf.shape, bool((score > 0.999).all())
        (torch.Size([1, 6, 7, 2]), True)
    """
    fwd, _ = _run(source, target, patch_size, chunk, both=False)
    return fwd


def exact_nn_bidirectional(
    source: torch.Tensor, target: torch.Tensor, *, patch_size: int = 3, chunk: int = DEFAULT_CHUNK
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Both exact fields (source -> target and target -> source) from the same tiles.

    The score is symmetric, so the row maxima of each tile give source -> target and the
    column maxima give target -> source; this costs one pass instead of two.

    Args:
        source: ``(B, C, Ha, Wa)`` float, L2-normalised per pixel (batch 1 is broadcast).
        target: ``(B, C, Hb, Wb)`` float, L2-normalised per pixel (batch 1 is broadcast).
        patch_size: odd patch side ``k``.
        chunk: similarity entries per tile, as in :func:`exact_nn`.

    Returns:
        ``((nnf_ab, score_ab), (nnf_ba, score_ba))`` with ``nnf_ab (B, Ha, Wa, 2)``,
        ``nnf_ba (B, Hb, Wb, 2)`` int64 absolute fields and float32 scores; ties go to the
        smallest flat index in the image searched.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(2, 8, 6, 7), dim=1)
        >>> b = torch.nn.functional.normalize(torch.rand(1, 8, 5, 4), dim=1)
        >>> (f_ab, s_ab), (f_ba, s_ba) = exact_nn_bidirectional(a, b)
        >>> f_ab.shape, f_ba.shape
        (torch.Size([2, 6, 7, 2]), torch.Size([2, 5, 4, 2]))
    """
    return _run(source, target, patch_size, chunk, both=True)
