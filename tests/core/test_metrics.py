"""Metrics: known values and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from deepexemplar_core.evaluation.metrics import (
    ab_psnr,
    colorfulness,
    finite_mean,
    rgb_psnr,
    ssim,
    top5_agreement,
)


def _photo(name: str) -> torch.Tensor:
    image = getattr(data, name)()[::4, ::4].copy()
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def test_psnr_identical_is_inf():
    x = _photo("coffee")
    assert math.isinf(float(rgb_psnr(x, x))) and math.isinf(float(ab_psnr(x[:, :2], x[:, :2])))


def test_rgb_psnr_matches_scikit_image():
    x = _photo("coffee")
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    expected = peak_signal_noise_ratio(
        x[0].permute(1, 2, 0).double().numpy(), y[0].permute(1, 2, 0).double().numpy(), data_range=1
    )
    assert abs(float(rgb_psnr(y, x)) - expected) < 1e-6


def test_ab_psnr_known_value_per_image():
    ab = torch.zeros(2, 2, 8, 8)
    pred = ab.clone()
    pred[0] += 25.5  # MSE 650.25 -> 10 log10(255^2 / 25.5^2) = 20 dB
    pred[1, 0] += 36.0  # MSE 648 over both channels
    got = ab_psnr(pred, ab)
    assert abs(float(got[0]) - 20.0) < 1e-9
    assert abs(float(got[1]) - 10 * math.log10(255**2 / 648.0)) < 1e-9


def test_ssim_is_one_for_identical_and_lower_for_gray():
    x = _photo("astronaut")
    gray = x.mean(dim=1, keepdim=True).expand_as(x)
    s = ssim(torch.cat([x, gray]), torch.cat([x, x]))
    assert float(s[0]) == pytest.approx(1.0) and float(s[1]) < 0.99


def test_colorfulness_known_values():
    gray = torch.full((1, 3, 4, 4), 0.4)
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    for variant in ("signed", "abs"):
        assert float(colorfulness(gray, variant)) == 0.0
        # rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255^2 + 127.5^2)
        assert float(colorfulness(red, variant)) == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_colorfulness_reads_rgb_not_bgr():
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    blue = red.flip(1)  # the same array read as BGR
    assert float(colorfulness(blue)) == pytest.approx(0.3 * 255.0)  # rg = 0, yb = -255
    assert abs(float(colorfulness(red)) - float(colorfulness(blue))) > 5


def test_colorfulness_variants_against_numpy():
    x = _photo("chelsea")
    r, g, b = (x[0, i].double().numpy() * 255 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b

    def cf(u, v):
        return np.sqrt(u.std() ** 2 + v.std() ** 2) + 0.3 * np.sqrt(u.mean() ** 2 + v.mean() ** 2)

    assert float(colorfulness(x, "signed")) == pytest.approx(cf(rg, yb))
    assert float(colorfulness(x, "abs")) == pytest.approx(cf(np.abs(rg), np.abs(yb)))
    assert float(colorfulness(x, "signed")) != pytest.approx(float(colorfulness(x, "abs")))


def test_top5_agreement():
    true = torch.zeros(3, 10)
    true[:, 7] = 5.0
    pred = torch.zeros(3, 10)
    pred[0, 7] = 9.0  # top-1
    pred[1, :5] = 9.0  # 7 outside the top 5
    pred[2, [0, 1, 2, 3]] = 9.0
    pred[2, 7] = 8.0  # fifth
    assert top5_agreement(pred, true).tolist() == [1.0, 0.0, 1.0]


def test_finite_mean_and_errors():
    assert finite_mean([1.0, float("inf"), 3.0]) == 2.0
    assert math.isnan(finite_mean([float("inf")]))
    with pytest.raises(ValueError, match="variant"):
        colorfulness(torch.zeros(1, 3, 2, 2), "bgr")
    with pytest.raises(ValueError, match="rgb_true: expected"):
        rgb_psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
