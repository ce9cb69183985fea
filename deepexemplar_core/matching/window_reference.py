"""Exhaustive search in a window around an initial field (method ``"window"``).

For every source pixel ``p`` the candidates are ``q = clampB(init(p) + o)``, ``o`` in
``[-R, R]^2``. The distinct candidates form the clipped box
``[max(0, iy - R), min(Hb - 1, iy + R)] x [max(0, ix - R), min(Wb - 1, ix + R)]``; the best
score wins and ties go to the smallest flat index ``qy * Wb + qx``.

Speed (CPU): pixels are grouped in 4 x 4 tiles whose windows fit one box of side ``6 + 2R``;
the other tiles are split into 2 x 2 tiles (the blocks within which an upsampled field is
constant, box ``2 + 2R``) and, failing that, single pixels. For each tile one small matmul
gives the cosines between the tile's padded source rows and a box of padded target rows
holding every window of the tile; the k x k patch scores are the diagonal sums of that matrix
(:func:`diagonal_patch_sums`). Tiles are batched (``bmm``); nothing loops over pixels in
Python.
"""

from __future__ import annotations

import torch

from .scores import (
    check_field,
    check_pair,
    check_patch_size,
    clamp_field,
    diagonal_patch_sums,
    padded_rows,
)

_TILE_CHUNK = 2**23  # float32 entries (cosines or gathered features) per batch of tiles
_TIERS = ((4, 2), (2, 0), (1, 0))  # (tile side, box slack), tried in order


def _check_radius(radius: object) -> int:
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(
            f"radius: expected an int >= 0 (window half-size in pixels), got {radius!r}"
        )
    return radius


def _gather_block(
    rows: torch.Tensor, batch: torch.Tensor, origin: torch.Tensor, size: int
) -> torch.Tensor:
    """``(n, size, size, C)`` blocks of ``rows (B', H, W, C)`` at ``origin (n, 2)``, clamped."""
    h, w, c = rows.shape[1:]
    steps = torch.arange(size, device=rows.device)
    ys = (origin[:, 0, None] + steps).clamp(max=h - 1)
    xs = (origin[:, 1, None] + steps).clamp(max=w - 1)
    flat = ys[:, :, None] * w + xs[:, None, :]
    if rows.shape[0] > 1:
        flat = flat + (batch * (h * w)).view(-1, 1, 1)
    return rows.reshape(-1, c).index_select(0, flat.reshape(-1)).view(-1, size, size, c)


