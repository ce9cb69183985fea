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


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args])
    out, err = capsys.readouterr()
    return code, out, err


def test_colorize_names_the_file_the_core_refuses(files, capsys):
    base = [*COLORIZE, str(files / "target.png"), "-o", str(files / "out.png"), "-r",
            str(files / "a.png")]
    code, _, err = _run(capsys, *base, "-r", str(files / "tiny.png"))
    assert code == EXIT_INPUT and f"{files / 'tiny.png'}: " in err and "references[" not in err
    code, _, err = _run(capsys, *base, "-r", str(files / "b.png"), "--region",
                        str(files / "zero.png"))
    assert code == EXIT_INPUT and f"--region {files / 'zero.png'}: is empty" in err
    assert "masks[" not in err and f"so {files / 'a.png'} would colour nothing" in err
    code, _, err = _run(capsys, *base, "-r", str(files / "b.png"), "--region",
                        str(files / "corrupt.png"))
    assert code == EXIT_INPUT and "error: --region: " in err and "reference" not in err
    assert not (files / "out.png").exists()


def test_the_same_reference_twice_is_used_once(files, capsys):
    (files / "sub").mkdir()
    a, again = str(files / "a.png"), str(files / "sub" / ".." / "a.png")
    target = str(files / "target.png")
    assert _run(capsys, *COLORIZE, target, "-r", a, "-o", str(files / "one.png"))[0] == EXIT_OK
    code, _, err = _run(capsys, *COLORIZE, target, "-r", a, "-r", again, "-o",
                        str(files / "twice.png"))
    # it was a set of two copies, and the metadata said the file coloured 0 % of the pixels
    assert code == EXIT_OK and "given twice; used once" in err
    twice = Image.open(files / "twice.png")
    assert "deepexemplar:choice" not in twice.info
    assert np.array_equal(np.asarray(twice), np.asarray(Image.open(files / "one.png")))
    code, _, err = _run(capsys, *COLORIZE, target, "-r", a, "-r", again, "--region",
                        str(files / "zero.png"), "-o", str(files / "region.png"))
    assert code == EXIT_INPUT and "given twice, with a region" in err


def test_ctrl_c_while_writing_intermediates_keeps_the_summary_true(files, capsys, monkeypatch):
    from deepexemplar_core import intermediates

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(intermediates, "write_combo", interrupted)
    out = files / "out"
    code, stdout, _ = _run(capsys, *COLORIZE, str(files / "target.png"), str(files / "a.png"),
                           "-r", str(files / "a.png"), "-r", str(files / "b.png"), "-o", str(out),
                           "--save-intermediates", "--json")
    summary = json.loads(stdout)
    # the result was on disk but listed as "not reached", beside half of its intermediates
    assert code == 130
    assert summary["written"] == [str(out / "target_colorized.png")]
    assert sorted(p.name for p in out.iterdir()) == ["target_colorized.png"]


def test_references_with_the_same_name_keep_their_own_intermediates(files, capsys):
    (files / "other").mkdir()
    Image.open(files / "b.png").save(files / "other" / "a.png")
    out = files / "out.png"
    code, _, _ = _run(capsys, *COLORIZE, str(files / "target.png"), "-r", str(files / "a.png"),
                      "-r", str(files / "other" / "a.png"), "-o", str(out),
                      "--save-intermediates")
    names = {p.name for p in (files / "out_intermediates").iterdir()}
    assert code == EXIT_OK
    assert {"target_a.txt", "target_a_2.txt", "target_a.combo", "target_a_2.combo"} <= names


