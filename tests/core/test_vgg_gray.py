"""GrayVGG19BN: layout, outputs, pyramid and a functional reference forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.color import rgb2lab
from skimage.transform import resize

from deepexemplar_core.backbones import GrayVGG19BN, encode_vgg_input
from deepexemplar_core.structures import Backbone

CONVS = [f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for i in range(1, n + 1)]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"}


def randomise_(net: GrayVGG19BN, seed: int = 0) -> GrayVGG19BN:
    """Random BN statistics (the default ones are the identity) and a non-trivial data_bn."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
        net.data_bn.running_mean.copy_(torch.tensor([110.0, 120.0, 100.0]))
        net.data_bn.running_var.copy_(torch.tensor([3000.0, 2500.0, 2800.0]))
        net.data_bn.weight.copy_(torch.tensor([0.9, 1.1, 1.0]))
        net.data_bn.bias.copy_(torch.tensor([0.1, -0.1, 0.0]))
    return net


def reference_forward(net: GrayVGG19BN, l: torch.Tensor) -> dict[str, torch.Tensor]:
    """The Caffe graph written with torch.nn.functional from the module's tensors."""
    s = net.state_dict()

    def bn(t, prefix, affine=False):
        w = s[f"{prefix}.weight"] if affine else None
        b = s[f"{prefix}.bias"] if affine else None
        return F.batch_norm(t, s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"], w, b,
                            eps=1e-5)  # fmt: skip

    t = bn(torch.cat([l * 2.55] * 3, dim=1), "data_bn", affine=True)
    out = {}
    for name in CONVS:
        t = F.relu(bn(F.conv2d(t, s[f"{name}.weight"], s[f"{name}.bias"], padding=1), f"{name}_bn"))
        out["relu" + name[4:]] = t
        if name in POOL_AFTER:
            t = F.max_pool2d(t, 2, 2, ceil_mode=True)
    out["pool5"] = t
    if net.with_classifier:
        t = F.adaptive_max_pool2d(t, 7).flatten(1)
        t = F.relu(bn(F.linear(t, s["fc6.weight"], s["fc6.bias"]), "fc6_bn"))
        out["fc6"] = t
        t = F.relu(bn(F.linear(t, s["fc7.weight"], s["fc7.bias"]), "fc7_bn"))
        out["fc7"] = t
        out["logits"] = F.linear(t, s["fc8.weight"], s["fc8.bias"])
    return out


def photo_l(h: int, w: int) -> torch.Tensor:
    rgb = resize(skdata.chelsea(), (h, w), anti_aliasing=True)
    return torch.from_numpy(rgb2lab(rgb)[..., 0]).float()[None, None]


@pytest.fixture(scope="module")
def conv_net():
    return randomise_(GrayVGG19BN(with_classifier=False))


def test_state_dict_keys_follow_module_names():
    with torch.device("meta"):
        keys = list(GrayVGG19BN(with_classifier=True).state_dict())
    stored = [k for k in keys if not k.endswith("num_batches_tracked")]
    assert stored[:4] == ["data_bn.weight", "data_bn.bias", "data_bn.running_mean",
                          "data_bn.running_var"]  # fmt: skip
    assert stored[4:8] == ["conv1_1.weight", "conv1_1.bias", "conv1_1_bn.running_mean",
                           "conv1_1_bn.running_var"]  # fmt: skip
    assert stored[-2:] == ["fc8.weight", "fc8.bias"]
    # 1 affine BN (4) + 16 conv (2) + 16 BN (2) + fc6/fc7 with BN (4 each) + fc8 (2)
    assert len(stored) == 4 + 16 * 4 + 8 + 2
    with torch.device("meta"):
        assert not any(k.startswith("fc") for k in GrayVGG19BN(with_classifier=False).state_dict())


def test_encode_vgg_input_values():
    l = torch.tensor([[[[0.0, 50.0, 100.0]]]])
    x = encode_vgg_input(l)
    assert x.shape == (1, 3, 1, 3)
    torch.testing.assert_close(x[0, :, 0], torch.tensor([[0.0, 127.5, 255.0]] * 3))


def test_forward_matches_functional_reference_on_photo(conv_net):
    l = photo_l(70, 94)  # odd pooled sizes exercise Caffe's ceil rounding
    names = [f"relu{n[4:]}" for n in CONVS] + ["pool5"]
    with torch.no_grad():
        ours, ref = conv_net(l, outputs=names), reference_forward(conv_net, l)
    assert set(ours) == set(names)
    for name in names:
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-4, msg=name)
    assert ours["relu5_1"].shape[-2:] == (5, 6)  # 70->35->18->9->5, 94->47->24->12->6
    assert ours["pool5"].shape[-2:] == (3, 3)


def test_forward_stops_after_deepest_output(conv_net):
    calls = []
    hook = conv_net.conv2_1.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = conv_net(torch.rand(1, 1, 32, 32) * 100, outputs=("relu1_2", "relu1_1"))
    finally:
        hook.remove()
    assert set(out) == {"relu1_1", "relu1_2"} and not calls


def test_pyramid_and_backbone_protocol(conv_net):
    assert isinstance(conv_net, Backbone)
    assert conv_net.family == "paper" and conv_net.min_size == 16
    l = photo_l(48, 66)
    pyr = conv_net.pyramid(torch.cat([l, l.flip(-1)]))
    assert pyr.names == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert pyr.strides == (1, 2, 4, 8, 16) and pyr.image_size == (48, 66)
    assert [tuple(f.shape) for f in pyr.features] == [
        (2, 64, 48, 66), (2, 128, 24, 33), (2, 256, 12, 17), (2, 512, 6, 9), (2, 512, 3, 5)
    ]  # fmt: skip
    single = conv_net.pyramid(l.flip(-1))  # the batch is processed image by image
    for batched, alone in zip(pyr.features, single.features, strict=True):
        torch.testing.assert_close(batched[1:], alone, rtol=1e-4, atol=1e-4)
    assert not pyr.features[2].requires_grad


def test_classifier_outputs_with_adaptive_pool():
    net = randomise_(GrayVGG19BN(with_classifier=True), seed=1)
    l = photo_l(40, 56)  # pool5 is 2x2 -> adaptive max pool to 7x7
    with torch.no_grad():
        ours = net(l, outputs=("fc6", "fc7", "logits", "relu5_4"))
        ref = reference_forward(net, l)
    assert ours["fc6"].shape == (1, 4096) and ours["logits"].shape == (1, 1000)
    for name in ("fc6", "fc7", "logits", "relu5_4"):
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-4, msg=name)
    only_fc6 = net(l, outputs=("fc6",))
    assert set(only_fc6) == {"fc6"}


def test_errors(conv_net):
    with pytest.raises(ValueError, match=r"l: expected \(B, 1, H, W\)"):
        conv_net(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown"):
        conv_net(torch.rand(1, 1, 32, 32), outputs=("relu6_1",))
    with pytest.raises(ValueError, match="with_classifier=True"):
        conv_net(torch.rand(1, 1, 32, 32), outputs=("fc6",))
    with pytest.raises(TypeError, match="floating"):
        conv_net(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="too small"):
        conv_net.pyramid(torch.rand(1, 1, 8, 64))
