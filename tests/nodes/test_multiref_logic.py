"""The nodes' logic with several references: a reference batch, region masks, the choice map."""

from __future__ import annotations

import itertools

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


# ----------------------------------------------------------------------------- a film


@pytest.fixture(scope="module")
def two_shots():
    """A gray 8-frame clip (4 frames panning the astronaut, then 4 the coffee) in IMAGE layout,
    and the two photos mirrored as the reference batch (1 = astronaut, 2 = coffee)."""
    from skimage import data

    frames = []
    for name in ("astronaut", "coffee"):
        rgb = torch.from_numpy(getattr(data, name)().copy()).float().movedim(-1, 0)[None] / 255
        big = torch.nn.functional.interpolate(rgb, size=(88, 112), mode="area")[0]
        for j in range(4):
            frames.append(big[:, 2 * j:2 * j + 80, 3 * j:3 * j + 96].mean(0, keepdim=True))
    clip = torch.stack(frames).expand(-1, 3, -1, -1).movedim(1, -1)
    return clip, torch.stack([_photo("astronaut").flip(1), _photo("coffee").flip(1)])


def _run(logic, lite, clip, references, keyframes=None, choices=None, report=None):
    node = "ExemplarColorize"
    target = logic.image_to_core(clip, "target", node)
    reference = logic.reference_to_core(references, node)
    plan = logic.keyframe_plan(keyframes, target.shape[0], reference.shape[0], node)
    config = logic.make_config(node, SIZE, frames=target.shape[0])
    return torch.stack(logic.run_colorize(lite, target, reference, config, node, plan=plan,
                                          choices=choices, report=report))


def _share(choices, colour) -> list[float]:
    """Per frame, the share of the choice map's pixels of ``colour``."""
    return [float(((c.movedim(0, -1) - colour).abs().sum(-1) < 1e-3).float().mean())
            for c in choices]


RED, GREEN = torch.tensor([0.90, 0.10, 0.29]), torch.tensor([0.24, 0.71, 0.29])


def test_a_reference_batch_on_a_two_shot_clip_gives_each_shot_its_reference(logic, lite, two_shots):
    """Several references with a frame batch (motion mode): per pixel the best match, so each
    shot takes its own photo's reference."""
    clip, references = two_shots
    choices = []
    _run(logic, lite, clip, references, choices=choices)
    red, green = _share(choices, RED), _share(choices, GREEN)
    assert min(red[:4]) >= 0.8 and min(green[4:]) >= 0.8, (red, green)


def test_a_keyframe_schedule_colours_each_segment_with_its_references(logic, lite, two_shots):
    clip, references = two_shots
    choices, reports = [], []
    scheduled = _run(logic, lite, clip, references, "0=1, 4=2", choices,
                     report=lambda done, total: reports.append((done, total)))
    assert _share(choices, RED)[:4] == [1.0] * 4 and _share(choices, GREEN)[4:] == [1.0] * 4
    assert reports[-1] == (800, 800) and all(a[0] <= b[0] for a, b in itertools.pairwise(reports))
    # each segment is exactly that reference alone on those frames (matching restarts at 4)
    alone = [_run(logic, lite, clip[:4], references[:1]), _run(logic, lite, clip[4:],
                                                                references[1:])]
    assert torch.equal(scheduled, torch.cat(alone))
    # a set from frame 4 on: both references there, the choice names them by batch position
    choices = []
    _run(logic, lite, clip, references, "0=1,4=1,4=2", choices)
    assert _share(choices, RED)[:4] == [1.0] * 4 and min(_share(choices, GREEN)[4:]) >= 0.8


def test_one_reference_through_a_schedule_is_todays_path(logic, lite, two_shots):
    clip, references = two_shots
    today = _run(logic, lite, clip, references[:1])
    assert torch.equal(_run(logic, lite, clip, references[:1], "0=1"), today)
    assert torch.equal(_run(logic, lite, clip, references[:1], "  "), today)


def test_keyframe_mistakes_are_phrased_and_entries_past_the_end_dropped(logic, lite, two_shots,
                                                                       caplog):
    node = "ExemplarColorize"
    cases = {"0=1,4=2,2=1": r"'keyframes': frame 2 comes after frame 4; list the entries in "
                            r"frame order\. Fix: write FRAME=REFERENCE",
             "0=1,4=3": r"frame 4 names reference '3', but the reference batch holds 2 "
                        r"image\(s\), numbered 1\.\.2\. Fix: batch more references",
             "2=1": r"frames 0\.\.1 have no reference; start the schedule at frame 0",
             "0=a.png": r"frame 0 names reference 'a\.png'",
             "0:1": r"expected FRAME=REFERENCE entries such as \"0=1,120=2\", got '0:1'",
             "9=1": r"no entry within the clip \(it has 8 frames\)"}
    for text, message in cases.items():
        with pytest.raises(logic.NodeInputError, match=r"^DeepExemplar Colorize: .*" + message):
            logic.keyframe_plan(text, 8, 2, node)
    with caplog.at_level("WARNING"):
        plan = logic.keyframe_plan("0=2,8=1,20=1", 8, 2, node)
    assert plan.schedule == {0: [1]}
    assert "frame 8 is past the clip's end (it has 8 frames); 1 is not used" in caplog.text
    clip, references = two_shots
    with pytest.raises(logic.NodeInputError, match="'keyframes' changes the references over "
                                                   "the frames.*disconnect 'correspondence'"):
        logic.run_colorize(lite, logic.image_to_core(clip, "target", node),
                           logic.reference_to_core(references[:1], node),
                           logic.make_config(node, SIZE, frames=8), node, match=object(),
                           plan=plan)


