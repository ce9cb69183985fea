"""Conversions of the authors' files, checked against references written here.

The source files are synthesised in the test from random tensors with the authors' exact keys,
shapes and blob order (``original-code-facts.md`` Appendix A.1, A.5, A.6): a legacy (non-zip)
``example_net.pth``, caffemodels written by a small protobuf encoder below (new-style and legacy
V1 formats) and a ``vgg19_gray.pth``. The converted networks are compared with functional
forwards that follow Caffe's semantics (BN statistics divided by the factor, ceil pooling).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.color import rgb2lab
from skimage.transform import resize

from deepexemplar_core.authors.convert import (
    CaffeModelError,
    ConversionError,
    convert_colornet_pth,
    convert_file,
    convert_gray_vgg_caffemodel,
    convert_video_vgg_pth,
    read_caffemodel,
)
from deepexemplar_core.backbones import GrayVGG19BN
from deepexemplar_core.cli import EXIT_INPUT, EXIT_WEIGHTS, main
from deepexemplar_core.cli.convert import register, run_convert
from deepexemplar_core.colorizers import ExampleColorNet
from deepexemplar_core.files import sha256_file
from deepexemplar_core.weights import load_state_checked, read_manifest

# --- the authors' layouts, written out independently of the package -------------------------

VGG_PLAN = [  # (name, in, out); "pool" after conv1_2, conv2_2, conv3_4, conv4_4, conv5_4
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), ("conv5_4", 512, 512),
]  # fmt: skip
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"}
VIDEO_INDEX = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
COLORNET_KEYS = """
conv1_1.0.weight 32,13,3,3|conv1_1.0.bias 32|conv1_1.2.weight 64,32,3,3|conv1_1.2.bias 64
conv1_2.weight 64,64,3,3|conv1_2.bias 64|conv1_2norm.running_mean 64|conv1_2norm.running_var 64
conv1_2norm.num_batches_tracked |conv1_2norm_ss.weight 64,1,1,1
conv2_1.weight 128,64,3,3|conv2_1.bias 128|conv2_2.weight 128,128,3,3|conv2_2.bias 128
conv2_2norm.running_mean 128|conv2_2norm.running_var 128|conv2_2norm.num_batches_tracked
conv2_2norm_ss.weight 128,1,1,1|conv3_1.weight 256,128,3,3|conv3_1.bias 256
conv3_2.weight 256,256,3,3|conv3_2.bias 256|conv3_3.weight 256,256,3,3|conv3_3.bias 256
conv3_3norm.running_mean 256|conv3_3norm.running_var 256|conv3_3norm.num_batches_tracked
conv3_3norm_ss.weight 256,1,1,1|conv4_1.weight 512,256,3,3|conv4_1.bias 512
conv4_2.weight 512,512,3,3|conv4_2.bias 512|conv4_3.weight 512,512,3,3|conv4_3.bias 512
conv4_3norm.running_mean 512|conv4_3norm.running_var 512|conv4_3norm.num_batches_tracked
conv5_1.weight 512,512,3,3|conv5_1.bias 512|conv5_2.weight 512,512,3,3|conv5_2.bias 512
conv5_3.weight 512,512,3,3|conv5_3.bias 512|conv5_3norm.running_mean 512
conv5_3norm.running_var 512|conv5_3norm.num_batches_tracked
conv6_1.weight 512,512,3,3|conv6_1.bias 512|conv6_2.weight 512,512,3,3|conv6_2.bias 512
conv6_3.weight 512,512,3,3|conv6_3.bias 512|conv6_3norm.running_mean 512
conv6_3norm.running_var 512|conv6_3norm.num_batches_tracked
conv7_1.weight 512,512,3,3|conv7_1.bias 512|conv7_2.weight 512,512,3,3|conv7_2.bias 512
conv7_3.weight 512,512,3,3|conv7_3.bias 512|conv7_3norm.running_mean 512
conv7_3norm.running_var 512|conv7_3norm.num_batches_tracked
conv8_1.weight 512,256,4,4|conv8_1.bias 256|conv3_3_short.weight 256,256,3,3
conv3_3_short.bias 256|conv8_2.weight 256,256,3,3|conv8_2.bias 256|conv8_3.weight 256,256,3,3
conv8_3.bias 256|conv8_3norm.running_mean 256|conv8_3norm.running_var 256
conv8_3norm.num_batches_tracked |conv9_1.weight 256,128,4,4|conv9_1.bias 128
conv2_2_short.weight 128,128,3,3|conv2_2_short.bias 128|conv9_2.weight 128,128,3,3
conv9_2.bias 128|conv9_2norm.running_mean 128|conv9_2norm.running_var 128
conv9_2norm.num_batches_tracked |conv10_1.weight 128,128,4,4|conv10_1.bias 128
conv1_2_short.weight 128,64,3,3|conv1_2_short.bias 128|conv10_2.weight 128,128,3,3
conv10_2.bias 128|conv10_ab.weight 2,128,1,1|conv10_ab.bias 2
"""


def colornet_layout() -> list[tuple[str, tuple[int, ...]]]:
    """Appendix A.1 as (key, shape), in file order (92 entries)."""
    entries = []
    for item in COLORNET_KEYS.replace("\n", "|").split("|"):
        if item.strip():
            key, _, dims = item.strip().partition(" ")
            entries.append((key, tuple(int(d) for d in dims.split(",") if d)))
    return entries


def random_colornet_state(gen: torch.Generator, with_counters: bool) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in colornet_layout():
        if key.endswith("num_batches_tracked"):
            if with_counters:
                state[key] = torch.tensor(150000)
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("bias"):
            state[key] = torch.randn(shape, generator=gen) * 0.01
        else:
            fan_in = int(np.prod(shape[1:])) if "_ss" not in key else 1
            if key in ("conv8_1.weight", "conv9_1.weight", "conv10_1.weight"):
                fan_in = shape[0] * 4  # transposed conv: each output sums in/4 x 16 taps
            state[key] = torch.randn(shape, generator=gen) * (1.0 / fan_in) ** 0.5
    state["conv10_ab.weight"] *= 0.01  # keeps tanh out of saturation for the comparison
    return state


def functional_colornet(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """ExampleColorNet per A.1, with torch.nn.functional only."""

    def conv(name, t, dil=1):
        return F.conv2d(t, s[f"{name}.weight"], s[f"{name}.bias"], padding=dil, dilation=dil)

    def relu_convs(t, names, dil=1):
        for n in names:
            t = F.relu(conv(n, t, dil))
        return t

    def bn(name, t):
        return F.batch_norm(t, s[f"{name}.running_mean"], s[f"{name}.running_var"], eps=1e-5)

    def ss(name, t):
        return F.conv2d(t, s[f"{name}.weight"], stride=2, groups=t.shape[1])

    def up(name, t):
        return F.conv_transpose2d(t, s[f"{name}.weight"], s[f"{name}.bias"], 2, 1)

    t = F.relu(F.conv2d(x, s["conv1_1.0.weight"], s["conv1_1.0.bias"], padding=1))
    t = F.relu(F.conv2d(t, s["conv1_1.2.weight"], s["conv1_1.2.bias"], padding=1))
    n1 = bn("conv1_2norm", relu_convs(t, ["conv1_2"]))
    n2 = bn("conv2_2norm", relu_convs(ss("conv1_2norm_ss", n1), ["conv2_1", "conv2_2"]))
    t = relu_convs(ss("conv2_2norm_ss", n2), ["conv3_1", "conv3_2", "conv3_3"])
    n3 = bn("conv3_3norm", t)
    t = bn("conv4_3norm", relu_convs(ss("conv3_3norm_ss", n3), ["conv4_1", "conv4_2", "conv4_3"]))
    t = bn("conv5_3norm", relu_convs(t, ["conv5_1", "conv5_2", "conv5_3"], 2))
    t = bn("conv6_3norm", relu_convs(t, ["conv6_1", "conv6_2", "conv6_3"], 2))
    t = bn("conv7_3norm", relu_convs(t, ["conv7_1", "conv7_2", "conv7_3"]))
    t = F.relu(up("conv8_1", t) + conv("conv3_3_short", n3))
    t = bn("conv8_3norm", relu_convs(t, ["conv8_2", "conv8_3"]))
    t = F.relu(up("conv9_1", t) + conv("conv2_2_short", n2))
    t = bn("conv9_2norm", relu_convs(t, ["conv9_2"]))
    t = F.relu(up("conv10_1", t) + conv("conv1_2_short", n1))
    t = F.leaky_relu(conv("conv10_2", t), 0.2)
    return torch.tanh(F.conv2d(t, s["conv10_ab.weight"], s["conv10_ab.bias"])) * 100


# --- a tiny protobuf encoder (caffe.proto field numbers) --------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def blob_new(arr: np.ndarray) -> bytes:
    """BlobProto with BlobShape (field 7, packed dims) and packed float data (field 5)."""
    dims = b"".join(varint(d) for d in arr.shape)
    return ld(7, ld(1, dims)) + ld(5, np.ascontiguousarray(arr, "<f4").tobytes())


def blob_legacy(arr: np.ndarray) -> bytes:
    """BlobProto with num/channels/height/width (fields 1-4); small data non-packed."""
    dims = (1,) * (4 - arr.ndim) + arr.shape
    head = b"".join(tag(f, 0) + varint(d) for f, d in zip((1, 2, 3, 4), dims, strict=True))
    flat = np.ascontiguousarray(arr, "<f4").reshape(-1)
    if flat.size > 1000:
        return head + ld(5, flat.tobytes())
    return head + b"".join(tag(5, 5) + struct.pack("<f", v) for v in flat)


def layer_new(name: str, kind: str, blobs: list[np.ndarray]) -> bytes:
    body = ld(1, name.encode()) + ld(2, kind.encode()) + ld(3, b"bottom") + ld(4, name.encode())
    return ld(100, body + b"".join(ld(7, blob_new(b)) for b in blobs))


def layer_v1(name: str, kind: str, blobs: list[np.ndarray]) -> bytes:
    body = ld(4, name.encode()) + tag(5, 0) + varint(4) + ld(2, b"bottom")
    return ld(2, body + b"".join(ld(6, blob_legacy(b)) for b in blobs))


def random_caffe_vgg(gen: np.random.Generator, with_fc: bool) -> dict:
    """Appendix A.6 blobs in Caffe order; BN factors != 1 and conv2_1/bn factor 0."""

    def bn(channels, mean_scale, var_low, var_high, factor):
        mean = gen.normal(0, mean_scale, channels).astype(np.float32)
        var = gen.uniform(var_low, var_high, channels).astype(np.float32)
        return [mean * factor, var * factor, np.array([factor], np.float32)]

    layers = {}
    layers["data/bn"] = [np.array([100, 110, 120], np.float32) * 7.5,
                         np.array([3000, 2500, 2800], np.float32) * 7.5,
                         np.array([7.5], np.float32)]  # fmt: skip
    layers["data/scale"] = [gen.uniform(0.5, 1.5, 3).astype(np.float32),
                            gen.normal(0, 0.1, 3).astype(np.float32)]  # fmt: skip
    for name, cin, cout in VGG_PLAN:
        w = gen.normal(0, (2.0 / (cin * 9)) ** 0.5, (cout, cin, 3, 3)).astype(np.float32)
        layers[name] = [w, gen.normal(0, 0.05, cout).astype(np.float32)]
        factor = 0.0 if name == "conv2_1" else float(gen.uniform(0.2, 999.0))
        layers[f"{name}/bn"] = bn(cout, 0.2, 0.5, 2.0, factor)
    if with_fc:
        for name, cin, cout in (("fc6", 25088, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)):
            w = gen.normal(0, (2.0 / cin) ** 0.5, (cout, cin)).astype(np.float32)
            layers[name] = [w, gen.normal(0, 0.05, cout).astype(np.float32)]
            if name != "fc8":
                layers[f"{name}/bn"] = bn(cout, 0.2, 0.5, 2.0, float(gen.uniform(0.5, 50)))
    return layers


def write_caffemodel(path, layers: dict, legacy: bool = False) -> None:
    encode = layer_v1 if legacy else layer_new
    parts = [ld(1, b"VGG_ILSVRC_19_layers_gray_bn"), ld(3, b"data"), tag(4, 0) + varint(1)]
    parts.append(encode("relu_without_blobs", "ReLU", []))
    for name, blobs in layers.items():
        parts.append(encode(name, "BatchNorm" if "bn" in name else "Convolution", blobs))
    path.write_bytes(b"".join(parts))


def caffe_bn(x, blobs, eps=1e-5):
    factor = float(blobs[2][0])
    scale = 0.0 if factor == 0 else 1.0 / factor
    mean = torch.from_numpy(blobs[0] * scale)
    var = torch.from_numpy(blobs[1] * scale)
    return F.batch_norm(x, mean, var, eps=eps)


def caffe_vgg_forward(layers: dict, l100: torch.Tensor) -> dict[str, torch.Tensor]:
    """The Caffe deploy network with torch.nn.functional (BN from blobs, ceil pooling)."""
    t = (l100 * 2.55).repeat(1, 3, 1, 1)
    t = caffe_bn(t, layers["data/bn"])
    gamma, beta = (torch.from_numpy(b) for b in layers["data/scale"])
    t = t * gamma.view(1, 3, 1, 1) + beta.view(1, 3, 1, 1)
    out = {}
    for name, _, _ in VGG_PLAN:
        w, b = (torch.from_numpy(a) for a in layers[name])
        t = F.relu(caffe_bn(F.conv2d(t, w, b, padding=1), layers[f"{name}/bn"]))
        out["relu" + name[4:]] = t
        if name in POOL_AFTER:
            t = F.max_pool2d(t, 2, 2, ceil_mode=True)
    out["pool5"] = t
    if "fc6" in layers:
        t = t.flatten(1)
        for name in ("fc6", "fc7"):
            w, b = (torch.from_numpy(a) for a in layers[name])
            t = F.relu(caffe_bn(F.linear(t, w, b), layers[f"{name}/bn"]))
            out[name] = t
        w, b = (torch.from_numpy(a) for a in layers["fc8"])
        out["logits"] = F.linear(t, w, b)
    return out


def photo_l(h: int, w: int) -> torch.Tensor:
    """Luminance of skimage's astronaut photo at (h, w), (1, 1, h, w) float32 in [0, 100]."""
    rgb = resize(skdata.astronaut(), (h, w), anti_aliasing=True)
    return torch.from_numpy(rgb2lab(rgb)[..., 0]).float()[None, None]


