"""The pack's node logic without ComfyUI: conversions, errors, previews, stages on real photos."""

from __future__ import annotations

import pytest
import torch

SIZE = 64  # working short side for the CPU tests


@pytest.fixture(scope="module")
def lite(logic):
    """The built-in backbone and the weights-free colorizer as core Models on the CPU."""
    backbone = logic.load_backbone(logic.BUILTIN_LITE, None, allow_download=False, search_dirs=())
    colornet = logic.load_colornet(logic.NO_COLORNET, None, allow_download=False, search_dirs=())
    return backbone, colornet, logic.assemble_models(backbone, colornet, "cpu", "test")


def _chroma(image_bhwc: torch.Tensor) -> float:
    """Mean spread between the RGB channels (0 for a gray image)."""
    return float((image_bhwc.amax(-1) - image_bhwc.amin(-1)).mean())


# ----------------------------------------------------------------------------- conversions


def test_image_to_core_layout_and_values(logic):
    image = torch.rand(2, 40, 48, 3)
    core = logic.image_to_core(image, "target", "DenseMatch")
    assert core.shape == (2, 3, 40, 48)
    torch.testing.assert_close(core[1, 2], image[1, :, :, 2])


def test_images_to_comfy_inverts_image_to_core(logic):
    image = torch.rand(3, 33, 35, 3)
    back = logic.images_to_comfy(list(logic.image_to_core(image, "t", "n")), "cpu")
    torch.testing.assert_close(back, image)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (torch.rand(0, 64, 64, 3), r"empty batch"),
        (torch.rand(64, 64), r"expected an IMAGE \(B, H, W, C\)"),
        ("not an image", r"expected an IMAGE tensor, got str"),
    ],
)
def test_image_to_core_errors_name_node_and_fix(logic, image, match):
    with pytest.raises(logic.NodeInputError, match=match) as info:
        logic.image_to_core(image, "target", "ExemplarColorize")
    assert str(info.value).startswith("DeepExemplar Colorize:")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("channels", "match"),
    [
        (4, r"DeepExemplar Colorize: 'target' \(image 0 of the batch\) has 4 channels.*"
            r"Split Image with Alpha"),
        (2, r"'target' \(image 0 of the batch\) expected 1 or 3 channels"),
    ],
)
def test_the_core_channel_policy_is_phrased_for_the_node(logic, lite, cat_pair, channels, match):
    """One RGBA policy: the core refuses (checked once), the node names its input and fix."""
    _, reference = cat_pair
    target = logic.image_to_core(torch.rand(2, 64, 64, channels), "target", "ExemplarColorize")
    with pytest.raises(logic.NodeInputError, match=match):
        logic.run_colorize(lite[2], target, logic.reference_to_core(reference, "n"),
                           logic.make_config("ExemplarColorize", SIZE), "ExemplarColorize")


def test_reference_must_be_a_colour_image(logic, lite, cat_pair):
    target, reference = cat_pair
    assert logic.reference_to_core(reference, "DenseMatch").shape[0] == 1
    core_t = logic.image_to_core(target, "target", "DenseMatch")
    config = logic.make_config("DenseMatch", SIZE)
    # one reference: today's core result; a batch of several is matched reference by reference
    assert type(logic.run_match(lite[2], core_t, logic.reference_to_core(reference, "n"), config,
                                "DenseMatch")).__name__ == "MatchResult"
    # the core owns the policy: a gray reference (even with JPEG noise) is refused, phrased here
    noisy = (core_t + torch.rand_like(core_t) * 0.5 / 255).clamp(0, 1)
    with pytest.raises(logic.NodeInputError,
                       match=r"Dense Match: reference: has no colour.*swapped"):
        logic.run_match(lite[2], core_t, noisy, config, "DenseMatch")


def test_too_small_target_is_refused_by_the_core_and_phrased(logic, lite, cat_pair):
    _, reference = cat_pair
    small = logic.image_to_core(torch.rand(1, 16, 64, 3), "target", "ExemplarColorize")
    with pytest.raises(logic.NodeInputError,
                       match=r"DeepExemplar Colorize: targets\[0\].*16.*32"):
        logic.run_colorize(lite[2], small, logic.reference_to_core(reference, "n"),
                           logic.make_config("ExemplarColorize", SIZE), "ExemplarColorize")


def test_similarity_grid_places_levels_and_directions(logic):
    from types import SimpleNamespace

    sim_tr = torch.arange(5.0).view(1, 5, 1, 1).expand(1, 5, 4, 6) / 10
    sim_rt = sim_tr + 0.5
    grid = logic.similarity_grid(SimpleNamespace(similarity=SimpleNamespace(sim_tr=sim_tr,
                                                                             sim_rt=sim_rt)))
    assert grid.shape == (1, 8, 30, 3)
    assert grid[0, 0, 6 * 2, 0] == pytest.approx(0.2)  # row T->R, level 2
    assert grid[0, 4, 6 * 4 + 5, 1] == pytest.approx(0.9)  # row R->T, level 4
    assert float(grid.max()) <= 1.0


