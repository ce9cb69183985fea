"""NNF upsampling between pyramid levels (DIA's ``upSample_kernel``)."""

from __future__ import annotations

import torch

from .._checks import check_shape
from .scores import clamp_field


def _positive_size(name: str, size: object) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"{name}: expected a (height, width) pair of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def upsample_nnf(
    nnf: torch.Tensor, source_size: tuple[int, int], target_size: tuple[int, int]
) -> torch.Tensor:
    """Bring a coarse absolute field to a finer source grid, keeping each parent's offset.

    With the source ratios ``rh = Ha_fine / Ha_coarse`` and ``rw = Wa_fine / Wa_coarse``
    (float64), the parent of fine pixel ``p`` is
    ``pc = (min(floor((py + 0.5) / rh), Ha_c - 1), min(floor((px + 0.5) / rw), Wa_c - 1))`` and
    ``q = (trunc(py + (nnf[pc].y - pc.y) * rh + 0.5), trunc(px + (nnf[pc].x - pc.x) * rw + 0.5))``
    (trunc toward zero, as C's ``int()``), clamped to the fine target ``target_size``.

    Args:
        nnf: ``(B, Ha_c, Wa_c, 2)`` int64 absolute (y, x) field into the coarse target.
        source_size: ``(Ha_fine, Wa_fine)`` of the fine source grid.
        target_size: ``(Hb_fine, Wb_fine)`` of the fine target grid (clamping range).

    Returns:
        ``(B, Ha_fine, Wa_fine, 2)`` int64 absolute field into the fine target.

    Raises:
        TypeError: ``nnf`` is not an integer tensor.
        ValueError: wrong shapes or sizes.

    Example:
        >>> coarse = torch.tensor([[[[0, 1], [0, 0]]]])      # (1, 1, 2, 2): p(0,0)->(0,1), p(0,1)->(0,0)
        >>> upsample_nnf(coarse, (2, 4), (2, 4))[0, :, :, 1].tolist()
        [[2, 3, 0, 1], [2, 3, 0, 1]]
    """
    check_shape("nnf", nnf, ("B", "H", "W", 2))
    if nnf.is_floating_point() or nnf.dtype == torch.bool:
        raise TypeError(f"nnf: expected an integer dtype, got {nnf.dtype}")
    ha, wa = _positive_size("source_size", source_size)
    hb, wb = _positive_size("target_size", target_size)
    hc, wc = nnf.shape[1:3]
    rh, rw = ha / hc, wa / wc
    dev = nnf.device
    py = torch.arange(ha, device=dev, dtype=torch.float64)
    px = torch.arange(wa, device=dev, dtype=torch.float64)
    pcy = torch.floor((py + 0.5) / rh).clamp(max=hc - 1).long()
    pcx = torch.floor((px + 0.5) / rw).clamp(max=wc - 1).long()
    parent = nnf.long()[:, pcy][:, :, pcx]  # (B, ha, wa, 2)
    off_y = (parent[..., 0] - pcy.view(1, ha, 1)).double()
    off_x = (parent[..., 1] - pcx.view(1, 1, wa)).double()
    qy = torch.trunc(py.view(1, ha, 1) + off_y * rh + 0.5).long()
    qx = torch.trunc(px.view(1, 1, wa) + off_x * rw + 0.5).long()
    return clamp_field(torch.stack((qy, qx), dim=-1), hb, wb)
