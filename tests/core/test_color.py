"""Tests of deepexemplar_core.color against scikit-image on real photos."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import skimage.color
import skimage.data
import torch

from deepexemplar_core.color import (
    LabToRgb,
    RgbToLab,
    compress_gamut,
    lab_to_rgb,
    rgb_to_l,
    rgb_to_lab,
)

PHOTOS = ("astronaut", "chelsea", "coffee")


def _photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255).unsqueeze(0)


def _random_lab(n: int, seed: int = 0) -> torch.Tensor:
    """Lab colours covering the whole nominal box, many of them outside sRGB."""
    g = torch.Generator().manual_seed(seed)
    lightness = torch.rand(n, generator=g) * 100
    ab = torch.rand(2, n, generator=g) * 256 - 128
    return torch.cat([lightness[None], ab]).view(1, 3, 1, n)


@pytest.mark.parametrize("name", PHOTOS)
def test_rgb_to_lab_matches_skimage(name):
    image = _photo(name)
    ours = rgb_to_lab(_to_tensor(image))[0].permute(1, 2, 0).numpy()
    reference = skimage.color.rgb2lab(image)
    assert np.abs(ours - reference).max() <= 0.05


@pytest.mark.parametrize("name", PHOTOS)
def test_lab_to_rgb_matches_skimage_and_round_trips(name):
    image = _photo(name)
    rgb = _to_tensor(image)
    lab_reference = skimage.color.rgb2lab(image)
    lab = torch.from_numpy(lab_reference).permute(2, 0, 1).float()[None]
    ours = lab_to_rgb(lab, gamut="clip")[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - skimage.color.lab2rgb(lab_reference)).max() <= 1e-4
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() <= 1e-4


def test_clip_mode_matches_skimage_out_of_gamut():
    lab = _random_lab(4000).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image warns about its negative-Z clipping
        reference = skimage.color.lab2rgb(lab[0].permute(1, 2, 0).numpy())
    ours = lab_to_rgb(lab, gamut="clip")[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - reference).max() <= 1e-9


def test_rgb_to_l_of_gray_equals_skimage():
    values = np.linspace(0, 1, 257)
    gray_rgb = np.repeat(values[None, :, None], 3, axis=2)
    reference = skimage.color.rgb2lab(gray_rgb)[0, :, 0]
    one_channel = rgb_to_l(torch.from_numpy(values).view(1, 1, 1, -1))[0, 0, 0].numpy()
    three_channel = rgb_to_l(torch.from_numpy(gray_rgb).permute(2, 0, 1))[0, 0].numpy()
    assert np.abs(one_channel - reference).max() <= 1e-9
    assert np.abs(three_channel - reference).max() <= 1e-9
    assert one_channel[0] == 0.0 and abs(one_channel[-1] - 100.0) < 1e-9


def test_rgb_to_l_equals_lab_channel_on_photo():
    rgb = _to_tensor(_photo("coffee"))
    assert torch.allclose(rgb_to_l(rgb), rgb_to_lab(rgb)[:, :1], atol=1e-4)


def test_unbatched_dtype_and_device_follow_input():
    rgb = torch.rand(3, 5, 7, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    assert lab.shape == (3, 5, 7) and lab.dtype == torch.float64
    assert rgb_to_l(rgb).shape == (1, 5, 7)
    assert lab_to_rgb(lab).shape == (3, 5, 7)
    half = rgb_to_lab(rgb.half())
    assert half.dtype == torch.float16
    assert (half.double() - lab).abs().max() < 0.1


def test_gradcheck_float64():
    rgb = (torch.rand(1, 3, 3, 4, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(rgb_to_lab, (rgb,))
    assert torch.autograd.gradcheck(rgb_to_l, (rgb,))
    lab = rgb_to_lab(rgb.detach()).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, gamut="none"), (lab,))
    assert torch.autograd.gradcheck(lambda x: lab_to_rgb(x, gamut="compress"), (lab,))


def test_compress_gamut_keeps_lightness_and_hue_and_lands_in_gamut():
    lab = _random_lab(20000)
    out = compress_gamut(lab)
    linear_ok = lab_to_rgb(out, gamut="none")
    assert linear_ok.min() >= -1e-5 and linear_ok.max() <= 1 + 1e-5
    assert torch.equal(out[:, 0], lab[:, 0])
    # hue: (a, b) only scaled by a factor in [0, 1]
    cross = out[:, 1] * lab[:, 2] - out[:, 2] * lab[:, 1]
    assert cross.abs().max() < 1e-3
    dot = out[:, 1] * lab[:, 1] + out[:, 2] * lab[:, 2]
    assert (dot >= 0).all()
    assert (out[:, 1:].norm(dim=1) <= lab[:, 1:].norm(dim=1) + 1e-5).all()
    # L survives the trip through RGB
    back = rgb_to_lab(lab_to_rgb(out.double(), gamut="compress"))
    assert (back[:, 0] - lab[:, 0].double()).abs().max() < 1e-3
    # some colours really were out of gamut and were compressed, yet not to gray
    shrunk = out[:, 1:].norm(dim=1) < lab[:, 1:].norm(dim=1) - 1e-3
    assert 0.3 < shrunk.float().mean() < 1.0
    assert out[:, 1:].norm(dim=1)[shrunk].mean() > 10


def test_compress_gamut_is_near_the_boundary():
    lab = _random_lab(2000, seed=3).double()
    out = compress_gamut(lab)
    shrunk = out[:, 1:].norm(dim=1) < lab[:, 1:].norm(dim=1) - 1e-3
    scale = out[:, 1:].norm(dim=1, keepdim=True) / lab[:, 1:].norm(dim=1, keepdim=True)
    grown = torch.cat([out[:, :1], lab[:, 1:] * (scale + 2.0**-15)], dim=1)
    rgb = lab_to_rgb(grown, gamut="none")
    outside = ((rgb < 0) | (rgb > 1)).any(dim=1)
    assert outside[shrunk].all()  # a scale 2**-15 larger leaves the gamut


def test_compress_gamut_leaves_in_gamut_photo_unchanged():
    lab = rgb_to_lab(_to_tensor(_photo("astronaut")))
    assert torch.equal(compress_gamut(lab), lab)


def test_compress_differs_from_clip_only_out_of_gamut():
    lab = _random_lab(5000, seed=1)
    compressed, clipped = lab_to_rgb(lab, "compress"), lab_to_rgb(lab, "clip")
    inside = ((lab_to_rgb(lab, "none") >= 0) & (lab_to_rgb(lab, "none") <= 1)).all(dim=1)
    assert torch.allclose(
        compressed.permute(0, 2, 3, 1)[inside], clipped.permute(0, 2, 3, 1)[inside], atol=1e-4
    )
    # compression keeps L; clipping does not
    l_compress = rgb_to_lab(compressed)[:, 0]
    l_clip = rgb_to_lab(clipped)[:, 0]
    assert (l_compress - lab[:, 0]).abs().max() < 1e-2
    assert (l_clip - lab[:, 0]).abs().max() > 1


def test_modules_equal_functions():
    rgb = torch.rand(2, 3, 6, 5)
    assert torch.equal(RgbToLab()(rgb), rgb_to_lab(rgb))
    lab = _random_lab(300)
    for gamut in ("compress", "clip", "none"):
        assert torch.equal(LabToRgb(gamut)(lab), lab_to_rgb(lab, gamut=gamut))


def test_errors():
    with pytest.raises(ValueError, match="rgb: expected"):
        rgb_to_lab(torch.rand(1, 4, 5, 5))
    with pytest.raises(TypeError, match="rgb: expected a floating dtype"):
        rgb_to_lab(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="rgb: expected a torch.Tensor"):
        rgb_to_l(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="gamut: expected one of"):
        lab_to_rgb(torch.rand(1, 3, 2, 2), gamut="wrap")
    with pytest.raises(ValueError, match="gamut: expected one of"):
        LabToRgb("bogus")
    with pytest.raises(ValueError, match="lab: expected"):
        compress_gamut(torch.rand(2, 2, 2))
