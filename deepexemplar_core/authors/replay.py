"""What the authors' ``colorization_subnet/test.py`` feeds their network, from their files.

This module reproduces, step by step, the Python side of the released pipeline (sections A.2 and
A.3 of the code facts) so that our network port can be checked against theirs on the very same
13-channel input, and so that combo files can be written from our own correspondences:

1. the target is read with PIL (``convert("RGB")``), the combo with OpenCV;
2. every image (target, both warps, the ten error maps) is resized with PIL bilinear so that
   its short side is ``short_size`` (skipped when it already is; ``short_size=0`` disables);
3. skimage ``rgb2lab`` of the target and of ``warp_ba`` (float64, then float32 tensors);
4. ``L - 50``, ``ab`` unchanged, ``(err - 127) / 2`` in float32;
5. height and width floored to multiples of 8 with ``cv2.resize`` (bilinear) of the
   normalised float arrays; channels ``[L - 50, a, b of warp_ba, err_ba x5, err_ab x5]``.

The way back (:func:`finish_authors_output`): ``cv2.INTER_CUBIC`` of the predicted ab to the
pre-floor size, the un-floored ``L`` (short side 256, not the file's full resolution), skimage
``lab2rgb``, clip to [0, 1], ``* 255``, ``astype(uint8)`` (truncation).

It deliberately uses numpy, PIL, OpenCV and scikit-image instead of our batched torch code:
matching their Python side bit for bit matters more here than speed.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_shape
from ..structures import Similarity
from ..warp import cycle_colors, warp_colors
from .formats import Combo, read_combo

__all__ = [
    "AuthorsInput",
    "colorize_from_combo",
    "combo_from_flows",
    "finish_authors_output",
    "prepare_authors_input",
]

_SIZE_UNIT = 8  # their test.py: three stride-2 stages


@dataclass(frozen=True)
class AuthorsInput:
    """The colour net's input as their ``test.py`` builds it.

    Attributes:
        net_input: ``(1, 13, h8, w8)`` float32: ``L - 50``, a/b of ``warp_ba``, ``(err - 127)/2``
            for err_ba (conv5_1 ... conv1_1) then err_ab, at the floored size.
        l_centered: ``(1, 1, H, W)`` float32 ``L - 50`` at the un-floored size (their
            ``orig_im_l``, used to rebuild the output).
        size: ``(H, W)`` after the short-side resize, before flooring.
        work_size: ``(h8, w8)``, ``size`` floored to multiples of 8.
    """

    net_input: torch.Tensor
    l_centered: torch.Tensor
    size: tuple[int, int]
    work_size: tuple[int, int]


def _resize_short_side(image, short_size: int):
    """Their ``functional.resize`` with an int size: PIL bilinear, short side -> ``short_size``."""
    from PIL import Image

    width, height = image.size
    if (width <= height and width == short_size) or (height <= width and height == short_size):
        return image
    if width < height:
        return image.resize((short_size, round(short_size * height / width)), Image.BILINEAR)
    return image.resize((round(short_size * width / height), short_size), Image.BILINEAR)


def _floor_resize(array: np.ndarray, work_size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize`` (bilinear) of an ``(H, W, C)`` float32 array; keeps the channel axis."""
    import cv2

    height, width = work_size
    out = cv2.resize(array, (width, height))
    return out.reshape(height, width, array.shape[2])


def prepare_authors_input(
    target_path: str | os.PathLike[str],
    combo_path: str | os.PathLike[str],
    short_size: int = 256,
) -> AuthorsInput:
    """Build the 13-channel colour-net input exactly as the authors' ``test.py`` does.

    Args:
        target_path: the target image file (colour or gray; only its L is used).
        combo_path: the matching ``.combo`` file (5 levels).
        short_size: their ``--short_size`` (256 by default; 0 keeps the files' size).

    Returns:
        :class:`AuthorsInput`.

    Raises:
        ValueError: a negative ``short_size``, a combo without 5 levels, or sizes that disagree
            after resizing.
    """
    from PIL import Image
    from skimage import color

    if not isinstance(short_size, int) or short_size < 0:
        raise ValueError(f"short_size: expected an integer >= 0, got {short_size!r}")
    combo = read_combo(combo_path)
    if combo.num_levels != 5:
        raise ValueError(
            f"combo_path: {os.fspath(combo_path)!r} has {combo.num_levels} levels; the authors' "
            "network needs 5"
        )
    with Image.open(target_path) as handle:
        target = handle.convert("RGB")
    warp_ba = Image.fromarray(combo.warp_ba.permute(1, 2, 0).numpy())
    errs = [Image.fromarray(e.numpy()) for e in (*combo.err_ba, *combo.err_ab)]
    if short_size > 0:
        target, warp_ba = (
            _resize_short_side(target, short_size),
            _resize_short_side(warp_ba, short_size),
        )
        errs = [_resize_short_side(e, short_size) for e in errs]
    sizes = {im.size for im in (target, warp_ba, *errs)}
    if len(sizes) != 1:
        raise ValueError(
            "target_path and combo_path: sizes disagree after resizing (width x height: "
            + ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
            + "); the combo must belong to this target"
        )
    target_lab = color.rgb2lab(np.asarray(target)).astype(np.float32)
    warp_lab = color.rgb2lab(np.asarray(warp_ba)).astype(np.float32)
    l_centered = target_lab[..., :1] - np.float32(50)
    warp_ab = warp_lab[..., 1:]
    err = np.stack([np.asarray(e) for e in errs], axis=-1).astype(np.float32)
    err = (err - np.float32(127)) / np.float32(2)
    height, width = l_centered.shape[:2]
    work = (int(height / _SIZE_UNIT) * _SIZE_UNIT, int(width / _SIZE_UNIT) * _SIZE_UNIT)
    if min(work) == 0:
        raise ValueError(
            f"target_path: {width}x{height} (width x height) is smaller than 8 pixels on a side"
        )
    parts = [l_centered, warp_ab, err[..., :5], err[..., 5:]]
    if work != (height, width):
        parts = [_floor_resize(p, work) for p in parts]
    net_input = np.concatenate(parts, axis=-1).transpose(2, 0, 1)[None]
    return AuthorsInput(
        net_input=torch.from_numpy(np.ascontiguousarray(net_input)),
        l_centered=torch.from_numpy(np.ascontiguousarray(l_centered.transpose(2, 0, 1)[None])),
        size=(height, width),
        work_size=work,
    )