def assert_features_close(ours: dict, ref: dict, names) -> None:
    for name in names:
        scale = float(ref[name].abs().max())
        assert scale > 0, name
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-4 * scale, msg=name)


CONV_OUTS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu5_4", "pool5"]


# --- read_caffemodel on hand-made messages (known answers) ------------------------------------


def test_read_caffemodel_decodes_every_encoding(tmp_path):
    doubles = np.array([1.5, -2.25], np.float64)
    double_blob = ld(7, ld(1, varint(2))) + ld(8, doubles.astype("<f8").tobytes())
    legacy_dims = b"".join(tag(f, 0) + varint(d) for f, d in ((1, 2), (2, 1), (3, 1), (4, 1)))
    nonpacked_double = legacy_dims + b"".join(tag(8, 1) + struct.pack("<d", v) for v in (3, 4))
    unpacked_dims = ld(7, tag(1, 0) + varint(2) + tag(1, 0) + varint(3))
    unknown = tag(9, 1) + b"\0" * 8 + tag(10, 5) + b"\0" * 4 + tag(11, 0) + varint(300)
    floats = np.arange(6, dtype=np.float32)
    layer = ld(1, b"L") + ld(7, double_blob) + ld(7, nonpacked_double)
    layer += ld(7, unpacked_dims + unknown + ld(5, floats.tobytes()))
    path = tmp_path / "tiny.caffemodel"
    path.write_bytes(ld(1, b"net") + ld(100, ld(1, b"empty")) + ld(100, layer))
    layers = read_caffemodel(path)
    assert list(layers) == ["L"]
    first, second, third = layers["L"]
    assert first.dtype == np.float32 and first.tolist() == [1.5, -2.25]
    assert second.shape == (2, 1, 1, 1) and second.reshape(-1).tolist() == [3.0, 4.0]
    np.testing.assert_array_equal(third, floats.reshape(2, 3))