def _at(field: torch.Tensor, b: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """``field[b, py, px]`` for tiles: ``b (n,)``, ``py, px (n, T)`` -> ``(n, T, T, ...)``."""
    return field[b[:, None, None], py[:, :, None], px[:, None, :]]


def _tile_pixels(tiles: torch.Tensor, tile: int, height: int, width: int):
    """``(b, py, px)`` of tiles ``(n, 3)``: ``b (n,)``, ``py, px (n, tile)`` clamped into A."""
    steps = torch.arange(tile, device=tiles.device)
    py = (tiles[:, 1, None] + steps).clamp(max=height - 1)
    px = (tiles[:, 2, None] + steps).clamp(max=width - 1)
    return tiles[:, 0], py, px


def _tiles_fit(anchor: torch.Tensor, tiles: torch.Tensor, tile: int, slack: int) -> torch.Tensor:
    """``(n,)`` bool: the windows of the tile fit one box of side ``tile + 2R + slack``."""
    anc = _at(anchor, *_tile_pixels(tiles, tile, *anchor.shape[1:3]))
    return ((anc.amax(dim=(1, 2)) - anc.amin(dim=(1, 2))) <= tile - 1 + slack).all(dim=1)


def _tile_search(ap, bp, bounds, tiles, tile, slack, radius, k):
    """Best candidate of every pixel of tiles that pass :func:`_tiles_fit`.

    Args:
        ap: ``(Ba, Ha + 2r, Wa + 2r, C)`` padded source rows.
        bp: ``(Bb, Hb + 2r, Wb + 2r, C)`` padded target rows.
        bounds: ``(anchor, lo, hi)``, each ``(B, Ha, Wa, 2)``: the window origin (shifted to
            fit the target when it can) and the clipped candidate box ``[lo, hi]``.
        tiles: ``(n, 3)`` int64 ``(b, y0, x0)`` of ``tile x tile`` tiles (may overhang A).
        tile: tile side.
        slack: extra box side beyond ``tile + 2R`` (lets windows of a tile drift apart).
        radius: window radius R.
        k: patch size.

    Returns:
        ``(best, q)``: ``best (n, T, T)`` float32, ``q (n, T, T, 2)`` int64.
    """
    anchor, lo, hi = bounds
    r, side, box = k // 2, 2 * radius + 1, tile + 2 * radius + slack
    b, py, px = _tile_pixels(tiles, tile, *anchor.shape[1:3])
    anc = _at(anchor, b, py, px)  # (n, T, T, 2)
    origin = anc.amin(dim=(1, 2))
    a_blk = _gather_block(ap, b, tiles[:, 1:], tile + 2 * r)
    b_blk = _gather_block(bp, b, origin, box + 2 * r)
    n, c = a_blk.shape[0], a_blk.shape[-1]
    sims = torch.bmm(a_blk.view(n, -1, c), b_blk.view(n, -1, c).transpose(1, 2))
    full = diagonal_patch_sums(
        sims.view(n, tile + 2 * r, tile + 2 * r, box + 2 * r, box + 2 * r), k
    )
    rel = (anc - origin[:, None, None]).clamp(max=box - side)  # window start inside the box
    offsets = torch.arange(side, device=tiles.device)
    cy = rel[..., 0, None] + offsets  # (n, T, T, side)
    cx = rel[..., 1, None] + offsets
    idx = (cy[..., :, None] * box + cx[..., None, :]).view(n, tile, tile, side * side)
    scores = torch.gather(full.view(n, tile, tile, box * box), 3, idx)
    qy = origin[:, 0, None, None, None] + cy  # candidate rows / columns, (n, T, T, side)
    qx = origin[:, 1, None, None, None] + cx
    lo_t, hi_t = _at(lo, b, py, px), _at(hi, b, py, px)
    ok_y = (qy >= lo_t[..., :1]) & (qy <= hi_t[..., :1])
    ok_x = (qx >= lo_t[..., 1:]) & (qx <= hi_t[..., 1:])
    inside = (ok_y[..., :, None] & ok_x[..., None, :]).view(n, tile, tile, side * side)
    best, arg = scores.masked_fill_(~inside, -float("inf")).max(dim=-1)
    q_best = torch.cat(
        (
            torch.gather(qy, 3, (arg // side)[..., None]),
            torch.gather(qx, 3, (arg % side)[..., None]),
        ),
        -1,
    )
    return best, q_best


def _scatter(nnf, best, tiles, tile, t_best, t_q):
    """Write the results of the tiles' pixels that lie inside A."""
    ha, wa = best.shape[1:]
    steps = torch.arange(tile, device=tiles.device)
    py = (tiles[:, 1, None, None] + steps[:, None]).expand(-1, tile, tile)
    px = (tiles[:, 2, None, None] + steps[None, :]).expand(-1, tile, tile)
    b = tiles[:, 0, None, None].expand(-1, tile, tile)
    keep = (py < ha) & (px < wa)
    best[b[keep], py[keep], px[keep]] = t_best[keep]
    nnf[b[keep], py[keep], px[keep]] = t_q[keep]


def _split(tiles: torch.Tensor, tile: int, sub: int) -> torch.Tensor:
    """Tiles of side ``sub`` ``(m, 3)`` covering tiles of side ``tile`` ``(n, 3)``."""
    u = torch.arange(0, tile, sub, device=tiles.device)
    dy, dx = torch.meshgrid(u, u, indexing="ij")
    shift = torch.stack((torch.zeros_like(dy), dy, dx), dim=-1).view(1, -1, 3)
    return (tiles[:, None, :] + shift).view(-1, 3)


def window_search_reference(
    source: torch.Tensor,
    target: torch.Tensor,
    init: torch.Tensor,
    *,
    patch_size: int = 3,
    radius: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best patch in a ``(2R+1)^2`` window around ``init``, exhaustively (pure PyTorch).

    Args:
        source: ``(B, C, Ha, Wa)`` float, L2-normalised per pixel (batch 1 is broadcast).
        target: ``(B, C, Hb, Wb)`` float, L2-normalised per pixel (batch 1 is broadcast).
        init: ``(B, Ha, Wa, 2)`` int64 absolute (y, x) field into the target; clamped first.
        patch_size: odd patch side ``k``.
        radius: window half-size ``R >= 0`` in target pixels.

    Returns:
        ``(nnf, score)``: ``nnf (B, Ha, Wa, 2)`` int64 absolute (y, x) and ``score (B, Ha, Wa)``
        float32 mean cosine of the chosen patch pair. Ties go to the smallest flat index.

    Raises:
        TypeError: non-float features, non-integer ``init``.
        ValueError: mismatched shapes, even ``patch_size``, negative ``radius``.

    Example:
        >>> a = torch.nn.functional.normalize(torch.rand(1, 8, 9, 9), dim=1)
        >>> init = torch.zeros(1, 9, 9, 2, dtype=torch.int64)
        >>> nnf, score = window_search_reference(a, a, init, patch_size=3, radius=9)
        >>> bool((score > 0.999).all())
        True
    """
    batch = check_pair(source, target)
    k = check_patch_size(patch_size)
    radius = _check_radius(radius)
    ha, wa = source.shape[2:]
    hb, wb = target.shape[2:]
    check_field("init", init, batch, ha, wa)
    r, side = k // 2, 2 * radius + 1
    dev = source.device
    ap, bp = padded_rows(source.float(), r), padded_rows(target.float(), r)
    init = clamp_field(init.long().to(dev), hb, wb)
    size = torch.tensor((hb, wb), device=dev)
    lo = (init - radius).clamp(min=0)
    hi = torch.minimum(init + radius, size - 1)
    anchor = torch.minimum(lo, (size - side).clamp(min=0))
    nnf = torch.zeros_like(init)
    best = torch.zeros(init.shape[:3], dtype=torch.float32, device=dev)
    first = _TIERS[0][0]
    ys, xs = torch.arange(0, ha, first, device=dev), torch.arange(0, wa, first, device=dev)
    grid = torch.stack(
        torch.meshgrid(torch.arange(batch, device=dev), ys, xs, indexing="ij"), dim=-1
    )
    tiles, previous = grid.view(-1, 3), first
    for tile, slack in _TIERS:
        if tile != previous:
            tiles = _split(tiles, previous, tile)
            tiles = tiles[(tiles[:, 1] < ha) & (tiles[:, 2] < wa)]
            previous = tile
        ok = _tiles_fit(anchor, tiles, tile, slack)
        fitting, tiles = tiles[ok], tiles[~ok]
        rows_a, rows_b = (tile + 2 * r) ** 2, (tile + 2 * radius + slack + 2 * r) ** 2
        per_tile = max(rows_a * rows_b, (rows_a + rows_b) * ap.shape[-1])  # cosines, gathered
        step = max(1, _TILE_CHUNK // per_tile)
        for start in range(0, fitting.shape[0], step):
            chunk = fitting[start : start + step]
            t_best, t_q = _tile_search(ap, bp, (anchor, lo, hi), chunk, tile, slack, radius, k)
            _scatter(nnf, best, chunk, tile, t_best, t_q)
    return nnf, best
