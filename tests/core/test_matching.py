"""Dense matching: exact NN, window search, PatchMatch, NNF upsampling and dense_match.

Known answers come from brute-force loops written here, from shifted/cropped copies of a real
photo (skimage astronaut) and from a uint32 numpy implementation of the counter hash.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepexemplar_core.matching import (
    DenseMatcher,
    LevelConfig,
    MatchConfig,
    counter_hash,
    dense_match,
    exact_nn,
    exact_nn_bidirectional,
    l2_normalize,
    patchmatch,
    patchmatch_reference,
    upsample_nnf,
    window_search,
    window_search_reference,
)
from deepexemplar_core.structures import FeaturePyramid

VGG_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


# ----------------------------------------------------------------------------------- helpers
def _blur(x: torch.Tensor, s: int) -> torch.Tensor:
    """Triangle blur of half-width about ``s`` (two box filters), edge-replicated."""
    for _ in range(2 if s > 1 else 0):
        x = F.avg_pool2d(F.pad(x, (s // 2,) * 4, mode="replicate"), s + 1 - s % 2, 1)
    return x


def conv_pyramid(
    gray: torch.Tensor, channels=(16, 48, 48, 48, 64), seed: int = 0
) -> FeaturePyramid:
    """Fixed-seed random conv + ReLU pyramid, strides 1..16, of ``gray: (B, 1, H, W)`` in [0, 1].

    Level ``s``: random 5x5 filters dilated by ``max(1, s // 2)`` on the image blurred at scale
    ``s``, ReLU, blurred again at scale ``s`` and sampled every ``s``-th pixel. Like deep
    features, they vary smoothly at the level's scale, so a shift that is not a multiple of
    the stride still gives a nearly shifted map.
    """
    gen = torch.Generator().manual_seed(seed)
    x, feats = (gray - 0.5) * 4, []
    for c, s in zip(channels, (1, 2, 4, 8, 16), strict=True):
        w = torch.randn(c, 1, 5, 5, generator=gen) / 5
        b = torch.randn(c, generator=gen) * 0.5
        dil = 3 * s if s > 1 else 1
        f = F.relu(
            F.conv2d(F.pad(_blur(x, s), (2 * dil,) * 4, mode="replicate"), w, b, dilation=dil)
        )
        feats.append(_blur(f, s)[..., s // 2 :: s, s // 2 :: s])
    return FeaturePyramid(tuple(feats), (1, 2, 4, 8, 16), VGG_NAMES, tuple(gray.shape[2:]))


@pytest.fixture(scope="module")
def big_gray() -> torch.Tensor:
    """Luminance of skimage's chelsea (CC0, textured fur), 300x320, ``(1, 1, H, W)`` in [0, 1]."""
    from skimage import color, data

    return torch.from_numpy(color.rgb2gray(data.chelsea())[:, 60:380]).float()[None, None]


@pytest.fixture(scope="module")
def shifted_pyramids(big_gray):
    """``shift -> (target pyramid, reference pyramid)``, 256x256 crops ``shift`` apart, cached."""
    cache = {}

    def get(shift):
        if shift not in cache:
            target = crop(big_gray, 20, 32)
            reference = crop(big_gray, 20 + shift[0], 32 + shift[1])
            cache[shift] = conv_pyramid(target), conv_pyramid(reference)
        return cache[shift]

    return get


def crop(img: torch.Tensor, y: int, x: int, h: int = 256, w: int = 256) -> torch.Tensor:
    return img[..., y : y + h, x : x + w]


def unit(*shape, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return l2_normalize(torch.rand(*shape, generator=gen))


def brute_scores(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """Patch score of every (p, q) pair with explicit per-image clamps: ``(Ha, Wa, Hb, Wb)``."""
    r = k // 2
    _, ha, wa = a.shape
    _, hb, wb = b.shape
    out = torch.zeros(ha, wa, hb, wb, dtype=torch.float64)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ya = (torch.arange(ha) + dy).clamp(0, ha - 1)
            xa = (torch.arange(wa) + dx).clamp(0, wa - 1)
            yb = (torch.arange(hb) + dy).clamp(0, hb - 1)
            xb = (torch.arange(wb) + dx).clamp(0, wb - 1)
            fa = a.double()[:, ya][:, :, xa]
            fb = b.double()[:, yb][:, :, xb]
            out += torch.einsum("cyx,cuv->yxuv", fa, fb)
    return out / (k * k)


def first_argmax(values: list[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def flat_to_yx(flat: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack((flat // width, flat % width), dim=-1)


# ------------------------------------------------------------------------------ counter hash
def np_hash(seed, level, t, s, pix, c) -> int:
    def mix(x):
        x = np.uint32(x)
        with np.errstate(over="ignore"):
            x ^= x >> np.uint32(16)
            x = x * np.uint32(0x7FEB352D)
            x ^= x >> np.uint32(15)
            x = x * np.uint32(0x1B873593)
            x ^= x >> np.uint32(16)
        return int(x)

    return mix(mix(mix(mix(mix(mix(seed) ^ level) ^ t) ^ s) ^ pix) ^ c)


HASH_VECTORS = [  # (seed, level, t, s, pix, c) -> h, also listed in docs/matching.md
    ((0, 0, 0, 0, 0, 0), 0),
    ((0, 0, 0, 0, 0, 1), 3368570345),
    ((1, 2, 3, 4, 5, 1), 2634224820),
    ((1, 2, 3, 4, 6, 1), 4038754873),
    ((7, 3, 9, 5, 123456, 0), 6468690),
    ((7, 3, 9, 5, 123456, 1), 1185282272),
]


@pytest.mark.parametrize(("args", "expected"), HASH_VECTORS)
def test_hash_test_vectors(args, expected):
    assert np_hash(*args) == expected
    assert counter_hash(*args) == expected


def test_hash_tensor_matches_uint32_reference():
    pix = torch.tensor([0, 1, 2, 1000, 2**31 + 5, 2**32 - 1])
    got = counter_hash(12345, 1, 7, 6, pix, 1).tolist()
    assert got == [np_hash(12345, 1, 7, 6, int(p), 1) for p in pix]
    assert all(0 <= g < 2**32 for g in got)


# ---------------------------------------------------------------------------------- exact NN
@pytest.mark.parametrize("k", [1, 3, 5])
def test_exact_nn_equals_brute_force(k):
    a, b = unit(2, 5, 6, 7, seed=1), unit(1, 5, 5, 8, seed=2)
    nnf, score = exact_nn(a, b, patch_size=k)
    for i in range(2):
        s = brute_scores(a[i], b[0], k).view(6, 7, -1)
        assert torch.equal(nnf[i], flat_to_yx(s.argmax(-1), 8))
        assert torch.allclose(score[i].double(), s.amax(-1), atol=1e-6)


def test_exact_ties_go_to_smallest_flat_index():
    # Integer-valued features make every score exact, so equal patches tie exactly.
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(0, 3, (1, 4, 5, 6), generator=gen).float()
    b = torch.randint(0, 3, (1, 4, 2, 3), generator=gen).float().repeat(1, 1, 3, 3)  # periodic 6x9
    nnf, _score = exact_nn(a, b, patch_size=1)
    s = brute_scores(a[0], b[0], 1).view(5, 6, -1)
    expected = [first_argmax(s[y, x].tolist()) for y in range(5) for x in range(6)]
    assert torch.equal(nnf[0].reshape(-1, 2), flat_to_yx(torch.tensor(expected), 9))
    constant = torch.ones(1, 4, 4, 4)
    nnf_c, _ = exact_nn(a, constant, patch_size=3)
    assert int(nnf_c.abs().sum()) == 0  # every candidate ties: (0, 0)


def test_exact_chunking_gives_same_answer_and_bounds_tiles():
    from deepexemplar_core.matching.exact import _tile_rows

    a, b = unit(1, 6, 11, 9, seed=4), unit(1, 6, 10, 12, seed=5)
    full = exact_nn_bidirectional(a, b, patch_size=3, chunk=2**24)
    small = exact_nn_bidirectional(a, b, patch_size=3, chunk=500)  # far below Na * Nb
    for (f1, s1), (f2, s2) in zip(full, small, strict=True):
        assert torch.equal(f1, f2)
        assert torch.equal(s1, s2)
    for chunk in (500, 5000, 50000):
        rows_a, rows_b = _tile_rows(11, 9, 10, 12, 1, chunk)
        entries = (rows_a + 2) * 11 * (rows_b + 2) * 14
        assert entries <= max(chunk, 3 * 11 * 3 * 14)


def test_exact_bidirectional_matches_two_single_calls():
    a, b = unit(3, 8, 7, 9, seed=6), unit(1, 8, 6, 5, seed=7)
    (f_ab, _s_ab), (f_ba, s_ba) = exact_nn_bidirectional(a, b, patch_size=3)
    ref_ab = exact_nn(a, b, patch_size=3)
    assert torch.equal(f_ab, ref_ab[0])
    for i in range(3):
        f, s = exact_nn(b, a[i : i + 1], patch_size=3)
        assert torch.equal(f_ba[i], f[0])
        assert torch.allclose(s_ba[i], s[0], atol=1e-6)


def test_exact_rejects_bad_input():
    a = unit(1, 4, 5, 5)
    with pytest.raises(ValueError, match="patch_size"):
        exact_nn(a, a, patch_size=4)
    with pytest.raises(ValueError, match="channels"):
        exact_nn(a, unit(1, 3, 5, 5), patch_size=3)
    with pytest.raises(ValueError, match="batch"):
        exact_nn(unit(2, 4, 5, 5), unit(3, 4, 5, 5))
    with pytest.raises(TypeError, match="floating"):
        exact_nn(a.long(), a)


# ------------------------------------------------------------------------------ window search
def brute_window(a, b, init, k, radius):
    s = brute_scores(a, b, k)
    hb, wb = b.shape[1:]
    nnf = torch.zeros(a.shape[1], a.shape[2], 2, dtype=torch.int64)
    for y in range(a.shape[1]):
        for x in range(a.shape[2]):
            iy, ix = (int(v) for v in init[y, x])
            iy, ix = min(max(iy, 0), hb - 1), min(max(ix, 0), wb - 1)
            cands = sorted(
                {
                    (min(max(iy + oy, 0), hb - 1), min(max(ix + ox, 0), wb - 1))
                    for oy in range(-radius, radius + 1)
                    for ox in range(-radius, radius + 1)
                }
            )  # sorted (y, x) = increasing flat index
            best = first_argmax([float(s[y, x, qy, qx]) for qy, qx in cands])
            nnf[y, x] = torch.tensor(cands[best])
    return nnf


@pytest.mark.parametrize(
    ("k", "radius", "smooth"),
    [(3, 2, False), (5, 1, False), (1, 3, False), (3, 3, True), (3, 0, False)],
)
def test_window_search_equals_brute_force(k, radius, smooth):
    a, b = unit(2, 5, 9, 8, seed=8), unit(1, 5, 7, 10, seed=9)
    if smooth:  # piecewise constant in 2x2 blocks, as after upsample_nnf
        yy, xx = torch.meshgrid(torch.arange(9), torch.arange(8), indexing="ij")
        init = torch.stack((yy // 2 * 2 - 1, xx // 2 * 2 + 1), dim=-1).expand(2, -1, -1, -1)
    else:
        init = torch.randint(-3, 12, (2, 9, 8, 2), generator=torch.Generator().manual_seed(10))
    nnf, score = window_search_reference(a, b, init, patch_size=k, radius=radius)
    for i in range(2):
        assert torch.equal(nnf[i], brute_window(a[i], b[0], init[i], k, radius))
        s = brute_scores(a[i], b[0], k)
        picked = s[torch.arange(9)[:, None], torch.arange(8)[None], nnf[i, ..., 0], nnf[i, ..., 1]]
        assert torch.allclose(score[i].double(), picked, atol=1e-6)


def test_window_search_on_upsampled_field_equals_brute_force():
    # A field as dense_match produces it (constant 2x2 blocks, mostly smooth, some jumps)
    # exercises the 4x4, 2x2 and 1x1 tiles; here the source has batch 1 and the target 2.
    a, b = unit(1, 6, 18, 20, seed=22), unit(2, 6, 16, 21, seed=23)
    gen = torch.Generator().manual_seed(24)
    jump = (torch.rand(2, 9, 10, generator=gen) < 0.2) * 2
    yy, xx = torch.meshgrid(torch.arange(9), torch.arange(10), indexing="ij")
    coarse = torch.stack((yy + jump, xx.expand(2, 9, 10)), dim=-1)
    init = upsample_nnf(coarse, (18, 20), (16, 21))
    init[0, 5, 7] = torch.tensor([0, 20])  # one isolated outlier: a single-pixel tile
    nnf, _ = window_search_reference(a, b, init, patch_size=3, radius=3)
    for i in range(2):
        assert torch.equal(nnf[i], brute_window(a[0], b[i], init[i], 3, 3))


def test_window_ties_go_to_smallest_flat_index():
    gen = torch.Generator().manual_seed(11)
    a = torch.randint(0, 2, (1, 3, 6, 6), generator=gen).float()
    b = torch.randint(0, 2, (1, 3, 2, 2), generator=gen).float().repeat(1, 1, 4, 4)  # period 2
    init = torch.randint(0, 8, (1, 6, 6, 2), generator=gen)
    nnf, _ = window_search_reference(a, b, init, patch_size=1, radius=2)
    assert torch.equal(nnf[0], brute_window(a[0], b[0], init[0], 1, 2))


def test_window_dispatch_reports_backend():
    a = unit(1, 4, 6, 6)
    init = torch.zeros(1, 6, 6, 2, dtype=torch.int64)
    _nnf, score, used = window_search(a, a, init, patch_size=3, radius=6, backend="torch")
    assert used == "torch"
    assert torch.allclose(score, torch.ones_like(score), atol=1e-6)  # the identity is found
    with pytest.raises(ValueError, match="backend"):
        window_search(a, a, init, backend="gpu")


# -------------------------------------------------------------------------------- PatchMatch
def shifted_pair(shift=(5, -3), size=(40, 44), channels=16, seed=12):
    """B = A shifted by ``shift`` (fresh noise in the exposed border): the optimum is known."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    big = torch.rand(1, channels, h + 20, w + 20, generator=gen)
    a = big[..., 10 : 10 + h, 10 : 10 + w]
    b = big[..., 10 + shift[0] : 10 + shift[0] + h, 10 + shift[1] : 10 + shift[1] + w]
    return l2_normalize(a), l2_normalize(b)


def test_patchmatch_reaches_known_optimum():
    a, b = shifted_pair()
    nnf, score = patchmatch_reference(a, b, patch_size=3, iterations=10, radius=None, seed=0)
    nnf_exact, best = exact_nn(a, b, patch_size=3)
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(44), indexing="ij")
    inner = (
        (yy >= 6) & (yy < 39) & (xx >= 1) & (xx < 40)
    )  # patches fully inside both: optimum known
    shift = torch.stack((yy - 5, xx + 3), dim=-1)
    assert torch.equal(nnf_exact[0][inner], shift[inner])  # the known optimum (score 1)
    assert float((nnf[0] == shift).all(-1)[inner].float().mean()) >= 0.98
    assert float((score[0] >= best[0] - 1e-6)[inner].float().mean()) >= 0.98


def test_patchmatch_is_deterministic_and_seeded():
    a, b = unit(2, 8, 20, 20, seed=13), unit(1, 8, 24, 18, seed=14)
    f1, s1 = patchmatch_reference(a, b, iterations=2, seed=5, level=1)
    f2, s2 = patchmatch_reference(a, b, iterations=2, seed=5, level=1)
    f3, _ = patchmatch_reference(a, b, iterations=2, seed=6, level=1)
    assert torch.equal(f1, f2) and torch.equal(s1, s2)
    assert float((f1 != f3).any(-1).float().mean()) > 0.05


def test_patchmatch_score_never_decreases():
    a, b = unit(1, 8, 18, 22, seed=15), unit(1, 8, 20, 16, seed=16)
    previous = None
    for t in range(5):
        nnf, score = patchmatch_reference(a, b, iterations=t, radius=8, seed=3)
        s = brute_scores(a[0], b[0], 3)
        picked = s[
            torch.arange(18)[:, None], torch.arange(22)[None], nnf[0, ..., 0], nnf[0, ..., 1]
        ]
        assert torch.allclose(score[0].double(), picked, atol=1e-6)
        if previous is not None:
            assert bool((score >= previous).all())
        previous = score


def test_patchmatch_init_and_identity():
    a = unit(1, 6, 8, 12, seed=17)
    b = unit(1, 6, 4, 6, seed=18)
    nnf, _ = patchmatch_reference(a, b, iterations=0)
    yy, xx = torch.meshgrid(torch.arange(8), torch.arange(12), indexing="ij")
    assert torch.equal(nnf[0], torch.stack((yy * 4 // 8, xx * 6 // 12), dim=-1))
    init = torch.full((1, 8, 12, 2), 50)
    nnf, _ = patchmatch_reference(a, b, init, iterations=0)
    assert bool((nnf[0, ..., 0] == 3).all() and (nnf[0, ..., 1] == 5).all())  # clamped
    _, _, used = patchmatch(a, b, iterations=1, backend="torch")
    assert used == "torch"


# ------------------------------------------------------------------------------- upsampling
def scalar_upsample(nnf, fine, target):
    hc, wc = nnf.shape[1:3]
    ha, wa = fine
    rh, rw = ha / hc, wa / wc
    out = torch.zeros(1, ha, wa, 2, dtype=torch.int64)
    for y in range(ha):
        for x in range(wa):
            cy, cx = (
                min(math.floor((y + 0.5) / rh), hc - 1),
                min(math.floor((x + 0.5) / rw), wc - 1),
            )
            qy = int(y + (int(nnf[0, cy, cx, 0]) - cy) * rh + 0.5)
            qx = int(x + (int(nnf[0, cy, cx, 1]) - cx) * rw + 0.5)
            out[0, y, x] = torch.tensor(
                (min(max(qy, 0), target[0] - 1), min(max(qx, 0), target[1] - 1))
            )
    return out


def test_upsample_known_answers_at_borders():
    # coarse 2x2: (0,0)->(1,1), (0,1)->(0,0), (1,0)->(0,1), (1,1)->(1,0); fine 4x4, ratio 2
    coarse = torch.tensor([[[[1, 1], [0, 0]], [[0, 1], [1, 0]]]])
    fine = upsample_nnf(coarse, (4, 4), (4, 4))
    assert fine[0, 0, 0].tolist() == [2, 2]  # offset (+1, +1) * 2
    assert fine[0, 1, 3].tolist() == [1, 1]  # parent (0, 1) -> (0, 0): offset (0, -1) * 2
    assert fine[0, 0, 2].tolist() == [0, 0]  # x = 2 - 2 = 0
    assert fine[0, 3, 3].tolist() == [3, 1]  # parent (1, 1) -> (1, 0): offset (0, -1)
    assert fine[0, 3, 0].tolist() == [1, 2]  # parent (1, 0) -> (0, 1): offset (-1, +1)
    # a negative target coordinate truncates toward zero and clamps: trunc(-1.5) = -1 -> 0
    left = torch.tensor([[[[0, 0], [0, 0]]]])  # parent (0, 1) -> (0, 0): offset -1 in x
    assert upsample_nnf(left, (1, 4), (1, 4))[0, 0].tolist() == [[0, 0], [0, 1], [0, 0], [0, 1]]


@pytest.mark.parametrize(
    ("coarse", "fine", "target"),
    [((3, 5), (7, 11), (9, 6)), ((4, 4), (8, 8), (5, 5)), ((5, 3), (5, 3), (5, 3))],
)
def test_upsample_matches_scalar_reference(coarse, fine, target):
    gen = torch.Generator().manual_seed(19)
    field = torch.stack(
        (
            torch.randint(0, 6, (1, *coarse), generator=gen),
            torch.randint(0, 4, (1, *coarse), generator=gen),
        ),
        -1,
    )
    assert torch.equal(upsample_nnf(field, fine, target), scalar_upsample(field, fine, target))


def test_upsample_rejects_bad_input():
    with pytest.raises(TypeError, match="integer"):
        upsample_nnf(torch.zeros(1, 2, 2, 2), (4, 4), (4, 4))
    with pytest.raises(ValueError, match="source_size"):
        upsample_nnf(torch.zeros(1, 2, 2, 2, dtype=torch.int64), (0, 4), (4, 4))


# ------------------------------------------------------------------------------ dense_match
TORCH = MatchConfig(backend="torch")


def fraction_within(nnf, expected, region, tol=1):
    err = (nnf - expected).abs().amax(dim=-1)
    return float((err[region] <= tol).float().mean())


# The default schedule stops at the stride-2 level (as the authors' DIA copy) and then refines
# the pixel field on the stride-1 level (MatchConfig.refine): it must recover the shift within
# 1 px, as must matching down to stride 1. Without refinement (the authors' behaviour) the field
# has a granularity of 2 px and is checked within 2 px.
@pytest.mark.parametrize("shift", [(12, -7), (5, 9)])
@pytest.mark.parametrize(
    ("mode", "tol"), [("default", 1), ("stride1", 1), ("no-refine", 2)]
)
def test_dense_match_recovers_shift_both_directions(shifted_pyramids, shift, mode, tol):
    sy, sx = shift
    pt, pr = shifted_pyramids(shift)
    if mode == "default":
        config = MatchConfig(backend="torch")
    elif mode == "stride1":
        levels = MatchConfig.default_for(pt, stop_stride=1).levels
        levels["relu1_1"] = LevelConfig("window", 3, 2)  # the stride-2 field is within 1 px
        config = MatchConfig(levels=levels, backend="torch")
    else:
        config = MatchConfig(backend="torch", refine=0)
    corr = dense_match(pt, pr, config)
    yy, xx = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    inner = (yy >= 16) & (yy < 240) & (xx >= 16) & (xx < 240)
    # T->R: target p shows reference p - shift; keep p where that lies 16 px inside too.
    exp_tr = torch.stack((yy - sy, xx - sx), dim=-1)
    inside_tr = ((exp_tr >= 16) & (exp_tr < 240)).all(-1) & inner
    assert fraction_within(corr.nnf_tr[0], exp_tr, inside_tr, tol) >= 0.95
    exp_rt = torch.stack((yy + sy, xx + sx), dim=-1)
    inside_rt = ((exp_rt >= 16) & (exp_rt < 240)).all(-1) & inner
    assert fraction_within(corr.nnf_rt[0], exp_rt, inside_rt, tol) >= 0.95


def test_dense_match_against_a_crop(big_gray):
    target = crop(big_gray, 20, 32)
    reference = crop(target, 40, 60, 160, 176)
    pt, pr = conv_pyramid(target), conv_pyramid(reference)
    levels = MatchConfig.default_for(pt, stop_stride=1).levels
    levels["relu1_1"] = LevelConfig("window", 3, 2)
    corr = dense_match(pt, pr, MatchConfig(levels=levels, backend="torch"))
    assert corr.target_size == (256, 256) and corr.reference_size == (160, 176)
    yy, xx = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    inside = (yy >= 56) & (yy < 184) & (xx >= 76) & (xx < 220)
    assert fraction_within(corr.nnf_tr[0], torch.stack((yy - 40, xx - 60), -1), inside) >= 0.95
    ry, rx = torch.meshgrid(torch.arange(160), torch.arange(176), indexing="ij")
    inner = (ry >= 16) & (ry < 144) & (rx >= 16) & (rx < 160)
    assert fraction_within(corr.nnf_rt[0], torch.stack((ry + 40, rx + 60), -1), inner) >= 0.95


def test_batch_of_targets_equals_per_target_calls(big_gray):
    targets = torch.cat([crop(big_gray, 32, 32, 128, 128), crop(big_gray, 50, 20, 128, 128)])
    reference = crop(big_gray, 40, 40, 112, 120)
    pt, pr = conv_pyramid(targets), conv_pyramid(reference)
    config = MatchConfig(
        backend="torch",
        levels={
            "relu5_1": LevelConfig("exact", 3, None),
            "relu4_1": LevelConfig("exact", 3, None),
            "relu3_1": LevelConfig("window", 3, 6),
            "relu2_1": LevelConfig("window", 5, 4),
        },
    )
    batch = dense_match(pt, pr, config)
    assert batch.nnf_tr.shape == (2, 128, 128, 2) and batch.nnf_rt.shape == (2, 112, 120, 2)
    for i in range(2):
        single = dense_match(pt.select(i), pr, config)
        assert torch.equal(batch.nnf_tr[i], single.nnf_tr[0])
        assert torch.equal(batch.nnf_rt[i], single.nnf_rt[0])


def test_patchmatch_batch_item_zero_equals_single_call():
    # The hash counter includes the batch index (pix = b * Ha * Wa + ...), so only item 0 of a
    # batch draws the same numbers as a single-image call.
    a, b = unit(3, 8, 16, 16, seed=20), unit(1, 8, 14, 18, seed=21)
    batch, _ = patchmatch_reference(a, b, iterations=2, radius=6, seed=4)
    single, _ = patchmatch_reference(a[:1], b, iterations=2, radius=6, seed=4)
    assert torch.equal(batch[0], single[0])


def test_dense_match_outputs_module_and_progress(big_gray):
    target = crop(big_gray, 0, 0, 96, 80)
    pyr = conv_pyramid(target)
    calls = []
    corr = dense_match(
        pyr, pyr, TORCH, progress=lambda d, t: calls.append((d, t)), keep_levels=True
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert corr.level_names == ("relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert [f[0].shape[1:3] for f in corr.level_fields] == [(48, 40), (24, 20), (12, 10), (6, 5)]
    assert set(corr.timings) == {*corr.level_names, "upsample", "refine", "total"}
    assert corr.backend == "torch"
    assert corr.nnf_tr.dtype == torch.int64 and corr.nnf_tr.shape == (1, 96, 80, 2)
    module = DenseMatcher(TORCH)(pyr, pyr)
    assert torch.equal(module.nnf_tr, corr.nnf_tr) and torch.equal(module.nnf_rt, corr.nnf_rt)
    assert module.level_fields == ()


def test_default_schedule_reads_strides_as_data():
    gray = torch.rand(1, 1, 64, 64)
    vgg = conv_pyramid(gray)
    levels = MatchConfig.default_for(vgg).levels
    assert list(levels) == ["relu5_1", "relu4_1", "relu3_1", "relu2_1"]
    assert [lv.method for lv in levels.values()] == ["exact", "exact", "window", "window"]
    assert (levels["relu3_1"].radius, levels["relu2_1"].radius) == (6, 4)
    assert [lv.patch_size for lv in levels.values()] == [3, 3, 3, 5]
    lite = FeaturePyramid(
        tuple(
            torch.rand(1, c, 64 // s, 64 // s)
            for c, s in zip((16, 24, 40, 112, 320), (2, 4, 8, 16, 32))
        ),
        (2, 4, 8, 16, 32),
        ("s2", "s4", "s8", "s16", "s32"),
        (64, 64),
    )
    levels = MatchConfig.default_for(lite).levels
    assert list(levels) == ["s32", "s16", "s8", "s4", "s2"]
    assert [lv.radius for lv in levels.values()] == [None, None, 6, 6, 4]
    tight = MatchConfig.default_for(lite, work_budget=1000).levels
    assert [lv.method for lv in tight.values()] == [
        "exact",
        "exact",
        "patchmatch",
        "patchmatch",
        "patchmatch",
    ]


def test_dense_match_rejects_mismatched_inputs():
    a = conv_pyramid(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="reference"):
        dense_match(a, conv_pyramid(torch.rand(3, 1, 32, 32)))
    with pytest.raises(ValueError, match="channels"):
        dense_match(a, conv_pyramid(torch.rand(1, 1, 32, 32), channels=(8, 8, 8, 8, 8)))
    with pytest.raises(ValueError, match="levels"):
        dense_match(a, a, MatchConfig(levels={"conv9": LevelConfig("exact")}))
    with pytest.raises(ValueError, match="backend"):
        MatchConfig(backend="gpu")
    with pytest.raises(ValueError, match="method"):
        LevelConfig("random")
    with pytest.raises(TypeError, match="FeaturePyramid"):
        dense_match(torch.rand(1, 4, 8, 8), a)
