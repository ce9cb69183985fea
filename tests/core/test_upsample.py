"""Tests of deepexemplar_core.upsample (guided and bicubic chroma upsampling)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from deepexemplar_core.color import rgb_to_lab
from deepexemplar_core.upsample import upsample_chroma

LEFT_AB = (40.0, -20.0)
RIGHT_AB = (-30.0, 50.0)


def _step_edge(size: int = 64, edge: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-resolution L and ab of a vertical edge at column ``edge`` (not on a 4-px boundary)."""
    left = torch.arange(size) < edge
    lightness = torch.where(left, 30.0, 80.0).expand(1, 1, size, size).contiguous()
    colours = torch.where(left, torch.tensor(LEFT_AB)[:, None], torch.tensor(RIGHT_AB)[:, None])
    ab = colours[None, :, None, :].expand(1, 2, size, size).contiguous()
    return lightness, ab


def test_guided_keeps_colour_edge_on_luminance_edge_bicubic_bleeds():
    edge = 37
    lightness, ab = _step_edge(edge=edge)
    ab_low = F.avg_pool2d(ab, 4)  # the colour edge is smeared inside one low-res column
    errors = {}
    for method in ("guided", "bicubic"):
        up = upsample_chroma(ab_low, lightness, method)
        per_column = (up - ab).norm(dim=1)[0].mean(dim=0)  # Euclidean ab error per column
        errors[method] = per_column[edge - 6 : edge + 6]
    # measured: guided mean 0.53, max 4.3; bicubic mean 13.5, max 44.8 (ab units)
    assert errors["guided"].mean() < 1.0 and errors["guided"].max() < 6.0
    assert errors["bicubic"].mean() > 10.0 and errors["bicubic"].max() > 30.0
    # away from the edge both reproduce the two colours
    up = upsample_chroma(ab_low, lightness, "guided")
    assert torch.allclose(up[..., : edge - 8], ab[..., : edge - 8], atol=0.1)
    assert torch.allclose(up[..., edge + 8 :], ab[..., edge + 8 :], atol=0.2)


def test_guided_beats_bicubic_reconstructing_a_real_photo():
    image = skimage.data.rocket()
    lab = rgb_to_lab(torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)
    height, width = lab.shape[2:]
    ab_low = F.interpolate(lab[:, 1:], size=(height // 4, width // 4), mode="area")

    def rmse(method):
        up = upsample_chroma(ab_low, lab[:, :1], method)
        return float((up - lab[:, 1:]).pow(2).mean().sqrt())

    # measured: guided 3.56, bicubic 4.01 ab units
    assert rmse("guided") < 0.92 * rmse("bicubic")


def test_constant_image_gives_the_constant_for_both_methods():
    ab = torch.tensor([12.0, -7.5]).view(1, 2, 1, 1).expand(2, 2, 9, 11).contiguous()
    lightness = torch.full((2, 1, 37, 41), 63.0)
    guided = upsample_chroma(ab, lightness, "guided")
    bicubic = upsample_chroma(ab, lightness, "bicubic")
    assert torch.allclose(guided, bicubic, atol=1e-4)
    assert torch.allclose(guided, ab[:, :, :1, :1].expand_as(guided), atol=1e-4)


def test_tiles_equal_no_tiles():
    g = torch.Generator().manual_seed(0)
    ab = torch.randn(2, 2, 13, 17, generator=g) * 30
    lightness = torch.rand(2, 1, 50, 67, generator=g) * 100
    whole = upsample_chroma(ab, lightness, tile_rows=50)
    for rows in (1, 7, 49, 1000, None):
        assert torch.equal(upsample_chroma(ab, lightness, tile_rows=rows), whole)


def test_radius_zero_is_bilinear_upsampling():
    ab = torch.randn(1, 2, 11, 14) * 30
    lightness = torch.rand(1, 1, 45, 53) * 100
    reference = F.interpolate(ab, size=(45, 53), mode="bilinear", align_corners=False)
    assert torch.allclose(
        upsample_chroma(ab, lightness, radius=0, tile_rows=8), reference, atol=1e-4
    )


@pytest.mark.parametrize("out_size", [(70, 61), (68, 92)])
def test_bicubic_matches_opencv_inter_cubic(out_size):
    ab = torch.randn(1, 2, 17, 23) * 30
    ours = upsample_chroma(ab, torch.zeros(1, 1, *out_size), "bicubic")[0].permute(1, 2, 0).numpy()
    theirs = cv2.resize(
        ab[0].permute(1, 2, 0).numpy(), out_size[::-1], interpolation=cv2.INTER_CUBIC
    )
    assert np.abs(ours - theirs).max() < 1e-3


@pytest.mark.parametrize("method", ["guided", "bicubic"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_batch_independence(method, dtype):
    ab = (torch.randn(3, 2, 8, 12) * 20).to(dtype)
    lightness = (torch.rand(3, 1, 29, 50) * 100).to(dtype)
    out = upsample_chroma(ab, lightness, method)
    assert out.shape == (3, 2, 29, 50) and out.dtype == dtype
    single = upsample_chroma(ab[1:2], lightness[1:2], method)
    assert torch.allclose(out[1:2], single, atol=1e-5)


@pytest.mark.parametrize("method", ["guided", "bicubic"])
def test_half_precision_inputs(method):
    ab = torch.randn(1, 2, 8, 8) * 20
    lightness = torch.rand(1, 1, 24, 24) * 100
    out = upsample_chroma(ab.half(), lightness.half(), method)
    assert out.dtype == torch.float16
    assert (out.float() - upsample_chroma(ab, lightness, method)).abs().max() < 0.5


def test_errors():
    ab, lightness = torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="method: expected one of"):
        upsample_chroma(ab, lightness, "nearest")
    with pytest.raises(ValueError, match=r"ab: expected \(B, 2, h, w\)"):
        upsample_chroma(torch.zeros(1, 3, 4, 4), lightness)
    with pytest.raises(ValueError, match=r"l_full: expected \(B, 1, H, W\)"):
        upsample_chroma(ab, torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="ab batch"):
        upsample_chroma(ab, torch.zeros(2, 1, 8, 8))
    with pytest.raises(TypeError, match="l_full: expected a floating dtype"):
        upsample_chroma(ab, torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="radius"):
        upsample_chroma(ab, lightness, radius=-1)
    with pytest.raises(ValueError, match="eps"):
        upsample_chroma(ab, lightness, eps=0.0)
    with pytest.raises(ValueError, match="tile_rows"):
        upsample_chroma(ab, lightness, tile_rows=0)
    with pytest.raises(ValueError, match="is empty"):
        upsample_chroma(torch.zeros(0, 2, 4, 4), torch.zeros(0, 1, 8, 8))
