"""Parity of the compiled PatchMatch / window-search kernels with an independent reference.

The reference below is written from the spec in docs/ARCHITECTURE.md in float64 and plain
Python loops over the algorithm's steps (vectorised over pixels); it shares no code with the
kernels or with ``deepexemplar_core.matching``. Fields must agree on >= 99.9 % of the pixels and
any other pixel must be a score tie (< 1e-5). The compiled extension is built once per machine
into the user cache (``~/.cache/deepexemplar/ext``, ~15 s for the CPU part).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deepexemplar_core.matching import extension as _build, patchmatch, window_search

REPO = Path(__file__).resolve().parents[2]
M32 = 0xFFFFFFFF


@pytest.fixture(scope="module")
def ext():
    """The loaded extension (compiled on first use); skip when this machine cannot build it."""
    try:
        return _build.build()
    except RuntimeError as e:
        pytest.skip(f"the C++ extension cannot be built here: {str(e).splitlines()[0]}")


# ----------------------------------------------------------------------------------------------
# Independent reference (float64)


def mix(x: torch.Tensor) -> torch.Tensor:
    x = x & M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x1B873593) & M32
    return x ^ (x >> 16)


def hash6(seed, level, t, s, pix, c):
    h = mix(mix(mix(mix(torch.full_like(pix, seed & M32)) ^ level) ^ t) ^ s)
    return mix(mix(h ^ pix) ^ c)


def ref_score(a, b, py, px, qy, qx, k):
    """Patch score of (p, q) pairs: a (C, Ha, Wa), b (C, Hb, Wb) float64, index tensors alike."""
    r = k // 2
    total = torch.zeros(py.shape, dtype=torch.float64)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            fa = a[:, (py + dy).clamp(0, a.shape[1] - 1), (px + dx).clamp(0, a.shape[2] - 1)]
            fb = b[:, (qy + dy).clamp(0, b.shape[1] - 1), (qx + dx).clamp(0, b.shape[2] - 1)]
            total += (fa * fb).sum(0)
    return total / (k * k)


def _start(init, i, ha, wa, hb, wb):
    if init is not None:
        return init[i, ..., 0].clone(), init[i, ..., 1].clone()
    py, px = torch.meshgrid(torch.arange(ha), torch.arange(wa), indexing="ij")
    return (py * hb) // ha, (px * wb) // wa


def ref_patchmatch(src, tgt, init, k, iters, radius, jumps, seed, level):
    batch = max(src.shape[0], tgt.shape[0])
    ha, wa, hb, wb = src.shape[2], src.shape[3], tgt.shape[2], tgt.shape[3]
    py, px = torch.meshgrid(torch.arange(ha), torch.arange(wa), indexing="ij")
    radii, rr = [], min(radius, max(hb, wb))
    while rr >= 1:
        radii.append(rr)
        rr //= 2
    nnfs, scores = [], []
    for i in range(batch):
        a = src[min(i, src.shape[0] - 1)].double()
        b = tgt[min(i, tgt.shape[0] - 1)].double()
        qy, qx = _start(init, i, ha, wa, hb, wb)
        qy, qx = qy.clamp(0, hb - 1), qx.clamp(0, wb - 1)
        best = ref_score(a, b, py, px, qy, qx, k)
        pix = i * ha * wa + py * wa + px
        for t in range(iters):
            for j in jumps:
                oy, ox, _ob = qy.clone(), qx.clone(), best.clone()
                for dy, dx in ((0, -j), (0, j), (-j, 0), (j, 0)):
                    ny, nx = py + dy, px + dx
                    inside = (ny >= 0) & (ny < ha) & (nx >= 0) & (nx < wa)
                    nyc, nxc = ny.clamp(0, ha - 1), nx.clamp(0, wa - 1)
                    cy = (oy[nyc, nxc] - dy).clamp(0, hb - 1)
                    cx = (ox[nyc, nxc] - dx).clamp(0, wb - 1)
                    s = ref_score(a, b, py, px, cy, cx, k)
                    better = inside & (s > best)
                    qy, qx, best = qy.where(~better, cy), qx.where(~better, cx), best.where(~better, s)
            for n, rad in enumerate(radii):
                step = len(jumps) + n
                cy = (qy + hash6(seed, level, t, step, pix, 0) % (2 * rad + 1) - rad).clamp(0, hb - 1)
                cx = (qx + hash6(seed, level, t, step, pix, 1) % (2 * rad + 1) - rad).clamp(0, wb - 1)
                s = ref_score(a, b, py, px, cy, cx, k)
                better = s > best
                qy, qx, best = qy.where(~better, cy), qx.where(~better, cx), best.where(~better, s)
        nnfs.append(torch.stack((qy, qx), -1))
        scores.append(best)
    return torch.stack(nnfs), torch.stack(scores)


def ref_window(src, tgt, init, k, radius):
    batch = max(src.shape[0], tgt.shape[0])
    ha, wa, hb, wb = src.shape[2], src.shape[3], tgt.shape[2], tgt.shape[3]
    py, px = torch.meshgrid(torch.arange(ha), torch.arange(wa), indexing="ij")
    nnfs, scores = [], []
    for i in range(batch):
        a = src[min(i, src.shape[0] - 1)].double()
        b = tgt[min(i, tgt.shape[0] - 1)].double()
        iy, ix = _start(init, i, ha, wa, hb, wb)
        iy, ix = iy.clamp(0, hb - 1), ix.clamp(0, wb - 1)  # the start is clamped first
        best = torch.full((ha, wa), -float("inf"), dtype=torch.float64)
        qy, qx = iy.clone(), ix.clone()
        for oy in range(-radius, radius + 1):  # row-major offsets = ascending flat index
            for ox in range(-radius, radius + 1):
                cy, cx = (iy + oy).clamp(0, hb - 1), (ix + ox).clamp(0, wb - 1)
                s = ref_score(a, b, py, px, cy, cx, k)
                better = s > best
                qy, qx, best = qy.where(~better, cy), qx.where(~better, cx), best.where(~better, s)
        nnfs.append(torch.stack((qy, qx), -1))
        scores.append(best)
    return torch.stack(nnfs), torch.stack(scores)


# ----------------------------------------------------------------------------------------------
# Helpers


def features(gen, b, c, h, w, smooth=False):
    x = torch.randn(b, c, h, w, generator=gen)
    if smooth:  # photo-like: neighbouring pixels correlate, many near-ties
        x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return F.normalize(x, dim=1)


def assert_fields_agree(nnf, score, ref_nnf, ref_score_, src, tgt, k):
    """>= 99.9 % equal matches; the others tie in score (< 1e-5); scores consistent."""
    assert nnf.dtype == torch.int64 and score.dtype == torch.float32
    assert nnf.shape == ref_nnf.shape and score.shape == ref_score_.shape
    same = (nnf == ref_nnf).all(-1)
    assert same.float().mean().item() >= 0.999, f"only {same.float().mean():.4%} equal"
    assert (score.double() - ref_score_).abs().max().item() < 1e-5
    # The returned score is the score of the returned match.
    ha, wa = src.shape[2], src.shape[3]
    py, px = torch.meshgrid(torch.arange(ha), torch.arange(wa), indexing="ij")
    for i in range(nnf.shape[0]):
        a, b = src[min(i, src.shape[0] - 1)].double(), tgt[min(i, tgt.shape[0] - 1)].double()
        s = ref_score(a, b, py, px, nnf[i, ..., 0], nnf[i, ..., 1], k)
        assert (s - score[i].double()).abs().max().item() < 1e-5


CASES = [  # (batch_src, batch_tgt, C, Ha, Wa, Hb, Wb, k)
    (1, 1, 8, 1, 1, 1, 1, 3),
    (1, 1, 8, 1, 1, 9, 7, 3),
    (1, 1, 5, 13, 17, 11, 9, 3),
    (2, 2, 16, 15, 12, 19, 21, 5),
    (3, 1, 24, 10, 11, 12, 10, 3),
    (1, 1, 32, 20, 24, 20, 24, 1),
]


# ----------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize(
    "args, want",  # the test vectors of docs/matching.md section 4
    [((0, 0, 0, 0, 0, 0), 0), ((0, 0, 0, 0, 0, 1), 3368570345), ((1, 2, 3, 4, 5, 1), 2634224820),
     ((1, 2, 3, 4, 6, 1), 4038754873), ((7, 3, 9, 5, 123456, 0), 6468690),
     ((7, 3, 9, 5, 123456, 1), 1185282272)],
)
def test_counter_hash_spec_vectors(ext, args, want):
    seed, level, t, s, pix, c = args
    pix_t = torch.tensor([pix], dtype=torch.int64)
    assert torch.ops.deepexemplar.counter_hash(pix_t, seed, level, t, s, c).item() == want
    assert hash6(seed, level, t, s, pix_t, c).item() == want


def test_counter_hash_vectors(ext):
    """The kernels' hash equals the test's independent one on many inputs."""
    many = torch.arange(0, 5000, 7, dtype=torch.int64)
    for args in ((0, 0, 0, 0, 0), (1234567, 3, 9, 5, 1), (2**32 - 1, 7, 0, 2, 0)):
        seed, level, t, s, c = args
        want = hash6(seed, level, t, s, many, c)
        assert torch.equal(torch.ops.deepexemplar.counter_hash(many, *args), want)


def test_reference_hash_matches_rng_module():
    """The test's hash agrees with the library's PyTorch hash (the draws the reference uses)."""
    from deepexemplar_core.matching.rng import counter_hash

    pix = torch.arange(0, 3000, 13)
    assert torch.equal(hash6(99, 2, 4, 6, pix, 1), counter_hash(99, 2, 4, 6, pix, 1))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_patchmatch_cpp_matches_reference(ext, case):
    bs, bt, c, ha, wa, hb, wb, k = case
    gen = torch.Generator().manual_seed(sum(case))
    src, tgt = features(gen, bs, c, ha, wa), features(gen, bt, c, hb, wb)
    kw = dict(patch_size=k, iterations=3, radius=max(hb, wb), jumps=(8, 4, 2, 1), seed=7, level=2)
    nnf, score, name = patchmatch(src, tgt, None, backend="cpp", **kw)
    assert name == "cpp"
    ref = ref_patchmatch(src, tgt, None, k, 3, max(hb, wb), (8, 4, 2, 1), 7, 2)
    assert_fields_agree(nnf, score, *ref, src, tgt, k)


def test_patchmatch_init_noncontiguous_and_smooth(ext):
    """Start field with out-of-range values, non-contiguous inputs, photo-like features."""
    gen = torch.Generator().manual_seed(3)
    src = features(gen, 2, 16, 18, 22, smooth=True).transpose(2, 3).contiguous().transpose(2, 3)
    tgt = features(gen, 2, 16, 21, 17, smooth=True)[..., :20, :]
    assert not src.is_contiguous() and not tgt.is_contiguous()
    init = torch.randint(-5, 30, (2, 18, 22, 2), generator=gen)
    kw = dict(patch_size=3, iterations=4, radius=6, jumps=(4, 2, 1), seed=11, level=1)
    nnf, score, _ = patchmatch(src, tgt, init, backend="cpp", **kw)
    ref = ref_patchmatch(src, tgt, init, 3, 4, 6, (4, 2, 1), 11, 1)
    assert_fields_agree(nnf, score, *ref, src, tgt, 3)


def test_patchmatch_zero_iterations_scores_the_start(ext):
    gen = torch.Generator().manual_seed(5)
    src, tgt = features(gen, 1, 8, 9, 9), features(gen, 1, 8, 7, 5)
    nnf, score, _ = patchmatch(src, tgt, None, patch_size=3, iterations=0, radius=3, backend="cpp")
    py, px = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    assert torch.equal(nnf[0], torch.stack(((py * 7) // 9, (px * 5) // 9), -1))
    want = ref_score(src[0].double(), tgt[0].double(), py, px, nnf[0, ..., 0], nnf[0, ..., 1], 3)
    assert (score[0].double() - want).abs().max() < 1e-6


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("radius", [0, 2])
def test_window_search_cpp_matches_reference(ext, case, radius):
    bs, bt, c, ha, wa, hb, wb, k = case
    gen = torch.Generator().manual_seed(sum(case) + radius)
    src, tgt = features(gen, bs, c, ha, wa), features(gen, bt, c, hb, wb)
    init = torch.randint(-3, max(hb, wb) + 3, (max(bs, bt), ha, wa, 2), generator=gen)
    nnf, score, name = window_search(src, tgt, init, patch_size=k, radius=radius, backend="cpp")
    assert name == "cpp"
    assert_fields_agree(nnf, score, *ref_window(src, tgt, init, k, radius), src, tgt, k)


def test_window_covering_the_image_is_the_exhaustive_argmax(ext):
    """A window larger than the target is the global argmax (first maximum in row-major order)."""
    gen = torch.Generator().manual_seed(8)
    src, tgt = features(gen, 1, 12, 9, 11), features(gen, 1, 12, 8, 7)
    nnf, score, _ = window_search(src, tgt, None, patch_size=3, radius=20, backend="cpp")
    py, px = torch.meshgrid(torch.arange(9), torch.arange(11), indexing="ij")
    all_scores = torch.stack([
        ref_score(src[0].double(), tgt[0].double(), py, px, torch.full_like(py, y), torch.full_like(px, x), 3)
        for y in range(8) for x in range(7)
    ], -1)
    best = all_scores.argmax(-1)
    assert torch.equal(nnf[0, ..., 0] * 7 + nnf[0, ..., 1], best)


def _shifted_pair(gen, c=32, h=48, w=56, smooth=True):
    """source[y, x] == target[y + 12, x - 7] (a shift of (12, -7)), from one larger map."""
    big = features(gen, 1, c, h + 12, w + 7, smooth=smooth)
    return big[:, :, 12:12 + h, 0:w], big[:, :, 0:h, 7:7 + w]


def _interior(h, w, r):
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (y >= r) & (y + 12 <= h - 1 - r) & (x - 7 >= r) & (x <= w - 1 - r), y, x


def test_shifted_copy_patchmatch_recovers_the_shift(ext):
    gen = torch.Generator().manual_seed(12)
    src, tgt = _shifted_pair(gen)
    nnf, _, _ = patchmatch(src, tgt, None, patch_size=3, iterations=6, radius=56, seed=1,
                           backend="cpp")
    inside, y, x = _interior(48, 56, 1)
    found = (nnf[0, ..., 0] == y + 12) & (nnf[0, ..., 1] == x - 7)
    assert found[inside].float().mean().item() > 0.99


def test_shifted_copy_window_recovers_the_shift(ext):
    gen = torch.Generator().manual_seed(13)
    src, tgt = _shifted_pair(gen, smooth=False)
    y, x = torch.meshgrid(torch.arange(48), torch.arange(56), indexing="ij")
    init = torch.stack((y + 10, x - 4), -1)[None]  # 2 and 3 pixels off the truth
    nnf, score, _ = window_search(src, tgt, init, patch_size=5, radius=4, backend="cpp")
    inside, _, _ = _interior(48, 56, 2)
    assert torch.equal(nnf[0][inside], torch.stack((y + 12, x - 7), -1)[inside])
    assert torch.allclose(score[0][inside], torch.ones(()), atol=1e-5)


def test_real_photo_features_match_reference(ext, astronaut_rgb):
    """Pixel-colour + gradient features of a real photo: many near-ties, smooth regions."""
    img = F.interpolate(astronaut_rgb[None], size=(40, 40), mode="area")
    gy, gx = torch.gradient(img.mean(1, keepdim=True), dim=(2, 3))
    feats = F.normalize(torch.cat((img, 4 * gy, 4 * gx, torch.full_like(gy, 0.1)), 1), dim=1)
    src, tgt = feats[..., :, :36], feats[..., 4:, 2:]
    kw = dict(patch_size=3, iterations=3, radius=16, jumps=(8, 4, 2, 1), seed=3, level=0)
    nnf, score, _ = patchmatch(src, tgt, None, backend="cpp", **kw)
    ref = ref_patchmatch(src, tgt, None, 3, 3, 16, (8, 4, 2, 1), 3, 0)
    same = (nnf == ref[0]).all(-1).float().mean().item()
    assert same >= 0.99, same  # smooth photo regions give genuine float ties
    assert (score.double() - ref[1]).abs().max().item() < 1e-5


def test_results_do_not_depend_on_thread_count(ext):
    gen = torch.Generator().manual_seed(21)
    src, tgt = features(gen, 1, 16, 30, 30), features(gen, 1, 16, 30, 30)
    kw = dict(patch_size=3, iterations=3, radius=15, backend="cpp")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = patchmatch(src, tgt, None, **kw)
        torch.set_num_threads(max(2, threads))
        many = patchmatch(src, tgt, None, **kw)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


def test_empty_batch(ext):
    src = torch.zeros(0, 8, 5, 6)
    nnf, score = torch.ops.deepexemplar.patchmatch(src, torch.zeros(0, 8, 4, 4), None, 3, 2, 3,
                                                   [1], 0, 0)
    assert nnf.shape == (0, 5, 6, 2) and score.shape == (0, 5, 6)
    with pytest.raises(ValueError, match="empty"):
        patchmatch(src, torch.zeros(0, 8, 4, 4), None, patch_size=3, iterations=1, radius=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(patch_size=4), "patch_size"),
        (dict(radius=-1), "radius"),
        (dict(backend="gpu"), "backend"),
    ],
)
def test_bad_arguments(ext, kwargs, match):
    a = F.normalize(torch.rand(1, 4, 6, 6), dim=1)
    args = dict(patch_size=3, iterations=1, radius=2) | kwargs
    with pytest.raises(ValueError, match=match):
        patchmatch(a, a, None, **args)


def test_bad_init_and_channels(ext):
    a = F.normalize(torch.rand(1, 4, 6, 6), dim=1)
    with pytest.raises(ValueError, match="init"):
        window_search(a, a, torch.zeros(1, 5, 6, 2, dtype=torch.int64), patch_size=3, radius=1)
    with pytest.raises(TypeError, match="init"):
        window_search(a, a, torch.zeros(1, 6, 6, 2), patch_size=3, radius=1)
    with pytest.raises(ValueError, match="channels"):
        window_search(a, torch.rand(1, 5, 6, 6), None, patch_size=3, radius=1)
    with pytest.raises(ValueError, match="cpu"):
        window_search(a, a, None, patch_size=3, radius=1, backend="cuda")


def test_op_checks_name_the_argument(ext):
    a = torch.rand(1, 4, 6, 6)
    with pytest.raises(RuntimeError, match="patch_size must be odd"):
        torch.ops.deepexemplar.window_search(a, a, None, 2, 1)
    with pytest.raises(RuntimeError, match="float32 on the CPU"):
        torch.ops.deepexemplar.window_search(a.double(), a.double(), None, 3, 1)
    with pytest.raises(RuntimeError, match="init must be"):
        torch.ops.deepexemplar.window_search(a, a, torch.zeros(1, 6, 5, 2, dtype=torch.long), 3, 1)


# ----------------------------------------------------------------------------------------------
# Library reference (matching/patchmatch.py) and the fallback


def test_cpp_matches_library_reference(ext):
    from deepexemplar_core.matching.patchmatch_reference import patchmatch_reference
    from deepexemplar_core.matching.window_reference import window_search_reference

    gen = torch.Generator().manual_seed(31)
    src, tgt = features(gen, 2, 16, 17, 19), features(gen, 1, 16, 15, 20)
    kw = dict(patch_size=3, iterations=3, radius=20, jumps=(8, 4, 2, 1), seed=5, level=1)
    nnf, score, _ = patchmatch(src, tgt, None, backend="cpp", **kw)
    ref = patchmatch_reference(src, tgt, None, **kw)
    same = (nnf == ref[0]).all(-1).float().mean().item()
    assert same >= 0.999 and (score - ref[1]).abs().max().item() < 1e-5
    init = torch.randint(0, 15, (2, 17, 19, 2), generator=gen)
    nnf, score, _ = window_search(src, tgt, init, patch_size=5, radius=3, backend="cpp")
    ref = window_search_reference(src, tgt, init, patch_size=5, radius=3)
    same = (nnf == ref[0]).all(-1).float().mean().item()
    assert same >= 0.999 and (score - ref[1]).abs().max().item() < 1e-5


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_fallback_when_the_build_is_impossible(tmp_path):
    """No compiler and a bogus CUDA_HOME: a one-line warning and the PyTorch result, no crash."""
    code = """
        import logging, torch
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from deepexemplar_core.matching import patchmatch, active_backend, ExtensionNotAvailableError
        a = torch.nn.functional.normalize(torch.rand(1, 4, 8, 8), dim=1)
        nnf, score, name = patchmatch(a, a, None, patch_size=3, iterations=1, radius=2)
        patchmatch(a, a, None, patch_size=3, iterations=1, radius=2)
        print("backend", name, tuple(nnf.shape), active_backend("cpu")[0])
        try:
            patchmatch(a, a, None, patch_size=3, iterations=1, radius=2, backend="cpp")
        except ExtensionNotAvailableError as e:
            print("explicit cpp refused:", str(e)[:40])
    """
    env = {"DEEPEXEMPLAR_EXT_DIR": str(tmp_path / "cache"), "DEEPEXEMPLAR_EXT_JIT": "1",
           "CXX": str(tmp_path / "no-compiler"), "CUDA_HOME": str(tmp_path / "no-cuda")}
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr
    assert "backend torch (1, 8, 8, 2) torch" in proc.stdout
    assert "explicit cpp refused" in proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("WARNING")]
    assert len(warnings) == 1 and "build-ext" in warnings[0], proc.stderr


def test_cached_build_loads_without_a_compiler(ext, tmp_path):
    """A cached build is opened directly: no compiler needed (ComfyUI's load_cached_only)."""
    code = """
        import torch
        from deepexemplar_core.matching import extension as _build
        print("cached", _build.load_cached_only(), _build.loaded_plan().name)
    """
    proc = _run_python(code, {"CXX": str(tmp_path / "no-compiler"),
                              "DEEPEXEMPLAR_EXT_DIR": str(ext.directory.parent)})
    assert proc.returncode == 0, proc.stderr
    assert f"cached True {ext.name}" in proc.stdout


def test_auto_uses_the_cpp_kernels_on_cpu(ext):
    a = F.normalize(torch.rand(1, 4, 6, 6), dim=1)
    assert patchmatch(a, a, None, patch_size=3, iterations=1, radius=2)[2] == "cpp"


# ----------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("lanes", ["auto", "1", "32"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("case", CASES + [(1, 1, 128, 64, 96, 70, 80, 3)],
                         ids=lambda c: "x".join(map(str, c)) if isinstance(c, tuple) else str(c))
