"""Patch-vote colour warping through a correspondence field (section C.2 of the code facts).

The authors do not look colours up per pixel. For every target pixel ``p`` they average the
reference colours ``R[phi(p + d) - d]`` over the patch offsets ``d`` (3x3 by default) whose
neighbour ``p + d`` lies in the target and whose shifted match ``phi(p + d) - d`` lies in the
reference, then truncate the mean to uint8 (``reconstruct_avg`` in their
``similarity_combo/source/GeneralizedPatchMatch.cu``). The mean of at most nine uint8 values
divided by the vote count is computed here in exact integer arithmetic: their float32 quotient
truncated to an integer always equals the integer floor division, so the result is bit-exact.

Out-of-range matches (any coordinate outside the other image, which their packed ``(y << 11) | x``
fields express as large values) simply do not vote. A pixel without any vote (possible only for
fields that are out of range around it) is 0: the authors divide 0 by 0 there, which is
undefined behaviour in C++ and gives 0 with the usual x86 conversion of NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_nonempty, check_shape

__all__ = ["WarpColors", "compose_fields", "cycle_colors", "warp_colors"]


def _check_field(name: str, nnf: torch.Tensor) -> dict[str, int]:
    """Validate an absolute ``(B, H, W, 2)`` integer field; return its bound sizes."""
    dims = check_shape(name, nnf, ("B", "H", "W", 2))
    check_nonempty(name, nnf)
    if nnf.is_floating_point() or nnf.is_complex() or nnf.dtype == torch.bool:
        raise TypeError(
            f"{name}: expected an integer dtype (int64 absolute (y, x)), got {nnf.dtype}"
        )
    return dims


def _check_rgb8(name: str, image: torch.Tensor) -> dict[str, int]:
    """Validate a ``(B, 3, H, W)`` uint8 image; return its bound sizes."""
    dims = check_shape(name, image, ("B", 3, "H", "W"))
    check_nonempty(name, image)
    if image.dtype != torch.uint8:
        raise TypeError(
            f"{name}: expected dtype torch.uint8 (8-bit colours 0..255), got {image.dtype}; "
            "convert with (x * 255).round().to(torch.uint8) or pass the decoded 8-bit image"
        )
    return dims


def _inside(y: torch.Tensor, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boolean mask of the coordinates that lie in an ``height x width`` image."""
    return (y >= 0) & (y < height) & (x >= 0) & (x < width)


def warp_colors(
    reference_rgb8: torch.Tensor, nnf_tr: torch.Tensor, patch_size: int = 3
) -> torch.Tensor:
    """Carry reference colours to the target grid by the authors' patch vote.

    Args:
        reference_rgb8: ``(1 | B, 3, Hr, Wr)`` uint8 reference colours (any channel order; each
            channel is voted independently). Batch 1 is shared by all fields of ``nnf_tr``.
        nnf_tr: ``(B, Ht, Wt, 2)`` integer, for each target pixel the absolute ``(y, x)`` of its
            match in the reference (phi_T->R). Out-of-range entries do not vote.
        patch_size: odd side of the voting patch (the authors use 3).

    Returns:
        ``(B, 3, Ht, Wt)`` uint8, the truncated mean of the votes (0 where no vote exists).

    Raises:
        TypeError: wrong dtypes.
        ValueError: wrong shapes, batch sizes that are neither 1 nor B, or an even patch size.

    Example:
        >>> ref = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
        >>> ys, xs = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        >>> identity = torch.stack((ys, xs), dim=-1)[None]
        >>> torch.equal(warp_colors(ref, identity), ref)
        True
    """
    ref = _check_rgb8("reference_rgb8", reference_rgb8)
    field = _check_field("nnf_tr", nnf_tr)
    if ref["B"] not in (1, field["B"]):
        raise ValueError(
            f"reference_rgb8: batch {ref['B']} must be 1 or equal to the batch of nnf_tr "
            f"({field['B']})"
        )
    if not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size: expected an odd integer >= 1, got {patch_size!r}")
    if reference_rgb8.device != nnf_tr.device:
        raise ValueError(
            f"reference_rgb8 ({reference_rgb8.device}) and nnf_tr ({nnf_tr.device}) must be on "
            "the same device"
        )
    return _patch_vote(reference_rgb8, nnf_tr.long(), patch_size)