def test_read_caffemodel_legacy_v1_dims(tmp_path):
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(layer_v1("conv", "Convolution", [arr, np.ones(2, np.float32)]))
    layers = read_caffemodel(path)
    np.testing.assert_array_equal(layers["conv"][0], arr)
    assert layers["conv"][1].shape == (1, 1, 1, 2)


@pytest.mark.parametrize("cut", [1, 7, 100])
def test_read_caffemodel_refuses_truncated(tmp_path, cut):
    path = tmp_path / "t.caffemodel"
    data = layer_new("conv", "Convolution", [np.ones((4, 3, 3, 3), np.float32)])
    path.write_bytes(data[:-cut])
    with pytest.raises(CaffeModelError):
        read_caffemodel(path)


def test_read_caffemodel_refuses_non_caffe(tmp_path):
    path = tmp_path / "x.caffemodel"
    path.write_bytes(b"\x0f\xff\xff")  # wire type 7
    with pytest.raises(CaffeModelError, match="wire type"):
        read_caffemodel(path)


# --- gray VGG caffemodel ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def caffe_vgg_layers():
    return random_caffe_vgg(np.random.default_rng(0), with_fc=False)


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "v1-layers"])
def test_gray_vgg_caffemodel_matches_caffe_forward(tmp_path, caffe_vgg_layers, legacy):
    src = tmp_path / "vgg19_bn_gray_ft_iter_150000.caffemodel"
    write_caffemodel(src, caffe_vgg_layers, legacy=legacy)
    out = convert_gray_vgg_caffemodel(src, tmp_path / "out")
    assert out == tmp_path / "out" / "vgg19_bn_gray.safetensors"
    net = GrayVGG19BN(with_classifier=False)
    load_state_checked(out, net, "GrayVGG19BN")
    assert float(net.conv2_1_bn.running_var.abs().max()) == 0.0  # factor 0 -> stats 0
    l = photo_l(60, 84)
    with torch.no_grad():
        ours = net(l, outputs=CONV_OUTS)
        ref = caffe_vgg_forward(caffe_vgg_layers, l)
    assert_features_close(ours, ref, CONV_OUTS)
    manifest = read_manifest(out)
    assert manifest["network"] == "GrayVGG19BN"
    assert manifest["source_sha256"] == sha256_file(src)
    assert any("fc6" in note for note in manifest["notes"])
    assert manifest["licence"] == "none stated by the authors"


