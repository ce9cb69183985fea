"""Checks at the door: typed refusals, each input checked once, the staged calls' arguments."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import deepexemplar_core.inputs as inputs
import deepexemplar_core.pipeline as pipeline
from deepexemplar_core import (
    ColorizeConfig,
    ImageError,
    MotionPrior,
    colorize,
    colorize_iter,
    compute_similarity,
    load_models,
    match_images,
)
from deepexemplar_core.cli import main
from deepexemplar_core.inputs import check_image, check_reference


@pytest.fixture(scope="module")
def lite():
    return load_models("lite")


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        (torch.rand(64, 64), "shape"),
        (torch.rand(4, 64, 64), "alpha"),
        (torch.rand(2, 64, 64), "channels"),
        (torch.rand(3, 0, 64), "empty"),
        (torch.full((1, 64, 64), float("nan")), "nonfinite"),
        (torch.rand(3, 64, 64) * 3, "range"),
        (torch.rand(1, 16, 64), "too_small"),
    ],
)
def test_refusals_carry_their_kind(image, kind):
    with pytest.raises(ImageError) as info:
        check_image("targets[2]", image)
    assert info.value.kind == kind and info.value.name == "targets[2]"
    assert str(info.value).startswith("targets[2]: ")
    assert isinstance(info.value, ValueError)


def test_reference_refusals_carry_their_kind(chelsea_rgb):
    for reference, kind in ((chelsea_rgb.mean(0, keepdim=True).expand(3, -1, -1), "gray"),
                            (chelsea_rgb.expand(2, -1, -1, -1), "batch")):
        with pytest.raises(ImageError) as info:
            check_reference(reference, allow_gray=False)
        assert info.value.kind == kind


def _counting(monkeypatch) -> list[str]:
    seen: list[str] = []

    def counted(name, image):
        seen.append(name)
        return check_image(name, image)

    for module in (pipeline, inputs):
        monkeypatch.setattr(module, "check_image", counted)
    return seen


def test_each_target_is_checked_once(lite, chelsea_rgb, monkeypatch):
    seen = _counting(monkeypatch)
    frames = [chelsea_rgb[:, :64, :96 + 8 * i].mean(0, keepdim=True) for i in range(3)]
    config = ColorizeConfig(size=32)
    assert len(list(colorize_iter(frames, chelsea_rgb, lite, config, chunk_size=2))) == 3
    assert seen == ["reference", "targets[0]", "targets[1]", "targets[2]"]
    seen.clear()
    colorize(frames, chelsea_rgb, lite, config)
    assert seen == ["reference", "targets[0]", "targets[1]", "targets[2]"]


def test_cli_targets_are_checked_once_by_the_core(chelsea_rgb, monkeypatch, tmp_path):
    seen = _counting(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    photo = (chelsea_rgb.mean(0) * 255).round().byte().numpy()
    for i, size in enumerate((80, 72, 16)):  # the last one is too small
        Image.fromarray(photo[:size, :size + 8]).save(folder / f"t{i}.png")
    Image.fromarray((chelsea_rgb.permute(1, 2, 0) * 255).round().byte().numpy()).save(
        tmp_path / "ref.png")
    code = main(["colorize", str(folder), "-r", str(tmp_path / "ref.png"), "-o",
                 str(tmp_path / "out"), "--family", "lite", "--size", "32", "-q"])
    assert code == 4  # the too-small one failed alone
    assert sorted(seen) == ["reference", "targets[0]", "targets[1]", "targets[2]"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "t0_colorized.png", "t1_colorized.png"]


def test_an_invalid_target_is_reported_and_the_others_colorized(lite, chelsea_rgb):
    good = chelsea_rgb[:, :64, :96]
    refused: list[tuple[int, str]] = []
    done = list(colorize_iter([good, torch.rand(4, 64, 64), good], chelsea_rgb, lite,
                              ColorizeConfig(size=32),
                              on_invalid=lambda i, err: refused.append((i, err.kind))))
    assert [d.index for d in done] == [0, 2] and refused == [(1, "alpha")]
    with pytest.raises(ImageError, match="targets.1.: has 4 channels"):
        list(colorize_iter([good, torch.rand(4, 64, 64)], chelsea_rgb, lite,
                           ColorizeConfig(size=32)))


def test_compute_similarity_takes_a_device_not_models(lite, chelsea_rgb):
    match = match_images(lite, chelsea_rgb[:, :64, :96], chelsea_rgb, ColorizeConfig(size=32))
    here, moved = compute_similarity(match), compute_similarity(match, "cpu")
    assert torch.equal(here.confidence, moved.confidence)
    with pytest.raises(TypeError, match="match: expected a MatchResult"):
        compute_similarity(lite, match)


def test_motion_is_one_config_switch(lite, chelsea_rgb):
    with pytest.raises(TypeError, match="motion: expected True or False"):
        ColorizeConfig(motion="yes")
    frames = [chelsea_rgb[:, :64, 8 * i:8 * i + 96] for i in range(3)]
    with pytest.raises(ValueError, match="ColorizeConfig.motion=True."):
        list(colorize_iter(frames, chelsea_rgb, lite, ColorizeConfig(size=32),
                           motion=MotionPrior()))
    prior = MotionPrior()
    config = ColorizeConfig(size=32, motion=True)
    streamed = list(colorize_iter(frames, chelsea_rgb, lite, config, chunk_size=2, motion=prior))
    staged = colorize(frames, None, lite, config,
                      match=match_images(lite, frames, chelsea_rgb, config), chunk_size=2)
    for one, other in zip(streamed, staged.images, strict=True):
        assert torch.equal(one.image, other)
    assert prior.cuts == 0  # a slow pan is one shot