@pytest.mark.parametrize(("refs", "bad"), [
    (["-r", "{f}/a.png", "-r", "{f}/tiny.png"], "tiny.png"),
    (["-r", "{f}/corrupt.png"], "corrupt.png"),
    (["-r", "{f}/gray.png"], "gray.png"),
    (["--keyframes", "0={f}/a.png,2={f}/corrupt.png"], "corrupt.png"),
    (["--keyframes", "0={f}/a.png,2={f}/gray.png"], "gray.png"),
])
def test_video_refuses_a_bad_reference_before_the_work(files, capsys, monkeypatch, refs, bad):
    import deepexemplar_core.cli.video as command

    # found only when its segment came (exit 5, "processing failed: ImageReadError")
    monkeypatch.setattr(command, "load_models_from_args", lambda *a: pytest.fail("work started"))
    args = [r.format(f=files) for r in refs]
    code, _, err = _run(capsys, *VIDEO, str(files / "clip"), *args, "-o",
                        str(files / "out.mp4"))
    assert code == EXIT_INPUT and f"{files / bad}: " in err and "processing failed" not in err
    assert not (files / "out.mp4").exists()


@pytest.mark.parametrize(("schedule", "message"), [
    ("", "--keyframes: is empty, so there is no entry within the clip; give FRAME=REFERENCE"),
    (" , ", "--keyframes: is empty, so there is no entry within the clip; give FRAME="),
    ("0=a.png,\u00b2=b.png", "expected FRAME=REFERENCE entries"),  # str.isdigit() says yes
    ("0=a.png,-2=b.png", "with FRAME >= 0 (frames count from 0), got '-2=b.png'"),
])
def test_a_malformed_schedule_is_a_usage_error(files, capsys, schedule, message):
    code, _, err = _run(capsys, *VIDEO, str(files / "clip"), "--keyframes", schedule, "-o",
                        str(files / "out.mp4"))
    assert code == EXIT_USAGE and message in err and "Traceback" not in err


def test_a_region_painted_on_a_transparent_layer(files, capsys):
    # white strokes on a transparent layer that stores white under the transparency too: the
    # region was the whole target (alpha ignored), so reference a coloured everything
    region = np.zeros((96, 192), np.uint8)
    region[:, :96] = 255
    layer = np.dstack([np.full((96, 192, 3), 255, np.uint8), region])
    Image.fromarray(layer, "RGBA").save(files / "layer.png")
    out = files / "out.png"
    code, _, err = _run(capsys, *COLORIZE, str(files / "target.png"), "-r", str(files / "a.png"),
                        "-r", str(files / "b.png"), "--region", str(files / "layer.png"), "-o",
                        str(out))
    share = json.loads(Image.open(out).info["deepexemplar:choice"])[str(files / "a.png")]
    assert code == EXIT_OK, err
    assert 0.3 < share < 0.6


def test_regions_beyond_your_references_are_refused_with_an_index(files, capsys, monkeypatch):
    from deepexemplar_core import recommend

    # the second region went to whichever photo the index picked for each target
    monkeypatch.setattr(recommend.Index, "load", lambda *a: pytest.fail("index was read"))
    code, _, err = _run(capsys, *COLORIZE, str(files / "target.png"), "-r", str(files / "a.png"),
                        "--region", str(files / "zero.png"), "--region", str(files / "zero.png"),
                        "--reference-index", str(files), "-o", str(files / "out.png"))
    assert code == EXIT_INPUT and "2 regions for 1 reference(s) of yours" in err


def test_one_reference_with_a_region_says_the_region_changes_nothing(files, capsys):
    target, a = str(files / "target.png"), str(files / "a.png")
    Image.fromarray(np.full((96, 192), 255, np.uint8)).save(files / "all.png")
    assert _run(capsys, *COLORIZE, target, "-r", a, "-o", str(files / "plain.png"))[0] == EXIT_OK
    code, _, err = _run(capsys, *COLORIZE, target, "-r", a, "--region", str(files / "all.png"),
                        "-o", str(files / "with.png"))
    assert code == EXIT_OK and "with one reference a region changes nothing" in err
    assert np.array_equal(np.asarray(Image.open(files / "with.png")),
                          np.asarray(Image.open(files / "plain.png")))
