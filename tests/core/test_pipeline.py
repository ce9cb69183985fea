"""End-to-end tests of ``deepexemplar_core.pipeline`` on real photos with the built-in lite family."""

from __future__ import annotations

import math

import pytest
import torch

from deepexemplar_core.color import rgb_to_lab
from deepexemplar_core.inputs import PrecomputedError
from deepexemplar_core.models import load_models
from deepexemplar_core.pipeline import (
    ColorizeConfig,
    colorize,
    compute_similarity,
    match_images,
    working_size,
)


def _ab_psnr(ab: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR of a/b in dB with peak 255 (the span of 8-bit encoded a/b), MSE over both channels."""
    mse = float(((ab - truth) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def lite():
    return load_models("lite")


def _gray(rgb: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` -> ``(1, H, W)`` gray in [0, 1] with the same CIELab L (R = G = B)."""
    from deepexemplar_core.color import lab_to_rgb

    l = rgb_to_lab(rgb.unsqueeze(0))[:, :1]
    lab = torch.cat([l, torch.zeros_like(l), torch.zeros_like(l)], 1)
    return lab_to_rgb(lab, gamut="clip")[0, :1]


def test_working_size_floors_to_multiples_of_eight():
    assert working_size(300, 451, 256) == (256, 384)
    assert working_size(512, 512, 0) == (512, 512)
    with pytest.raises(ValueError, match="minimum side is 32"):
        working_size(20, 400, 0)


def test_working_size_never_exceeds_the_image_beyond_the_trained_size():
    """A size above both 256 and the short side (2048 on a 192 px photo took 190 s) is lowered
    to the larger of the two; sizes up to 256, or up to the short side, keep today's result."""
    assert working_size(192, 288, 2048) == (256, 384)
    assert working_size(600, 900, 2048) == (600, 896)
    assert working_size(197, 301, 256) == (256, 384)
    assert working_size(192, 288, 192) == (192, 288)
    assert working_size(300, 451, 296) == (296, 440)


def test_size_above_a_small_image_gives_the_trained_size_result(lite, chelsea_rgb):
    small = torch.nn.functional.interpolate(chelsea_rgb[None], size=(64, 96), mode="area")[0]
    target = _gray(small)
    trained = colorize(target, small, lite, ColorizeConfig(size=256))
    oversized = colorize(target, small, lite, ColorizeConfig(size=2048))
    assert oversized.images[0].shape == (3, 64, 96)
    assert torch.equal(oversized.images[0], trained.images[0])


def test_self_reference_restores_colours_at_original_size(lite, chelsea_rgb):
    target = _gray(chelsea_rgb)
    result = colorize(target, chelsea_rgb, lite, ColorizeConfig(size=256))
    out = result.images[0]
    assert out.shape == chelsea_rgb.shape
    lab_out = rgb_to_lab(out.unsqueeze(0))
    lab_true = rgb_to_lab(chelsea_rgb.unsqueeze(0))
    # the output keeps the target's own luminance
    assert float((lab_out[:, 0] - lab_true[:, 0]).abs().mean()) <= 0.5
    # colours come back: far better than a gray result
    gray_psnr = _ab_psnr(torch.zeros_like(lab_true[:, 1:]), lab_true[:, 1:])
    assert _ab_psnr(lab_out[:, 1:], lab_true[:, 1:]) > gray_psnr + 3.0
    assert set(result.timings) >= {"features", "matching", "similarity", "colorize", "upsample", "total"}
    assert result.family == "lite"


def test_identical_reference_warps_to_the_target_ab(lite, astronaut_rgb):
    """With the target's own colour version as reference, the warp reproduces its ab (> 30 dB)."""
    match = match_images(lite, _gray(astronaut_rgb), astronaut_rgb, ColorizeConfig(size=256))
    sim = compute_similarity(match)
    truth = match.reference_lab_work[:, 1:]
    assert _ab_psnr(sim.warped_ab, truth) > 30.0
    assert sim.confidence.shape == (1, 1, 256, 256)
    assert float(sim.confidence.min()) >= 0.0 and float(sim.confidence.max()) <= 1.0


def test_rgb_target_uses_only_its_luminance(lite, chelsea_rgb):
    config = ColorizeConfig(size=128)
    from_rgb = colorize(chelsea_rgb, chelsea_rgb, lite, config).images[0]
    from_gray = colorize(_gray(chelsea_rgb), chelsea_rgb, lite, config).images[0]
    assert torch.allclose(from_rgb, from_gray, atol=2e-3)


def test_strength_zero_gives_gray(lite, chelsea_rgb):
    out = colorize(_gray(chelsea_rgb), chelsea_rgb, lite, ColorizeConfig(size=128, strength=0.0))
    ab = rgb_to_lab(out.images[0].unsqueeze(0))[:, 1:]
    assert float(ab.abs().max()) < 0.5


def test_batch_computes_reference_features_once(lite, chelsea_rgb):
    calls = []
    original = lite.backbone.pyramid

    def counting(l):
        calls.append(tuple(l.shape))
        return original(l)

    lite.backbone.pyramid = counting
    try:
        targets = torch.stack([_gray(chelsea_rgb)] * 3)
        result = colorize(targets, chelsea_rgb, lite, ColorizeConfig(size=128))
    finally:
        del lite.backbone.pyramid
    assert len(result.images) == 3
    assert sorted(batch for batch, *_ in calls) == [1, 3]


def test_targets_of_different_sizes(lite, chelsea_rgb):
    small = _gray(chelsea_rgb)[:, :200, :260]
    result = colorize([_gray(chelsea_rgb), small], chelsea_rgb, lite, ColorizeConfig(size=128))
    assert [tuple(im.shape) for im in result.images] == [(3, 300, 451), (3, 200, 260)]
    assert len(result.intermediates) == 2
    with pytest.raises(ValueError, match="chunks"):
        _ = result.correspondence


def test_precomputed_stages_are_reused(lite, chelsea_rgb):
    config = ColorizeConfig(size=128)
    target = _gray(chelsea_rgb)
    match = match_images(lite, target, chelsea_rgb, config)
    sim = compute_similarity(match)
    direct = colorize(target, chelsea_rgb, lite, config).images[0]
    reused = colorize(target, None, lite, config, match=match, similarity=sim).images[0]
    assert torch.allclose(direct, reused, atol=1e-5)
    checks = [  # (targets, reference, config, what is refused)
        (target[:, :100, :100], None, config, "targets"),
        (target, None, ColorizeConfig(size=96), "size"),
        (target, chelsea_rgb, config, "reference"),  # the match already holds its reference
    ]
    for targets, reference, other, kind in checks:
        with pytest.raises(PrecomputedError) as info:
            colorize(targets, reference, lite, other, match=match)
        assert info.value.kind == kind
    with pytest.raises(PrecomputedError, match="pass the match result"):
        colorize(target, None, lite, config, similarity=sim)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (torch.rand(1, 4, 64, 64), "RGBA"),
        ([], "empty batch"),
        (torch.full((1, 1, 64, 64), float("nan")), "NaN"),
        (torch.rand(1, 1, 16, 64), "minimum is 32x32"),
        (torch.rand(1, 3, 64, 64) * 3, r"\[0.0, 1.0\]"),
    ],
)
def test_bad_targets_have_clear_errors(lite, chelsea_rgb, targets, message):
    with pytest.raises(ValueError, match=message):
        colorize(targets, chelsea_rgb, lite, ColorizeConfig(size=64))


def test_bad_config_values():
    with pytest.raises(ValueError, match="upsample"):
        ColorizeConfig(upsample="nearest")
    with pytest.raises(ValueError, match="size"):
        ColorizeConfig(size=8)
