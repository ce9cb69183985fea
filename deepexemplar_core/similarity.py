"""The ten similarity maps of the paper's Eq. 1, as the authors compute them (section C.3).

For a level of stride ``s`` and every pixel ``p = (y, x)`` of the working grid, the authors'
``compute_dist_norm`` (``similarity_combo/source/GeneralizedPatchMatch.cu``) samples the level's
features bilinearly at the feature coordinate ``((x + s/2) / s, (y + s/2) / s)`` (no shift when
``s = 1``): ``x0 = min(floor(nx), w - 1)``, ``x1 = min(x0 + 1, w - 1)``, weight ``nx - x0``. The
other image's features are sampled the same way at the match ``phi(p)``. The stored value is
``annd = -<a, b> / (max(|a|, 1e-8) * max(|b|, 1e-8))`` and the file holds the uint8
``err = int(clamp(annd + 1, 0, 1) * 255)``, i.e. ``floor((1 - cos) * 255)``.

``err_ab`` (our ``err_rt``) is the same map computed on the reference grid with phi_R->T and then
looked up at ``q = phi_T->R(p)`` (their ``reverse_dist``; out-of-range ``q`` gives annd 0, err 255).

Everything here is float32 with the authors' formulas and order of the final operations; the
channel sums use PyTorch's reduction order instead of their sequential CUDA loop, so an err
value can differ by 1 where ``(1 - cos) * 255`` lies within float rounding of an integer.

Speed (not in the authors' code): a level whose feature cells are few but wide (the coarse
levels: 320 channels on 8 x 11 cells for the lite backbone at 256 px) is evaluated from the Gram
matrices of the cells, ``<t(p), r(q)> = sum_ab w_a w_b <T_a, R_b>`` over the four cells of each
bilinear sample, which is exact up to float rounding and does not grow with the channels per
pixel; the other levels sample every channel at every pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_pyramid_pair, check_shape, check_tensor
from .structures import Correspondence, FeaturePyramid, Similarity

__all__ = ["SimilarityMaps", "encode_errors", "lookup_at_field", "similarity_maps"]

# Channels are processed in groups holding at most this many feature scalars per sampled
# full-resolution tensor (16 MiB of float32), so memory stays linear in the number of pixels.
_CHUNK_ELEMENTS = 1 << 22
# Cost model of the two exact evaluations of a level, in units of one channel sampled at one pixel
# (about 2.5 ns on the 2-core CPU it was measured on): sampling costs C per pixel; the Gram form
# costs _GRAM_PIXEL_COST per pixel (its 4 x 16 reads), plus, for its four matrix products over
# n_t and n_r cells ((n_t + n_r)^2 entries in all), one unit per _GRAM_MACS_PER_UNIT
# multiply-adds and _GRAM_ENTRY_COST per entry written. The Gram form is also bounded in memory:
# at most _GRAM_ELEMENTS entries in its largest matrix over the batch (64 MiB of float32).
_GRAM_PIXEL_COST = 65
_GRAM_MACS_PER_UNIT = 230
_GRAM_ENTRY_COST = 0.8
_GRAM_ELEMENTS = 1 << 24


def encode_errors(err: torch.Tensor) -> torch.Tensor:
    """Encode error maps for the colour net, ``(err - 127) / 2`` (their ``Normalize``).

    Args:
        err: ``(B, L, H, W)`` uint8 quantised distances (any shape is accepted).

    Returns:
        float32 tensor of the same shape, in ``[-63.5, 64]``.

    Example:
        >>> encode_errors(torch.tensor([[[[0, 127, 255]]]], dtype=torch.uint8))
        tensor([[[[-63.5000,   0.0000,  64.0000]]]])
    """
    check_tensor("err", err)
    if err.dtype != torch.uint8:
        raise TypeError(f"err: expected torch.uint8 quantised distances, got {err.dtype}")
    return (err.float() - 127) / 2


def lookup_at_field(values: torch.Tensor, nnf: torch.Tensor, fill: float) -> torch.Tensor:
    """Read per-pixel maps of the other image at the matched positions (their ``reverse_dist``).

    Args:
        values: ``(1 | B, L, Ho, Wo)`` maps on the other image's grid (any dtype).
        nnf: ``(B, H, W, 2)`` integer absolute ``(y, x)`` coordinates in the other image.
        fill: value for matches outside ``Ho x Wo``.

    Returns:
        ``(B, L, H, W)`` of ``values.dtype``: ``values[b, :, nnf[b, p]]`` or ``fill``.

    Example:
        >>> maps = torch.arange(6.0).view(1, 1, 2, 3)
        >>> nnf = torch.tensor([[[[1, 2], [5, 0]]]])
        >>> lookup_at_field(maps, nnf, fill=-1.0)
        tensor([[[[ 5., -1.]]]])
    """
    dims = check_shape("values", values, ("Bv", "L", "Ho", "Wo"))
    field = check_shape("nnf", nnf, ("B", "H", "W", 2))
    if nnf.is_floating_point() or nnf.dtype == torch.bool:
        raise TypeError(f"nnf: expected an integer dtype, got {nnf.dtype}")
    if dims["Bv"] not in (1, field["B"]):
        raise ValueError(f"values: batch {dims['Bv']} must be 1 or the batch of nnf ({field['B']})")
    nnf = nnf.to(values.device).long()
    height, width = dims["Ho"], dims["Wo"]
    qy, qx = nnf[..., 0], nnf[..., 1]
    inside = (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width)
    index = (qy.clamp(0, height - 1) * width + qx.clamp(0, width - 1)).flatten(1)
    flat = values.flatten(2).expand(field["B"], -1, -1)
    picked = flat.gather(2, index[:, None, :].expand(-1, dims["L"], -1))
    picked = picked.view(field["B"], dims["L"], field["H"], field["W"])
    return torch.where(inside[:, None], picked, torch.full_like(picked, fill))


def _corners(coord: torch.Tensor, stride: int, size: int):
    """Return indices and weights of the authors' bilinear sample along one axis.

    Args:
        coord: integer pixel coordinates (any shape), already clamped to be >= 0.
        stride: the level's stride ``s``.
        size: the level's length along this axis.

    Returns:
        ``(i0, i1, w0, w1)``: int64 indices and float32 weights, as in ``compute_dist_norm``.
    """
    shift = 0.0 if stride == 1 else stride * 0.5
    pos = (coord.float() + shift) / float(stride)
    i0 = pos.long().clamp(max=size - 1)
    i1 = (i0 + 1).clamp(max=size - 1)
    w1 = pos - i0.float()
    return i0, i1, 1 - w1, w1


def _upsample_axis(x: torch.Tensor, dim: int, stride: int, length: int) -> torch.Tensor:
    """The authors' bilinear sample along one axis, at every one of ``length`` pixels.

    Pixel ``k * s + j`` reads cells ``k + c_j`` and ``k + c_j + 1`` with weights that depend on
    ``j`` only (``c_j = floor((j + s/2) / s)``), so the sample is ``s`` weighted sums of two
    shifted slices: no gather. Cells past the last one repeat it, which gives the authors'
    clamped sample there. For a power-of-two stride the weights equal :func:`_corners`' exactly;
    the sum ``w0 * x[i0] + w1 * x[i1]`` may be rounded once less (a fused multiply-add).

    Args:
        x: features with ``n`` cells along ``dim``.
        dim: the axis to upsample.
        stride: the level's stride ``s`` (> 1).
        length: pixels along this axis.

    Returns:
        ``x`` with ``length`` entries along ``dim``.
    """
    cells, blocks = x.shape[dim], -(-length // stride)
    pad = max(2, blocks + 2 - cells)
    last = x.narrow(dim, cells - 1, 1)
    padded = torch.cat([x, last.expand(*x.shape[:dim], pad, *x.shape[dim + 1:])], dim)
    shape = list(x.shape)
    shape[dim:dim + 1] = [blocks, stride]
    out = x.new_empty(shape)
    for j in range(stride):
        pos = (j + stride * 0.5) / stride
        first, w1 = int(pos), pos - int(pos)
        dest = out.select(dim + 1, j)
        torch.mul(padded.narrow(dim, first, blocks), 1.0 - w1, out=dest)
        dest.add_(padded.narrow(dim, first + 1, blocks), alpha=w1)
    return out.flatten(dim, dim + 1).narrow(dim, 0, length)


def _grid_sample(features: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Sample channels-last ``(Bf, h, w, Cg)`` features at every pixel of a ``size`` grid.

    The authors' bilinear weights are a product of a row and a column weight, so the sample is
    taken separably (rows, then columns); only the float rounding order differs from theirs.
    Returns ``(Bf, H, W, Cg)`` float32 (a view of the input at stride 1 on a same-size map).
    """
    height, width = size
    if stride == 1 and tuple(features.shape[1:3]) == (height, width):
        return features  # weights (1, 0): the authors' sample is the cell itself
    if stride == 1:  # the cell itself, clamped to the last one
        rows = features.index_select(1, torch.arange(height, device=features.device)
                                     .clamp(max=features.shape[1] - 1))
        return rows.index_select(2, torch.arange(width, device=features.device)
                                 .clamp(max=features.shape[2] - 1))
    rows = _upsample_axis(features, 1, stride, height)
    return _upsample_axis(rows, 2, stride, width)