# ----------------------------------------------------------------------------- probed mistakes


def test_a_gray_reference_left_out_keeps_the_batch_numbering(logic, lite, halves):
    """A gray image first in the reference batch is left out: the choice map and the report
    still name the colour one as reference 2 (they said 1), and Dense Match -> Colorize with
    the same batch runs (it was refused as 'other references')."""
    target, references = halves
    batch = torch.stack([references[0].mean(-1, keepdim=True).expand(-1, -1, 3), references[1]])
    core_t, refs = (logic.image_to_core(target, "target", "n"),
                    logic.reference_to_core(batch, "n"))
    config = logic.make_config("n", SIZE)
    choices, notes = [], []
    alone = logic.run_colorize(lite, core_t, refs, config, "n", choices=choices, notes=notes)
    assert _share(choices, GREEN) == [1.0]
    # the page shows it on the node (ComfyUI's text preview), not only the console
    assert notes == [("reference 1 of the batch has no colour (R, G and B agree): left out, the "
                      "others colour the target.")]
    match = logic.MatchHandle(logic.run_match(lite, core_t, refs, config, "DenseMatch"), None)
    assert logic.left_out_notes(match.match) == notes
    staged_choices = []
    staged = logic.run_colorize(lite, core_t, refs, config, "ExemplarColorize", match=match,
                                choices=staged_choices)
    assert torch.equal(staged[0], alone[0]) and _share(staged_choices, GREEN) == [1.0]
    scheduled, plan_notes = [], []
    plan = logic.keyframe_plan("0=2,0=1,5=1", 1, 2, "ExemplarColorize", plan_notes)
    logic.run_colorize(lite, core_t, refs, config, "n", plan=plan, choices=scheduled,
                       notes=plan_notes)
    assert _share(scheduled, GREEN) == [1.0]
    assert plan_notes == [("'keyframes': frame 5 is past the clip's end (it has 1 frames); 1 "
                           "is not used."), *notes]
    report = logic.similarity_report(logic.run_similarity(lite, match.match, "n"), match.match)
    assert report.startswith("1 reference (fused maps shown); share of the pixels per "
                             "reference 2: 100 %") and report.endswith("left out (no colour): 1")


def test_a_region_of_another_aspect_is_refused_by_the_node_that_takes_it(logic):
    """Dense Match refused such a mask only later, in Similarity Maps ('masks[0]: ...', with a
    fix about that node's inputs, which has no 'regions')."""
    with pytest.raises(logic.NodeInputError, match=r"^DeepExemplar Dense Match: 'regions' \(mask "
                                                   r"0 of the batch\): a 30x30 mask does not "
                                                   r"fit a 192x96 target.*Fix: .*MaskEditor"):
        logic.regions_to_core(torch.ones(2, 30, 30), 2, "DenseMatch", (96, 192))
    good = logic.regions_to_core(torch.ones(1, 48, 96), 2, "DenseMatch", (96, 192))
    assert [m.shape for m in good] == [(48, 96)]  # the same aspect at another size is fine


@pytest.mark.parametrize("text", ["0=1;4=2", "0=1\n4=2", "0=a.png", "0=1.5", "0=\u00b2"])
def test_a_keyframe_reference_that_is_no_number_says_so(logic, text):
    with pytest.raises(logic.NodeInputError, match=r"names reference '.*', which is not a "
                                                   r"number \(references are numbered 1\.\.2\)"
                                                   r".*separated by commas"):
        logic.keyframe_plan(text, 8, 2, "ExemplarColorize")


def test_a_mask_with_nothing_painted_lets_the_references_choose_with_a_note(logic):
    """Load Image gives a 64x64 all-zero MASK for a photo without a painted region (template 7
    on any new photo, or batch-run on jpg targets): no region, not an error."""
    notes = []
    assert logic.regions_to_core(torch.zeros(1, 64, 64), 2, "DenseMatch", (96, 192),
                                 notes) is None
    assert len(notes) == 1 and notes[0].startswith("Nothing is painted in 'regions'")
    painted = torch.zeros(2, 48, 96)
    painted[0, :, :10] = 1.0  # one painted, one empty: still the core's mistake to name
    assert len(logic.regions_to_core(painted, 2, "DenseMatch", (96, 192), notes)) == 2


