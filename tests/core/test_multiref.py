"""Several references (``prepare_references``, ``deepexemplar_core.fusion``) on real photos, lite family."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepexemplar_core import MotionPrior
from deepexemplar_core.color import lab_to_rgb, rgb_to_lab
from deepexemplar_core.fusion import FusionConfig, fusion_weights, region_factors
from deepexemplar_core.models import load_models
from deepexemplar_core.pipeline import (
    ColorizeConfig,
    ReferenceSet,
    colorize,
    colorize_iter,
    prepare_reference,
    prepare_references,
)

SIZE = 128
CONFIG = ColorizeConfig(size=SIZE)


@pytest.fixture(scope="module")
def lite():
    return load_models("lite")


def _square(rgb: torch.Tensor, side: int = SIZE) -> torch.Tensor:
    """Centre square crop of ``(3, H, W)`` resized to ``side``."""
    h, w = rgb.shape[-2:]
    s = min(h, w)
    crop = rgb[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return F.interpolate(crop[None], size=(side, side), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def _ab_psnr(rgb: torch.Tensor, truth: torch.Tensor) -> float:
    a, b = rgb_to_lab(rgb[None])[0, 1:], rgb_to_lab(truth[None])[0, 1:]
    return 10 * math.log10(255.0**2 / float(((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def halves(astronaut_rgb, coffee_rgb):
    """A colour truth made of two photos side by side; references: each photo mirrored."""
    left, right = _square(astronaut_rgb), _square(coffee_rgb)
    return torch.cat([left, right], dim=2), [left.flip(-1), right.flip(-1)]


def test_one_reference_as_image_list_or_set_gives_the_same_bytes(lite, chelsea_rgb, coffee_rgb):
    target = coffee_rgb.mean(0, keepdim=True)
    config = ColorizeConfig(size=64)
    expected = colorize(target, chelsea_rgb, lite, config).images[0]
    for reference in ([chelsea_rgb], chelsea_rgb[None], (chelsea_rgb,),
                      prepare_references(lite, [chelsea_rgb], config),
                      prepare_references(lite, [prepare_reference(lite, chelsea_rgb, config)])):
        result = colorize(target, reference, lite, config)
        assert torch.equal(result.images[0], expected)
        assert result.intermediates[0].fusion is None
        assert int(result.choice.max()) == 0


def test_each_half_takes_its_own_photo(lite, halves):
    """The known answer: far better than either reference alone, the choice right per half."""
    truth, refs = halves
    target = truth.mean(0, keepdim=True)
    singles = [_ab_psnr(colorize(target, r, lite, CONFIG).images[0], truth) for r in refs]
    result = colorize(target, refs, lite, CONFIG)
    assert _ab_psnr(result.images[0], truth) >= max(singles) + 3.0
    choice = result.choice[0, 0]
    w, margin = choice.shape[1], choice.shape[1] // 16
    assert float((choice[:, : w // 2 - margin] == 0).float().mean()) >= 0.95
    assert float((choice[:, w // 2 + margin:] == 1).float().mean()) >= 0.95
    weights = result.intermediates[0].fusion.weights
    assert torch.allclose(weights.sum(1), torch.ones(()), atol=1e-5)
    assert result.confidence.shape == result.choice.shape
    assert {"fusion", "matching", "similarity"} <= set(result.timings)


def test_a_region_forces_its_reference_and_a_weight_only_prefers_it(lite, halves):
    truth, refs = halves
    target = truth.mean(0, keepdim=True)
    mask = torch.zeros(truth.shape[-2:])
    mask[:, -mask.shape[1] // 4:] = 1.0  # the right quarter: the coffee's side
    only = colorize(target, prepare_references(lite, refs, CONFIG, masks=[mask]), lite, CONFIG)
    choice = only.choice[0, 0]
    assert bool((choice[:, -choice.shape[1] // 4 + 4:] == 0).all())   # inside: the masked one
    assert bool((choice[:, : choice.shape[1] * 3 // 4 - 4] == 1).all())  # outside: never it
    soft = prepare_references(lite, refs, CONFIG, masks=[mask], fusion=FusionConfig(region_weight=0))
    free = colorize(target, soft, lite, CONFIG).choice[0, 0]
    assert float((free[:, : free.shape[1] // 2 - 8] == 0).float().mean()) >= 0.9  # no preference


def _tinted(rgb: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """``rgb`` with every pixel's CIELab a/b set to ``(a, b)`` (its luminance kept)."""
    lab = rgb_to_lab(rgb[None])
    lab[:, 1], lab[:, 2] = a, b
    return lab_to_rgb(lab)[0].clamp(0, 1)