def test_gray_vgg_caffemodel_refuses_wrong_shape_and_extra_layer(tmp_path, caffe_vgg_layers):
    bad = dict(caffe_vgg_layers)
    bad["conv3_2"] = [bad["conv3_2"][0][:, :128], bad["conv3_2"][1]]
    src = tmp_path / "bad.caffemodel"
    write_caffemodel(src, bad)
    with pytest.raises(ConversionError, match="conv3_2.weight"):
        convert_gray_vgg_caffemodel(src, tmp_path)
    extra = dict(caffe_vgg_layers, conv6_1=caffe_vgg_layers["conv5_1"])
    write_caffemodel(src, extra)
    with pytest.raises(ConversionError, match="conv6_1"):
        convert_gray_vgg_caffemodel(src, tmp_path)
    missing = {k: v for k, v in caffe_vgg_layers.items() if k != "conv4_4/bn"}
    write_caffemodel(src, missing)
    with pytest.raises(ConversionError, match="conv4_4/bn"):
        convert_gray_vgg_caffemodel(src, tmp_path)
    assert not list(tmp_path.glob("*.safetensors")), "nothing written on refusal"


@pytest.mark.slow
def test_gray_vgg_caffemodel_full_size_with_fc(tmp_path):
    layers = random_caffe_vgg(np.random.default_rng(1), with_fc=True)
    src = tmp_path / "vgg19_bn_gray_ft_iter_150000.caffemodel"
    write_caffemodel(src, layers)
    out = convert_gray_vgg_caffemodel(src, tmp_path)
    net = GrayVGG19BN(with_classifier=True)
    load_state_checked(out, net, "GrayVGG19BN")
    l = photo_l(224, 224)
    names = ["relu5_1", "pool5", "fc6", "fc7", "logits"]
    with torch.no_grad():
        ours = net(l, outputs=names)
        ref = caffe_vgg_forward(layers, l)
    assert_features_close(ours, ref, names)
    assert not any("fc6" in note for note in read_manifest(out)["notes"])


