"""Similarity maps: the authors' demo relation, hand-computed samples, an independent reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from authors_demo import EXAMPLE, demo_pairs

from deepexemplar_core import similarity as similarity_module
from deepexemplar_core.authors.formats import read_combo, read_flow
from deepexemplar_core.similarity import (
    SimilarityMaps,
    encode_errors,
    lookup_at_field,
    similarity_maps,
)
from deepexemplar_core.structures import Correspondence, FeaturePyramid


@pytest.fixture(params=["sampled", "gram"])
def level_path(request, monkeypatch):
    """Run a test once with each exact evaluation of a level forced (the cost model picks one)."""
    if request.param == "gram":
        monkeypatch.setattr(similarity_module, "_GRAM_PIXEL_COST", 0)
        monkeypatch.setattr(similarity_module, "_GRAM_MACS_PER_UNIT", float("inf"))
        monkeypatch.setattr(similarity_module, "_GRAM_ENTRY_COST", 0)
    else:
        monkeypatch.setattr(similarity_module, "_GRAM_ELEMENTS", 0)
    return request.param


def identity_field(batch: int, height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack((ys, xs), dim=-1).expand(batch, -1, -1, -1).contiguous()


def ceil_pyramid(batch, size, strides, channels, gen, fill=None):
    """Random post-ReLU-like features with Caffe ceil-mode sizes ``ceil(size / stride)``."""
    feats = []
    for s, c in zip(strides, channels, strict=True):
        shape = (batch, c, math.ceil(size[0] / s), math.ceil(size[1] / s))
        feats.append(torch.rand(shape, generator=gen) if fill is None else fill(shape))
    names = tuple(f"level{s}" for s in strides)
    return FeaturePyramid(tuple(feats), tuple(strides), names, size)


def random_field(batch, size, other, gen):
    ys = torch.randint(0, other[0], (batch, *size), generator=gen)
    xs = torch.randint(0, other[1], (batch, *size), generator=gen)
    return torch.stack((ys, xs), dim=-1)


@pytest.mark.skipif(
    not demo_pairs(),
    reason=f"authors' demo data not found at {EXAMPLE} (set DEEPEXEMPLAR_SHARED to shared/)",
)
@pytest.mark.parametrize("stems", demo_pairs(), ids=lambda s: "_".join(s))
def test_demo_err_ab_is_reverse_err_ba_looked_up_through_phi(stems):
    target_stem, ref_stem = stems
    combo = read_combo(EXAMPLE / "combo_new" / f"{target_stem}_{ref_stem}.combo")
    reverse = read_combo(EXAMPLE / "combo_new" / f"{ref_stem}_{target_stem}.combo")
    nnf_tr = read_flow(EXAMPLE / "flow" / f"{target_stem}_{ref_stem}.txt", combo.size)

    looked_up = lookup_at_field(reverse.err_ba[None], nnf_tr, fill=255)[0]

    assert combo.num_levels == 5
    for level in range(5):
        assert (looked_up[level] == combo.err_ab[level]).float().mean().item() == 1.0


@pytest.mark.skipif(
    not demo_pairs(),
    reason=f"authors' demo data not found at {EXAMPLE} (set DEEPEXEMPLAR_SHARED to shared/)",
)
def test_swapping_the_pair_reproduces_the_demo_relation_with_real_flows(level_path):
    """Our err_rt of (T, R) is our err_tr of (R, T) read through phi_T->R, as in their files."""
    gen = torch.Generator().manual_seed(9)
    strides, channels = (1, 2, 4, 8, 16), (4, 4, 6, 6, 8)
    target = ceil_pyramid(1, (256, 340), strides, channels, gen)
    reference = ceil_pyramid(1, (256, 383), strides, channels, gen)
    nnf_tr = read_flow(EXAMPLE / "flow" / "in1_ref1.txt", (256, 340))
    nnf_rt = read_flow(EXAMPLE / "flow" / "ref1_in1.txt", (256, 383))
    forward = similarity_maps(target, reference, Correspondence(nnf_tr, nnf_rt))
    backward = similarity_maps(reference, target, Correspondence(nnf_rt, nnf_tr))
    assert torch.equal(forward.err_rt, lookup_at_field(backward.err_tr, nnf_tr, fill=255))
    assert forward.err_tr.float().std() > 5  # random features: the maps are not constant


def test_hand_computed_bilinear_samples_use_the_authors_shift(level_path):
    # Target 4x6 pixels, stride 2 -> 2x3 cells; channel 0 is 1, channel 1 holds v.
    v = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 8.0]])
    target = FeaturePyramid((torch.stack((torch.ones(2, 3), v))[None],), (2,), ("l",), (4, 6))
    reference = FeaturePyramid(
        (torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 3),), (2,), ("l",), (4, 6)
    )
    nnf = identity_field(1, 4, 6)
    sim = similarity_maps(target, reference, Correspondence(nnf, nnf))
    # cos([1, c], [1, 0]) = 1 / sqrt(1 + c^2), c = the bilinear sample of v at ((x+1)/2, (y+1)/2).
    cases = {
        (0, 0): 0.25 * (0 + 1 + 3 + 4),  # (0.5, 0.5): the four top-left cells
        (1, 2): 0.5 * 4 + 0.5 * 8,  # (x 1.5, y 1.0): between cells (1, 1) and (1, 2)
        (3, 5): 8.0,  # (3.0, 2.0): clamped to the last cell
        (2, 1): 4.0,  # (x 1.0, y 1.5): column 1 exactly, row 1.5 clamped to the last row
    }
    for (y, x), c in cases.items():
        cos = 1 / math.sqrt(1 + c * c)
        assert sim.sim_tr[0, 0, y, x].item() == pytest.approx(cos, abs=1e-6)
        assert sim.err_tr[0, 0, y, x].item() == math.floor((1 - cos) * 255)
    # The usual centre alignment ((x + 0.5) / 2 - 0.5, clamped) would read cell (0, 0) only: cos 1.
    assert sim.sim_tr[0, 0, 0, 0].item() < 0.5


def test_stride_one_samples_pixels_without_shift():
    gen = torch.Generator().manual_seed(0)
    t = torch.rand(1, 3, 5, 7, generator=gen)
    r = torch.rand(1, 3, 5, 7, generator=gen)
    nnf = identity_field(1, 5, 7)
    sim = similarity_maps(
        FeaturePyramid((t,), (1,), ("l",), (5, 7)),
        FeaturePyramid((r,), (1,), ("l",), (5, 7)),
        Correspondence(nnf, nnf),
    )
    assert torch.allclose(sim.sim_tr[:, 0], F.cosine_similarity(t, r, dim=1), atol=1e-6)


@pytest.mark.parametrize("strides", [(1, 2, 4, 8, 16), (2, 4, 8, 16, 32)], ids=["vgg", "lite"])
def test_identical_features_give_zero_and_orthogonal_give_255(strides, level_path):
    gen = torch.Generator().manual_seed(1)
    size = (37, 45)
    pyramid = ceil_pyramid(2, size, strides, (3, 4, 5, 6, 7), gen)
    nnf = identity_field(2, *size)
    same = similarity_maps(pyramid, pyramid, Correspondence(nnf, nnf))
    assert same.err_tr.eq(0).all() and same.err_rt.eq(0).all()
    assert same.level_names == tuple(reversed(pyramid.names))

    def one_hot(channel):
        def make(shape):
            f = torch.zeros(shape)
            f[:, channel] = torch.rand(shape[0], *shape[2:], generator=gen) + 0.1
            return f

        return make

    a = ceil_pyramid(2, size, strides, (3, 4, 5, 6, 7), gen, fill=one_hot(0))
    b = ceil_pyramid(1, size, strides, (3, 4, 5, 6, 7), gen, fill=one_hot(1))
    field = random_field(2, size, size, gen)
    ortho = similarity_maps(a, b, Correspondence(field, field))
    assert ortho.err_tr.eq(255).all() and ortho.err_rt.eq(255).all()
    assert ortho.sim_tr.abs().max().item() == 0.0


def reference_neg_cosine(source, other, nnf, stride):
    """Independent reference: grid_sample (border, align_corners) at ``(p + s/2) / s``."""

    def sample(features, py, px):
        h, w = features.shape[-2:]
        shift = 0.0 if stride == 1 else stride / 2
        gx = (px.float() + shift) / stride
        gy = (py.float() + shift) / stride
        gx = 2 * gx / (w - 1) - 1 if w > 1 else torch.zeros_like(gx)
        gy = 2 * gy / (h - 1) - 1 if h > 1 else torch.zeros_like(gy)
        grid = torch.stack((gx, gy), dim=-1)
        return F.grid_sample(
            features, grid, mode="bilinear", padding_mode="border", align_corners=True
        )

    batch, height, width, _ = nnf.shape
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    a = sample(source.expand(batch, -1, -1, -1), ys.expand(batch, -1, -1), xs.expand(batch, -1, -1))
    b = sample(other.expand(batch, -1, -1, -1), nnf[..., 0], nnf[..., 1])
    return -F.cosine_similarity(a, b, dim=1, eps=1e-8)


def test_matches_an_independent_grid_sample_reference(level_path):
    gen = torch.Generator().manual_seed(2)
    strides = (1, 2, 4, 8, 16)
    t_size, r_size = (41, 53), (47, 38)
    target = ceil_pyramid(2, t_size, strides, (4, 8, 8, 16, 16), gen)
    reference = ceil_pyramid(1, r_size, strides, (4, 8, 8, 16, 16), gen)
    nnf_tr = random_field(2, t_size, r_size, gen)
    nnf_tr[:, :3, :4] = torch.tensor([r_size[0] + 3, 1])  # out of the reference: err_rt = 255
    nnf_rt = random_field(2, r_size, t_size, gen)
    sim = similarity_maps(target, reference, Correspondence(nnf_tr, nnf_rt))

    for out_level, level in enumerate(reversed(range(5))):
        s = strides[level]
        t_feat, r_feat = target.features[level], reference.features[level]
        annd_tr = reference_neg_cosine(t_feat, r_feat, nnf_tr, s)
        grid_rt = reference_neg_cosine(r_feat, t_feat, nnf_rt, s)
        qy, qx = nnf_tr[..., 0], nnf_tr[..., 1]
        inside = (qy < r_size[0]) & (qx < r_size[1])
        b = torch.arange(2).view(2, 1, 1)
        annd_rt = torch.where(
            inside, grid_rt[b, qy.clamp(max=r_size[0] - 1), qx.clamp(max=r_size[1] - 1)], 0.0
        )
        assert torch.allclose(sim.sim_tr[:, out_level], -annd_tr, atol=1e-5)
        assert torch.allclose(sim.sim_rt[:, out_level], -annd_rt, atol=1e-5)
        for err, annd in ((sim.err_tr, annd_tr), (sim.err_rt, annd_rt)):
            want = ((annd + 1).clamp(0, 1) * 255).floor()
            diff = (err[:, out_level].float() - want).abs()
            assert diff.max().item() <= 1 and diff.eq(0).float().mean().item() > 0.999
    assert sim.err_rt[:, :, :3, :4].eq(255).all()
    assert sim.level_names == ("level16", "level8", "level4", "level2", "level1")


def test_shared_reference_equals_per_target_reference_and_chunking(monkeypatch, level_path):
    gen = torch.Generator().manual_seed(4)
    strides = (2, 4, 8)
    target = ceil_pyramid(3, (30, 26), strides, (5, 6, 7), gen)
    reference = ceil_pyramid(1, (22, 34), strides, (5, 6, 7), gen)
    corr = Correspondence(
        random_field(3, (30, 26), (22, 34), gen), random_field(3, (22, 34), (30, 26), gen)
    )
    shared = similarity_maps(target, reference, corr)
    expanded = FeaturePyramid(
        tuple(f.expand(3, -1, -1, -1) for f in reference.features),
        reference.strides,
        reference.names,
        reference.image_size,
    )
    per_target = similarity_maps(target, expanded, corr)
    assert torch.equal(shared.err_tr, per_target.err_tr)
    assert torch.equal(shared.err_rt, per_target.err_rt)
    assert torch.allclose(shared.sim_tr, per_target.sim_tr, atol=1e-6)
    # One channel per group (sampled form), 37 pixels per chunk (Gram form, batch 3): only the
    # float summation order changes.
    monkeypatch.setattr(similarity_module, "_CHUNK_ELEMENTS", 16 * 3 * 37)
    chunked = similarity_maps(target, reference, corr)
    assert torch.allclose(shared.sim_tr, chunked.sim_tr, atol=1e-6)
    assert torch.allclose(shared.sim_rt, chunked.sim_rt, atol=1e-6)
    for a, b in ((shared.err_tr, chunked.err_tr), (shared.err_rt, chunked.err_rt)):
        diff = (a.int() - b.int()).abs()
        assert diff.max() <= 1 and diff.eq(0).float().mean() > 0.999


def test_level_selection_progress_and_module():
    gen = torch.Generator().manual_seed(5)
    pyramid = ceil_pyramid(1, (16, 16), (2, 4, 8), (3, 3, 3), gen)
    nnf = random_field(1, (16, 16), (16, 16), gen)
    corr = Correspondence(nnf, nnf)
    calls = []
    sim = similarity_maps(
        pyramid, pyramid, corr, levels=["level2", 2], progress=lambda d, t: calls.append((d, t))
    )
    assert sim.level_names == ("level8", "level2") and calls == [(1, 2), (2, 2)]
    full = similarity_maps(pyramid, pyramid, corr)
    assert torch.equal(sim.err_tr, full.err_tr[:, [0, 2]])
    module = SimilarityMaps(levels=(0, 2))
    assert torch.equal(module(pyramid, pyramid, corr).err_rt, sim.err_rt)
    with pytest.raises(ValueError, match="levels"):
        similarity_maps(pyramid, pyramid, corr, levels=["relu9_1"])


def test_rejects_mismatched_inputs():
    gen = torch.Generator().manual_seed(6)
    target = ceil_pyramid(3, (16, 16), (2, 4), (3, 3), gen)
    reference = ceil_pyramid(2, (16, 16), (2, 4), (3, 3), gen)
    nnf = random_field(3, (16, 16), (16, 16), gen)
    with pytest.raises(ValueError, match="reference: batch"):
        similarity_maps(target, reference, Correspondence(nnf, nnf))
    with pytest.raises(ValueError, match="corr.nnf_tr"):
        similarity_maps(target, target, Correspondence(nnf[:, :8], nnf))
    with pytest.raises(ValueError, match="same levels"):
        similarity_maps(
            target, ceil_pyramid(3, (16, 16), (2, 8), (3, 3), gen), Correspondence(nnf, nnf)
        )
    with pytest.raises(TypeError, match="corr"):
        similarity_maps(target, target, (nnf, nnf))


def test_encode_errors_known_values():
    err = torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8)
    assert encode_errors(err).tolist() == [-63.5, -63.0, 0.0, 0.5, 64.0]
    with pytest.raises(TypeError, match="uint8"):
        encode_errors(err.float())


def test_lookup_at_field_fills_outside():
    values = torch.arange(12, dtype=torch.uint8).view(1, 1, 3, 4)
    nnf = torch.tensor([[[[0, 0], [2, 3], [-1, 0], [0, 4]]]])
    assert lookup_at_field(values, nnf, fill=255)[0, 0, 0].tolist() == [0, 11, 255, 255]


def test_coarse_wide_levels_use_the_gram_form_and_both_forms_agree(monkeypatch):
    """A lite-like coarsest level (320 channels on 8 x 11 cells) takes the Gram form; a fine,
    narrow level samples; the two forms agree to float rounding on the same inputs."""
    gen = torch.Generator().manual_seed(8)
    size = (250, 341)
    nnf = random_field(1, size, size, gen)
    corr = Correspondence(nnf, random_field(1, size, size, gen))
    chosen = []
    for name in ("_gram_neg_cosines", "_sampled_neg_cosines"):
        real = getattr(similarity_module, name)
        monkeypatch.setattr(similarity_module, name,
                            lambda *a, _real=real, _name=name: chosen.append(_name) or _real(*a))
    coarse = [torch.rand(1, 320, 8, 11, generator=gen) - 0.2 for _ in range(2)]
    fine = [torch.rand(1, 16, 125, 171, generator=gen) for _ in range(2)]
    similarity_module._level_neg_cosines(*coarse, corr, 32)
    similarity_module._level_neg_cosines(*fine, corr, 2)
    assert chosen == ["_gram_neg_cosines", "_sampled_neg_cosines"]
    monkeypatch.undo()
    gram = similarity_module._gram_neg_cosines(*coarse, corr, 32)
    sampled = similarity_module._sampled_neg_cosines(*coarse, corr, 32)
    for a, b in zip(gram, sampled, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
        diff = (similarity_module._quantise(a).int() - similarity_module._quantise(b).int()).abs()
        assert diff.max() <= 1 and diff.eq(0).float().mean() > 0.999


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("rounding", [math.ceil, math.floor], ids=["ceil", "floor"])
def test_separable_sample_equals_the_per_pixel_corner_formula(stride, rounding):
    """The slice-based upsampling equals w0 * x[i0] + w1 * x[i1] with the authors' clamped
    indices, also with fewer cells than pixels / stride (floor-sized maps) and odd strides."""
    gen = torch.Generator().manual_seed(10)
    size = (37, 53)
    cells = (max(1, rounding(size[0] / stride)), max(1, rounding(size[1] / stride)))
    features = torch.rand(2, *cells, 5, generator=gen)
    y0, y1, wy0, wy1 = similarity_module._corners(torch.arange(size[0]), stride, cells[0])
    x0, x1, wx0, wx1 = similarity_module._corners(torch.arange(size[1]), stride, cells[1])
    rows = wy0.view(-1, 1, 1) * features[:, y0] + wy1.view(-1, 1, 1) * features[:, y1]
    expected = wx0.view(-1, 1) * rows[:, :, x0] + wx1.view(-1, 1) * rows[:, :, x1]
    sampled = similarity_module._grid_sample(features, stride, size)
    assert sampled.shape == (2, *size, 5)
    assert torch.allclose(sampled, expected, atol=1e-6)