def test_confidence_mask_resizes_to_target(logic):
    from types import SimpleNamespace

    conf = torch.zeros(2, 1, 8, 8)
    conf[:, :, :, 4:] = 1.0
    mask = logic.confidence_mask(SimpleNamespace(confidence=conf), (16, 16))
    assert mask.shape == (2, 16, 16)
    assert float(mask[0, :, :6].max()) == 0.0 and float(mask[0, :, 10:].min()) == 1.0


def test_weight_options_and_fingerprint(logic, tmp_path):
    options = logic.weight_options(["z.safetensors", "x.ckpt", "a.SAFETENSORS"],
                                   (logic.BUILTIN_LITE, logic.PAPER_BACKBONE_AUTO))
    assert options == [logic.BUILTIN_LITE, logic.PAPER_BACKBONE_AUTO, "a.SAFETENSORS",
                       "z.safetensors"]
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"1")
    first = logic.file_fingerprint(str(path))
    path.write_bytes(b"22")
    assert logic.file_fingerprint(str(path)) != first
    assert logic.file_fingerprint(str(tmp_path / "gone")).startswith("missing:")


def test_move_to_keeps_structure(logic):
    from deepexemplar_core.structures import Correspondence

    corr = Correspondence(torch.zeros(1, 2, 2, 2, dtype=torch.long),
                          torch.zeros(1, 2, 2, 2, dtype=torch.long), timings={"x": 1.0})
    moved = logic.move_to({"c": corr, "l": [torch.ones(1)]}, "cpu")
    assert isinstance(moved["c"], Correspondence) and moved["c"].timings == {"x": 1.0}
    torch.testing.assert_close(moved["l"][0], torch.ones(1))


# ----------------------------------------------------------------------------- loaders


def test_missing_paper_weights_name_folder_and_fix(logic, tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPEXEMPLAR_WEIGHTS", raising=False)
    monkeypatch.setenv("DEEPEXEMPLAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEEPEXEMPLAR_HF_REPO", raising=False)
    with pytest.raises(logic.NodeInputError,
                       match=r"(?s)Load Backbone.*vgg19_bn_gray.*Fix: put.*models/deepexemplar/"):
        logic.load_backbone(logic.PAPER_BACKBONE_AUTO, None, allow_download=False,
                            search_dirs=[str(tmp_path)])
    with pytest.raises(logic.NodeInputError,
                       match=r"(?s)Load Colorization Network.*none: weights-free"):
        logic.load_colornet(logic.PAPER_COLORNET_AUTO, None, allow_download=False,
                            search_dirs=[str(tmp_path)])


def test_wrong_file_in_colornet_loader(logic, tiny_paper_weights):
    with pytest.raises(logic.NodeInputError,
                       match=r"(?s)Load Colorization Network: cannot load.*not ExampleColorNet"):
        logic.load_colornet("vgg.safetensors", str(tiny_paper_weights["gray_vgg"]),
                            allow_download=False, search_dirs=())


def test_paper_colornet_refuses_lite_backbone(logic, lite, tiny_paper_weights):
    backbone, _, _ = lite
    colornet = logic.load_colornet("net.safetensors", str(tiny_paper_weights["colornet"]),
                                   allow_download=False, search_dirs=())
    assert colornet.provenance.trained_on_backbone == "gray_vgg" and colornet.provenance.sha256
    with pytest.raises(logic.NodeInputError, match=r"trained on the 'gray_vgg'.*Load Backbone"):
        logic.assemble_models(backbone, colornet, "cpu", "ExemplarColorize")


# ----------------------------------------------------------------------------- stages


def test_colorize_real_photo_gives_colour_at_input_size(logic, lite, cat_pair):
    target, reference = cat_pair
    _, _, models = lite
    config = logic.make_config("ExemplarColorize", SIZE)
    images = logic.run_colorize(models, logic.image_to_core(target, "target", "n"),
                                logic.reference_to_core(reference, "n"), config, "n")
    out = logic.images_to_comfy(images, "cpu")
    assert out.shape == target.shape
    assert _chroma(target) < 1e-6 < 0.02 < _chroma(out)
    # the luminance comes from the target: the mean brightness stays close
    assert abs(float(out.mean()) - float(target.mean())) < 0.08


def test_strength_zero_returns_gray(logic, lite, cat_pair):
    target, reference = cat_pair
    config = logic.make_config("ExemplarColorize", SIZE, strength=0.0)
    images = logic.run_colorize(lite[2], logic.image_to_core(target, "target", "n"),
                                logic.reference_to_core(reference, "n"), config, "n")
    assert _chroma(logic.images_to_comfy(images, "cpu")) < 0.01


def test_batch_progress_is_per_level_and_monotonic(logic, lite, cat_pair):
    target, reference = cat_pair
    frames = torch.cat([target, target.flip(2), target.roll(9, 2)])
    core_t = logic.image_to_core(frames, "target", "n")
    core_r = logic.reference_to_core(reference, "n")
    calls = []
    batch = logic.run_colorize(lite[2], core_t, core_r, logic.make_config("n", SIZE, frames=3),
                               "n", report=lambda d, t: calls.append((d, t)))
    assert len(batch) == 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1][0] == calls[-1][1] > 0 and len(calls) > 6  # per level, per frame