def test_cuda_matches_cpp(ext, case, dtype, lanes, monkeypatch):
    """Thread-per-pixel (lanes 1) and warp-per-pixel (lanes 32) kernels equal the C++ ones."""
    if not ext.with_cuda:
        pytest.skip("extension built without CUDA")
    if lanes != "auto":
        monkeypatch.setenv("DEEPEXEMPLAR_CUDA_LANES", lanes)
    bs, bt, c, ha, wa, hb, wb, k = case
    gen = torch.Generator().manual_seed(sum(case))
    src, tgt = features(gen, bs, c, ha, wa).to(dtype), features(gen, bt, c, hb, wb).to(dtype)
    kw = dict(patch_size=k, iterations=3, radius=max(hb, wb), seed=4, level=1)
    cpu = patchmatch(src.float(), tgt.float(), None, backend="cpp", **kw)
    gpu = patchmatch(src.cuda(), tgt.cuda(), None, backend="cuda", **kw)
    assert (gpu[0].cpu() == cpu[0]).all(-1).float().mean().item() >= 0.999
    assert (gpu[1].cpu() - cpu[1]).abs().max().item() < 1e-5
    init = torch.randint(-2, max(hb, wb) + 2, (max(bs, bt), ha, wa, 2), generator=gen)
    cpu = window_search(src.float(), tgt.float(), init, patch_size=k, radius=2, backend="cpp")
    gpu = window_search(src.cuda(), tgt.cuda(), init.cuda(), patch_size=k, radius=2, backend="cuda")
    assert (gpu[0].cpu() == cpu[0]).all(-1).float().mean().item() >= 0.999
    assert (gpu[1].cpu() - cpu[1]).abs().max().item() < 1e-5


