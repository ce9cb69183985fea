"""ExampleColorNet layout, the 13-channel encoding, A.3 sizing and PaperColorizer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from deepexemplar_core.colorizers import (
    ExampleColorNet,
    PaperColorizer,
    colornet_working_size,
    encode_colornet_input,
)
from deepexemplar_core.structures import Colorizer, ColorizerInputs, Similarity


def make_inputs(h: int, w: int, seed: int = 0) -> ColorizerInputs:
    gen = torch.Generator().manual_seed(seed)
    err_tr = torch.randint(0, 256, (1, 5, h, w), generator=gen, dtype=torch.uint8)
    err_rt = torch.randint(0, 256, (1, 5, h, w), generator=gen, dtype=torch.uint8)
    sim = Similarity(1 - err_tr / 255, 1 - err_rt / 255, err_tr, err_rt,
                     ("relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1"))  # fmt: skip
    return ColorizerInputs(
        target_l=torch.rand(1, 1, h, w, generator=gen) * 100,
        warped_rgb8=torch.zeros(1, 3, h, w, dtype=torch.uint8),
        warped_ab=(torch.rand(1, 2, h, w, generator=gen) - 0.5) * 160,
        similarity=sim,
        confidence=torch.ones(1, 1, h, w),
        reference_lab=torch.zeros(1, 3, h, w),
    )


class Recorder(nn.Module):
    """A stand-in net: records its input and returns two of its channels (tanh-free)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return x[:, 1:3] * self.scale


def test_state_dict_matches_authors_keys():
    with torch.device("meta"):
        state = ExampleColorNet().state_dict()
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(keys) == 83 and len(state) == 92
    assert keys[:3] == ["conv1_1.0.weight", "conv1_1.0.bias", "conv1_1.2.weight"]
    assert keys[-2:] == ["conv10_ab.weight", "conv10_ab.bias"]
    assert tuple(state["conv8_1.weight"].shape) == (512, 256, 4, 4)
    assert tuple(state["conv1_2norm_ss.weight"].shape) == (64, 1, 1, 1)
    assert "conv4_3norm.weight" not in state  # BN without affine parameters
    n = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert n == 34_071_426  # original-code-facts.md E.1


def test_forward_shape_range_and_dilation():
    net = ExampleColorNet()
    assert net.conv5_1.dilation == (2, 2) and net.conv7_1.dilation == (1, 1)
    with torch.no_grad():
        ab = net(torch.randn(2, 13, 24, 40) * 30)
    assert ab.shape == (2, 2, 24, 40) and float(ab.abs().max()) <= 100
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 13, 20, 24))
    with pytest.raises(ValueError, match=r"x: expected \(B, 13, H, W\)"):
        net(torch.zeros(1, 12, 16, 16))


def test_encode_colornet_input_known_values():
    l = torch.tensor([0.0, 50.0, 100.0]).view(1, 1, 1, 3)
    ab = torch.tensor([[-80.0, 0.0, 90.0], [5.0, -5.0, 127.0]]).view(1, 2, 1, 3)
    e_tr = torch.tensor([[0, 127, 255]] * 5, dtype=torch.uint8).view(1, 5, 1, 3)
    e_rt = torch.stack([torch.full((1, 3), v, dtype=torch.uint8) for v in (1, 2, 3, 4, 5)])[None]
    x = encode_colornet_input(l, ab, e_tr, e_rt)
    assert x.shape == (1, 13, 1, 3) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0, 0], torch.tensor([-50.0, 0.0, 50.0]))
    torch.testing.assert_close(x[0, 1:3], ab[0])
    torch.testing.assert_close(x[0, 3, 0], torch.tensor([-63.5, 0.0, 64.0]))
    torch.testing.assert_close(x[0, 8:13, 0, 0], torch.tensor([-63.0, -62.5, -62.0, -61.5, -61.0]))


def test_encode_colornet_input_errors():
    l, ab = torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 4)
    e = torch.zeros(1, 5, 4, 4, dtype=torch.uint8)
    with pytest.raises(TypeError, match="err_tr: expected uint8"):
        encode_colornet_input(l, ab, e.float(), e)
    with pytest.raises(ValueError, match=r"err_rt: expected \(1, 5, 4, 4\)"):
        encode_colornet_input(l, ab, e, e[:, :4])
    with pytest.raises(ValueError, match="warped_ab"):
        encode_colornet_input(l, ab[:, :1], e, e)


def test_working_size():
    assert colornet_working_size(256, 341) == (256, 336)
    assert colornet_working_size(8, 15) == (8, 8)
    with pytest.raises(ValueError, match=">= 8"):
        colornet_working_size(7, 300)


def test_paper_colorizer_sizing_matches_cv2():
    """A.3: bilinear to 256x336 (cv2.resize), net, bicubic back to 256x341 (cv2.INTER_CUBIC)."""
    inputs = make_inputs(256, 341)
    recorder = Recorder()
    colorizer = PaperColorizer(recorder)
    assert isinstance(colorizer, Colorizer) and colorizer.name == "paper-colornet"
    ab = colorizer(inputs)
    (seen,) = recorder.seen
    assert seen.shape == (1, 13, 256, 336) and ab.shape == (1, 2, 256, 341)
    x = encode_colornet_input(inputs.target_l, inputs.warped_ab, inputs.similarity.err_tr,
                              inputs.similarity.err_rt)[0].permute(1, 2, 0).numpy()  # fmt: skip
    small = np.stack([cv2.resize(x[..., c], (336, 256)) for c in range(13)], axis=-1)
    # cv2 rounds its interpolation weights: differences of a few 1e-3 on values up to 128
    ours_small = seen[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours_small, small, rtol=0, atol=1e-2)
    assert float(np.abs(ours_small - small).mean()) < 1e-3
    back = cv2.resize(small[..., 1:3], (341, 256), interpolation=cv2.INTER_CUBIC)
    ours_back = ab[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours_back, back, rtol=0, atol=1e-2)
    assert float(np.abs(ours_back - back).mean()) < 1e-3


def test_paper_colorizer_no_resize_when_multiple_of_8():
    inputs = make_inputs(16, 24, seed=1)
    recorder = Recorder()
    ab = PaperColorizer(recorder)(inputs)
    torch.testing.assert_close(ab, inputs.warped_ab)


def test_paper_colorizer_runs_the_real_net():
    inputs = make_inputs(20, 27, seed=2)
    net = ExampleColorNet()
    ab = PaperColorizer(net)(inputs)
    assert ab.shape == (1, 2, 20, 27) and ab.dtype == torch.float32 and not ab.requires_grad
    x = encode_colornet_input(inputs.target_l, inputs.warped_ab, inputs.similarity.err_tr,
                              inputs.similarity.err_rt)  # fmt: skip
    with torch.no_grad():
        direct = net(torch.nn.functional.interpolate(x, (16, 24), mode="bilinear"))
        direct = torch.nn.functional.interpolate(direct, (20, 27), mode="bicubic")
    torch.testing.assert_close(ab, direct)
    with pytest.raises(TypeError, match="ColorizerInputs"):
        PaperColorizer(net)(x)