def _channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inner products over the last (channel) axis, broadcasting the others.

    As one batched matrix product, several times faster on the CPU than ``(a * b).sum(-1)``.
    """
    return torch.einsum("...c,...c->...", a, b)


def _flat_rows(nnf: torch.Tensor, size: tuple[int, int], batched: bool) -> torch.Tensor:
    """Row of each (clamped) match in a flattened ``((1 | B) * H * W, C)`` per-pixel map."""
    height, width = size
    rows = nnf[..., 0].clamp(0, height - 1) * width + nnf[..., 1].clamp(0, width - 1)
    if batched:
        rows = rows + torch.arange(nnf.shape[0], device=nnf.device).view(-1, 1, 1) * (
            height * width
        )
    return rows.reshape(-1)


def _level_neg_cosines(
    target: torch.Tensor,
    reference: torch.Tensor,
    corr: Correspondence,
    stride: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute the authors' ``annd = -cos`` of one level in both directions.

    Two exact evaluations of the same formula; the cheaper one for the level's size is used
    (they differ only in float rounding):

    * coarse levels (few feature cells, many channels): from the cells' Gram matrices
      (:func:`_gram_neg_cosines`), so the work per pixel does not grow with the channels;
    * fine levels: from the features sampled at every pixel (:func:`_sampled_neg_cosines`).

    Args:
        target: ``(B, C, ht, wt)`` target features of the level.
        reference: ``(1 | B, C, hr, wr)`` reference features of the level.
        corr: fields ``nnf_tr (B, Ht, Wt, 2)`` and ``nnf_rt (B, Hr, Wr, 2)`` (int64).
        stride: the level's stride (pixels per feature cell).

    Returns:
        ``annd_tr (B, Ht, Wt)`` on the target grid and ``annd_rt (B, Hr, Wr)`` on the
        reference grid, float32.
    """
    channels, batch = target.shape[1], target.shape[0]
    n_t, n_r = math.prod(target.shape[-2:]), math.prod(reference.shape[-2:])
    pixels = math.prod(corr.target_size) + math.prod(corr.reference_size)
    entries = (n_t + n_r) ** 2
    gram_cost = (_GRAM_PIXEL_COST * pixels
                 + entries * (channels / _GRAM_MACS_PER_UNIT + _GRAM_ENTRY_COST))
    largest = max(batch * n_t * max(n_t, n_r), n_r * n_r)
    if gram_cost < channels * pixels and largest <= _GRAM_ELEMENTS:
        return _gram_neg_cosines(target, reference, corr, stride)
    return _sampled_neg_cosines(target, reference, corr, stride)