def test_dense_match_with_cpp_equals_torch(ext):
    """The whole schedule (exact, window, patchmatch levels) gives the same fields on both."""
    from deepexemplar_core.matching import LevelConfig, MatchConfig, dense_match
    from deepexemplar_core.structures import FeaturePyramid

    gen = torch.Generator().manual_seed(41)

    def pyramid(h, w):
        feats = tuple(F.relu(features(gen, 1, c, h // s, w // s, smooth=True))
                      for c, s in ((8, 1), (16, 2), (24, 4), (32, 8)))
        return FeaturePyramid(feats, (1, 2, 4, 8), ("l1", "l2", "l3", "l4"), (h, w))

    tgt, ref = pyramid(48, 64), pyramid(56, 40)
    levels = {"l4": LevelConfig(method="exact"), "l3": LevelConfig(method="window", radius=3),
              "l2": LevelConfig(method="patchmatch", radius=4, iterations=4)}
    fields = {}
    for backend in ("torch", "cpp"):
        corr = dense_match(tgt, ref, MatchConfig(levels=levels, backend=backend))
        assert backend in corr.backend
        fields[backend] = corr
    for name in ("nnf_tr", "nnf_rt"):
        same = (getattr(fields["cpp"], name) == getattr(fields["torch"], name)).all(-1)
        assert same.float().mean().item() >= 0.999, name


@pytest.mark.e2e
def test_no_jit_build_never_compiles(tmp_path):
    """``DEEPEXEMPLAR_EXT_JIT=0`` (ComfyUI): an empty cache means the reference, no compiler run."""
    code = """
        import torch
        from deepexemplar_core.matching import extension as _build, active_backend
        name, reason = active_backend("cpu")
        print(name, "|", reason, "|", list(_build.build_root().glob("*")))
    """
    env = {"DEEPEXEMPLAR_EXT_DIR": str(tmp_path / "cache"), "DEEPEXEMPLAR_EXT_JIT": "0"}
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr
    name, reason, created = (s.strip() for s in proc.stdout.split("|"))
    assert name == "torch" and "build-ext" in reason and created == "[]"


def test_opcheck_schema_and_fake_kernels(ext):
    """Schemas, fake (meta) kernels and AOT dispatch pass torch.library.opcheck."""
    from deepexemplar_core.matching import ops

    ops._extension(True)
    a = F.normalize(torch.rand(2, 4, 5, 6), dim=1)
    b = F.normalize(torch.rand(1, 4, 7, 3), dim=1)
    for op, args in ((torch.ops.deepexemplar.window_search.default, (a, b, None, 3, 1)),
                     (torch.ops.deepexemplar.patchmatch.default, (a, b, None, 3, 2, 3, [2, 1], 0, 0))):
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, result
