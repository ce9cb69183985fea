"""Confidence from similarity and bidirectional (cycle) agreement."""

from __future__ import annotations

import math

import pytest
import torch

from deepexemplar_core.confidence import confidence_map, cycle_error
from deepexemplar_core.structures import Correspondence, Similarity


def _identity(b: int, h: int, w: int) -> torch.Tensor:
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
    return grid[None].expand(b, h, w, 2).clone()


def _sim(values: torch.Tensor) -> Similarity:
    err = ((1 - values).clamp(0, 1) * 255).to(torch.uint8)
    return Similarity(values, values, err, err, tuple(f"l{i}" for i in range(values.shape[1])))


def test_perfect_match_is_fully_confident():
    conf = confidence_map(_sim(torch.ones(2, 5, 12, 16)), Correspondence(_identity(2, 12, 16),
                                                                        _identity(2, 12, 16)))
    assert conf.shape == (2, 1, 12, 16)
    torch.testing.assert_close(conf, torch.ones_like(conf))


def test_low_where_the_cycle_fails():
    h, w = 24, 32
    tr, rt = _identity(1, h, w), _identity(1, h, w)
    rt[:, 8:16, 8:16, 1] += 12  # reference block points back 12 px to the right
    conf = confidence_map(_sim(torch.ones(1, 5, h, w)), Correspondence(tr, rt), cycle_tolerance=3.0)
    assert float(conf[..., 8:16, 8:16].max()) < 1e-3
    default = confidence_map(_sim(torch.ones(1, 5, h, w)), Correspondence(tr, rt))
    assert float(default[..., 8:16, 8:16].max()) < 0.4  # 12 px = 1.5 tau at the default tau = 8
    outside = torch.ones(h, w, dtype=torch.bool)
    outside[8:16, 8:16] = False
    assert float(conf[0, 0][outside].min()) == 1.0
    assert float(cycle_error(Correspondence(tr, rt))[..., 10, 10]) == 12.0


def test_known_values_of_the_formula():
    h, w = 4, 4
    tr, rt = _identity(1, h, w), _identity(1, h, w)
    rt[:, 0, 0, 0] = 3  # pixel (0, 0): cycle error 3 px = tau
    sims = torch.full((1, 3, h, w), 0.7)  # halfway between 0.5 and 0.9
    sims[:, 2] = 0.0  # the finest level is left out by default
    band = dict(sim_low=0.5, sim_high=0.9, cycle_tolerance=3.0)
    conf = confidence_map(_sim(sims), Correspondence(tr, rt), **band)
    assert float(conf[0, 0, 1, 1]) == pytest.approx(0.5)
    assert float(conf[0, 0, 0, 0]) == pytest.approx(0.5 * math.exp(-0.5))
    only_finest = confidence_map(_sim(sims), Correspondence(tr, rt), levels=[2], **band)
    assert float(only_finest.max()) == 0.0


def test_dissimilar_features_give_zero_and_range_holds():
    torch.manual_seed(0)
    b, h, w = 2, 10, 14
    tr = torch.stack([torch.randint(0, 9, (b, h, w)), torch.randint(0, 11, (b, h, w))], -1)
    rt = torch.stack([torch.randint(0, h, (1, 9, 11)), torch.randint(0, w, (1, 9, 11))], -1)
    sims = torch.rand(b, 5, h, w)
    conf = confidence_map(_sim(sims), Correspondence(tr, rt))
    assert float(conf.min()) >= 0.0 and float(conf.max()) <= 1.0
    low = confidence_map(_sim(sims * 0.3), Correspondence(tr, rt))  # below the default sim_low
    assert float(low.max()) == 0.0


def test_reference_field_of_batch_one_is_shared():
    tr, rt = _identity(3, 8, 8), _identity(1, 8, 8)
    assert float(cycle_error(Correspondence(tr, rt)).max()) == 0.0


def test_bad_inputs():
    sim = _sim(torch.ones(1, 5, 8, 8))
    with pytest.raises(ValueError, match="corr.nnf_tr: expected"):
        confidence_map(sim, Correspondence(_identity(1, 8, 9), _identity(1, 8, 8)))
    with pytest.raises(ValueError, match="levels"):
        confidence_map(sim, Correspondence(_identity(1, 8, 8), _identity(1, 8, 8)), levels=[7])
    with pytest.raises(ValueError, match="sim_low"):
        confidence_map(sim, Correspondence(_identity(1, 8, 8), _identity(1, 8, 8)), sim_low=1.0,
                       sim_high=0.5)
    with pytest.raises(ValueError, match="batch 1 or 1"):
        cycle_error(Correspondence(_identity(1, 8, 8), _identity(2, 8, 8)))
