"""What a demanding user hit with several references, regions and keyframes (issue 18), one test
per problem: the library, ``colorize``, ``video`` and ``batch``'s workers."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from deepexemplar_core import ColorizeConfig, colorize, load_models, prepare_references
from deepexemplar_core.cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from deepexemplar_core.inputs import ImageError, PrecomputedError

COLORIZE = ["colorize", "--size", "64", "--family", "lite", "--quiet"]
VIDEO = ["video", "--size", "64", "--family", "lite", "--quiet", "--temporal", "off"]


def _u8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)


@pytest.fixture()
def files(tmp_path, chelsea_rgb, coffee_rgb):
    """A gray target (chelsea | coffee), a mirrored copy of each photo, masks, bad files, a
    gray 4-frame clip as a folder of frames."""
    cat, cup = _u8(chelsea_rgb)[:96, :96], _u8(coffee_rgb)[:96, :96]
    both = np.concatenate([cat, cup], 1)
    gray = np.asarray(Image.fromarray(both).convert("L"))
    Image.fromarray(gray).save(tmp_path / "target.png")
    Image.fromarray(np.ascontiguousarray(cat[:, ::-1])).save(tmp_path / "a.png")
    Image.fromarray(np.ascontiguousarray(cup[:, ::-1])).save(tmp_path / "b.png")
    Image.fromarray(np.dstack([gray[:, :96]] * 3)).save(tmp_path / "gray.png")
    Image.fromarray(np.zeros(gray.shape, np.uint8)).save(tmp_path / "zero.png")
    Image.fromarray(cat[:8, :8]).save(tmp_path / "tiny.png")
    (tmp_path / "corrupt.png").write_bytes((tmp_path / "a.png").read_bytes()[:300])
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(4):
        Image.fromarray(gray[:, 2 * i:2 * i + 160]).save(clip / f"{i:03d}.png")
    return tmp_path


def test_a_region_drawn_on_the_target_fits_whatever_the_working_size(chelsea_rgb, coffee_rgb):
    # 71x64 at working size 64 is matched at 64x64 (sides floored to multiples of 8): the mask,
    # drawn on the 71x64 target, was refused as "another aspect ratio"
    target = chelsea_rgb[:, :64, :71].mean(0, keepdim=True)[None]
    mask = torch.zeros(64, 71)
    mask[:, :35] = 1.0
    models, config = load_models("lite"), ColorizeConfig(size=64)
    refs = prepare_references(models, [coffee_rgb, chelsea_rgb.flip(-1)], config,
                              masks=[mask, None])
    result = colorize(target, refs, models, config)
    choice = result.intermediates[0].choice[0, 0]
    assert result.images[0].shape == (3, 64, 71)
    assert not (choice[:, 40:] == 0).any()  # the masked reference stays inside its region
    with pytest.raises(ValueError, match=r"masks\[0\]: a 71x32 mask does not fit a 71x64 target"):
        colorize(target, prepare_references(models, [coffee_rgb, chelsea_rgb], config,
                                            masks=[mask[::2], None]), models, config)


def test_input_errors_survive_pickling():
    # Ray sends a worker's error back pickled: an ImageError came back as "Failed to
    # deserialize exception" and a traceback instead of its message
    for error in (ImageError("references[1]", "too_small", "references[1]: 1x1 is too small"),
                  PrecomputedError("match", "size", "match: computed at working size 96")):
        back = pickle.loads(pickle.dumps(error))
        assert (type(back), str(back), back.name, back.kind) == (
            type(error), str(error), error.name, error.kind)
