"""Patch-vote warping: the authors' demo combos bit-exactly, a naive vote, known answers."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from deepexemplar_core.authors.formats import read_combo, read_flow
from deepexemplar_core.warp import WarpColors, compose_fields, cycle_colors, warp_colors

from authors_demo import EXAMPLE, demo_pairs, load_demo_rgb8, needs_demo





def identity_field(batch: int, height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack((ys, xs), dim=-1).expand(batch, -1, -1, -1).contiguous()


def naive_vote(reference: np.ndarray, nnf: np.ndarray, patch: int) -> np.ndarray:
    """Per-pixel loops: average ``reference[phi(p + d) - d]`` over valid d; ``(3, H, W)`` uint8."""
    _, ref_h, ref_w = reference.shape
    height, width, _ = nnf.shape
    out = np.zeros((3, height, width), dtype=np.uint8)
    r = patch // 2
    for y in range(height):
        for x in range(width):
            total, count = np.zeros(3, dtype=np.int64), 0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if not (0 <= y + dy < height and 0 <= x + dx < width):
                        continue
                    qy, qx = nnf[y + dy, x + dx] - (dy, dx)
                    if 0 <= qy < ref_h and 0 <= qx < ref_w:
                        total += reference[:, qy, qx]
                        count += 1
            out[:, y, x] = total // count if count else 0
    return out


@needs_demo
@pytest.mark.parametrize("stems", demo_pairs(), ids=lambda s: "_".join(s))
def test_reproduces_demo_warps_bit_exactly(stems):
    target_stem, ref_stem = stems
    target, reference = load_demo_rgb8(target_stem), load_demo_rgb8(ref_stem)
    combo = read_combo(EXAMPLE / "combo_new" / f"{target_stem}_{ref_stem}.combo")
    nnf_tr = read_flow(EXAMPLE / "flow" / f"{target_stem}_{ref_stem}.txt", target.shape[2:])
    nnf_rt = read_flow(EXAMPLE / "flow" / f"{ref_stem}_{target_stem}.txt", reference.shape[2:])

    warped = warp_colors(reference, nnf_tr)[0]
    cycled = cycle_colors(target, nnf_tr, nnf_rt)[0]

    assert (warped == combo.warp_ba).float().mean().item() == 1.0
    assert (cycled == combo.warp_aba).float().mean().item() == 1.0
    # The vote is not a plain lookup: that would differ on many pixels.
    lookup = reference[0][:, nnf_tr[0, ..., 0], nnf_tr[0, ..., 1]]
    assert (lookup != combo.warp_ba).any(0).float().mean().item() > 0.05


@pytest.mark.parametrize("patch", [1, 3, 5])
def test_matches_naive_vote_with_out_of_range_matches(patch):
    gen = torch.Generator().manual_seed(patch)
    reference = torch.randint(0, 256, (1, 3, 7, 8), dtype=torch.uint8, generator=gen)
    nnf = torch.stack(
        (
            torch.randint(-2, 10, (9, 11), generator=gen),
            torch.randint(-2, 11, (9, 11), generator=gen),
        ),
        dim=-1,
    )[None]
    got = warp_colors(reference, nnf, patch_size=patch)[0].numpy()
    want = naive_vote(reference[0].numpy(), nnf[0].numpy(), patch)
    np.testing.assert_array_equal(got, want)


def test_cycle_matches_naive_composition_and_vote():
    gen = torch.Generator().manual_seed(7)
    target = torch.randint(0, 256, (1, 3, 6, 9), dtype=torch.uint8, generator=gen)
    nnf_tr = torch.stack(
        (torch.randint(0, 8, (6, 9), generator=gen), torch.randint(0, 6, (6, 9), generator=gen)), -1
    )[None]
    nnf_rt = torch.stack(
        (torch.randint(0, 6, (7, 5), generator=gen), torch.randint(0, 9, (7, 5), generator=gen)), -1
    )[None]
    cycle = np.zeros((6, 9, 2), dtype=np.int64)
    for y in range(6):
        for x in range(9):
            qy, qx = nnf_tr[0, y, x].tolist()
            cycle[y, x] = nnf_rt[0, qy, qx].numpy() if qy < 7 and qx < 5 else (y, x)
    np.testing.assert_array_equal(compose_fields(nnf_tr, nnf_rt)[0].numpy(), cycle)
    want = naive_vote(target[0].numpy(), cycle, 3)
    np.testing.assert_array_equal(cycle_colors(target, nnf_tr, nnf_rt)[0].numpy(), want)


def test_shared_reference_equals_per_target_reference():
    gen = torch.Generator().manual_seed(3)
    reference = torch.randint(0, 256, (1, 3, 10, 12), dtype=torch.uint8, generator=gen)
    nnf = torch.stack(
        (
            torch.randint(0, 10, (3, 8, 9), generator=gen),
            torch.randint(0, 12, (3, 8, 9), generator=gen),
        ),
        dim=-1,
    )
    shared = warp_colors(reference, nnf)
    expanded = warp_colors(reference.expand(3, -1, -1, -1), nnf)
    one_by_one = torch.cat([warp_colors(reference, nnf[i : i + 1]) for i in range(3)])
    assert torch.equal(shared, expanded) and torch.equal(shared, one_by_one)
    other = torch.randint(0, 256, (3, 3, 10, 12), dtype=torch.uint8, generator=gen)
    per_target = warp_colors(other, nnf)
    assert torch.equal(per_target[1], warp_colors(other[1:2], nnf[1:2])[0])


def test_identity_and_translation_fields_reproduce_the_image(chelsea_rgb):
    image = (chelsea_rgb[:, :96, :128] * 255).round().to(torch.uint8)[None]
    assert torch.equal(warp_colors(image, identity_field(1, 96, 128)), image)
    # Target = a crop of the reference at offset (5, 9): the field is a constant translation.
    target = image[:, :, 5:85, 9:109]
    field = identity_field(1, 80, 100) + torch.tensor([5, 9])
    assert torch.equal(warp_colors(image, field), target)


def test_warped_ab_of_a_rescaled_reference_is_close(chelsea_rgb):
    """Reference = the target enlarged 1.5x; field = nearest pixel centre in the reference.

    PSNR over the a and b channels (skimage CIELab) of all pixels, with peak 255 (the span of
    8-bit a/b): ``10 log10(255^2 / mean((ab_warped - ab_target)^2))``.
    """
    import cv2
    from skimage import color

    target = cv2.resize(
        chelsea_rgb.permute(1, 2, 0).numpy(), (150, 100), interpolation=cv2.INTER_AREA
    )
    target = (target * 255).round().astype(np.uint8)
    reference = cv2.resize(target, (225, 150), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:100, 0:150]
    field = np.stack((np.floor(1.5 * ys + 0.75), np.floor(1.5 * xs + 0.75)), -1).astype(np.int64)
    warped = (
        warp_colors(
            torch.from_numpy(reference.transpose(2, 0, 1).copy())[None],
            torch.from_numpy(field)[None],
        )[0]
        .permute(1, 2, 0)
        .numpy()
    )
    ab_warped = color.rgb2lab(warped)[..., 1:]
    ab_target = color.rgb2lab(target)[..., 1:]
    psnr = 10 * np.log10(255.0**2 / np.mean((ab_warped - ab_target) ** 2))
    assert psnr > 30, psnr  # 52.3 dB when written


def test_pixel_without_votes_is_zero():
    reference = torch.full((1, 3, 4, 4), 200, dtype=torch.uint8)
    nnf = torch.full((1, 5, 5, 2), 50, dtype=torch.int64)  # everything out of range ...
    nnf[0, 0, 0] = torch.tensor([1, 1])  # ... except one match that votes for its 3x3 area
    out = warp_colors(reference, nnf)
    assert out[0, :, :2, :2].eq(200).all() and out[0, :, 2:, :].eq(0).all()


def test_module_equals_function():
    reference = torch.randint(0, 256, (1, 3, 6, 6), dtype=torch.uint8)
    nnf = torch.randint(0, 6, (2, 5, 7, 2))
    assert torch.equal(WarpColors(5)(reference, nnf), warp_colors(reference, nnf, 5))
    assert "patch_size=5" in repr(WarpColors(5))


@pytest.mark.parametrize(
    ("reference", "nnf", "patch", "error", "match"),
    [
        (torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, 2, dtype=torch.int64), 3, TypeError, "uint8"),
        (
            torch.zeros(1, 4, 4, 3, dtype=torch.uint8),
            torch.zeros(1, 4, 4, 2, dtype=torch.int64),
            3,
            ValueError,
            "reference_rgb8",
        ),
        (
            torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
            torch.zeros(1, 4, 4, 2),
            3,
            TypeError,
            "integer",
        ),
        (
            torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
            torch.zeros(3, 4, 4, 2, dtype=torch.int64),
            3,
            ValueError,
            "batch",
        ),
        (
            torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
            torch.zeros(1, 4, 4, 2, dtype=torch.int64),
            2,
            ValueError,
            "patch_size",
        ),
        (
            torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
            torch.zeros(0, 4, 4, 2, dtype=torch.int64),
            3,
            ValueError,
            "empty",
        ),
    ],
)
def test_rejects_bad_inputs(reference, nnf, patch, error, match):
    with pytest.raises(error, match=match):
        warp_colors(reference, nnf, patch)


def test_cycle_rejects_mismatched_target():
    with pytest.raises(ValueError, match="target_rgb8"):
        cycle_colors(
            torch.zeros(1, 3, 4, 5, dtype=torch.uint8),
            torch.zeros(1, 4, 4, 2, dtype=torch.int64),
            torch.zeros(1, 4, 4, 2, dtype=torch.int64),
        )
