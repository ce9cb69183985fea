"""Video matching: the previous frame's field carried along the motion starts the next frame's."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from deepexemplar_core import ColorizeConfig, MotionPrior, colorize_iter, load_models, prepare_reference
from deepexemplar_core.color import rgb_to_lab
from deepexemplar_core.matching import MatchConfig, dense_match

SIZE = 96


@pytest.fixture(scope="module")
def lite():
    return load_models("lite")


def _pan(photo: torch.Tensor, frames: int, step: int) -> list[torch.Tensor]:
    """Gray frames of a camera panning ``step`` pixels per frame across a real photo."""
    gray = photo.mean(0, keepdim=True)
    return [gray[:, 20:220, 10 + step * t: 290 + step * t] for t in range(frames)]


def test_a_true_prior_is_kept_and_a_wrong_one_never_hurts(lite, chelsea_rgb):
    l = rgb_to_lab(chelsea_rgb[None, :, :192, :256])[:, :1]
    pyramid = lite.backbone.pyramid(l)
    config = MatchConfig.default_for(pyramid)
    identity = torch.stack(torch.meshgrid(torch.arange(192), torch.arange(256), indexing="ij"), -1)[None]
    plain = dense_match(pyramid, pyramid, config).nnf_tr
    guided = dense_match(pyramid, pyramid, config, prior=identity).nnf_tr
    exact = lambda f: float((f == identity).all(-1).float().mean())  # noqa: E731
    assert exact(guided) >= exact(plain) and exact(guided) > 0.97
    wrong = identity.flip(1).contiguous()  # every pixel points to the mirrored row
    assert exact(dense_match(pyramid, pyramid, config, prior=wrong).nnf_tr) >= exact(plain) - 0.01
    with pytest.raises(ValueError, match="prior"):
        dense_match(pyramid, pyramid, config, prior=identity[:, :10])


def test_motion_prior_follows_a_pan_and_resets_at_a_cut(chelsea_rgb, coffee_rgb):
    motion = MotionPrior()
    frames = [rgb_to_lab(f.expand(3, -1, -1)[None])[:, :1] for f in _pan(chelsea_rgb, 2, 4)]
    ys, xs = torch.meshgrid(torch.arange(200), torch.arange(280), indexing="ij")
    field = torch.stack((ys, xs), -1)[None]  # frame 0 matched to itself
    motion.remember(frames[0], field)
    carried = motion.prior_for(frames[1])
    # frame 1 shows frame 0 moved 4 px left: its pixel p is frame 0's p + 4 in x
    inner = (slice(None), slice(10, -10), slice(10, -20))
    assert float(((carried[inner][..., 1] - field[inner][..., 1]) - 4).abs().le(1).float().mean()) > 0.9
    other = rgb_to_lab(coffee_rgb[None, :, :200, :280])[:, :1]
    assert motion.prior_for(other) is None and motion.cuts == 1


def _consistency(fields: list[torch.Tensor], step: int) -> float:
    """Share of pixels whose match moved with the camera (within 1 px) from frame to frame."""
    kept = []
    for before, after in zip(fields, fields[1:]):
        moved = before[:, :, step:] - after[:, :, :-step]
        kept.append(float(moved.abs().le(1).all(-1).float().mean()))
    return sum(kept) / len(kept)


def _own_field(result) -> torch.Tensor:
    """``(1, h, w, 2)`` the T->R field of one streamed result (its chunk holds several)."""
    inter = result.intermediates
    row = inter.indices.index(result.index)
    return inter.match.correspondence.nnf_tr[row:row + 1]


def test_colorize_iter_with_motion_gives_steadier_fields(lite, chelsea_rgb):
    config = ColorizeConfig(size=SIZE)
    reference = chelsea_rgb.flip(-1)
    prepared = prepare_reference(lite, reference, config)
    frames = _pan(chelsea_rgb, 5, 6)
    step = round(6 * SIZE / 200)  # the pan at working size
    fields = {}
    for name, motion in (("plain", False), ("motion", True)):
        results = colorize_iter(frames, prepared, lite, replace(config, motion=motion),
                                keep_intermediates=True)
        fields[name] = [_own_field(r) for r in results]
    assert _consistency(fields["motion"], step) >= _consistency(fields["plain"], step)
