"""The nodes' logic with several references: a reference batch, region masks, the choice map."""

from __future__ import annotations

import pytest
import torch

SIZE = 96


@pytest.fixture(scope="module")
def lite(logic):
    backbone = logic.load_backbone(logic.BUILTIN_LITE, None, allow_download=False, search_dirs=())
    colornet = logic.load_colornet(logic.NO_COLORNET, None, allow_download=False, search_dirs=())
    return logic.assemble_models(backbone, colornet, "cpu", "test")


def _photo(name: str) -> torch.Tensor:
    """``(96, 96, 3)`` centre square of a scikit-image photo, IMAGE layout."""
    from skimage import data

    rgb = torch.from_numpy(getattr(data, name)().copy()).float().movedim(-1, 0)[None] / 255
    side = min(rgb.shape[-2:])
    top, left = (rgb.shape[-2] - side) // 2, (rgb.shape[-1] - side) // 2
    square = rgb[..., top:top + side, left:left + side]
    return torch.nn.functional.interpolate(square, size=(SIZE, SIZE), mode="area")[0].movedim(0, -1)


@pytest.fixture(scope="module")
def halves():
    """Gray target: two photos side by side; references: each photo mirrored, as a batch."""
    a, b = _photo("astronaut"), _photo("coffee")
    target = torch.cat([a, b], dim=1).mean(-1, keepdim=True).expand(-1, -1, 3)[None]
    return target, torch.stack([a.flip(1), b.flip(1)])


def test_a_reference_batch_colours_each_half_and_the_choice_map_says_so(logic, lite, halves):
    target, references = halves
    choices = []
    images = logic.run_colorize(lite, logic.image_to_core(target, "target", "n"),
                                logic.reference_to_core(references, "n"),
                                logic.make_config("ExemplarColorize", SIZE), "n", choices=choices)
    choice = logic.images_to_comfy(choices, "cpu")
    assert logic.images_to_comfy(images, "cpu").shape == choice.shape == target.shape
    red, green = torch.tensor([0.90, 0.10, 0.29]), torch.tensor([0.24, 0.71, 0.29])
    left, right = choice[0, :, : SIZE - 16], choice[0, :, SIZE + 16:]
    assert float(((left - red).abs().sum(-1) < 1e-3).float().mean()) >= 0.9
    assert float(((right - green).abs().sum(-1) < 1e-3).float().mean()) >= 0.9


def test_regions_decide_and_bad_regions_are_phrased(logic, lite, halves):
    target, references = halves
    mask = torch.zeros(1, SIZE, 2 * SIZE)
    mask[..., -SIZE // 2:] = 1.0  # the first reference (the astronaut) only in the right quarter
    choices = []
    logic.run_colorize(lite, logic.image_to_core(target, "target", "n"),
                       logic.reference_to_core(references, "n"),
                       logic.make_config("ExemplarColorize", SIZE), "n",
                       regions=logic.regions_to_core(mask, 2, "n"), choices=choices)
    red = torch.tensor([0.90, 0.10, 0.29])
    is_first = (choices[0].movedim(0, -1) - red).abs().sum(-1) < 1e-3
    assert bool(is_first[:, -SIZE // 2 + 8:].all()) and not bool(is_first[:, : SIZE].any())
    with pytest.raises(logic.NodeInputError, match=r"Colorize: 'regions' holds 3 masks for 2 "
                                                   r"reference.*one mask per reference"):
        logic.regions_to_core(torch.ones(3, 8, 8), 2, "ExemplarColorize")
    with pytest.raises(logic.NodeInputError, match=r"masks\[0\]: a 8x8 mask does not fit"):
        logic.run_colorize(lite, logic.image_to_core(target, "target", "n"),
                           logic.reference_to_core(references, "n"),
                           logic.make_config("ExemplarColorize", SIZE), "n",
                           regions=logic.regions_to_core(torch.ones(1, 8, 8), 2, "n"))