def _pixel_corners(
    pixels: torch.Tensor, size: tuple[int, int], stride: int, cells: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The four cells and weights of the authors' bilinear sample at some pixels of a grid.

    Args:
        pixels: int64 row-major indices into the ``(H, W)`` pixel grid, any shape ``S``.
        size: ``(H, W)`` of the pixel grid.
        stride: the level's stride.
        cells: ``(h, w)`` of the level's feature grid.

    Returns:
        ``(index, weight)``, both ``S + (4,)``: row-major cell indices (int64) and the products
        of the row and column weights (float32).
    """
    y0, y1, wy0, wy1 = _corners(pixels // size[1], stride, cells[0])
    x0, x1, wx0, wx1 = _corners(pixels % size[1], stride, cells[1])
    top, bottom = y0 * cells[1], y1 * cells[1]
    index = torch.stack((top + x0, top + x1, bottom + x0, bottom + x1), -1)
    weight = torch.stack((wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1), -1)
    return index, weight


def _sample_dots(
    own: torch.Tensor,
    other: torch.Tensor,
    sizes: tuple[tuple[int, int], tuple[int, int]],
    stride: int,
    matched: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inner products of bilinear samples of two feature maps, from their cells' Gram matrix.

    ``<own(p), other(q)> = sum_a sum_b w_a w_b <own_a, other_b>`` over the four cells ``a`` of
    ``p``'s sample and ``b`` of ``q``'s, for every pixel ``p`` of the own grid and its match
    ``q``. Pixels are processed in chunks of ``_CHUNK_ELEMENTS / 16`` (their 16 reads each), so
    memory stays that of one sampled chunk whatever the image size.

    Args:
        own: ``(1 | B, C, h, w)`` features of the image whose pixels ``p`` are listed.
        other: ``(1 | B, C, ho, wo)`` features of the image the matches ``q`` lie in.
        sizes: the pixel grids ``(H, W)`` of ``own`` and of ``other``.
        stride: the level's stride.
        matched: ``(1 | B, H * W)`` int64 row-major index of ``q`` for each ``p``; ``None``
            means ``q = p`` (the squared norms of ``own``'s samples, with ``other = own``).

    Returns:
        ``(B, H * W)`` float32.
    """
    gram = torch.matmul(own.float().flatten(2).transpose(1, 2), other.float().flatten(2))
    batch, width = max(gram.shape[0], 1 if matched is None else matched.shape[0]), gram.shape[-1]
    flat_gram = gram.flatten(1).expand(batch, -1)
    pixels = sizes[0][0] * sizes[0][1]
    step = max(1, _CHUNK_ELEMENTS // (16 * batch))
    out = gram.new_empty(batch, pixels)
    for first in range(0, pixels, step):
        p = torch.arange(first, min(first + step, pixels), device=own.device)
        q = p[None] if matched is None else matched[:, first:first + step]
        own_index, own_weight = _pixel_corners(p, sizes[0], stride, own.shape[-2:])
        other_index, other_weight = _pixel_corners(q, sizes[1], stride, other.shape[-2:])
        index = own_index[None, :, :, None] * width + other_index[:, :, None, :]
        index = index.expand(batch, -1, -1, -1)
        values = flat_gram.gather(1, index.flatten(1)).view(index.shape)
        own_weight = own_weight.expand(batch, -1, -1)
        out[:, first:first + step] = torch.einsum(
            "bnij,bni,bnj->bn", values, own_weight, other_weight.expand_as(own_weight))
    return out


def _gram_neg_cosines(
    target: torch.Tensor, reference: torch.Tensor, corr: Correspondence, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_level_neg_cosines` from the Gram matrices of the feature cells.

    Costs ``O(cells_t * cells_r * C)`` once plus 16 reads per pixel, instead of ``O(C)`` per
    pixel. Each direction is computed by the same calls with the roles swapped, so swapping
    target and reference gives bit-identical maps, as the authors' shared kernel does.
    """
    batch, t_size, r_size = target.shape[0], corr.target_size, corr.reference_size
    rows_tr = _flat_rows(corr.nnf_tr, r_size, batched=False).view(batch, -1)
    rows_rt = _flat_rows(corr.nnf_rt, t_size, batched=False).view(batch, -1)
    norm_t = _sample_dots(target, target, (t_size, t_size), stride)
    norm_r = _sample_dots(reference, reference, (r_size, r_size), stride)
    norm_t, norm_r = norm_t.clamp(min=0).sqrt(), norm_r.clamp(min=0).sqrt()
    norm_t, norm_r = norm_t.clamp(min=1e-8), norm_r.clamp(min=1e-8)
    dot_tr = _sample_dots(target, reference, (t_size, r_size), stride, rows_tr)
    dot_rt = _sample_dots(reference, target, (r_size, t_size), stride, rows_rt)
    norm_r_tr = norm_r.expand(batch, -1).gather(1, rows_tr)
    norm_t_rt = norm_t.gather(1, rows_rt)
    annd_tr = -dot_tr / (norm_t * norm_r_tr)
    annd_rt = -dot_rt / (norm_r * norm_t_rt)
    return annd_tr.view(batch, *t_size), annd_rt.view(batch, *r_size)


def _sampled_neg_cosines(
    target: torch.Tensor,
    reference: torch.Tensor,
    corr: Correspondence,
    stride: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_level_neg_cosines` from the features sampled at every pixel.

    Each image's features are sampled once at every one of its pixels; the sample at a match is
    then a read of the other image's per-pixel sample (the authors' sample depends only on the
    matched pixel, and a match beyond the last pixel samples the same border cell as the last
    pixel). Channels are processed in groups so that memory stays linear in the pixels.
    """
    batch, t_size, r_size = target.shape[0], corr.target_size, corr.reference_size
    rows_tr = _flat_rows(corr.nnf_tr, r_size, reference.shape[0] > 1)
    rows_rt = _flat_rows(corr.nnf_rt, t_size, True)
    target_cl = target.float().permute(0, 2, 3, 1)
    reference_cl = reference.float().permute(0, 2, 3, 1)
    pixels = batch * max(t_size[0] * t_size[1], r_size[0] * r_size[1])
    group = max(1, _CHUNK_ELEMENTS // pixels)
    dot_tr = target.new_zeros(batch, *t_size, dtype=torch.float32)
    dot_rt = target.new_zeros(batch, *r_size, dtype=torch.float32)
    norm_t = target.new_zeros(batch * t_size[0] * t_size[1], dtype=torch.float32)
    norm_r = target.new_zeros(reference.shape[0] * r_size[0] * r_size[1], dtype=torch.float32)
    for first in range(0, target.shape[1], group):
        part = slice(first, min(first + group, target.shape[1]))
        t = _grid_sample(target_cl[..., part], stride, t_size)
        r = _grid_sample(reference_cl[..., part], stride, r_size)
        t_flat, r_flat = t.reshape(-1, t.shape[-1]), r.reshape(-1, r.shape[-1])
        dot_tr += _channel_dot(t, r_flat.index_select(0, rows_tr).view(t.shape))
        dot_rt += _channel_dot(r, t_flat.index_select(0, rows_rt).view(batch, *r_size, -1))
        norm_t += _channel_dot(t_flat, t_flat)
        norm_r += _channel_dot(r_flat, r_flat)
    norm_t, norm_r = norm_t.sqrt().clamp(min=1e-8), norm_r.sqrt().clamp(min=1e-8)
    annd_tr = -dot_tr / (norm_t.view(batch, *t_size) * norm_r[rows_tr].view(batch, *t_size))
    annd_rt = -dot_rt / (norm_r.view(-1, *r_size) * norm_t[rows_rt].view(batch, *r_size))
    return annd_tr, annd_rt


def _quantise(annd: torch.Tensor) -> torch.Tensor:
    """``int(clamp(annd + 1, 0, 1) * 255)`` as uint8 (truncation, float32 as theirs)."""
    return ((annd + 1).clamp(0, 1) * 255).to(torch.int32).to(torch.uint8)


def _check_inputs(target: FeaturePyramid, reference: FeaturePyramid, corr: Correspondence) -> None:
    """Validate the pyramids against each other and against the correspondence."""
    check_pyramid_pair(target, reference)
    if not isinstance(corr, Correspondence):
        raise TypeError(f"corr: expected Correspondence, got {type(corr).__name__}")
    batch = target.batch_size
    check_shape("corr.nnf_tr", corr.nnf_tr, (batch, *target.image_size, 2))
    check_shape("corr.nnf_rt", corr.nnf_rt, (batch, *reference.image_size, 2))
    for name, field in (("corr.nnf_tr", corr.nnf_tr), ("corr.nnf_rt", corr.nnf_rt)):
        if field.is_floating_point() or field.dtype == torch.bool:
            raise TypeError(
                f"{name}: expected int64 absolute (y, x) coordinates, got {field.dtype}"
            )


def _select_levels(pyramid: FeaturePyramid, levels: Sequence[int | str] | None) -> list[int]:
    """Level indices (fine-to-coarse index space) in the authors' coarse-to-fine order."""
    if levels is None:
        chosen = list(range(len(pyramid.names)))
    else:
        chosen = []
        for level in levels:
            if isinstance(level, str):
                if level not in pyramid.names:
                    raise ValueError(f"levels: unknown level {level!r}; known: {pyramid.names}")
                chosen.append(pyramid.names.index(level))
            elif isinstance(level, int) and -len(pyramid.names) <= level < len(pyramid.names):
                chosen.append(level % len(pyramid.names))
            else:
                raise ValueError(
                    f"levels: {level!r} is not a level index or name of {pyramid.names}"
                )
        if not chosen or len(set(chosen)) != len(chosen):
            raise ValueError(f"levels: expected distinct levels, got {list(levels)}")
    return sorted(chosen, key=lambda i: -pyramid.strides[i])


def similarity_maps(
    target: FeaturePyramid,
    reference: FeaturePyramid,
    corr: Correspondence,
    levels: Sequence[int | str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Similarity:
    """Compute sim_T->R, sim_R->T and their quantised distances at working resolution.

    Args:
        target: ``B`` target pyramids; ``image_size`` must equal the size of ``corr.nnf_tr``.
        reference: the reference pyramid, batch 1 (shared) or ``B``; ``image_size`` must equal
            the size of ``corr.nnf_rt``.
        corr: absolute fields ``nnf_tr (B, Ht, Wt, 2)`` and ``nnf_rt (B, Hr, Wr, 2)``.
        levels: level indices (fine-to-coarse index space) or names to use; ``None`` = all.
            The output is always in the authors' coarse-to-fine order.
        progress: called with ``(levels done, levels total)``.

    Returns:
        :class:`Similarity` with ``sim_tr, sim_rt`` float32 cosines and ``err_tr, err_rt``
        uint8 distances, all ``(B, L, Ht, Wt)``, coarse to fine.

    Raises:
        TypeError: wrong argument types.
        ValueError: pyramids that disagree with each other or with ``corr``.

    Example:
        >>> feats = (torch.rand(1, 4, 8, 8), torch.rand(1, 6, 4, 4))
        >>> pyr = FeaturePyramid(feats, (2, 4), ("a", "b"), (16, 16))
        >>> ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        >>> nnf = torch.stack((ys, xs), dim=-1)[None]
        >>> sim = similarity_maps(pyr, pyr, Correspondence(nnf, nnf))
        >>> sim.level_names, int(sim.err_tr.max())
        (('b', 'a'), 0)
    """
    _check_inputs(target, reference, corr)
    order = _select_levels(target, levels)
    device = target.features[0].device
    fields = Correspondence(corr.nnf_tr.to(device).long(), corr.nnf_rt.to(device).long())
    annds_tr, annds_rt = [], []
    for done, i in enumerate(order):
        stride = target.strides[i]
        t_feat, r_feat = target.features[i], reference.features[i].to(device)
        annd_tr, annd_rt_grid = _level_neg_cosines(t_feat, r_feat, fields, stride)
        annd_rt = lookup_at_field(annd_rt_grid[:, None], fields.nnf_tr, fill=0.0)[:, 0]
        annds_tr.append(annd_tr)
        annds_rt.append(annd_rt)
        if progress is not None:
            progress(done + 1, len(order))
    annd_tr, annd_rt = torch.stack(annds_tr, 1), torch.stack(annds_rt, 1)
    return Similarity(
        sim_tr=-annd_tr,
        sim_rt=-annd_rt,
        err_tr=_quantise(annd_tr),
        err_rt=_quantise(annd_rt),
        level_names=tuple(target.names[i] for i in order),
    )


class SimilarityMaps(nn.Module):
    """Module form of :func:`similarity_maps` (no weights; holds the level selection).

    Example:
        >>> pyr = FeaturePyramid((torch.rand(2, 3, 4, 4),), (2,), ("a",), (8, 8))
        >>> nnf = torch.zeros(2, 8, 8, 2, dtype=torch.int64)
        >>> SimilarityMaps()(pyr, pyr, Correspondence(nnf, nnf)).err_rt.shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, levels: Sequence[int | str] | None = None) -> None:
        super().__init__()
        self.levels = None if levels is None else tuple(levels)

    def forward(
        self, target: FeaturePyramid, reference: FeaturePyramid, corr: Correspondence
    ) -> Similarity:
        """See :func:`similarity_maps`."""
        return similarity_maps(target, reference, corr, self.levels)

    def extra_repr(self) -> str:
        """Show the configuration in ``repr``."""
        return f"levels={self.levels}"