def _patch_vote(reference: torch.Tensor, nnf: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Integer patch vote; inputs already validated (see :func:`warp_colors`)."""
    batch, height, width, _ = nnf.shape
    ref_batch, _, ref_h, ref_w = reference.shape
    device = nnf.device
    # Channels-last flat reference: row b * Hr * Wr + y * Wr + x holds that pixel's colour.
    ref_flat = reference.permute(0, 2, 3, 1).reshape(ref_batch * ref_h * ref_w, 3).int()
    ref_base = torch.arange(batch, device=device) * (ref_h * ref_w if ref_batch > 1 else 0)
    ref_base = ref_base.view(batch, 1, 1)
    ys = torch.arange(height, device=device).view(1, height, 1)
    xs = torch.arange(width, device=device).view(1, 1, width)
    total = torch.zeros(batch, height, width, 3, dtype=torch.int32, device=device)
    count = torch.zeros(batch, height, width, dtype=torch.int32, device=device)
    radius = patch_size // 2
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            # Field of the neighbour p + d (replicated at the border, masked below).
            shifted = _shift_field(nnf, dy, dx)
            qy = shifted[..., 0] - dy
            qx = shifted[..., 1] - dx
            ok = _inside(ys + dy, xs + dx, height, width) & _inside(qy, qx, ref_h, ref_w)
            index = ref_base + qy.clamp(0, ref_h - 1) * ref_w + qx.clamp(0, ref_w - 1)
            colours = ref_flat[index.reshape(-1)].view(batch, height, width, 3)
            total += colours * ok.unsqueeze(-1)
            count += ok
    mean = torch.div(total, count.clamp(min=1).unsqueeze(-1), rounding_mode="floor")
    return mean.to(torch.uint8).permute(0, 3, 1, 2).contiguous()


def _shift_field(nnf: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Return ``nnf[:, y + dy, x + dx]`` with indices clamped to the grid, ``(B, H, W, 2)``."""
    _, height, width, _ = nnf.shape
    rows = (torch.arange(height, device=nnf.device) + dy).clamp(0, height - 1)
    cols = (torch.arange(width, device=nnf.device) + dx).clamp(0, width - 1)
    return nnf.index_select(1, rows).index_select(2, cols)


def compose_fields(nnf_ab: torch.Tensor, nnf_ba: torch.Tensor) -> torch.Tensor:
    """Compose the cycle field ``phi_B->A o phi_A->B`` with the authors' identity fallback.

    Their ``reverse_flow``: for every pixel ``p`` of A, if ``q = phi_A->B(p)`` lies in B the
    result is ``phi_B->A(q)``, otherwise ``p`` itself.

    Args:
        nnf_ab: ``(B, Ha, Wa, 2)`` integer absolute ``(y, x)`` field from A into B.
        nnf_ba: ``(B, Hb, Wb, 2)`` integer absolute ``(y, x)`` field from B into A.

    Returns:
        ``(B, Ha, Wa, 2)`` int64 absolute ``(y, x)`` coordinates in A.

    Example:
        >>> ys, xs = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
        >>> identity = torch.stack((ys, xs), dim=-1)[None]
        >>> torch.equal(compose_fields(identity, identity), identity)
        True
    """
    ab = _check_field("nnf_ab", nnf_ab)
    ba = _check_field("nnf_ba", nnf_ba)
    if ab["B"] != ba["B"]:
        raise ValueError(f"nnf_ab ({ab['B']}) and nnf_ba ({ba['B']}) must have the same batch")
    nnf_ab, nnf_ba = nnf_ab.long(), nnf_ba.long().to(nnf_ab.device)
    batch, height, width, _ = nnf_ab.shape
    qy, qx = nnf_ab[..., 0], nnf_ab[..., 1]
    ok = _inside(qy, qx, ba["H"], ba["W"])
    flat = nnf_ba.reshape(batch, ba["H"] * ba["W"], 2)
    index = (qy.clamp(0, ba["H"] - 1) * ba["W"] + qx.clamp(0, ba["W"] - 1)).view(batch, -1, 1)
    cycled = flat.gather(1, index.expand(-1, -1, 2)).view(batch, height, width, 2)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=nnf_ab.device),
        torch.arange(width, device=nnf_ab.device),
        indexing="ij",
    )
    identity = torch.stack((ys, xs), dim=-1).expand(batch, -1, -1, -1)
    return torch.where(ok.unsqueeze(-1), cycled, identity)


def cycle_colors(
    target_rgb8: torch.Tensor, nnf_tr: torch.Tensor, nnf_rt: torch.Tensor, patch_size: int = 3
) -> torch.Tensor:
    """Compute the authors' ``warp_aba``: target colours voted through ``phi_R->T o phi_T->R``.

    Args:
        target_rgb8: ``(B, 3, Ht, Wt)`` uint8 target colours.
        nnf_tr: ``(B, Ht, Wt, 2)`` integer absolute ``(y, x)`` phi_T->R.
        nnf_rt: ``(B, Hr, Wr, 2)`` integer absolute ``(y, x)`` phi_R->T.
        patch_size: odd voting patch side (3 in the authors' code).

    Returns:
        ``(B, 3, Ht, Wt)`` uint8. Identical to ``target_rgb8`` where the cycle is consistent.

    Example:
        >>> img = torch.randint(0, 256, (1, 3, 6, 7), dtype=torch.uint8)
        >>> ys, xs = torch.meshgrid(torch.arange(6), torch.arange(7), indexing="ij")
        >>> identity = torch.stack((ys, xs), dim=-1)[None]
        >>> torch.equal(cycle_colors(img, identity, identity), img)
        True
    """
    target = _check_rgb8("target_rgb8", target_rgb8)
    field = _check_field("nnf_tr", nnf_tr)
    if (target["B"], target["H"], target["W"]) != (field["B"], field["H"], field["W"]):
        raise ValueError(
            f"target_rgb8 {tuple(target_rgb8.shape)} and nnf_tr {tuple(nnf_tr.shape)} must "
            "share batch, height and width"
        )
    return warp_colors(target_rgb8, compose_fields(nnf_tr, nnf_rt), patch_size)


class WarpColors(nn.Module):
    """Module form of :func:`warp_colors` (no weights; holds the patch size).

    Example:
        >>> ref = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
        >>> nnf = torch.zeros(2, 5, 6, 2, dtype=torch.int64)
        >>> WarpColors()(ref, nnf).shape
        torch.Size([2, 3, 5, 6])
    """

    def __init__(self, patch_size: int = 3) -> None:
        super().__init__()
        if not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch_size: expected an odd integer >= 1, got {patch_size!r}")
        self.patch_size = patch_size

    def forward(self, reference_rgb8: torch.Tensor, nnf_tr: torch.Tensor) -> torch.Tensor:
        """See :func:`warp_colors`."""
        return warp_colors(reference_rgb8, nnf_tr, self.patch_size)

    def extra_repr(self) -> str:
        """Show the configuration in ``repr``."""
        return f"patch_size={self.patch_size}"