# --- example_net.pth --------------------------------------------------------------------------


@pytest.mark.parametrize("with_counters", [True, False], ids=["with-nbt", "without-nbt"])
def test_colornet_pth_legacy_roundtrip(tmp_path, with_counters):
    gen = torch.Generator().manual_seed(3)
    source = random_colornet_state(gen, with_counters)
    assert len(source) == (92 if with_counters else 83)
    src = tmp_path / "example_net.pth"
    torch.save(source, src, _use_new_zipfile_serialization=False)
    assert src.read_bytes()[:2] != b"PK", "must be the legacy non-zip format"
    out = convert_colornet_pth(src, tmp_path / "w" / "colornet.safetensors")
    assert out.name == "colornet.safetensors"
    net = ExampleColorNet()
    loaded = load_state_checked(out, net, "ExampleColorNet")
    for key, value in source.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key
    if with_counters:
        return  # the forward check runs once
    l = photo_l(32, 48)
    gen_inputs = torch.Generator().manual_seed(4)
    ab = torch.randn(1, 2, 32, 48, generator=gen_inputs) * 30
    err = torch.randint(0, 256, (1, 10, 32, 48), generator=gen_inputs).float()
    x = torch.cat((l - 50, ab, (err - 127) / 2), dim=1)
    with torch.no_grad():
        ours, ref = net(x), functional_colornet(source, x)
    assert float((ref.abs() > 95).float().mean()) < 0.05, "reference must not be saturated"
    assert float(ref.std()) > 1.0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-3)


