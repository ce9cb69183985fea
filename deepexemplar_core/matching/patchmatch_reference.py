"""The reference PatchMatch: synchronous jump flooding plus counter-hash random search.

Deterministic and batched: every step reads the state left by the previous step only (Jacobi
updates), so the result is a pure function of the inputs and ``seed``; the compiled kernels
in ``cuda_ext`` implement the same steps (docs/matching.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .rng import counter_hash
from .scores import (
    check_field,
    check_pair,
    check_patch_size,
    clamp_field,
    padded_rows,
)


def random_radii(radius: int | None, target_height: int, target_width: int) -> list[int]:
    """Random-search radii ``R0, R0 // 2, ..., 1`` with ``R0 = min(radius, max(Hb, Wb))``.

    ``radius=None`` means the whole map (``R0 = max(Hb, Wb)``); ``radius=0`` gives no random
    search.

    Example:
        >>> random_radii(6, 32, 32), random_radii(None, 16, 12)
        ([6, 3, 1], [16, 8, 4, 2, 1])
    """
    r0 = max(target_height, target_width)
    if radius is not None:
        r0 = min(radius, r0)
    radii = []
    while r0 >= 1:
        radii.append(r0)
        r0 //= 2
    return radii


def scaled_identity(batch: int, source_size, target_size, device) -> torch.Tensor:
    """``(B, Ha, Wa, 2)`` int64 field ``q = ((py * Hb) // Ha, (px * Wb) // Wa)``."""
    ha, wa = source_size
    hb, wb = target_size
    qy = torch.arange(ha, device=device) * hb // ha
    qx = torch.arange(wa, device=device) * wb // wa
    field = torch.stack(torch.meshgrid(qy, qx, indexing="ij"), dim=-1)
    return field.unsqueeze(0).expand(batch, -1, -1, -1).clone()


def _check_options(iterations, radius, jumps, seed, level) -> tuple[int, ...]:
    for name, value, low in (
        ("iterations", iterations, 0),
        ("seed", seed, None),
        ("level", level, 0),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (low is not None and value < low)
        ):
            raise ValueError(
                f"{name}: expected an int{' >= 0' if low is not None else ''}, got {value!r}"
            )
    if radius is not None and (
        isinstance(radius, bool) or not isinstance(radius, int) or radius < 0
    ):
        raise ValueError(f"radius: expected None (whole map) or an int >= 0, got {radius!r}")
    jumps = tuple(jumps)
    if not all(isinstance(j, int) and not isinstance(j, bool) and j >= 1 for j in jumps):
        raise ValueError(
            f"jumps: expected a sequence of ints >= 1 such as (8, 4, 2, 1), got {jumps!r}"
        )
    return jumps


class _Scorer:
    """Scores whole candidate fields ``q: (B, Ha, Wa, 2)`` for every source pixel.

    The source side of a patch is a shifted view of the padded map; only the target rows are
    gathered (k^2 ``index_select`` of ``B * Ha * Wa`` rows per candidate field).
    """

    def __init__(self, source: torch.Tensor, target: torch.Tensor, batch: int, k: int):
        r = k // 2
        self.k, self.batch = k, batch
        self.ha, self.wa = source.shape[2:]
        self.ap = padded_rows(source.float(), r)
        bp = padded_rows(target.float(), r)
        self.hbp, self.wbp = bp.shape[1:3]
        self.b_rows = bp.reshape(-1, bp.shape[-1])
        self.b_offset = 0
        if bp.shape[0] > 1:
            self.b_offset = torch.arange(batch, device=source.device).view(batch, 1, 1) * (
                self.hbp * self.wbp
            )

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        ha, wa, k, c = self.ha, self.wa, self.k, self.b_rows.shape[1]
        base = q[..., 0] * self.wbp + q[..., 1] + self.b_offset
        total = torch.zeros((self.batch, ha, wa), dtype=torch.float32, device=q.device)
        for dy in range(k):
            for dx in range(k):
                idx = (base + (dy * self.wbp + dx)).reshape(-1)
                rows = self.b_rows.index_select(0, idx).view(self.batch, ha, wa, c)
                total += (rows * self.ap[:, dy : dy + ha, dx : dx + wa]).sum(dim=-1)
        return total / (k * k)


def _shifted(field: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour state ``field[p + (dy, dx)]`` and the mask of pixels whose neighbour is inside."""
    _batch, h, w = field.shape[:3]
    out = torch.zeros_like(field)
    valid = torch.zeros((h, w), dtype=torch.bool, device=field.device)
    ys, yn = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xn = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[:, ys, xs] = field[:, yn, xn]
    valid[ys, xs] = True
    return out, valid


def _improve(nnf, best, cand, score, valid):
    """In place: take candidates that are valid and strictly better."""
    better = (score > best) & valid
    best[better] = score[better]
    nnf[better] = cand[better]


def patchmatch_reference(
    source: torch.Tensor,
    target: torch.Tensor,
    init: torch.Tensor | None = None,
    *,
    patch_size: int = 3,
    iterations: int = 10,
    radius: int | None = None,
    jumps: Sequence[int] = (8, 4, 2, 1),
    seed: int = 0,
    level: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PatchMatch of ``source`` patches in ``target`` (pure PyTorch, deterministic).

    Each iteration ``t`` runs, for every jump ``j`` (step ``s``), one synchronous propagation
    step from the neighbours ``p + (0, -j)``, ``p + (0, +j)``, ``p + (-j, 0)``, ``p + (+j, 0)``
    (candidate ``clampB(nnf[n] + p - n)``), then one random candidate per radius
    ``R0, R0 // 2, ..., 1`` drawn with :func:`counter_hash`. A candidate replaces the current
    match only when its score is strictly greater, so ``score`` never decreases.

    Args:
        source: ``(B, C, Ha, Wa)`` float, L2-normalised per pixel (batch 1 is broadcast).
        target: ``(B, C, Hb, Wb)`` float, L2-normalised per pixel (batch 1 is broadcast).
        init: ``(B, Ha, Wa, 2)`` int64 absolute initial field (clamped to the target), or
            ``None`` for the proportionally scaled identity.
        patch_size: odd patch side ``k``.
        iterations: number of iterations ``T >= 0``.
        radius: random-search radius ``R0`` in target pixels, ``None`` = whole map.
        jumps: propagation distances, in order.
        seed: seed of the counter hash.
        level: level index mixed into the hash (fine to coarse, 0 = finest).

    Returns:
        ``(nnf, score)``: ``nnf (B, Ha, Wa, 2)`` int64 absolute (y, x), ``score (B, Ha, Wa)``
        float32 mean cosine.

    Raises:
        TypeError: non-float features, non-integer ``init``.
        ValueError: mismatched shapes or invalid options.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 8, 12, 12), dim=1)
        >>> nnf, score = patchmatch_reference(a, a, iterations=3, seed=1)
        >>> nnf.shape, score.dtype
        (torch.Size([1, 12, 12, 2]), torch.float32)
    """
    batch = check_pair(source, target)
    k = check_patch_size(patch_size)
    jumps = _check_options(iterations, radius, jumps, seed, level)
    ha, wa = source.shape[2:]
    hb, wb = target.shape[2:]
    dev = source.device
    if init is None:
        nnf = scaled_identity(batch, (ha, wa), (hb, wb), dev)
    else:
        check_field("init", init, batch, ha, wa)
        nnf = clamp_field(init.long().to(dev), hb, wb)
    score_of = _Scorer(source, target, batch, k)
    best = score_of(nnf)
    pix = torch.arange(batch * ha * wa, device=dev).view(batch, ha, wa)
    radii = random_radii(radius, hb, wb)
    for t in range(iterations):
        for j in jumps:
            nnf, best = _propagate(nnf, best, j, score_of, hb, wb)
        for i, rad in enumerate(radii):
            s = len(jumps) + i
            oy = counter_hash(seed, level, t, s, pix, 0) % (2 * rad + 1) - rad
            ox = counter_hash(seed, level, t, s, pix, 1) % (2 * rad + 1) - rad
            cand = clamp_field(nnf + torch.stack((oy, ox), dim=-1), hb, wb)
            _improve(nnf, best, cand, score_of(cand), torch.ones_like(best, dtype=torch.bool))
    return nnf, best


def _propagate(nnf, best, jump, score_of, hb, wb):
    """One synchronous jump-flooding step: left, right, up, down neighbours at ``jump``."""
    prev = nnf
    nnf, best = nnf.clone(), best.clone()
    for dy, dx in ((0, -jump), (0, jump), (-jump, 0), (jump, 0)):
        neighbour, valid = _shifted(prev, dy, dx)
        shift = torch.tensor((-dy, -dx), device=nnf.device)
        cand = clamp_field(neighbour + shift, hb, wb)
        _improve(nnf, best, cand, score_of(cand), valid.expand_as(best))
    return nnf, best
