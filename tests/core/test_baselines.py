"""Reinhard and Welsh baselines: known answers."""

from __future__ import annotations

import pytest
import torch
from skimage import data

from deepexemplar_core.color import rgb_to_lab
from deepexemplar_core.evaluation.baselines import local_std, reinhard_transfer, welsh_transfer


def _lab(name: str, step: int = 4) -> torch.Tensor:
    image = getattr(data, name)()[::step, ::step].copy()
    return rgb_to_lab(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)


def test_reinhard_colour_target_takes_reference_statistics():
    target, ref = _lab("coffee"), _lab("astronaut")
    ab = reinhard_transfer(target, ref)
    mean, std = ab.mean(dim=(2, 3)), ab.std(dim=(2, 3), correction=0)
    torch.testing.assert_close(mean, ref[:, 1:].mean(dim=(2, 3)), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(std, ref[:, 1:].std(dim=(2, 3), correction=0), atol=1e-3, rtol=1e-4)
    # The transfer is affine per channel: correlation with the target's own ab is 1.
    for k in range(2):
        x, y = target[0, 1 + k].flatten(), ab[0, k].flatten()
        assert float(torch.corrcoef(torch.stack([x, y]))[0, 1]) > 0.9999


def test_reinhard_gray_target_gets_reference_mean():
    ref = _lab("chelsea")
    l = torch.from_numpy(data.camera()[::4, ::4].copy())[None, None].float() / 2.55
    ab = reinhard_transfer(l, ref)
    assert ab.shape == (1, 2, *l.shape[-2:])
    torch.testing.assert_close(ab, ref[:, 1:].mean(dim=(2, 3), keepdim=True).expand_as(ab))


def test_welsh_copies_colour_by_luminance():
    # Reference: a dark blue half and a bright yellow half; the target's dark pixels turn blue.
    ref = torch.zeros(1, 3, 32, 32)
    ref[:, 0, :, :16], ref[:, 0, :, 16:] = 20.0, 80.0
    ref[:, 2, :, :16], ref[:, 2, :, 16:] = -40.0, 50.0
    target = torch.full((1, 1, 16, 16), 20.0)
    target[..., 8:, :] = 80.0
    ab = welsh_transfer(target, ref, samples=50, seed=3)
    assert float(ab[0, 1, :6].max()) == -40.0 and float(ab[0, 1, 10:].min()) == 50.0


def test_welsh_remaps_luminance_first():
    # The reference is the target with L halved: after remapping, every target pixel finds its
    # own (colour-coded) luminance level.
    l = torch.linspace(10, 90, 9).repeat_interleave(4).view(1, 1, 6, 6)
    ref = torch.cat([l * 0.5, l - 50, torch.zeros_like(l)], 1)
    ab = welsh_transfer(l, ref, samples=36, seed=0)
    inside = (slice(None), 0, slice(2, 4), slice(2, 4))  # away from 5x5 border effects
    torch.testing.assert_close(ab[inside], (l - 50)[inside])


def test_welsh_is_seeded_and_batched():
    ref = _lab("chelsea", 8)
    crops = [_lab(name, 8)[:, :1, :32, :32] for name in ("coffee", "rocket")]
    l = torch.cat(crops)
    a = welsh_transfer(l, ref, seed=1)
    torch.testing.assert_close(a, welsh_transfer(l, ref, seed=1))
    torch.testing.assert_close(a[1:], welsh_transfer(l[1:], ref, seed=1))
    samples = set(map(tuple, ref[0, 1:].flatten(1).T.tolist()))
    assert set(map(tuple, a[0].flatten(1).T.tolist())) <= samples


def test_local_std_known_value():
    x = torch.zeros(1, 1, 9, 9)
    x[..., ::2, :] = 10.0  # rows alternate 10, 0: 5x5 window in the middle has 3 tens, 2 zeros
    assert abs(float(local_std(x)[0, 0, 4, 4]) - (0.6 * 0.4) ** 0.5 * 10) < 1e-4


def test_bad_inputs():
    ref = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="reference_lab: expected"):
        reinhard_transfer(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="target_l: expected"):
        welsh_transfer(torch.zeros(1, 3, 8, 8), ref)
    with pytest.raises(ValueError, match="samples"):
        welsh_transfer(torch.zeros(1, 1, 8, 8), ref, samples=0)
    with pytest.raises(ValueError, match="batch 1 or 2"):
        reinhard_transfer(torch.zeros(2, 1, 8, 8), torch.zeros(3, 3, 8, 8))