def finish_authors_output(ab_pred: torch.Tensor, authors_input: AuthorsInput) -> torch.Tensor:
    """Turn the net's ab into the authors' 8-bit RGB result.

    Args:
        ab_pred: ``(1, 2, h8, w8)`` float predicted a/b at ``authors_input.work_size``.
        authors_input: what :func:`prepare_authors_input` returned for this target.

    Returns:
        ``(1, 3, H, W)`` uint8 RGB at ``authors_input.size``.

    Raises:
        ValueError: ``ab_pred`` does not have the working size.
    """
    import cv2
    from skimage import color

    h8, w8 = authors_input.work_size
    check_shape("ab_pred", ab_pred, (1, 2, h8, w8))
    height, width = authors_input.size
    ab = ab_pred[0].detach().float().cpu().numpy().transpose(1, 2, 0)
    if (h8, w8) != (height, width):
        ab = cv2.resize(ab, (width, height), interpolation=cv2.INTER_CUBIC)
    l_value = authors_input.l_centered[0].numpy().transpose(1, 2, 0) + np.float32(50)
    lab = np.concatenate((l_value, ab), axis=-1).astype(np.float64)
    with warnings.catch_warnings():
        # skimage warns when it clips negative Z (out-of-gamut Lab); their skimage clipped
        # silently and the values are the same.
        warnings.simplefilter("ignore", UserWarning)
        rgb = (np.clip(color.lab2rgb(lab), 0, 1) * 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]))


def combo_from_flows(
    target_rgb8: torch.Tensor,
    reference_rgb8: torch.Tensor,
    flow_tr: torch.Tensor,
    flow_rt: torch.Tensor,
    similarity: Similarity | None,
) -> Combo:
    """Assemble an authors' combo from our fields (our warp and, if given, our error maps).

    Args:
        target_rgb8: ``(1, 3, Ht, Wt)`` uint8 RGB target (its colours feed ``warp_aba``).
        reference_rgb8: ``(1, 3, Hr, Wr)`` uint8 RGB reference.
        flow_tr: ``(1, Ht, Wt, 2)`` integer absolute ``(y, x)`` phi_T->R.
        flow_rt: ``(1, Hr, Wr, 2)`` integer absolute ``(y, x)`` phi_R->T.
        similarity: maps of batch 1 at ``(Ht, Wt)`` (coarse to fine), or ``None`` for a combo
            holding only the two colour images (the authors' ``test.py`` needs 5 levels).

    Returns:
        :class:`Combo` ready for :func:`~deepexemplar_core.authors.formats.write_combo`.

    Example:
        >>> img = torch.randint(0, 256, (1, 3, 4, 5), dtype=torch.uint8)
        >>> ys, xs = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
        >>> identity = torch.stack((ys, xs), dim=-1)[None]
        >>> combo = combo_from_flows(img, img, identity, identity, None)
        >>> torch.equal(combo.warp_ba, img[0]), combo.num_levels
        (True, 0)
    """
    dims = check_shape("target_rgb8", target_rgb8, (1, 3, "H", "W"))
    check_shape("flow_tr", flow_tr, (1, dims["H"], dims["W"], 2))
    warp_ba = warp_colors(reference_rgb8, flow_tr)[0].cpu()
    warp_aba = cycle_colors(target_rgb8, flow_tr, flow_rt)[0].cpu()
    if similarity is None:
        empty = torch.zeros(0, dims["H"], dims["W"], dtype=torch.uint8)
        return Combo(warp_ba, warp_aba, empty, empty.clone())
    if not isinstance(similarity, Similarity):
        raise TypeError(f"similarity: expected Similarity or None, got {type(similarity).__name__}")
    check_shape("similarity.err_tr", similarity.err_tr, (1, "L", dims["H"], dims["W"]))
    return Combo(warp_ba, warp_aba, similarity.err_tr[0].cpu(), similarity.err_rt[0].cpu())


@torch.no_grad()
def colorize_from_combo(
    target_path: str | os.PathLike[str],
    combo_path: str | os.PathLike[str],
    net: torch.nn.Module,
    short_size: int = 256,
) -> torch.Tensor:
    """Run the authors' ``test.py`` on one target and its combo file with ``net``.

    With the converted ``example_net`` and the authors' combo this reproduces their
    ``res/<T>_<R>.png`` (their flows come from Deep Image Analogy, which we do not re-run).

    Args:
        target_path: the target image (their ``input/inN``).
        combo_path: its ``.combo`` (their ``combo_new/inN_refN.combo``).
        net: an ``ExampleColorNet`` in eval mode (CPU).
        short_size: their ``--short_size`` (256; 0 keeps the combo's size).

    Returns:
        ``(1, 3, H, W)`` uint8 RGB, as their ``res`` files.
    """
    authors_input = prepare_authors_input(target_path, combo_path, short_size)
    parameter = next(net.parameters())
    ab = net(authors_input.net_input.to(parameter.device, parameter.dtype))
    return finish_authors_output(ab.float().cpu(), authors_input)

