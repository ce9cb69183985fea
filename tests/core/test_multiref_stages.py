"""Several references, staged: ``match_images`` -> ``compute_similarity`` -> ``colorize(match=)``
give the pixels of ``colorize`` with the references (what the ComfyUI nodes' two graphs rely on)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepexemplar_core.inputs import PrecomputedError
from deepexemplar_core.models import load_models
from deepexemplar_core.pipeline import (
    ColorizeConfig,
    MatchResult,
    SetMatchResult,
    SetSimilarityResult,
    check_match_references,
    colorize,
    compute_similarity,
    match_images,
    prepare_references,
)

CONFIG = ColorizeConfig(size=64)


@pytest.fixture(scope="module")
def lite():
    return load_models("lite")


@pytest.fixture(scope="module")
def scene(astronaut_rgb, coffee_rgb):
    """A gray target of two photos side by side, the two photos mirrored as references, and a
    region (the right quarter) for the first."""
    def square(rgb):
        side = min(rgb.shape[-2:])
        return F.interpolate(rgb[None, :, :side, :side], size=(64, 64), mode="area")[0]

    left, right = square(astronaut_rgb), square(coffee_rgb)
    region = torch.zeros(64, 128)
    region[:, 96:] = 1.0
    return torch.cat([left, right], 2).mean(0, keepdim=True), [left.flip(-1), right.flip(-1)], region


@pytest.mark.parametrize("with_region", [False, True])
def test_staged_references_give_the_pixels_of_the_whole_chain(lite, scene, with_region):
    target, references, region = scene
    refs = prepare_references(lite, references, CONFIG, masks=[region] if with_region else None)
    direct = colorize(target, refs, lite, CONFIG)
    match = match_images(lite, target, refs, CONFIG)
    assert isinstance(match, SetMatchResult) and len(match) == 2
    similarity = compute_similarity(match)
    assert isinstance(similarity, SetSimilarityResult) and len(similarity.stages) == 2
    for staged in (colorize(target, None, lite, CONFIG, match=match),
                   colorize(target, None, lite, CONFIG, match=match, similarity=similarity)):
        assert torch.equal(staged.images[0], direct.images[0])
        assert torch.equal(staged.intermediates[0].choice, direct.intermediates[0].choice)
    choice = direct.intermediates[0].choice[0, 0]
    assert bool((choice[:, :40] == 1).all()) == with_region  # the region keeps it off the left
    # one reference given as a list is today's path and result type
    assert isinstance(match_images(lite, target, references[:1], CONFIG), MatchResult)


def test_staged_stages_of_other_references_or_regions_are_refused(lite, scene):
    target, references, region = scene
    match = match_images(lite, target, references, CONFIG)
    one = match_images(lite, target, references[0], CONFIG)
    with pytest.raises(PrecomputedError, match="computed for another correspondence") as caught:
        colorize(target, None, lite, CONFIG, match=match, similarity=compute_similarity(one))
    assert caught.value.kind == "similarity"
    check_match_references(match, 2)
    check_match_references(match, 2, [None, None])
    for call, kind in ((lambda: check_match_references(match, 1), "references"),
                       (lambda: check_match_references(one, 2), "references"),
                       (lambda: check_match_references(match, 2, [region]), "regions"),
                       (lambda: check_match_references(one, 1, [region]), "regions")):
        with pytest.raises(PrecomputedError) as caught:
            call()
        assert caught.value.kind == kind
    regioned = match_images(lite, target, prepare_references(lite, references, CONFIG,
                                                             masks=[region]), CONFIG)
    check_match_references(regioned, 2, [region.clone()])
    check_match_references(regioned, 2)  # unconnected: the match's own regions