def test_a_batch_is_a_clip_for_both_graphs(logic, lite, cat_pair):
    """The motion prior is decided once (``make_config``): ExemplarColorize alone and
    DenseMatch -> ExemplarColorize give the same pixels on a 24-frame clip."""
    from pack_import import import_pack_module

    example_clip_frames = import_pack_module("nodes.video_logic").example_clip_frames

    target, reference = cat_pair
    clip = torch.stack(list(example_clip_frames(target[0].movedim(-1, 0), count=24,
                                                size=(72, 96))))
    frames = logic.image_to_core(clip.movedim(1, -1), "target", "n")
    core_r = logic.reference_to_core(reference, "n")
    config = logic.make_config("n", SIZE, frames=frames.shape[0])
    assert config.motion
    alone = logic.run_colorize(lite[2], frames, core_r, config, "n")
    match = logic.MatchHandle(logic.run_match(lite[2], frames, core_r, config, "DenseMatch"),
                              lite[0])
    staged = logic.run_colorize(lite[2], frames, core_r, config, "n", match=match)
    assert len(alone) == len(staged) == 24
    for one, other in zip(alone, staged, strict=True):
        assert torch.equal(one, other)
    # the clip's frames were matched along the motion: a batch without it differs
    still = logic.run_colorize(lite[2], frames, core_r, logic.make_config("n", SIZE), "n")
    assert any(not torch.equal(a, b) for a, b in zip(alone, still, strict=True))


def test_precomputed_stages_are_reused_and_checked(logic, lite, cat_pair):
    target, reference = cat_pair
    backbone, _, models = lite
    core_t = logic.image_to_core(target, "target", "n")
    core_r = logic.reference_to_core(reference, "n")
    config = logic.make_config("n", SIZE)
    match = logic.MatchHandle(logic.run_match(models, core_t, core_r, config, "DenseMatch"),
                              backbone)
    sim = logic.SimilarityHandle(logic.run_similarity(models, match.match, "SimilarityMaps"), match)
    direct = logic.run_colorize(models, core_t, core_r, config, "n")
    reused = logic.run_colorize(models, core_t, core_r, config, "n", match=match, similarity=sim)
    torch.testing.assert_close(reused[0], direct[0])
    with pytest.raises(logic.NodeInputError, match=r"computed at working size 64.*asks for 96"):
        logic.run_colorize(models, core_t, core_r, logic.make_config("n", 96), "n", match=match)
    with pytest.raises(logic.NodeInputError, match=r"1 target\(s\).*got 2.*same target images"):
        logic.run_colorize(models, core_t.expand(2, -1, -1, -1), core_r, config, "n", match=match)
    other = logic.MatchHandle(match.match, backbone)
    with pytest.raises(logic.NodeInputError, match=r"another correspondence"):
        logic.run_colorize(models, core_t, core_r, config, "n", match=other, similarity=sim)


def test_interrupt_from_progress_callback_propagates(logic, lite, cat_pair):
    target, reference = cat_pair

    class StopError(Exception):
        pass

    def report(done, total):
        raise StopError

    with pytest.raises(StopError):
        logic.run_colorize(lite[2], logic.image_to_core(target, "t", "n"),
                           logic.reference_to_core(reference, "n"),
                           logic.make_config("n", SIZE), "n", report=report)


def test_core_value_errors_become_node_errors(logic):
    with pytest.raises(logic.NodeInputError, match=r"DeepExemplar Colorize: strength"):
        logic.make_config("ExemplarColorize", SIZE, strength=9.0)
    with pytest.raises(logic.NodeInputError, match=r"DeepExemplar X: boom"), \
            logic.core_errors("X"):
        raise ValueError("boom")
    with pytest.raises(KeyError), logic.core_errors("X"):
        raise KeyError("not converted")