def test_each_region_keeps_its_own_references_colours_where_nothing_matches(
        lite, chelsea_rgb, coffee_rgb):
    # A red and a blue copy of the cat match little of the coffee cup (mean confidence ~0.03),
    # so the colours come from the prior: each half must take its own reference's, not the
    # references' pooled mean (that gave (21, -8) and (9, -20): a purple cast on both sides).
    refs = [_tinted(chelsea_rgb, 30.0, 0.0), _tinted(chelsea_rgb, 0.0, -30.0)]
    target = coffee_rgb.mean(0, keepdim=True)
    w = target.shape[-1]
    left = torch.zeros(target.shape[-2:])
    left[:, : w // 2] = 1.0
    result = colorize(target, prepare_references(lite, refs, CONFIG, masks=[left, 1 - left]),
                      lite, CONFIG)
    ab = rgb_to_lab(result.images[0][None])[0, 1:]
    a_left, b_left = ab[:, :, : w // 2 - 8].mean(dim=(1, 2)).tolist()
    a_right, b_right = ab[:, :, w // 2 + 8:].mean(dim=(1, 2)).tolist()
    assert a_left > 20 and abs(b_left) < 5, (a_left, b_left)
    assert b_right < -20 and abs(a_right) < 5, (a_right, b_right)


def test_region_factors_keep_the_unmasked_reference_outside_and_blend_the_edge():
    mask = torch.linspace(0, 1, 16).expand(4, 16)
    factors = region_factors([mask, None], (4, 16))[0]
    assert torch.allclose(factors[0] + factors[1], torch.ones(4, 16))
    assert float(factors[0, 0, 0]) == 0.0 and float(factors[1, 0, -1]) == 0.0
    weights = fusion_weights(torch.zeros(1, 2, 4, 16), factors[None], FusionConfig(smooth=0))
    assert torch.allclose(weights[0, 0], mask)  # equal scores: the mask's soft edge itself


def test_bad_references_and_regions_are_named(lite, halves, chelsea_rgb):
    truth, refs = halves
    gray = chelsea_rgb.mean(0, keepdim=True).expand(3, -1, -1)
    kept = prepare_references(lite, [refs[0], gray, refs[1]], CONFIG)
    assert kept.positions == (0, 2) and "references[1]: has no colour" in kept.skipped[0]
    with pytest.raises(ValueError, match="every reference is gray"):
        prepare_references(lite, [gray, gray], CONFIG)
    with pytest.raises(ValueError, match="3 regions for 2 references"):
        prepare_references(lite, refs, CONFIG, masks=[torch.ones(8, 8)] * 3)
    with pytest.raises(ValueError, match=r"masks\[0\]: is empty"):
        prepare_references(lite, refs, CONFIG, masks=[torch.zeros(8, 16)])
    wrong = prepare_references(lite, refs, CONFIG, masks=[torch.ones(64, 64)])
    with pytest.raises(ValueError, match=r"masks\[0\]: a 64x64 mask does not fit a 256x128"):
        colorize(truth.mean(0, keepdim=True), wrong, lite, CONFIG)
    with pytest.raises(ValueError, match=r"references\[1\]: .*too small|references\[1\]"):
        prepare_references(lite, [refs[0], torch.rand(3, 8, 8)], CONFIG)
    # references of different sizes and aspects are fine: each is prepared at its own size
    odd = prepare_references(lite, [refs[0], chelsea_rgb], CONFIG)
    assert [tuple(r.lab_work.shape[-2:]) for r in odd.references] == [(128, 128), (128, 192)]


def test_a_film_with_two_references_carries_every_field_along_the_motion(lite, halves):
    truth, refs = halves
    frames = [truth.mean(0, keepdim=True).roll(2 * i, dims=-1) for i in range(3)]
    references = prepare_references(lite, refs, CONFIG)
    assert isinstance(references, ReferenceSet)
    motion = MotionPrior()
    done = list(colorize_iter(frames, references, lite, ColorizeConfig(size=SIZE, motion=True),
                              motion=motion, keep_intermediates=True))
    assert [d.index for d in done] == [0, 1, 2] and motion.cuts == 0
    assert motion._nnf.shape[0] == 2  # one field per reference, carried to the next frame
    for d in done:
        choice = d.intermediates.choice[0, 0]
        assert float((choice[:, : choice.shape[1] // 2 - 16] == 0).float().mean()) >= 0.9
