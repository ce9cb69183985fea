"""The pure-PyTorch stages on CUDA agree with the same code on the CPU (run by the GPU check).

The similarity maps (both exact evaluations of a level: the Gram form and per-pixel sampling)
and the temporal smoothing run the same code on every device; only the float reduction order
may differ, so the quantised distances may differ by 1 on a few pixels and the smoothed chroma
by the solver's tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch

from deepexemplar_core import similarity as similarity_module
from deepexemplar_core.similarity import similarity_maps
from deepexemplar_core.structures import Correspondence, FeaturePyramid
from deepexemplar_core.temporal import TemporalConfig, temporal_smooth

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _pyramid(gen: torch.Generator, size: tuple[int, int]) -> FeaturePyramid:
    strides, channels = (2, 4, 8, 16, 32), (16, 24, 40, 112, 320)
    feats = tuple(
        torch.rand(1, c, math.ceil(size[0] / s), math.ceil(size[1] / s), generator=gen) - 0.1
        for s, c in zip(strides, channels, strict=True)
    )
    return FeaturePyramid(feats, strides, tuple(f"l{s}" for s in strides), size)


def _on_cuda(pyramid: FeaturePyramid) -> FeaturePyramid:
    features = tuple(f.cuda() for f in pyramid.features)
    return FeaturePyramid(features, pyramid.strides, pyramid.names, pyramid.image_size)


@pytest.mark.parametrize("path", ["auto", "sampled"])
def test_similarity_maps_on_cuda_match_the_cpu(path: str, monkeypatch) -> None:
    if path == "sampled":
        monkeypatch.setattr(similarity_module, "_GRAM_ELEMENTS", 0)
    gen = torch.Generator().manual_seed(3)
    size = (256, 341)
    target, reference = _pyramid(gen, size), _pyramid(gen, size)
    fields = [
        torch.stack((torch.randint(0, size[0], (1, *size), generator=gen),
                     torch.randint(0, size[1], (1, *size), generator=gen)), -1)
        for _ in range(2)
    ]
    corr = Correspondence(*fields)
    cpu = similarity_maps(target, reference, corr)
    gpu = similarity_maps(_on_cuda(target), _on_cuda(reference),
                          Correspondence(*(f.cuda() for f in fields)))
    assert torch.allclose(gpu.sim_tr.cpu(), cpu.sim_tr, atol=1e-5)
    assert torch.allclose(gpu.sim_rt.cpu(), cpu.sim_rt, atol=1e-5)
    for a, b in ((gpu.err_tr, cpu.err_tr), (gpu.err_rt, cpu.err_rt)):
        diff = (a.cpu().int() - b.int()).abs()
        assert diff.max() <= 1 and diff.eq(0).float().mean() > 0.999


@pytest.mark.parametrize("mode", ["fast", "bonneel"])
def test_temporal_smoothing_on_cuda_matches_the_cpu(mode: str) -> None:
    gen = torch.Generator().manual_seed(4)
    base = torch.rand(1, 1, 96, 128, generator=gen) * 80 + 10
    l = torch.cat([torch.roll(base, shifts=2 * t, dims=-1) for t in range(5)])
    ab = torch.randn(5, 2, 96, 128, generator=gen) * 10
    config = TemporalConfig(mode=mode)
    cpu = temporal_smooth(l, ab, config)
    gpu = temporal_smooth(l, ab, config, device="cuda")
    assert gpu.ab.device.type == "cpu"
    assert gpu.scene_cuts == cpu.scene_cuts
    assert torch.allclose(gpu.ab, cpu.ab, atol=0.05 if mode == "bonneel" else 1e-3)
