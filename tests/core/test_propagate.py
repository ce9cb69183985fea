"""The weights-free colorizer: edge-aware propagation of confident colours."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from deepexemplar_core.color import rgb_to_lab
from deepexemplar_core.colorizers.propagation import (
    PropagationColorizer,
    PropagationConfig,
    bilateral_grid_filter,
    propagate_colors,
    reference_prior,
)
from deepexemplar_core.structures import Colorizer, ColorizerInputs, Similarity


def _regions(h: int = 96, w: int = 128):
    """Wavy horizontal bands of constant L spanning the whole width, one colour each."""
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    label = ((ys + 5 * torch.sin(xs / 9)) // (h / 4)).clamp(0, 3).long()
    lum = torch.tensor([25.0, 45.0, 65.0, 85.0])
    colours = torch.tensor([[40.0, -20.0], [-30.0, 50.0], [10.0, 60.0], [-40.0, -40.0]])
    l = lum[label][None, None]
    ab = colours[label].permute(2, 0, 1)[None]
    return label, l, ab, colours


def test_half_image_copy_propagates_along_luminance():
    label, l, ab, colours = _regions()
    w = l.shape[-1]
    conf = torch.zeros_like(l)
    conf[..., : w // 2] = 1.0
    warped = torch.where(conf > 0, ab, torch.randn_like(ab) * 60)  # right half: garbage
    out = propagate_colors(l, warped, conf)
    right = torch.zeros_like(label, dtype=torch.bool)
    right[:, w // 2 :] = True
    for k in range(4):
        region = (label == k) & right
        err = (out[0][:, region] - colours[k].view(2, 1)).norm(dim=0)
        assert float(err.mean()) < 2.0, (k, float(err.mean()))  # colours are >= 50 apart
        assert float(err.max()) < 4.0, (k, float(err.max()))
    torch.testing.assert_close(out[..., : w // 2], ab[..., : w // 2])


@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_half_photo_copy_beats_global_colour(name):
    image = getattr(data, name)()[::2, ::2].copy()
    rgb = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    lab = rgb_to_lab(rgb)
    l, ab = lab[:, :1], lab[:, 1:]
    w = l.shape[-1]
    conf = torch.zeros_like(l)
    conf[..., : w // 2] = 1.0
    out = propagate_colors(l, ab * conf, conf)
    right = (slice(None), slice(None), slice(None), slice(w // 2, None))
    err = (out[right] - ab[right]).norm(dim=1).mean()
    mean_left = ab[..., : w // 2].mean(dim=(2, 3), keepdim=True)
    err_global = (mean_left - ab[right]).norm(dim=1).mean()
    assert float(err) < 0.75 * float(err_global), (float(err), float(err_global))


def test_nothing_confident_gives_the_reference_prior():
    _, l, _, _ = _regions(32, 32)
    ref = torch.cat([torch.rand(1, 1, 16, 16) * 100, torch.full((1, 2, 16, 16), 12.0)], 1)
    out = propagate_colors(l, torch.randn(1, 2, 32, 32) * 50, torch.zeros_like(l), ref)
    torch.testing.assert_close(out, torch.full_like(out, 12.0), atol=1e-3, rtol=0)
    gray = propagate_colors(l, torch.randn(1, 2, 32, 32) * 50, torch.zeros_like(l))
    assert float(gray.abs().max()) < 1e-4


def test_prior_follows_reference_colour_by_luminance():
    # Reference: dark pixels blue-ish (b = -30), bright pixels yellow-ish (b = +30).
    lr = torch.cat([torch.full((1, 1, 8, 16), 20.0), torch.full((1, 1, 8, 16), 80.0)], dim=2)
    ab = torch.zeros(1, 2, 16, 16)
    ab[:, 1, :8], ab[:, 1, 8:] = -30.0, 30.0
    target = torch.cat([torch.full((1, 1, 4, 8), 20.0), torch.full((1, 1, 4, 8), 80.0)], dim=2)
    prior = reference_prior(target, torch.cat([lr, ab], 1))
    assert float(prior[0, 1, :4].mean()) < -25 and float(prior[0, 1, 4:].mean()) > 25


def test_batch_items_are_independent():
    _, l, ab, _ = _regions(32, 48)
    conf = torch.rand_like(l)
    l2 = torch.cat([l, 100 - l])
    ab2 = torch.cat([ab, -ab])
    conf2 = torch.cat([conf, conf.flip(-1)])
    both = propagate_colors(l2, ab2, conf2)
    for i in range(2):
        alone = propagate_colors(l2[i : i + 1], ab2[i : i + 1], conf2[i : i + 1])
        torch.testing.assert_close(both[i : i + 1], alone, atol=1e-4, rtol=1e-4)


def test_bilateral_grid_counts_pixels():
    l = torch.rand(1, 1, 20, 30) * 100
    ones = torch.ones(1, 1, 20, 30)
    out = bilateral_grid_filter(l, ones, float("inf"), 1000.0)
    # One cell in space and range holds all 600 pixels; each of the 2 x 3 blur passes keeps the
    # centre weight 1/2 of a lone cell (zero borders): 600 * 0.5**6.
    torch.testing.assert_close(out, torch.full_like(out, 600 * 0.5**6), rtol=1e-4, atol=1e-3)


def test_colorizer_matches_function():
    _, l, ab, _ = _regions(32, 32)
    conf = torch.rand_like(l)
    z = torch.rand(1, 5, 32, 32)
    ref = torch.cat([torch.rand(1, 1, 16, 16) * 100, torch.randn(1, 2, 16, 16) * 20], 1)
    inputs = ColorizerInputs(l, torch.zeros(1, 3, 32, 32, dtype=torch.uint8), ab,
                             Similarity(z, z, z.byte(), z.byte(), tuple("abcde")), conf, ref)
    col = PropagationColorizer(PropagationConfig(keep_above=0.9))
    assert isinstance(col, Colorizer) and col.name == "lite-propagation"
    torch.testing.assert_close(col(inputs), propagate_colors(l, ab, conf, ref, col.config))


def test_rejects_bad_inputs():
    l = torch.rand(1, 1, 16, 16) * 100
    ab = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match="warped_ab: expected"):
        propagate_colors(l, torch.zeros(1, 3, 16, 16), torch.ones_like(l))
    with pytest.raises(ValueError, match="confidence: expected values"):
        propagate_colors(l, ab, torch.full_like(l, 2.0))
    with pytest.raises(ValueError, match="finite"):
        propagate_colors(l, ab * float("nan"), torch.ones_like(l))
    with pytest.raises(ValueError, match="keep_above"):
        PropagationConfig(keep_above=1.0)