def test_colornet_pth_refuses_other_network(tmp_path):
    gen = torch.Generator().manual_seed(5)
    source = random_colornet_state(gen, False)
    source["conv9_2.weight"] = source["conv9_2.weight"][:, :64]
    src = tmp_path / "example_net.pth"
    torch.save(source, src, _use_new_zipfile_serialization=False)
    with pytest.raises(ConversionError, match="conv9_2.weight"):
        convert_colornet_pth(src, tmp_path)
    del source["conv9_2.weight"]
    torch.save(source, src)
    with pytest.raises(ConversionError, match="missing key 'conv9_2.weight'"):
        convert_colornet_pth(src, tmp_path)
    src.write_bytes(b"not a pickle at all")
    with pytest.raises(ConversionError, match="full pickle.*never loaded"):
        convert_colornet_pth(src, tmp_path)


# --- video vgg19_gray.pth ---------------------------------------------------------------------


def random_video_vgg(gen: torch.Generator, with_fc: bool) -> dict[str, torch.Tensor]:
    state = {}
    for index, (_, cin, cout) in zip(VIDEO_INDEX, VGG_PLAN, strict=True):
        std = (2 / (cin * 9)) ** 0.5
        state[f"{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * std
        state[f"{index}.bias"] = torch.randn(cout, generator=gen) * 0.05
    if with_fc:
        for index, (cin, cout) in zip((38, 40, 42), ((25088, 4096), (4096, 4096), (4096, 1000))):
            state[f"{index}.1.weight"] = torch.randn(cout, cin, generator=gen) * (2 / cin) ** 0.5
            state[f"{index}.1.bias"] = torch.randn(cout, generator=gen) * 0.05
    return state


def plain_vgg_forward(state: dict, l100: torch.Tensor) -> dict[str, torch.Tensor]:
    """vgg19_gray.py's Sequential (no BN, ceil pooling) on LLL in [0, 255]."""
    t = (l100 * 2.55).repeat(1, 3, 1, 1)
    out = {}
    for index, (name, _, _) in zip(VIDEO_INDEX, VGG_PLAN, strict=True):
        t = F.relu(F.conv2d(t, state[f"{index}.weight"], state[f"{index}.bias"], padding=1))
        out["relu" + name[4:]] = t
        if name in POOL_AFTER:
            t = F.max_pool2d(t, 2, 2, ceil_mode=True)
    out["pool5"] = t
    if "38.1.weight" in state:
        t = F.relu(F.linear(t.flatten(1), state["38.1.weight"], state["38.1.bias"]))
        out["fc6"] = t
        out["fc7"] = F.relu(F.linear(t, state["40.1.weight"], state["40.1.bias"]))
        out["logits"] = F.linear(out["fc7"], state["42.1.weight"], state["42.1.bias"])
    return out


def test_video_vgg_pth_matches_plain_forward(tmp_path):
    source = random_video_vgg(torch.Generator().manual_seed(6), with_fc=False)
    src = tmp_path / "vgg19_gray.pth"
    torch.save(source, src)
    out = convert_video_vgg_pth(src, tmp_path)
    net = GrayVGG19BN(with_classifier=False)
    load_state_checked(out, net, "GrayVGG19BN")
    l = photo_l(60, 84)
    with torch.no_grad():
        ours, ref = net(l, outputs=CONV_OUTS), plain_vgg_forward(source, l)
    assert_features_close(ours, ref, CONV_OUTS)
    notes = " ".join(read_manifest(out)["notes"])
    assert "unverified" in notes and "identity" in notes


def test_video_vgg_pth_refuses_mismatch(tmp_path):
    source = random_video_vgg(torch.Generator().manual_seed(7), with_fc=False)
    source["99.weight"] = torch.zeros(1)
    src = tmp_path / "vgg19_gray.pth"
    torch.save(source, src)
    with pytest.raises(ConversionError, match="99.weight"):
        convert_video_vgg_pth(src, tmp_path)


@pytest.mark.slow
def test_video_vgg_pth_full_size_with_fc(tmp_path):
    source = random_video_vgg(torch.Generator().manual_seed(8), with_fc=True)
    src = tmp_path / "vgg19_gray.pth"
    torch.save(source, src)
    out = convert_video_vgg_pth(src, tmp_path)
    net = GrayVGG19BN(with_classifier=True)
    load_state_checked(out, net, "GrayVGG19BN")
    l = photo_l(224, 224)
    names = ["relu5_1", "fc6", "fc7", "logits"]
    with torch.no_grad():
        ours, ref = net(l, outputs=names), plain_vgg_forward(source, l)
    assert_features_close(ours, ref, names)


# --- auto detection and the CLI ---------------------------------------------------------------


def test_convert_file_auto_and_cli(tmp_path, capsys, caffe_vgg_layers):
    import argparse

    parser = argparse.ArgumentParser(prog="deepexemplar")
    register(parser.add_subparsers(dest="command"))
    model = tmp_path / "model.bin"  # no extension: detected as a caffemodel by content
    write_caffemodel(model, caffe_vgg_layers)
    args = parser.parse_args(["convert", str(model), "-o", str(tmp_path / "o")])
    assert run_convert(args) == 0
    printed = capsys.readouterr().out
    assert "vgg19_bn_gray.safetensors" in printed and "GrayVGG19BN" in printed
    manifest = json.loads((tmp_path / "o" / "vgg19_bn_gray.manifest.json").read_text())
    assert manifest["tensors"]["conv5_4.weight"]["shape"] == [512, 512, 3, 3]

    video = tmp_path / "v.pth"
    torch.save(random_video_vgg(torch.Generator().manual_seed(9), False), video)
    assert convert_file(video, tmp_path / "v").parent == tmp_path / "v"
    assert read_manifest(tmp_path / "v" / "vgg19_bn_gray.safetensors")["notes"][0].startswith(
        "from the video release"
    )
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2)}, other)
    assert main(["convert", str(other)]) == EXIT_WEIGHTS  # errors end in cli.main
    assert "Pass --kind" in capsys.readouterr().err
    with pytest.raises(ConversionError, match="missing key 'conv1_1.0.weight'"):
        convert_file(other, tmp_path, kind="colornet")
    with pytest.raises(ValueError, match="kind: expected"):
        convert_file(other, tmp_path, kind="caffe")
    assert main(["convert", str(tmp_path / "absent.pth")]) == EXIT_INPUT
    assert "does not exist" in capsys.readouterr().err


