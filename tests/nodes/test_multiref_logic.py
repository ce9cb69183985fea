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
    empty = logic.regions_to_core(torch.stack([mask[0], torch.zeros_like(mask[0])]), 2, "n")
    with pytest.raises(logic.NodeInputError, match=r"Dense Match: 'regions' \(mask 1 of the "
                                                   r"batch\) is empty.*Load Image gives an "
                                                   r"empty mask.*MaskEditor"):
        logic.run_match(lite, logic.image_to_core(target, "target", "n"),
                        logic.reference_to_core(references, "n"),
                        logic.make_config("DenseMatch", SIZE), "DenseMatch", regions=empty)
    with pytest.raises(logic.NodeInputError, match=r"masks\[0\]: a 8x8 mask does not fit"):
        logic.run_colorize(lite, logic.image_to_core(target, "target", "n"),
                           logic.reference_to_core(references, "n"),
                           logic.make_config("ExemplarColorize", SIZE), "n",
                           regions=logic.regions_to_core(torch.ones(1, 8, 8), 2, "n"))


#: Frame height of the clip tests (and their working size): small, the clip has nine frames.
CLIP = 64


@pytest.fixture(scope="module")
def halves_clip(logic, halves):
    """Nine frames panning across the two-photo target (more than one chunk of frames)."""
    from pack_import import import_pack_module

    example_clip_frames = import_pack_module("nodes.video_logic").example_clip_frames
    target, _ = halves
    frames = torch.stack(list(example_clip_frames(target[0].movedim(-1, 0), count=9,
                                                  size=(CLIP, 2 * CLIP - 16))))
    assert frames.shape[0] > logic.FRAMES_PER_CHUNK
    return frames.movedim(1, -1)


def _regions(width: int, height: int = SIZE) -> torch.Tensor:
    """One region: the first reference (the astronaut) only in the right quarter."""
    mask = torch.zeros(1, height, width)
    mask[..., -width // 4:] = 1.0
    return mask


@pytest.mark.parametrize("with_regions", [False, True])
def test_dense_match_of_a_reference_batch_gives_colorize_pixels(logic, lite, halves, halves_clip,
                                                                with_regions):
    """DenseMatch -> Colorize with a reference batch gives the pixels and the choice maps of
    Colorize given the batch alone, bit for bit, on a clip of several chunks (and through
    Similarity Maps, up to rounding, as for one reference)."""
    _, references = halves
    frames = logic.image_to_core(halves_clip, "target", "n")
    refs = logic.reference_to_core(references, "n")
    regions = (logic.regions_to_core(_regions(frames.shape[-1], CLIP), 2, "n") if with_regions
               else None)
    config = logic.make_config("n", CLIP, frames=frames.shape[0])
    alone_choices, staged_choices, reused_choices = [], [], []
    alone = logic.run_colorize(lite, frames, refs, config, "n", regions=regions,
                               choices=alone_choices)
    match = logic.MatchHandle(logic.run_match(lite, frames, refs, config, "DenseMatch",
                                              regions=regions), None)
    assert len(match.match) == 2
    staged = logic.run_colorize(lite, frames, refs, config, "n", match=match,
                                choices=staged_choices)
    similarity = logic.SimilarityHandle(logic.run_similarity(lite, match.match, "n"), match)
    reused = logic.run_colorize(lite, frames, refs, config, "n", similarity=similarity,
                                regions=regions, choices=reused_choices)
    assert len(alone) == len(staged) == len(reused) == frames.shape[0]
    for one, two in zip(alone + alone_choices, staged + staged_choices, strict=True):
        assert torch.equal(one, two)
    # the maps computed once for the whole clip (not per chunk): the same up to rounding
    for one, three in zip(alone, reused, strict=True):
        torch.testing.assert_close(one, three)
    for one, three in zip(alone_choices, reused_choices, strict=True):
        assert float((one == three).all(0).float().mean()) > 0.999
    # the regions decided: no pixel of the left half is the first reference's
    red = torch.tensor([0.90, 0.10, 0.29])
    first = [bool(((c.movedim(0, -1) - red).abs().sum(-1) < 1e-3)[:, : CLIP // 2].any())
             for c in alone_choices]
    assert not any(first) if with_regions else any(first)


def test_similarity_maps_of_a_reference_batch_show_the_fused_maps(logic, lite, halves):
    target, references = halves
    core_t = logic.image_to_core(target, "target", "n")
    config = logic.make_config("n", SIZE)
    several = logic.run_similarity(lite, logic.run_match(
        lite, core_t, logic.reference_to_core(references, "n"), config, "n"), "n")
    one = logic.run_similarity(lite, logic.run_match(
        lite, core_t, logic.reference_to_core(references[:1], "n"), config, "n"), "n")
    assert logic.similarity_report(one).startswith("1 reference; mean confidence")
    report = logic.similarity_report(several)
    assert report.startswith("2 references (fused maps shown)"), report
    shares = [int(part.split(": ")[1].split(" %")[0]) for part in report.split("; ")[1]
              .removeprefix("share of the pixels per reference ").split(", ")]
    assert len(shares) == 2 and abs(sum(shares) - 100) <= 1 and min(shares) >= 30, report
    # the previews show the fused stage: each half warped from its own photo
    warped = logic.warped_preview(several)[0]
    half = warped.shape[1] // 2
    assert logic.similarity_grid(several).shape == logic.similarity_grid(one).shape
    assert logic.confidence_mask(several, (SIZE, 2 * SIZE)).shape == (1, SIZE, 2 * SIZE)
    own = logic.warped_preview(one)[0]  # the astronaut alone, on the coffee half too
    assert float((warped[:, half:] - own[:, half:]).abs().mean()) > 0.05


def test_a_correspondence_of_other_references_or_regions_is_refused(logic, lite, halves):
    target, references = halves
    core_t = logic.image_to_core(target, "target", "n")
    refs = logic.reference_to_core(references, "n")
    config = logic.make_config("n", SIZE)
    match = logic.MatchHandle(logic.run_match(lite, core_t, refs, config, "DenseMatch"), None)
    with pytest.raises(logic.NodeInputError, match=r"Colorize: reference: 1 image\(s\), but the "
                                                   r"match was computed with 2.*same reference"):
        logic.run_colorize(lite, core_t, refs[:1], config, "ExemplarColorize", match=match)
    regions = logic.regions_to_core(_regions(2 * SIZE), 2, "n")
    with pytest.raises(logic.NodeInputError, match=r"regions: region 0 differs.*connect "
                                                   r"'regions' to Dense Match"):
        logic.run_colorize(lite, core_t, refs, config, "ExemplarColorize", match=match,
                           regions=regions)
    one = logic.MatchHandle(logic.run_match(lite, core_t, refs[:1], config, "n"), None)
    with pytest.raises(logic.NodeInputError, match=r"reference: 2 image\(s\).*computed with 1"):
        logic.run_colorize(lite, core_t, refs, config, "ExemplarColorize", match=one)
    other = logic.SimilarityHandle(logic.run_similarity(lite, one.match, "n"), one)
    with pytest.raises(logic.NodeInputError, match=r"similarity: computed for another"):
        logic.run_colorize(lite, core_t, refs, config, "ExemplarColorize", match=match,
                           similarity=logic.SimilarityHandle(other.result, match))