def test_a_reference_named_twice_at_a_frame_is_used_once_and_noted(logic):
    notes = []
    plan = logic.keyframe_plan("0=1,0=1,0=2,4=2", 8, 2, "ExemplarColorize", notes)
    assert plan.schedule == {0: [0, 1], 4: [1]}
    assert notes == ["'keyframes': frame 0 names reference 1 twice; it is used once."]


@pytest.mark.parametrize("size", [32, 64])
def test_regions_work_at_the_smallest_sizes(logic, lite, halves, size):
    """A working size is floored to a multiple of 8, which changes a wide photo's aspect ratio
    at small sizes (375x192 -> 56x32 at 32, template 7): its own mask was refused as 'another
    aspect ratio'."""
    target, references = halves
    target = torch.nn.functional.interpolate(target.movedim(-1, 1), size=(192, 375),
                                             mode="area").movedim(1, -1)
    mask = _regions(375, 192)
    node = "ExemplarColorize"
    choices = []
    images = logic.run_colorize(lite, logic.image_to_core(target, "target", node),
                                logic.reference_to_core(references, node),
                                logic.make_config(node, size), node, choices=choices,
                                regions=logic.regions_to_core(mask, 2, node, (192, 375)))
    assert images[0].shape == (3, 192, 375)
    # the region decided: the first reference colours the right quarter (but for the soft seam
    # at its edge), nothing on the left half
    first = (choices[0].movedim(0, -1) - RED).abs().sum(-1) < 1e-3
    assert float(first[:, -375 // 4:].float().mean()) > 0.85
    assert not bool(first[:, : 375 // 2].any())


@pytest.mark.parametrize(("keyframes", "message"), [
    ("0=1,4=2", (r"from frame 4 on, reference 2 of the batch colours the frames, but it has "
                 r"no colour")),
    ("0=2,0=2,4=1", (r"from frame 0 on, reference 2 of the batch colours the frames, but it "
                     r"has no colour"))])
def test_a_keyframe_of_gray_references_only_is_refused_before_any_work(logic, lite, two_shots,
                                                                       keyframes, message):
    """The core refused it only when the clip reached that frame (a long clip's work lost),
    as 'reference: has no colour', naming no frame and no reference of the batch."""
    clip, references = two_shots
    references = torch.stack([references[0], references[1].mean(-1, keepdim=True)
                              .expand(-1, -1, 3)])
    progress = []
    with pytest.raises(logic.NodeInputError, match=r"^DeepExemplar Colorize: 'keyframes': "
                                                   + message + r".*Fix: name a colour reference"):
        _run(logic, lite, clip, references, keyframes, report=lambda *a: progress.append(a))
    assert progress == []
    choices = []  # a set with a colour reference beside the gray one is fine
    _run(logic, lite, clip, references, "0=2,0=1", choices=choices)
    assert _share(choices, RED) == [1.0] * 8


def test_the_same_regions_on_both_nodes_pass_when_a_gray_reference_was_left_out(logic, lite,
                                                                               halves):
    """Dense Match and Colorize given the same batch (a gray image first, with its region) and
    the same regions: Colorize refused them as 'region 0 differs from the one the match was
    fused with' (that region was left out with its gray reference)."""
    target, references = halves
    batch = torch.stack([references[0].mean(-1, keepdim=True).expand(-1, -1, 3), references[1]])
    core_t, refs = (logic.image_to_core(target, "target", "n"),
                    logic.reference_to_core(batch, "n"))
    masks = torch.zeros(2, SIZE, 2 * SIZE)
    masks[0, :, SIZE:], masks[1, :, :SIZE] = 1.0, 1.0
    config = logic.make_config("n", SIZE)
    for regions in (masks[:1], masks):
        own = logic.regions_to_core(regions, 2, "n", (SIZE, 2 * SIZE))
        match = logic.MatchHandle(logic.run_match(lite, core_t, refs, config, "DenseMatch",
                                                  regions=own), None)
        staged = logic.run_colorize(lite, core_t, refs, config, "ExemplarColorize", match=match,
                                    regions=own)
        alone = logic.run_colorize(lite, core_t, refs, config, "n", regions=own)
        assert torch.equal(staged[0], alone[0])
    other = logic.regions_to_core(masks.flip(0), 2, "n", (SIZE, 2 * SIZE))
    with pytest.raises(logic.NodeInputError, match=r"region 1 differs"):
        logic.run_colorize(lite, core_t, refs, config, "ExemplarColorize", match=match,
                           regions=other)