def test_a_pickle_named_safetensors_gets_one_consistent_answer(tmp_path):
    """Issue 17 item 11: loading says "convert it", and convert does convert it (by content)."""
    from deepexemplar_core.weights import WeightsFormatError, read_safetensors_header

    named = tmp_path / "vgg19_gray.safetensors"
    torch.save(random_video_vgg(torch.Generator().manual_seed(3), False), named)
    with pytest.raises(WeightsFormatError, match=r"is a zip archive \(PyTorch's torch.save "
                                                 r"format\), not safetensors; convert it with "
                                                 f"`deepexemplar convert {named}`"):
        read_safetensors_header(named)
    out = convert_file(named, tmp_path / "out")
    assert out.name == "vgg19_bn_gray.safetensors" and read_safetensors_header(out)


RANDOM = bytes((i * 37 + 7) % 256 for i in range(1024))  # no format's magic bytes


@pytest.mark.parametrize(("name", "content", "said"), [
    ("empty.pth", b"", "is an empty file (0 bytes)"),
    ("random.pth", RANDOM, "is not a known weights format (1024 bytes starting with 07 2c 51 76 "
                           "9b c0 e5 0a)"),
    ("random.safetensors", RANDOM, "is not a known weights format"),
    ("page.caffemodel", b"<html><body>404 Not Found</body></html>\n",
     "is text, not weights (it starts with '<html><body>404 Not Found</body></html>'"),
])
def test_convert_says_what_a_file_is(tmp_path, name, content, said):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConversionError) as caught:
        convert_file(path, tmp_path / "out")
    message = str(caught.value)
    assert said in message and "copy or download it again" in message
    assert "pickle)" not in message.split("(a .pth")[0] and "EOFError" not in message
